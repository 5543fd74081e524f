"""Emergency actions: the fall-back switch on the traffic policy, training freezes and retrain requests.

Revision ID: 0011
Revises: 0007 (the column is added to 0007's ``traffic_policies``; the new tables need only 0001's, which 0007
follows)
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("traffic_policies") as batch:
        batch.add_column(sa.Column("force_fallback", sa.Boolean(), server_default="0", nullable=False))
    op.create_table(
        "training_freezes",
        sa.Column("model_name", sa.String(length=63), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("frozen_by", sa.String(length=128), nullable=False),
        sa.Column("frozen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("audit_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("model_name", name=op.f("pk_training_freezes")),
    )
    op.create_table(
        "retrain_requests",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("model_name", sa.String(length=63), nullable=False),
        sa.Column("model_versions", sa.JSON(), nullable=False),
        sa.Column("dataset_version_id", sa.String(length=40), nullable=False),
        sa.Column("replacement_id", sa.String(length=40), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.String(length=128), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("done_by", sa.String(length=128), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_retrain_requests")),
    )
    with op.batch_alter_table("retrain_requests") as batch:
        batch.create_index("ix_retrain_requests_status", ["status", "model_name"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("retrain_requests") as batch:
        batch.drop_index("ix_retrain_requests_status")
    op.drop_table("retrain_requests")
    op.drop_table("training_freezes")
    with op.batch_alter_table("traffic_policies") as batch:
        batch.drop_column("force_fallback")
