"""Human labels: versioned label schemas, label tasks, their items, assignments and answers.

Revision ID: 0012
Revises: 0001 (the tables stand alone)
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "label_schemas",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("classes", sa.JSON(), nullable=False),
        sa.Column("guideline", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_label_schemas")),
        sa.UniqueConstraint("name", "version", name="uq_label_schemas_name_version"),
    )
    op.create_table(
        "label_tasks",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("schema_name", sa.String(length=63), nullable=False),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.Column("dataset_version_id", sa.String(length=40), nullable=False),
        sa.Column("key_column", sa.String(length=128), nullable=False),
        sa.Column("text_column", sa.String(length=128), nullable=False),
        sa.Column("raters", sa.JSON(), nullable=False),
        sa.Column("overlap", sa.Integer(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("policy", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_label_tasks")),
        sa.UniqueConstraint("name", name="uq_label_tasks_name"),
    )
    op.create_table(
        "label_items",
        sa.Column("task_id", sa.String(length=40), nullable=False),
        sa.Column("item_key", sa.String(length=128), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("golden_label", sa.String(length=63), nullable=True),
        sa.Column("prelabel", sa.String(length=63), nullable=True),
        sa.Column("prelabel_confidence", sa.Float(), nullable=True),
        sa.Column("prelabel_model", sa.String(length=128), nullable=True),
        sa.Column("show_prelabel", sa.Boolean(), server_default="0", nullable=False),
        sa.Column("reviewed_label", sa.String(length=63), nullable=True),
        sa.Column("reviewed_by", sa.String(length=128), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("task_id", "item_key", name=op.f("pk_label_items")),
    )
    op.create_table(
        "label_assignments",
        sa.Column("task_id", sa.String(length=40), nullable=False),
        sa.Column("item_key", sa.String(length=128), nullable=False),
        sa.Column("rater", sa.String(length=128), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("task_id", "item_key", "rater", name=op.f("pk_label_assignments")),
    )
    with op.batch_alter_table("label_assignments") as batch:
        batch.create_index("ix_label_assignments_queue", ["task_id", "rater", "position"], unique=False)
    op.create_table(
        "label_answers",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("task_id", sa.String(length=40), nullable=False),
        sa.Column("item_key", sa.String(length=128), nullable=False),
        sa.Column("rater", sa.String(length=128), nullable=False),
        sa.Column("label", sa.String(length=63), nullable=False),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.Column("prelabel_shown", sa.Boolean(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_label_answers")),
        sa.UniqueConstraint("task_id", "item_key", "rater", name="uq_label_answers_once"),
    )
    with op.batch_alter_table("label_answers") as batch:
        batch.create_index("ix_label_answers_rater", ["task_id", "rater", "seq"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("label_answers") as batch:
        batch.drop_index("ix_label_answers_rater")
    op.drop_table("label_answers")
    with op.batch_alter_table("label_assignments") as batch:
        batch.drop_index("ix_label_assignments_queue")
    op.drop_table("label_assignments")
    op.drop_table("label_items")
    op.drop_table("label_tasks")
    op.drop_table("label_schemas")
