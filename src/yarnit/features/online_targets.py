"""Every online store a feature view was ever materialized into, so a deletion request can reach them all.

A workspace can switch its online store (``YARNIT_ONLINE_STORE``) from the
SQLite default to Redis, or from one Redis to another; the old store keeps
every entity it was given. :func:`record_online_store` notes each store a
materialization writes to (its URL with any password replaced by ``***``:
credentials never go into the metadata store), and :func:`online_store_urls`
lists them, including the stores named by materialization runs recorded
before this table existed.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import insert, select, update

from yarnit.core.settings import redact_url
from yarnit.storage import Workspace
from yarnit.storage.schema import feature_materializations, online_store_targets


def recorded_form(url: str) -> str | None:
    """How a store's URL is recorded: password redacted, a SQLite path made absolute (so a run from another
    directory finds the same file); None for an in-memory store, which keeps nothing."""
    if url.startswith("sqlite:"):
        path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url.removeprefix("sqlite://")
        if path in ("", ":memory:"):
            return None
        url = f"sqlite:///{Path(path).absolute()}"
    return redact_url(url)[:512]


def record_online_store(ws: Workspace, url: str) -> None:
    """Remember that feature rows were written to the online store at ``url``."""
    shown, now = recorded_form(url), ws.clock.now()
    if shown is None:
        return
    with ws.metadata.begin() as conn:
        changed = conn.execute(update(online_store_targets).where(online_store_targets.c.url == shown)
                               .values(last_used_at=now)).rowcount
        if not changed:
            conn.execute(insert(online_store_targets).values(url=shown, first_used_at=now, last_used_at=now))


def online_store_urls(ws: Workspace) -> list[str]:
    """Every online store ever materialized into (redacted URLs), oldest first."""
    with ws.metadata.begin() as conn:
        recorded = [r[0] for r in conn.execute(select(online_store_targets.c.url)
                                               .order_by(online_store_targets.c.first_used_at)).all()]
        runs = [r[0] for r in conn.execute(select(feature_materializations.c.store).distinct()).all()]
    return list(dict.fromkeys([*recorded, *sorted(r for r in runs if r)]))


__all__ = ["online_store_urls", "record_online_store", "recorded_form"]
