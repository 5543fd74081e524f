"""Restore a workspace from a backup: check every byte first, then write it all or nothing.

:func:`restore_workspace` runs in three phases:

1. **Check.** The manifest's own checksum, then every blob it names (hashed in
   full). One bad byte and the restore raises :class:`BackupCorrupted` before
   anything in the target was touched. The dump's schema revisions must be ones
   this yarnit knows (a backup from a newer yarnit is refused, as a newer
   workspace is), and the target must be empty: no row in any table and no
   blob, unless ``force`` (which replaces every row).
2. **Stage.** Artifacts are copied into the target's content-addressed store
   (hashed again while written; the ones the target did not have are
   remembered), workspace files are written beside their final names.
3. **Commit.** Every row goes in inside ONE metadata transaction, parents
   before children (foreign-key order), then the row counts are compared with
   the manifest and, on PostgreSQL, each serial column's sequence is moved past
   the restored ids. Only after the commit are the staged files renamed into
   place. If anything fails before the commit, the transaction rolls back and
   the artifacts and staged files this restore added are removed: the target
   is as it was. A backed-up Redis online store is written back after the
   commit too, table by table, each swapped in whole
   (:mod:`yarnit.features.online_backup`); tables the target's Redis already
   holds are refused in the check, unless ``force``.

The dump is logical, so the target may use the other backend: a SQLite
workspace restores onto PostgreSQL and back, with the same rows, the same
artifacts and therefore the same predictions (the DR drill in
``tests/storage/test_backup_restore.py``).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from alembic.script import ScriptDirectory
from sqlalchemy import JSON, Connection, Integer, MetaData, Table, delete, func, insert, select, text
from sqlalchemy.exc import DBAPIError

from yarnit.core.atomic import TEMP_PREFIX
from yarnit.core.errors import Conflict, InvalidInput, PathEscape, WorkspaceTooNew
from yarnit.core.hashing import sha256_file

from .backup import (
    BackupCorrupted,
    BackupRepository,
    Progress,
    _quiet,
    dumped_tables,
    read_dump,
    verify_backup,
)
from .metadata import _alembic_config, head_revision
from .schema import UtcDateTime
from .workspace import Workspace

_BATCH = 1000


class WorkspaceNotEmpty(Conflict):
    def __init__(self, what: str) -> None:
        super().__init__(f"The target workspace is not empty ({what}); a restore would mix two histories. Restore "
                         "into a fresh workspace (a new YARNIT_HOME and database), or pass --force to replace "
                         "every row of this one with the backup's.")


class RestoreFailed(Conflict):
    def __init__(self, backup_id: str, reason: str) -> None:
        super().__init__(f"The rows of backup {backup_id} could not be written into this workspace ({reason}). "
                         "Nothing was restored: the metadata transaction was rolled back and the artifacts and "
                         "files this restore had copied were removed. Run yarnit backup verify on it, or restore "
                         "another backup.")
        self.backup_id = backup_id


@dataclass(frozen=True)
class RestoreReport:
    """What one restore wrote."""

    backup_id: str
    source_dialect: str
    target_dialect: str
    tables: dict[str, int]
    artifacts_added: int
    artifacts_present: int
    files: int
    forced: bool
    seconds: float
    notes: list[str] = field(default_factory=list)
    online_store: dict[str, Any] | None = None  # the Redis tables and rows written back

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def insert_tables() -> dict[str, Table]:
    """The schema's tables for inserting restored rows: a nullable JSON column takes None as SQL NULL.

    (SQLAlchemy's JSON type writes Python None as the JSON text ``null`` by default; the dump cannot tell
    the two apart, and every reader treats both as "no value", so NULL is the faithful choice.)
    """
    copy = MetaData()
    tables: dict[str, Table] = {}
    for table in dumped_tables():
        clone = table.to_metadata(copy)
        for column in clone.columns:
            if isinstance(column.type, JSON) and column.nullable:
                column.type = JSON(none_as_null=True)
        tables[table.name] = clone
    return tables


def row_decoder(table: Table, columns: list[str]) -> list[Any]:
    """Per dumped column: a function from the JSON value to the value to insert (None: keep as is)."""
    out: list[Any] = []
    for name in columns:
        column = table.columns.get(name)
        if column is not None and isinstance(column.type, UtcDateTime):
            out.append(lambda v: None if v is None else datetime.fromisoformat(v))
        else:
            out.append(None)
    return out


def target_contents(ws: Workspace) -> str | None:
    """What the workspace already holds (for the not-empty refusal), or None when it is empty."""
    with ws.metadata.begin() as conn:
        for table in dumped_tables():
            n = conn.execute(select(func.count()).select_from(table)).scalar() or 0
            if n:
                return f"table {table.name} has {n} rows"
    for _sha in ws.artifacts.iter_shas():
        return "its artifact store holds blobs"
    return None


def _online_target(ws: Workspace, repo: BackupRepository, manifest: dict[str, Any], force: bool) -> Path | None:
    """The online-store dump to write back into this workspace's Redis, refused if that would overwrite tables."""
    from yarnit.features.online_backup import is_redis, occupied_tables, tables_in_dump

    entry = manifest.get("online_store")
    if not entry or not is_redis(ws.settings.online_store_url):
        return None
    path = repo.blob_path(entry["sha256"])
    if not force:
        taken = occupied_tables(ws.settings.online_store_url, tables_in_dump(path))
        if taken:
            raise WorkspaceNotEmpty(f"its Redis online store already holds {len(taken)} of the backup's feature "
                                    f"view tables, e.g. {taken[0]}")
    return path


def _check_revisions(revisions: list[str]) -> None:
    known = {s.revision for s in ScriptDirectory.from_config(_alembic_config()).walk_revisions()}
    unknown = [r for r in revisions if r not in known]
    if unknown:
        raise WorkspaceTooNew(f"The backup was written at schema revision {unknown[0]!r}, which this yarnit does not "
                              f"know (newest known: {head_revision()!r}): restore it with the yarnit that wrote it, "
                              "or a newer one.")


def _safe_relative(path: str) -> PurePosixPath:
    relative = PurePosixPath(path)
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        raise PathEscape(f"The backup names a workspace file {path[:120]!r} outside the workspace; refusing it.")
    return relative


@contextlib.contextmanager
def _undo_on_error(ws: Workspace, added: list[str], staged: list[tuple[Path, Path]]) -> Iterator[None]:
    """On any failure before the commit, remove the blobs this restore added and the files it staged."""
    try:
        yield
    except BaseException:
        for sha in added:
            with contextlib.suppress(OSError):
                ws.artifacts.delete(sha)
        for temp, _target in staged:
            temp.unlink(missing_ok=True)
        raise


def _reset_sequences(conn: Connection) -> None:
    """Move each serial column's sequence past the restored ids (PostgreSQL keeps them apart from the rows)."""
    for table in dumped_tables():
        for column in table.primary_key.columns:
            if isinstance(column.type, Integer) and column.autoincrement in (True, "auto"):
                conn.execute(text(
                    f"SELECT setval(pg_get_serial_sequence(:t, :c), COALESCE(MAX(\"{column.name}\"), 1), "
                    f"MAX(\"{column.name}\") IS NOT NULL) FROM \"{table.name}\""), {"t": table.name, "c": column.name})


def load_dump(conn: Connection, path: Path, expected: dict[str, int], backup_id: str = "(dump)") -> dict[str, int]:
    """Insert every row of the dump at ``path`` (inside the caller's transaction); return rows per table."""
    tables = insert_tables()
    counts: dict[str, int] = {}
    table: Table | None = None
    columns: list[str] = []
    decode: list[Any] = []
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        if batch and table is not None:
            conn.execute(insert(table), batch)
            batch.clear()

    with open(path, "rb") as stream:
        for kind, head, values in read_dump(stream):
            if kind == "header":
                continue
            if kind == "table":
                flush()
                name, *columns = head  # type: ignore[misc]
                table = tables.get(str(name))
                if table is None:
                    raise InvalidInput(f"The backup has a table {name!r} that this yarnit's schema does not have; "
                                       "restore it with the yarnit that wrote it.")
                missing = [c for c in columns if c not in table.columns]
                if missing:
                    raise InvalidInput(f"The backup's table {name} has columns {missing} that this yarnit's schema "
                                       "does not have; restore it with the yarnit that wrote it.")
                decode = row_decoder(table, list(columns))
                counts[table.name] = 0
                continue
            assert table is not None and values is not None
            row = {c: (v if d is None else d(v)) for c, v, d in zip(columns, values, decode, strict=True)}
            batch.append(row)
            counts[table.name] += 1
            if len(batch) >= _BATCH:
                flush()
        flush()
    wrong = {t: (counts.get(t, 0), n) for t, n in expected.items() if counts.get(t, 0) != n}
    if wrong:
        raise BackupCorrupted(backup_id, [f"table {t}: dump holds {got} rows, manifest says {want}"
                                         for t, (got, want) in sorted(wrong.items())])
    return counts


def restore_workspace(ws: Workspace, repo: BackupRepository, backup_id: str | None = None, *, force: bool = False,
                      progress: Progress = _quiet) -> RestoreReport:
    """Restore backup ``backup_id`` (default: the newest) of ``repo`` into ``ws``: all of it or nothing."""
    started = time.perf_counter()
    repo.open()
    manifest = repo.manifest(backup_id)
    # 1. check: every byte, the schema, the target
    checked = verify_backup(repo, manifest["id"], progress=progress)
    if not checked.ok:
        raise BackupCorrupted(manifest["id"], checked.problems)
    _check_revisions(manifest["metadata"]["revisions"])
    files = [(_safe_relative(f["path"]), f) for f in manifest["files"]]
    existing = target_contents(ws)
    if existing is not None and not force:
        raise WorkspaceNotEmpty(existing)
    home = ws.home.resolve()
    for relative, entry in files:
        target = home / relative
        if target.is_file() and not force and sha256_file(target) != entry["sha256"]:
            raise WorkspaceNotEmpty(f"file {relative} exists with other content")
    online = _online_target(ws, repo, manifest, force)
    # 2. stage
    added: list[str] = []
    staged: list[tuple[Path, Path]] = []
    with _undo_on_error(ws, added, staged):
        present = 0
        for i, entry in enumerate(manifest["artifacts"], 1):
            sha = entry["sha256"]
            if ws.artifacts.exists(sha):
                present += 1
            else:
                ref = ws.artifacts.put_file(repo.blob_path(sha))
                if ref.sha256 != sha:  # changed between the check and the copy
                    ws.artifacts.delete(ref.sha256)
                    raise BackupCorrupted(manifest["id"], [f"blob {sha} changed while it was restored"])
                added.append(sha)
            progress("artifacts", i, len(manifest["artifacts"]))
        for relative, entry in files:
            target = home / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            temp = target.parent / f"{TEMP_PREFIX}{target.name}.{os.getpid()}.restore"
            with open(repo.blob_path(entry["sha256"]), "rb") as src, open(temp, "wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
                dst.flush()
                os.fsync(dst.fileno())
            os.chmod(temp, int(entry.get("mode", 0o644)) & 0o777 & ~0o022)
            staged.append((temp, target))
        # 3. commit: one transaction for every row
        progress("metadata", 0, 1)
        with ws.metadata.begin() as conn:
            if force:
                for table in reversed(dumped_tables()):
                    conn.execute(delete(table))
            try:
                counts = load_dump(conn, repo.blob_path(manifest["metadata"]["dump"]["sha256"]),
                                   manifest["metadata"]["tables"], manifest["id"])
            except DBAPIError as exc:
                reason = " ".join(str(exc.orig).split())[:300]
                raise RestoreFailed(manifest["id"], reason) from exc
            if conn.dialect.name == "postgresql":
                _reset_sequences(conn)
        progress("metadata", 1, 1)
    for temp, target in staged:
        os.replace(temp, target)
    notes = []
    online_written = None
    if online is not None:  # after the commit, like the files: per table, the old table or the restored one
        from yarnit.features.online_backup import load_online_store

        online_written = load_online_store(ws.settings.online_store_url, online)
    elif manifest.get("online_store"):
        notes.append(f"the backup holds a Redis online store ({manifest['online_store']['tables']} tables); this "
                     "workspace's online store is not Redis, so it was not written: re-run yarnit features "
                     "materialize for the feature views that serving reads")
    if manifest["source"]["dialect"] != ws.metadata.dialect:
        notes.append(f"restored a {manifest['source']['dialect']} backup onto {ws.metadata.dialect}")
    if not ws.settings.online_store_url.startswith("sqlite") and not manifest.get("online_store"):
        notes.append("the backup holds no online store (it was taken before yarnit backed Redis up): re-run "
                     "yarnit features materialize for the feature views that serving reads")
    return RestoreReport(backup_id=manifest["id"], source_dialect=manifest["source"]["dialect"],
                         target_dialect=ws.metadata.dialect, tables=counts, artifacts_added=len(added),
                         artifacts_present=present, files=len(files), forced=force,
                         seconds=round(time.perf_counter() - started, 3), notes=notes, online_store=online_written)


def decode_row(table: Table, columns: list[str], values: list[Any]) -> dict[str, Any]:
    """One dumped row as the values to insert into ``table``."""
    return {c: (v if d is None else d(v)) for c, v, d in zip(columns, values, row_decoder(table, columns), strict=True)}


__all__ = ["RestoreFailed", "RestoreReport", "WorkspaceNotEmpty", "decode_row", "insert_tables", "load_dump", "restore_workspace",
           "target_contents"]
