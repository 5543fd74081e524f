"""The metadata store: one SQLAlchemy engine over SQLite (default) or PostgreSQL.

Domains (data, registry, training …) keep their records here through the
tables in :mod:`yarnit.storage.schema`. The schema is created and upgraded by
Alembic migrations shipped in the package; a workspace written by a newer
yarnit is refused with :class:`~yarnit.core.WorkspaceTooNew` instead of being
silently misread.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, Insert, Table, create_engine, event, inspect
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from alembic import command
from yarnit.core.atomic import is_durable
from yarnit.core.errors import ConfigError, InvalidInput, MissingDependency, Unavailable, WorkspaceTooNew

_MIGRATIONS = Path(__file__).parent / "migrations"
SUPPORTED_SCHEMES = ("sqlite", "postgresql+psycopg")


def _alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revisions() -> tuple[str, ...]:
    """The newest schema revisions this yarnit knows (one per branch; domains may branch)."""
    return tuple(sorted(ScriptDirectory.from_config(_alembic_config()).get_heads()))


def head_revision() -> str:
    """The schema revision(s) this yarnit upgrades to, joined by '+' when branches exist."""
    return "+".join(head_revisions())


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN IMMEDIATE itself (below):
    # a deferred transaction that reads and then writes can fail with
    # "database is locked" when another writer got in between.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    # FULL: a commit is on disk when it returns; OFF only in a process that writes without durability (a scratch
    # workspace, core.atomic.set_durable): still atomic against a killed process, not against a power cut
    cursor.execute(f"PRAGMA synchronous={'FULL' if is_durable() else 'OFF'}")
    cursor.close()


def _dispose_in_forked_children(engine: Engine) -> None:
    """A forked child must not use its parent's pooled connections (SQLAlchemy's advice): it drops them unclosed."""
    import os
    import weakref

    ref = weakref.ref(engine)

    def forget() -> None:
        alive = ref()
        if alive is not None:
            alive.dispose(close=False)

    os.register_at_fork(after_in_child=forget)


def json_loads(text: str | bytes) -> Any:
    """A JSON column's value: ``orjson.loads``, else ``json.loads`` (what SQLAlchemy uses by default).

    Reading JSON columns was about 5 % of the continuous loop's CPU (a dataset version's ``statistics`` is tens of
    KB, and ``Datasets.get_by_id`` decodes it on every call); orjson parses it in about half the time. For the
    documents ``json.dumps`` writes both give the same values (floats correctly rounded, integers exact, the same
    key order); what orjson refuses (``NaN``/``Infinity``, lone surrogates) goes to ``json.loads``, as before.
    orjson reads an integer past 64 bits as a float, so a text with a run of 19 or more digits (such an integer,
    or a long number inside a string; ``json.dumps`` writes floats with at most 17) is read by ``json.loads``.
    """
    if isinstance(text, str):
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: orjson refuses it too
            return json.loads(text)
        # the digit-run test by bytes: every ASCII digit to "0", everything else to " ", then a substring search
        # (about a tenth of the CPU of searching the text with the regex [0-9]{19}, which tried each position of
        # every number; the same answer: UTF-8 encodes a non-ASCII character in bytes above 0x7f)
        if _LONG_RUN not in data.translate(_DIGITS_AS_ZERO):
            try:
                return orjson.loads(data)
            except orjson.JSONDecodeError:
                pass
    return json.loads(text)


_DIGITS_AS_ZERO = bytes(0x30 if 0x30 <= i <= 0x39 else 0x20 for i in range(256))
_LONG_RUN = b"0" * 19


def create_metadata_engine(url: str) -> Engine:
    """An engine for ``url`` with yarnit's settings (WAL, foreign keys, busy timeout on SQLite)."""
    scheme = url.split(":", 1)[0]
    if scheme == "postgresql":
        url = "postgresql+psycopg" + url[len("postgresql") :]
        scheme = "postgresql+psycopg"
    if scheme == "sqlite":
        path = url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        if path == ":memory:" or not path:
            engine = create_engine(url, poolclass=NullPool, connect_args={"timeout": 30}, json_deserializer=json_loads)
        else:
            # Pooled: opening a SQLite connection (PRAGMAs) and closing the last one (a WAL checkpoint) cost more
            # than most transactions; a busy loop or monitor opens thousands. Threads share the pool.
            engine = create_engine(url, pool_size=4, max_overflow=28, pool_timeout=60, json_deserializer=json_loads,
                                   connect_args={"timeout": 30, "check_same_thread": False})
            _dispose_in_forked_children(engine)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        return engine
    if scheme == "postgresql+psycopg":
        try:
            import psycopg  # noqa: F401
        except ImportError as exc:  # pragma: no cover - psycopg is a core dependency
            raise MissingDependency("PostgreSQL metadata needs psycopg: pip install 'psycopg[binary]'") from exc
        return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)
    raise ConfigError(
        f"No metadata store for URL scheme {scheme!r}. Supported: sqlite:///path/yarnit.db, "
        "postgresql+psycopg://user@host:5432/db."
    )


def insert_ignore(conn: Connection, table: Table) -> Insert:
    """An INSERT that does nothing when the row's key already exists (SQLite and PostgreSQL)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing()


# What the operator should do, by what SQLite or PostgreSQL said. "Check that the database is running" is the
# advice for a server that did not answer; a read-only or full file needs different hands.
_ADVICE: tuple[tuple[str, str], ...] = (
    ("readonly", "The database file is read-only for this process: give the user running yarnit write access to "
                 "the file and to its directory (SQLite writes -wal and -shm files beside it), or point "
                 "YARNIT_HOME at a writable workspace."),
    ("unable to open", "The database file cannot be opened: check that its directory exists and is readable and "
                       "writable by the user running yarnit, and that YARNIT_HOME is right."),
    ("locked", "Another process held the write lock past the 30 s busy timeout: retry, and look for a stuck "
               "yarnit process on this workspace."),
    ("disk is full", "The disk holding the workspace is full: free space, then retry."),
    ("disk i/o error", "The operating system reported an I/O error on the database file: check the disk and "
                       "the file system (dmesg), then run: yarnit init."),
)


_SERVER_ADVICE = ("Check that the database is running, YARNIT_DB_URL is right and the workspace is migrated "
                  "(yarnit init).")


def _advice(dialect: str, reason: str) -> str | None:
    """The advice for a SQLite file problem named in ``reason``; None for a server that did not answer."""
    lowered = reason.lower()
    if dialect == "sqlite":
        for marker, advice in _ADVICE:
            if marker in lowered:
                return advice
    return None


class MetadataStore:
    """Holds the engine; domains run their statements in :meth:`begin` transactions."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_metadata_engine(url)
        self._token_lock = threading.Lock()
        self._token_conn: sqlite3.Connection | None = None
        self._token_pg: Any = None  # a DBAPI connection of the engine's, for the PostgreSQL change token

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def current_revisions(self) -> tuple[str, ...]:
        """The schema revisions stored in the database (empty if never migrated)."""
        with self._connect() as connection:
            return tuple(sorted(MigrationContext.configure(connection).get_current_heads()))

    def current_revision(self) -> str | None:
        """The stored schema revision(s), joined by '+' (None if never migrated)."""
        return "+".join(self.current_revisions()) or None

    def migrate(self) -> str:
        """Bring the schema to this yarnit's head revisions; refuse a newer database."""
        known = {s.revision for s in ScriptDirectory.from_config(_alembic_config()).walk_revisions()}
        current = self.current_revisions()
        unknown = [r for r in current if r not in known]
        if unknown:
            raise WorkspaceTooNew(
                f"The metadata store at {self.safe_url()} has schema revision {unknown[0]!r}, which this "
                f"yarnit does not know (newest known: {head_revision()!r}). It was written by a newer "
                "yarnit: upgrade yarnit (pip install -U yarnit) rather than risk misreading it."
            )
        if current != head_revisions():
            with self.engine.begin() as connection:
                command.upgrade(_alembic_config(connection), "heads")
        return head_revision()

    @contextlib.contextmanager
    def begin(self) -> Iterator[Connection]:
        """A connection inside one transaction: committed on success, rolled back on error."""
        try:
            with self.engine.begin() as connection:
                yield connection
        except OperationalError as exc:
            raise self._unavailable(exc) from exc
        except OverflowError as exc:  # sqlite3 binding an int past 64 bits; domains check their numbers first
            raise InvalidInput(f"A number in this request is too large to store ({exc}). Use whole numbers "
                               "below 2**63; versions are at most 2147483647.") from exc

    @contextlib.contextmanager
    def _connect(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as connection:
                yield connection
        except OperationalError as exc:
            raise self._unavailable(exc) from exc

    def _unavailable(self, exc: OperationalError) -> Unavailable:
        reason = " ".join(str(exc.orig).split())
        advice = _advice(self.dialect, reason)
        what = "did not answer" if advice is None else "refused the operation"
        return Unavailable(f"The metadata store at {self.safe_url()} {what} ({reason}). "
                           f"{advice or _SERVER_ADVICE}")

    def table_names(self) -> list[str]:
        with self._connect() as connection:
            return sorted(inspect(connection).get_table_names())

    def integrity_check(self) -> str:
        """SQLite's ``PRAGMA integrity_check`` ('ok' when sound); 'ok' on PostgreSQL."""
        if self.dialect != "sqlite":
            return "ok"
        with self._connect() as connection:
            return str(connection.exec_driver_sql("PRAGMA integrity_check").scalar())

    def safe_url(self) -> str:
        """The URL without any password, for messages."""
        return self.engine.url.render_as_string(hide_password=True)

    def change_token(self) -> int | None:
        """A number that moves whenever something serving reads is committed, or None when the backend cannot
        tell cheaply (callers then re-read what they watch).

        On SQLite it is ``PRAGMA data_version`` on a private connection (it moves on any commit by another
        connection): a few µs, where re-reading the aliases through SQLAlchemy holds the GIL for most of a
        millisecond. On PostgreSQL it is the ``serving`` row of ``change_counters`` (migration 0014), which
        triggers on the models, versions, aliases, alias events and traffic policies tables bump in the
        writing transaction; it is read on a private autocommit connection, one primary-key lookup (about
        0.1 ms) per poll whatever the number of models. Serving's watchers poll it four times a second and
        re-read only when it moved, so an alias move reaches every replica within a poll and a re-read.
        """
        database = self.engine.url.database
        if self.dialect == "postgresql":
            return self._postgres_change_token()
        if self.dialect != "sqlite" or not database or database == ":memory:":
            return None
        try:
            with self._token_lock:
                if self._token_conn is None:
                    self._token_conn = sqlite3.connect(database, check_same_thread=False)
                return int(self._token_conn.execute("PRAGMA data_version").fetchone()[0])
        except sqlite3.Error:
            return None  # cannot tell: the caller re-reads

    def _postgres_change_token(self) -> int | None:
        with self._token_lock:
            try:
                if self._token_pg is None:
                    # A connection of the engine's (same URL, search path and driver) kept out of the pool for
                    # good; autocommit, so each read sees the latest commits and holds no snapshot open.
                    self._token_pg = self.engine.raw_connection()
                    self._token_pg.driver_connection.autocommit = True  # type: ignore[union-attr]
                cursor = self._token_pg.cursor()
                try:
                    cursor.execute("SELECT value FROM change_counters WHERE name = 'serving'")
                    row = cursor.fetchone()
                finally:
                    cursor.close()
                return int(row[0]) if row is not None else None
            except Exception:  # noqa: BLE001 - the server is down or the schema predates 0014: the caller re-reads
                self._drop_token_pg()
                return None

    def _drop_token_pg(self) -> None:
        if self._token_pg is not None:
            with contextlib.suppress(Exception):
                self._token_pg.invalidate()
            self._token_pg = None

    def close(self) -> None:
        with self._token_lock:
            if self._token_conn is not None:
                self._token_conn.close()
                self._token_conn = None
            self._drop_token_pg()
        self.engine.dispose()


class ChangeWatcher:
    """A daemon thread that calls ``reread`` every ``interval_s``, skipping the rounds in which nothing was
    committed to ``metadata`` since the last successful re-read (:meth:`MetadataStore.change_token`).

    ``reread`` returns False when it failed, so the next round tries again whatever the token says.
    :meth:`start` is idempotent and does nothing when ``interval_s`` is 0 or after :meth:`close`.
    """

    def __init__(self, name: str, metadata: MetadataStore | None, interval_s: float,
                 reread: Callable[[], bool]) -> None:
        self.name = name
        self.metadata = metadata
        self.interval_s = interval_s
        self.reread = reread
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        with self._lock:
            if self.interval_s <= 0 or self._thread is not None or self._stop.is_set():
                return
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def _run(self) -> None:
        seen: int | None = None
        while not self._stop.wait(self.interval_s):
            token = self.metadata.change_token() if self.metadata is not None else None
            if token is not None and token == seen:
                continue
            if self.reread():
                seen = token

    def close(self) -> None:
        """Stop the thread (waits up to 5 s for a re-read in progress)."""
        self._stop.set()
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5.0)


__all__ = ["ChangeWatcher", "MetadataStore", "create_metadata_engine", "head_revision", "insert_ignore"]
