"""Serving: the traffic policy per model (canary share, shadow on/off) and its audited changes.

Revision ID: 0007
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "traffic_policies",
        sa.Column("model_name", sa.String(length=63), nullable=False),
        sa.Column("canary_percent", sa.Float(), nullable=False),
        sa.Column("shadow", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(["model_name"], ["models.name"], name=op.f("fk_traffic_policies_model_name_models")),
        sa.PrimaryKeyConstraint("model_name", name=op.f("pk_traffic_policies")),
    )
    op.create_table(
        "traffic_policy_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("model_name", sa.String(length=63), nullable=False),
        sa.Column("from_canary_percent", sa.Float(), nullable=True),
        sa.Column("to_canary_percent", sa.Float(), nullable=False),
        sa.Column("from_shadow", sa.Boolean(), nullable=True),
        sa.Column("to_shadow", sa.Boolean(), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.Text(), server_default="", nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_traffic_policy_events")),
    )
    with op.batch_alter_table("traffic_policy_events", schema=None) as batch_op:
        batch_op.create_index("ix_traffic_policy_events_model", ["model_name"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("traffic_policy_events", schema=None) as batch_op:
        batch_op.drop_index("ix_traffic_policy_events_model")
    op.drop_table("traffic_policy_events")
    op.drop_table("traffic_policies")
