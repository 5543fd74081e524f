"""Access: named API tokens (hashed at rest, revocable) and the audit trail of raw restricted-column reads.

Revision ID: 0009
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "access_tokens",
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("secret_sha256", sa.String(length=64), nullable=False),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_access_tokens")),
        sa.UniqueConstraint("secret_sha256", name="uq_access_tokens_secret_sha256"),
    )
    op.create_table(
        "restricted_reads",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("via", sa.String(length=16), nullable=False),
        sa.Column("source_kind", sa.String(length=32), nullable=False),
        sa.Column("source_ref", sa.String(length=256), nullable=False),
        sa.Column("columns", sa.JSON(), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_restricted_reads")),
    )
    with op.batch_alter_table("restricted_reads", schema=None) as batch_op:
        batch_op.create_index("ix_restricted_reads_at", ["at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("restricted_reads", schema=None) as batch_op:
        batch_op.drop_index("ix_restricted_reads_at")
    op.drop_table("restricted_reads")
    op.drop_table("access_tokens")
