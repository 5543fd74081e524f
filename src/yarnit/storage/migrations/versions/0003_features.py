"""Feature store: feature view versions, their consumers, materialization runs.

Revision ID: 0003
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feature_views",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("owner", sa.String(length=128), server_default="", nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feature_views")),
        sa.UniqueConstraint("name", "number", name="uq_feature_views_name_number"),
        sa.UniqueConstraint("name", "version", name="uq_feature_views_name_version"),
    )
    op.create_table(
        "feature_consumers",
        sa.Column("view_name", sa.String(length=63), nullable=False),
        sa.Column("consumer", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=32), server_default="model", nullable=False),
        sa.Column("features", sa.JSON(), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("view_name", "consumer", name=op.f("pk_feature_consumers")),
    )
    op.create_table(
        "feature_materializations",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("view_name", sa.String(length=63), nullable=False),
        sa.Column("view_version", sa.String(length=64), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("store", sa.String(length=256), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rows_offered", sa.BigInteger(), nullable=True),
        sa.Column("rows_written", sa.BigInteger(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feature_materializations")),
    )
    with op.batch_alter_table("feature_materializations", schema=None) as batch_op:
        batch_op.create_index("ix_feature_materializations_view", ["view_name", "started_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("feature_materializations", schema=None) as batch_op:
        batch_op.drop_index("ix_feature_materializations_view")
    op.drop_table("feature_materializations")
    op.drop_table("feature_consumers")
    op.drop_table("feature_views")
