"""Alembic environment: runs on the connection that yarnit hands over (no alembic.ini)."""

from __future__ import annotations

from alembic import context

from yarnit.storage.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - yarnit always passes a connection
    raise RuntimeError("yarnit migrations run through yarnit.storage.MetadataStore.migrate()")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
