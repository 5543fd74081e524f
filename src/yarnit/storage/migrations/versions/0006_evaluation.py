"""Evaluation: stored evaluation reports with lineage, and one row per (subject, distribution, slice, metric).

Revision ID: 0006
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "evaluations",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("model_name", sa.String(length=63), nullable=False),
        sa.Column("model_version", sa.Integer(), nullable=True),
        sa.Column("model_version_id", sa.String(length=40), nullable=True),
        sa.Column("artifact_sha256", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("primary_distribution", sa.String(length=128), nullable=False),
        sa.Column("distributions", sa.JSON(), nullable=False),
        sa.Column("dataset_version_ids", sa.JSON(), nullable=False),
        sa.Column("report_sha256", sa.String(length=64), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("compared_with", sa.JSON(), nullable=True),
        sa.Column("validity_passed", sa.Boolean(), nullable=True),
        sa.Column("blessed", sa.Boolean(), nullable=True),
        sa.Column("verdict", sa.JSON(), nullable=True),
        sa.Column("gated_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evaluations")),
    )
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.create_index("ix_evaluations_model", ["model_name", "created_at"], unique=False)
        batch_op.create_index("ix_evaluations_artifact", ["artifact_sha256"], unique=False)
    op.create_table(
        "evaluation_metrics",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("evaluation_id", sa.String(length=40), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("distribution", sa.String(length=128), nullable=False),
        sa.Column("slice", sa.String(length=256), server_default="", nullable=False),
        sa.Column("metric", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("ci_low", sa.Float(), nullable=True),
        sa.Column("ci_high", sa.Float(), nullable=True),
        sa.Column("n", sa.BigInteger(), nullable=True),
        sa.Column("positives", sa.BigInteger(), nullable=True),
        sa.Column("undefined", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["evaluation_id"], ["evaluations.id"],
                                name=op.f("fk_evaluation_metrics_evaluation_id_evaluations")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_evaluation_metrics")),
    )
    with op.batch_alter_table("evaluation_metrics", schema=None) as batch_op:
        batch_op.create_index("ix_evaluation_metrics_evaluation", ["evaluation_id"], unique=False)
        batch_op.create_index("ix_evaluation_metrics_metric", ["metric", "distribution"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("evaluation_metrics", schema=None) as batch_op:
        batch_op.drop_index("ix_evaluation_metrics_metric")
        batch_op.drop_index("ix_evaluation_metrics_evaluation")
    op.drop_table("evaluation_metrics")
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.drop_index("ix_evaluations_artifact")
        batch_op.drop_index("ix_evaluations_model")
    op.drop_table("evaluations")
