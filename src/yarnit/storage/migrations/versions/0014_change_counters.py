"""Change counters: what serving replicas poll to learn that an alias or a traffic policy moved.

On PostgreSQL, statement-level triggers on the tables serving reads (models, model versions, aliases, alias
events, traffic policies) add one to ``change_counters['serving']`` in the writing transaction, so a replica
re-reads them only when the counter moved: one primary-key read per poll instead of one alias read per
model. SQLite has ``PRAGMA data_version`` for the same purpose and gets the table only (no triggers).

Revision ID: 0014
Revises: 0011 (the triggers cover 0011's ``traffic_policies`` with its fall-back switch)
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0011"
branch_labels = None
depends_on = None

WATCHED = ("models", "model_versions", "aliases", "alias_events", "traffic_policies")


def upgrade() -> None:
    op.create_table(
        "change_counters",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_change_counters")),
    )
    op.execute("INSERT INTO change_counters (name, value) VALUES ('serving', 0)")
    if op.get_bind().dialect.name != "postgresql":
        return
    # SET search_path FROM CURRENT: the function finds its counter in the schema it was created in, whatever
    # the writing session's search path.
    op.execute("""
        CREATE FUNCTION yarnit_bump_serving_changes() RETURNS trigger LANGUAGE plpgsql
        SET search_path FROM CURRENT AS $$
        BEGIN
            UPDATE change_counters SET value = value + 1 WHERE name = 'serving';
            RETURN NULL;
        END $$
    """)
    for table in WATCHED:
        op.execute(f"CREATE TRIGGER {table}_serving_changes AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
                   f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION yarnit_bump_serving_changes()")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in WATCHED:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_serving_changes ON {table}")
        op.execute("DROP FUNCTION IF EXISTS yarnit_bump_serving_changes()")
    op.drop_table("change_counters")
