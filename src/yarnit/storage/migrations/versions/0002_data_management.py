"""Data management: schema versions, purge queue, deletion receipts, taints, retention policies.

Also adds nullable manifest columns to dataset_versions (schema_id, subject_count,
privacy, superseded_by, status_changed_at, retain_from).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dataset_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("schema_id", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("subject_count", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("privacy", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("superseded_by", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("status_changed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("retain_from", sa.DateTime(timezone=True), nullable=True))

    op.create_table(
        "dataset_schemas",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dataset_schemas")),
        sa.UniqueConstraint("name", "content_sha256", name="uq_dataset_schemas_name_content"),
        sa.UniqueConstraint("name", "version", name="uq_dataset_schemas_name_version"),
    )
    op.create_table(
        "artifact_purges",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("artifact_sha256", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("request_id", sa.String(length=40), nullable=True),
        sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("purge_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("purged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_artifact_purges")),
    )
    with op.batch_alter_table("artifact_purges", schema=None) as batch_op:
        batch_op.create_index("ix_artifact_purges_due", ["purged_at", "purge_after"], unique=False)

    op.create_table(
        "deletion_receipts",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("subject_hash", sa.String(length=64), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_by", sa.DateTime(timezone=True), nullable=False),
        sa.Column("purge_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deletion_receipts")),
    )
    with op.batch_alter_table("deletion_receipts", schema=None) as batch_op:
        batch_op.create_index("ix_deletion_receipts_subject", ["subject_hash"], unique=False)

    op.create_table(
        "lineage_taints",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("node_kind", sa.String(length=32), nullable=False),
        sa.Column("node_id", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("request_id", sa.String(length=40), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lineage_taints")),
    )
    with op.batch_alter_table("lineage_taints", schema=None) as batch_op:
        batch_op.create_index("ix_lineage_taints_node", ["node_kind", "node_id"], unique=False)

    op.create_table(
        "retention_policies",
        sa.Column("class_name", sa.String(length=63), nullable=False),
        sa.Column("max_age_days", sa.Integer(), nullable=False),
        sa.Column("grace_days", sa.Integer(), server_default="0", nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("class_name", name=op.f("pk_retention_policies")),
    )


def downgrade() -> None:
    op.drop_table("retention_policies")
    with op.batch_alter_table("lineage_taints", schema=None) as batch_op:
        batch_op.drop_index("ix_lineage_taints_node")
    op.drop_table("lineage_taints")
    with op.batch_alter_table("deletion_receipts", schema=None) as batch_op:
        batch_op.drop_index("ix_deletion_receipts_subject")
    op.drop_table("deletion_receipts")
    with op.batch_alter_table("artifact_purges", schema=None) as batch_op:
        batch_op.drop_index("ix_artifact_purges_due")
    op.drop_table("artifact_purges")
    op.drop_table("dataset_schemas")
    with op.batch_alter_table("dataset_versions", schema=None) as batch_op:
        batch_op.drop_column("retain_from")
        batch_op.drop_column("status_changed_at")
        batch_op.drop_column("superseded_by")
        batch_op.drop_column("privacy")
        batch_op.drop_column("subject_count")
        batch_op.drop_column("schema_id")
