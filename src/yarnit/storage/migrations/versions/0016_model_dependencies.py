"""Model-on-model dependencies and the evaluations of each (upstream version, consumer version, dataset version).

Revision ID: 0016
Revises: 0006 (each triple's row points at its report in ``evaluations``)
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_dependencies",
        sa.Column("consumer", sa.String(length=63), nullable=False),
        sa.Column("upstream", sa.String(length=63), nullable=False),
        sa.Column("alias", sa.String(length=32), nullable=False),
        sa.Column("dataset", sa.String(length=128), nullable=True),
        sa.Column("max_regression", sa.Float(), nullable=False),
        sa.Column("declared_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("declared_by", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.Text(), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("consumer", "upstream", name="pk_model_dependencies"),
    )
    op.create_index("ix_model_dependencies_upstream", "model_dependencies", ["upstream"])
    op.create_table(
        "dependency_evaluations",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("consumer", sa.String(length=63), nullable=False),
        sa.Column("consumer_version", sa.Integer(), nullable=False),
        sa.Column("upstream", sa.String(length=63), nullable=False),
        sa.Column("upstream_version", sa.Integer(), nullable=False),
        sa.Column("dataset_version_id", sa.String(length=40), nullable=False),
        sa.Column("evaluation_id", sa.String(length=40), nullable=False),
        sa.Column("baseline_version", sa.Integer(), nullable=True),
        sa.Column("metric", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("baseline_value", sa.Float(), nullable=True),
        sa.Column("max_regression", sa.Float(), nullable=False),
        sa.Column("regressed", sa.Boolean(), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("trigger", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["evaluation_id"], ["evaluations.id"],
                                name=op.f("fk_dependency_evaluations_evaluation_id_evaluations")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dependency_evaluations")),
        sa.UniqueConstraint("upstream", "upstream_version", "consumer", "consumer_version", "dataset_version_id",
                            name="uq_dependency_evaluations_triple"),
    )
    op.create_index("ix_dependency_evaluations_consumer", "dependency_evaluations",
                    ["consumer", "consumer_version"])


def downgrade() -> None:
    op.drop_index("ix_dependency_evaluations_consumer", table_name="dependency_evaluations")
    op.drop_table("dependency_evaluations")
    op.drop_index("ix_model_dependencies_upstream", table_name="model_dependencies")
    op.drop_table("model_dependencies")
