"""Load tests: one row per ``yarnit loadtest`` run, the staged rollout's load-test stage reads the latest.

Revision ID: 0015
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "load_tests",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("model_name", sa.String(length=63), nullable=False),
        sa.Column("model_version", sa.Integer(), nullable=False),
        sa.Column("baseline_version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("rps", sa.Float(), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("injected_delay_ms", sa.Float(), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_load_tests")),
    )
    with op.batch_alter_table("load_tests", schema=None) as batch_op:
        batch_op.create_index("ix_load_tests_version", ["model_name", "model_version", "created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("load_tests", schema=None) as batch_op:
        batch_op.drop_index("ix_load_tests_version")
    op.drop_table("load_tests")
