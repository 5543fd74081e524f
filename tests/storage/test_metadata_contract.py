"""The metadata store's contract, run on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, select, text

from yarnit.core import Settings, SimulatedClock, WorkspaceTooNew
from yarnit.storage import MetadataStore, Workspace, head_revision, open_workspace
from yarnit.storage.schema import audit_log, metadata, models, traffic_policies


def test_migrations_create_exactly_the_declared_schema(ws: Workspace) -> None:
    with ws.metadata.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), metadata)
    assert diff == []
    assert ws.metadata.current_revision() == head_revision()


def test_migrate_is_idempotent(ws: Workspace) -> None:
    before = ws.metadata.table_names()
    assert ws.metadata.migrate() == head_revision()
    assert ws.metadata.table_names() == before


def test_timestamps_come_back_timezone_aware_utc(ws: Workspace, clock: SimulatedClock) -> None:
    with ws.metadata.begin() as conn:
        conn.execute(insert(audit_log).values(at=clock.now(), actor="t", action="a", subject="s", detail={"k": 1}))
    with ws.metadata.begin() as conn:
        row = conn.execute(select(audit_log)).mappings().one()
    assert row["at"] == clock.now() and row["at"].tzinfo is not None
    assert row["at"].utcoffset() == timezone.utc.utcoffset(None)
    assert row["detail"] == {"k": 1}


def test_failed_transaction_leaves_nothing(ws: Workspace, clock: SimulatedClock) -> None:
    with pytest.raises(RuntimeError), ws.metadata.begin() as conn:
        conn.execute(insert(audit_log).values(at=clock.now(), actor="t", action="a", subject="s", detail={}))
        raise RuntimeError("crash mid-transaction")
    with ws.metadata.begin() as conn:
        assert conn.execute(select(audit_log)).first() is None


def test_workspace_from_a_newer_yarnit_is_refused_with_the_fix(ws: Workspace) -> None:
    with ws.metadata.begin() as conn:
        conn.execute(text("INSERT INTO alembic_version (version_num) VALUES ('9999')"))
    store = MetadataStore(ws.settings.db_url)
    with pytest.raises(WorkspaceTooNew, match="revision '9999'.*newer yarnit: upgrade yarnit"):
        store.migrate()
    store.close()


def test_sqlite_store_runs_in_wal_with_foreign_keys(sqlite_ws: Workspace) -> None:
    with sqlite_ws.metadata.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    assert sqlite_ws.metadata.integrity_check() == "ok"


def test_unreachable_database_says_what_to_check(tmp_path, clock) -> None:  # type: ignore[no-untyped-def]
    from yarnit.core import Unavailable

    settings = Settings.for_home(tmp_path, db_url="postgresql+psycopg://nobody@127.0.0.1:1/none")
    with pytest.raises(Unavailable, match="did not answer.*YARNIT_DB_URL"):
        open_workspace(settings, clock)


def test_the_change_token_moves_only_when_something_is_committed(ws: Workspace, clock: SimulatedClock) -> None:
    store = ws.metadata
    first = store.change_token()
    if store.dialect != "sqlite":
        _postgres_token_moves_only_with_what_serving_reads(ws, clock)
        return
    assert first is not None and store.change_token() == first  # reads change nothing
    with store.begin() as conn:
        conn.execute(select(audit_log)).all()
    assert store.change_token() == first
    with store.begin() as conn:
        conn.execute(insert(audit_log).values(at=clock.now(), actor="t", action="a", subject="s", detail={}))
    second = store.change_token()
    assert second is not None and second != first
    with pytest.raises(RuntimeError), store.begin() as conn:  # a rolled-back write commits nothing
        conn.execute(insert(audit_log).values(at=clock.now(), actor="t", action="a", subject="s", detail={}))
        raise RuntimeError("crash mid-transaction")
    assert store.change_token() == second


def _postgres_token_moves_only_with_what_serving_reads(ws: Workspace, clock: SimulatedClock) -> None:
    """On PostgreSQL the token is migration 0014's trigger-kept counter: a write to a table serving reads moves
    it (in the writing transaction), any other write and any rolled-back write do not."""
    store = ws.metadata
    first = store.change_token()
    assert first is not None and store.change_token() == first
    with store.begin() as conn:  # the audit log is not something serving reads
        conn.execute(insert(audit_log).values(at=clock.now(), actor="t", action="a", subject="s", detail={}))
    assert store.change_token() == first
    with store.begin() as conn:
        conn.execute(insert(models).values(name="ctr", created_at=clock.now()))
    second = store.change_token()
    assert second is not None and second > first
    with store.begin() as conn:  # a traffic-policy change (canary share, the fall-back switch) moves it too
        conn.execute(insert(traffic_policies).values(model_name="ctr", canary_percent=5.0, shadow=False,
                                                     updated_at=clock.now(), updated_by="t"))
    third = store.change_token()
    assert third is not None and third > second
    second = third
    with pytest.raises(RuntimeError), store.begin() as conn:
        conn.execute(insert(models).values(name="ranker", created_at=clock.now()))
        raise RuntimeError("crash mid-transaction")
    assert store.change_token() == second


def test_the_postgres_change_token_survives_a_lost_connection(tmp_path, clock) -> None:  # type: ignore[no-untyped-def]
    """A replica whose token connection was cut re-reads (None) and then reconnects, instead of going blind."""
    from conftest import _pg_schema_url, postgres_url

    for url in _pg_schema_url(postgres_url()):
        ws = open_workspace(Settings.for_home(tmp_path / "home", db_url=url), clock)
        try:
            first = ws.metadata.change_token()
            assert first is not None
            pid = ws.metadata._token_pg.driver_connection.info.backend_pid  # that connection's server process
            with ws.metadata.begin() as conn:
                assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar() is True
            assert ws.metadata.change_token() is None  # the cut connection: cannot tell, so the caller re-reads
            assert ws.metadata.change_token() == first  # and the next poll has a fresh connection
        finally:
            ws.close()
