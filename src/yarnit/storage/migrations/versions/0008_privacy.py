"""Privacy: the suppression list of forgotten subjects, and every online store a feature view was written to.

Revision ID: 0008
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "subject_suppressions",
        sa.Column("subject_hmac", sa.String(length=64), nullable=False),
        sa.Column("receipt_id", sa.String(length=40), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("subject_hmac", name=op.f("pk_subject_suppressions")),
    )
    op.create_table(
        "online_store_targets",
        sa.Column("url", sa.String(length=512), nullable=False),
        sa.Column("first_used_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("url", name=op.f("pk_online_store_targets")),
    )


def downgrade() -> None:
    op.drop_table("online_store_targets")
    op.drop_table("subject_suppressions")
