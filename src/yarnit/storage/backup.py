"""Backups of a workspace: metadata as a portable logical dump, artifacts and files as verified blobs.

A backup repository is a directory that holds many backups of one or more
workspaces::

    REPO/yarnit-backup.json            marks the directory as a repository (format version)
    REPO/blobs/sha256/ab/cdef…         every blob once, named by its sha256 (read-only files)
    REPO/backups/<id>.json             one manifest per backup, written last (its commit point)

Blobs are shared by every backup in the repository, so a second backup copies
only the blobs that are new (artifacts are immutable and content-addressed, so
"new" is "a name the repository does not have"). Every byte copied is hashed
while it is copied; a source blob whose bytes do not match its name stops the
backup (``ArtifactCorrupted``) instead of being preserved as if it were good.

The metadata is a **logical dump**: every table of the schema, in foreign-key
order, rows ordered by primary key, as gzip'd JSON lines, with the Alembic
revisions it was written at. It restores into either backend, so a SQLite
workspace can be restored onto PostgreSQL and back (the DR drill). The dump is
read from one consistent snapshot: on SQLite a copy taken with SQLite's online
backup API (``sqlite3.Connection.backup``: writers are not blocked for long and
the copy is a committed state), on PostgreSQL one REPEATABLE READ transaction
(the snapshot ``pg_dump`` itself uses). With ``native=True`` the backup also
keeps the backend's own copy, for operators who want the familiar tool: the
SQLite snapshot file, or ``pg_dump --format=custom`` output (restore it with
``pg_restore``); ``yarnit restore`` always uses the logical dump.

Beside the database and ``artifacts/``, a workspace holds files: the HMAC key
that pseudonymises subject ids (without it a restored suppression list no
longer matches anyone), SLO and incident files, the offline feature store, the
prediction log. Each is stored as a blob with its relative path; SQLite files
among them (the embedded online store) are copied through the backup API too.

The manifest lists every blob with its sha256 and size, and carries the sha256
of its own canonical JSON, so ``yarnit restore`` can check every byte before it
writes one. A Redis online store is dumped too: the tables of the workspace's
feature views, found by SCAN on the store's prefix, as one more verified blob
(:mod:`yarnit.features.online_backup`). What a backup does not hold: blobs no
row references (garbage, see :mod:`yarnit.storage.gc`).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Connection, create_engine, select
from sqlalchemy.pool import NullPool

import yarnit
from yarnit.core.atomic import TEMP_PREFIX, atomic_write_bytes
from yarnit.core.errors import InvalidInput, IntegrityError, MissingDependency, NotFound, PathEscape
from yarnit.core.hashing import canonical_json, is_sha256, sha256_stream
from yarnit.core.ids import new_id
from yarnit.core.settings import redact_url

from .artifacts import ArtifactCorrupted, ArtifactNotFound
from .gc import referenced
from .schema import artifact_orphans, change_counters, feature_views, metadata
from .workspace import Workspace

FORMAT = "yarnit-backup"
FORMAT_VERSION = 1
DUMP_FORMAT = "yarnit-logical-dump"
_CHUNK = 1 << 20
# Bookkeeping that describes the source workspace's own files or its own change count (serving replicas poll
# ``change_counters``; a restore's inserts move it on the target), not state to carry over.
NOT_DUMPED = frozenset({artifact_orphans.name, change_counters.name})
SQLITE_MAGIC = b"SQLite format 3\x00"
_SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")

Progress = Callable[[str, int, int], None]
"""Called as ``progress(phase, done, total)`` while a backup, verify or restore runs."""


def hash_file(path: Path) -> tuple[str, int]:
    """The sha256 and size of the bytes of ``path``, read once."""
    with open(path, "rb") as stream:
        sha = sha256_stream(stream)
        return sha, stream.tell()


def _quiet(_phase: str, _done: int, _total: int) -> None:
    return None


class BackupNotFound(NotFound):
    def __init__(self, repo: Path, backup_id: str, known: list[str]) -> None:
        listing = ", ".join(known[-5:]) if known else "none"
        super().__init__(f"Backup {backup_id!r} is not in the repository {repo} (newest backups: {listing}). "
                         f"List them with: yarnit backup list --repo {repo}")
        self.backup_id = backup_id


class BackupCorrupted(IntegrityError):
    """A backup whose bytes do not match its manifest: restore refuses it and writes nothing."""

    def __init__(self, backup_id: str, problems: list[str]) -> None:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        super().__init__(f"Backup {backup_id} fails its checksums ({len(problems)} problems: {shown}). Nothing was "
                         "restored and the target workspace is untouched. Restore an older backup "
                         "(yarnit backup list), or run yarnit backup verify to list every damaged blob.")
        self.backup_id, self.problems = backup_id, problems


@dataclass(frozen=True)
class BackupReport:
    """What one backup wrote."""

    id: str
    repo: str
    created_at: str
    tables: dict[str, int]
    artifacts: int
    files: int
    blobs_copied: int
    blobs_reused: int
    bytes_copied: int
    bytes_total: int
    skipped_unreferenced: int
    native: str | None
    seconds: float
    online_store: dict[str, Any] | None = None  # a Redis store's tables and rows (None: none, or SQLite's file)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class VerifyReport:
    """Every blob of a backup checked against the manifest."""

    id: str
    blobs: int
    bytes: int
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "blobs": self.blobs, "bytes": self.bytes, "ok": self.ok, "problems": self.problems}


# -- the repository -----------------------------------------------------------------------------------------------
class BackupRepository:
    """A directory of content-addressed blobs and backup manifests (see the module docstring)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def marker(self) -> Path:
        return self.root / "yarnit-backup.json"

    def init(self) -> None:
        """Create the repository if needed; refuse a non-empty directory that is not one."""
        if self.marker.is_file():
            self._check_format()
            return
        if self.root.exists() and any(self.root.iterdir()):
            raise InvalidInput(f"{self.root} is not empty and is not a yarnit backup repository. Give an empty or "
                               "new directory (or an existing repository) to: yarnit backup --repo DIR")
        (self.root / "blobs").mkdir(parents=True, exist_ok=True)
        (self.root / "backups").mkdir(exist_ok=True)
        atomic_write_bytes(self.marker, canonical_json({"format": FORMAT, "format_version": FORMAT_VERSION}))

    def _check_format(self) -> None:
        try:
            info = json.loads(self.marker.read_bytes())
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"{self.marker} is not readable JSON ({exc}); this is not a yarnit backup "
                               "repository.") from None
        if info.get("format") != FORMAT or info.get("format_version") != FORMAT_VERSION:
            raise InvalidInput(f"{self.root} holds backups in format {info.get('format')!r} version "
                               f"{info.get('format_version')!r}; this yarnit reads {FORMAT!r} version "
                               f"{FORMAT_VERSION}. Use the yarnit that wrote it.")

    def open(self) -> BackupRepository:
        """Check that the repository exists and has a format this yarnit reads."""
        if not self.marker.is_file():
            raise NotFound(f"{self.root} is not a yarnit backup repository (no {self.marker.name}). Make a backup "
                           "first: yarnit backup --repo DIR")
        self._check_format()
        return self

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the repository's lock: a backup adds blobs before its manifest, so a prune must not run meanwhile."""
        import fcntl

        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "lock", "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def blob_path(self, sha256: str) -> Path:
        if not is_sha256(sha256):
            raise PathEscape(f"{sha256[:80]!r} is not a blob name (64 lowercase hex digits).")
        return self.root / "blobs" / "sha256" / sha256[:2] / sha256[2:]

    def has(self, sha256: str, size: int) -> bool:
        """The blob is stored with the right size (its bytes are checked by :func:`verify_backup`)."""
        try:
            return self.blob_path(sha256).stat().st_size == size
        except FileNotFoundError:
            return False

    def add_stream(self, stream: IO[bytes], expected: str | None = None) -> tuple[str, int, bool]:
        """Copy ``stream`` into the repository, hashing as it goes; return (sha256, size, copied).

        With ``expected``, bytes that hash to something else raise :class:`ArtifactCorrupted`
        and nothing is added. A blob already present (same name and size) is not rewritten.
        """
        staging = self.root / "blobs" / "staging"
        staging.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        fd, name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=staging)
        temp = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(_CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            sha = digest.hexdigest()
            if expected is not None and sha != expected:
                raise ArtifactCorrupted(expected, sha, Path(getattr(stream, "name", "?")))
            if self.has(sha, size):
                return sha, size, False
            final = self.blob_path(sha)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(temp, 0o444)
            with contextlib.suppress(FileExistsError):
                os.link(temp, final)
            return sha, size, True
        finally:
            temp.unlink(missing_ok=True)

    def add_file(self, path: Path, expected: str | None = None) -> tuple[str, int, bool]:
        """Copy a file in (see :meth:`add_stream`). Without ``expected`` the file is hashed in place first, so
        an unchanged file (a closed log segment, the HMAC key) is read once and never copied again."""
        if expected is None:
            sha, size = hash_file(path)
            if self.has(sha, size):
                return sha, size, False
        with open(path, "rb") as stream:
            return self.add_stream(stream, expected)

    def manifest_path(self, backup_id: str) -> Path:
        if not backup_id.replace("_", "").isalnum():
            raise InvalidInput(f"{backup_id[:80]!r} is not a backup id (like bk_01…). List them with: "
                               "yarnit backup list --repo DIR")
        return self.root / "backups" / f"{backup_id}.json"

    def ids(self) -> list[str]:
        """Backup ids, oldest first (by the sequence number each manifest carries: a simulated or stepped-back
        clock can give two backups the same time, and ids sort by time)."""
        folder = self.root / "backups"
        if not folder.is_dir():
            return []
        order: list[tuple[int, str]] = []
        for path in folder.glob("*.json"):
            try:
                sequence = int(json.loads(path.read_bytes()).get("sequence", 0))
            except (OSError, ValueError, TypeError, AttributeError):
                sequence = 0  # a damaged manifest still lists (verify says what is wrong with it)
            order.append((sequence, path.stem))
        return [backup_id for _seq, backup_id in sorted(order)]

    def next_sequence(self) -> int:
        ids = self.ids()
        if not ids:
            return 1
        try:
            return int(json.loads(self.manifest_path(ids[-1]).read_bytes()).get("sequence", 0)) + 1
        except (OSError, ValueError, TypeError, AttributeError):
            return len(ids) + 1

    def resolve(self, backup_id: str | None) -> str:
        """``backup_id``, or the newest backup when None or ``latest``."""
        known = self.ids()
        if backup_id in (None, "latest"):
            if not known:
                raise BackupNotFound(self.root, "latest", known)
            return known[-1]
        assert backup_id is not None
        if backup_id not in known:
            raise BackupNotFound(self.root, backup_id, known)
        return backup_id

    def manifest(self, backup_id: str | None = None) -> dict[str, Any]:
        """The manifest of a backup, after checking its own checksum."""
        resolved = self.resolve(backup_id)
        path = self.manifest_path(resolved)
        try:
            document = json.loads(path.read_bytes())
        except ValueError as exc:
            raise BackupCorrupted(resolved, [f"manifest {path.name} is not valid JSON ({exc})"]) from None
        claimed = document.pop("manifest_sha256", None)
        actual = hashlib.sha256(canonical_json(document)).hexdigest()
        if claimed != actual:
            problem = f"manifest {path.name} was changed after it was written (sha256 {actual}, recorded {claimed})"
            raise BackupCorrupted(resolved, [problem])
        return document

    def write_manifest(self, document: dict[str, Any]) -> Path:
        body = dict(document)
        body["manifest_sha256"] = hashlib.sha256(canonical_json(document)).hexdigest()
        path = self.manifest_path(document["id"])
        atomic_write_bytes(path, json.dumps(body, indent=1, sort_keys=True).encode(), mode=0o444)
        return path


# -- the logical dump ------------------------------------------------------------------------------------------------
def dumped_tables() -> list[Any]:
    """The schema's tables in foreign-key order (parents first), as the dump writes and restore reads them."""
    return [t for t in metadata.sorted_tables if t.name not in NOT_DUMPED]


def _json_value(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value


def write_dump(conn: Connection, out: IO[bytes], revisions: tuple[str, ...], dialect: str) -> dict[str, int]:
    """Write every table as gzip'd JSON lines to ``out``; return rows per table.

    Line 1 is a header; then per table one ``{"table", "columns"}`` object followed by one JSON array per row.
    The gzip header carries no timestamp and rows are ordered by primary key, so an unchanged database
    gives identical bytes (the next backup reuses the blob).
    """
    counts: dict[str, int] = {}
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=6, mtime=0) as gz:
        header = {"format": DUMP_FORMAT, "format_version": 1, "revisions": list(revisions), "dialect": dialect,
                  "tables": [t.name for t in dumped_tables()]}
        gz.write(json.dumps(header).encode() + b"\n")
        for table in dumped_tables():
            columns = [c.name for c in table.columns]
            gz.write(json.dumps({"table": table.name, "columns": columns}).encode() + b"\n")
            order = list(table.primary_key.columns) or list(table.columns)
            n = 0
            for row in conn.execute(select(table).order_by(*order)).yield_per(2000):
                gz.write(json.dumps([_json_value(v) for v in row], separators=(",", ":")).encode() + b"\n")
                n += 1
            counts[table.name] = n
    return counts


def read_dump(stream: IO[bytes]) -> Iterator[tuple[str, list[str] | dict[str, Any], list[Any] | None]]:
    """Yield ``("header", header, None)``, then ``("table", columns, None)`` and ``("row", columns, values)``."""
    with gzip.GzipFile(fileobj=stream, mode="rb") as gz:
        header = json.loads(gz.readline())
        if header.get("format") != DUMP_FORMAT:
            raise InvalidInput(f"The metadata dump has format {header.get('format')!r}, not {DUMP_FORMAT!r}.")
        yield "header", header, None
        columns: list[str] = []
        for line in gz:
            item = json.loads(line)
            if isinstance(item, dict):
                columns = list(item["columns"])
                yield "table", [item["table"], *columns], None
            else:
                yield "row", columns, item


@contextlib.contextmanager
def _consistent_connection(ws: Workspace, scratch: Path) -> Iterator[tuple[Connection, Path | None]]:
    """A connection that sees one committed state of the metadata store, and the SQLite snapshot file if any."""
    if ws.metadata.dialect == "sqlite":
        source = ws.metadata.engine.url.database
        if not source:
            raise InvalidInput("An in-memory SQLite metadata store cannot be backed up; use a file.")
        snapshot = scratch / "metadata.sqlite"
        _sqlite_snapshot(Path(source), snapshot)
        engine = create_engine(f"sqlite:///{snapshot}", poolclass=NullPool)
        try:
            with engine.connect() as conn:
                yield conn, snapshot
        finally:
            engine.dispose()
        return
    with ws.metadata.engine.connect() as conn:
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            yield conn, None


def _sqlite_snapshot(source: Path, target: Path) -> None:
    """Copy a live SQLite database with the online backup API (a committed state; writers wait only briefly)."""
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst, pages=4096, sleep=0.001)
    finally:
        dst.close()
        src.close()


def _pg_dump_binary() -> str:
    binary = shutil.which("pg_dump")
    if binary is None:
        raise MissingDependency("--native on PostgreSQL needs pg_dump on PATH (Debian: apt-get install "
                                "postgresql-client). Without --native the portable dump is complete.")
    return binary


def _pg_dump(ws: Workspace, target: Path) -> None:
    """``pg_dump --format=custom`` of the metadata store into ``target`` (needs the pg_dump binary)."""
    binary = _pg_dump_binary()
    url = ws.metadata.engine.url
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    args = [binary, "--format=custom", "--no-owner", f"--file={target}", f"--host={url.host or '127.0.0.1'}",
            f"--port={url.port or 5432}", f"--username={url.username or 'postgres'}", str(url.database)]
    options = str(url.query.get("options", ""))
    if "search_path=" in options:  # a workspace in one schema (how the tests isolate): dump that schema only
        args.insert(-1, f"--schema={options.split('search_path=', 1)[1].split()[0]}")
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise MissingDependency(f"pg_dump failed ({done.stderr.strip()[:300]}); check that its major version is at "
                                "least the server's, or back up without --native.")


# -- workspace files -------------------------------------------------------------------------------------------------
def workspace_files(ws: Workspace, exclude: list[Path]) -> list[Path]:
    """Files in the workspace home that a backup keeps: everything but the metadata database (dumped),
    ``artifacts/`` (blobs), SQLite side files, temp files and the ``exclude`` paths (a repository inside it)."""
    home = ws.home.resolve()
    skip_dirs = {ws.artifacts.root.resolve(), *[p.resolve() for p in exclude]}
    skip_files: set[Path] = set()
    if ws.metadata.dialect == "sqlite" and ws.metadata.engine.url.database:
        db = Path(ws.metadata.engine.url.database).resolve()
        skip_files |= {db, *[Path(f"{db}{s}") for s in _SQLITE_SIDE_FILES]}
    found: list[Path] = []
    for directory, dirs, files in os.walk(home):
        here = Path(directory)
        dirs[:] = sorted(d for d in dirs if (here / d).resolve() not in skip_dirs)
        for name in sorted(files):
            path = here / name
            if (path.resolve() in skip_files or name.startswith(TEMP_PREFIX) or name.endswith(_SQLITE_SIDE_FILES)
                    or name.endswith(".lock") or not path.is_file() or path.is_symlink()):
                continue
            found.append(path)
    return found


def _is_sqlite(path: Path) -> bool:
    try:
        with open(path, "rb") as stream:
            return stream.read(16) == SQLITE_MAGIC
    except OSError:
        return False


# -- backup ------------------------------------------------------------------------------------------------------------
def create_backup(ws: Workspace, repo: BackupRepository, *, native: bool = False,
                  progress: Progress = _quiet) -> BackupReport:
    """Back up ``ws`` into ``repo`` (created if needed): metadata dump, referenced artifacts, workspace files."""
    started = time.perf_counter()
    if native and ws.metadata.dialect != "sqlite":
        _pg_dump_binary()  # before anything is written
    repo.init()
    with repo.locked():
        return _create_backup(ws, repo, native=native, progress=progress, started=started)


def _create_backup(ws: Workspace, repo: BackupRepository, *, native: bool, progress: Progress,
                   started: float) -> BackupReport:
    backup_id = new_id("bk", ws.clock)
    created_at = ws.clock.now()
    copied = reused = bytes_copied = bytes_total = 0

    def keep(sha: str, size: int, was_copied: bool) -> dict[str, Any]:
        nonlocal copied, reused, bytes_copied, bytes_total
        bytes_total += size
        if was_copied:
            copied += 1
            bytes_copied += size
        else:
            reused += 1
        return {"sha256": sha, "size": size}

    with tempfile.TemporaryDirectory(prefix="yarnit-backup-") as scratch_dir:
        scratch = Path(scratch_dir)
        progress("metadata", 0, 1)
        revisions = ws.metadata.current_revisions()
        native_entry: dict[str, Any] | None = None
        with _consistent_connection(ws, scratch) as (conn, snapshot):
            refs = referenced(conn)
            views = [f"{r.name}@{r.version}" for r in conn.execute(select(feature_views.c.name,
                                                                          feature_views.c.version))]
            dump_path = scratch / "metadata.jsonl.gz"
            with open(dump_path, "wb") as out:
                tables = write_dump(conn, out, revisions, ws.metadata.dialect)
        dump = keep(*repo.add_file(dump_path))
        if native:
            if snapshot is not None:
                native_entry = {"kind": "sqlite", **keep(*repo.add_file(snapshot))}
            else:
                _pg_dump(ws, scratch / "metadata.pgdump")
                native_entry = {"kind": "pg_dump", **keep(*repo.add_file(scratch / "metadata.pgdump"))}
        progress("metadata", 1, 1)
        # Artifacts: the blobs the snapshot references (a blob written after it belongs to the next backup).
        present = [sha for sha in ws.artifacts.iter_shas() if sha in refs]
        skipped = sum(1 for sha in ws.artifacts.iter_shas() if sha not in refs)
        artifacts: list[dict[str, Any]] = []
        for i, sha in enumerate(present, 1):
            path = ws.artifacts.path_for(sha)
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                continue  # purged since the snapshot
            if repo.has(sha, size):
                artifacts.append(keep(sha, size, False))
            else:
                try:
                    artifacts.append(keep(*repo.add_file(path, expected=sha)))
                except FileNotFoundError:
                    continue
            progress("artifacts", i, len(present))
        files: list[dict[str, Any]] = []
        paths = workspace_files(ws, exclude=[repo.root])
        for i, path in enumerate(paths, 1):
            relative = path.relative_to(ws.home.resolve()).as_posix()
            mode = path.stat().st_mode & 0o777
            if _is_sqlite(path):
                copy = scratch / "file.sqlite"
                copy.unlink(missing_ok=True)
                _sqlite_snapshot(path, copy)
                entry = keep(*repo.add_file(copy))
            else:
                try:
                    entry = keep(*repo.add_file(path))
                except FileNotFoundError:
                    continue  # removed while we walked (a rotated log segment)
            files.append({"path": relative, "mode": mode, **entry})
            progress("files", i, len(paths))
        online = _online_store(ws, repo, views, scratch, keep)
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "id": backup_id, "sequence": repo.next_sequence(),
        "created_at": created_at.isoformat(),
        "yarnit_version": yarnit.__version__,
        "source": {"home": str(ws.home), "metadata": redact_url(ws.metadata.safe_url()),
                   "dialect": ws.metadata.dialect},
        "metadata": {"revisions": list(revisions), "dump": dump, "tables": tables, "native": native_entry},
        "artifacts": artifacts, "files": files, "online_store": online,
    }
    repo.write_manifest(manifest)
    return BackupReport(id=backup_id, repo=str(repo.root), created_at=created_at.isoformat(), tables=tables,
                        artifacts=len(artifacts), files=len(files), blobs_copied=copied, blobs_reused=reused,
                        bytes_copied=bytes_copied, bytes_total=bytes_total, skipped_unreferenced=skipped,
                        native=None if native_entry is None else native_entry["kind"],
                        seconds=round(time.perf_counter() - started, 3),
                        online_store=None if online is None else {k: online[k] for k in ("prefix", "tables", "rows")})


def _online_store(ws: Workspace, repo: BackupRepository, views: list[str], scratch: Path,
                  keep: Callable[[str, int, bool], dict[str, Any]]) -> dict[str, Any] | None:
    """A Redis online store's tables of the workspace's feature views, as one blob (None for SQLite's: a file)."""
    from yarnit.features.online_backup import dump_online_store, is_redis

    url = ws.settings.online_store_url
    if not is_redis(url):
        return None
    path = scratch / "online-store.jsonl.gz"
    with open(path, "wb") as out:
        summary = dump_online_store(url, views, out)
    return {"kind": "redis", "url": redact_url(url), **summary, **keep(*repo.add_file(path))}


def manifest_blobs(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Every blob a manifest names (dump, native copy, artifacts, files, online store), each once."""
    entries = [manifest["metadata"]["dump"], *manifest["artifacts"], *manifest["files"]]
    if manifest["metadata"].get("native"):
        entries.append(manifest["metadata"]["native"])
    if manifest.get("online_store"):
        entries.append(manifest["online_store"])
    seen: dict[str, dict[str, Any]] = {}
    for entry in entries:
        seen.setdefault(entry["sha256"], entry)
    return list(seen.values())


def verify_backup(repo: BackupRepository, backup_id: str | None = None, *,
                  progress: Progress = _quiet) -> VerifyReport:
    """Hash every blob of a backup and compare it with the manifest (raises only for a damaged manifest)."""
    manifest = repo.open().manifest(backup_id)
    blobs = manifest_blobs(manifest)
    problems: list[str] = []
    total = 0
    for i, entry in enumerate(blobs, 1):
        sha, size = entry["sha256"], entry["size"]
        what = entry.get("path") or f"blob {sha[:12]}…"
        try:
            actual, n = hash_file(repo.blob_path(sha))
            total += n
            if actual != sha:
                problems.append(f"{what}: bytes hash to {actual}, not {sha}")
            elif n != size:
                problems.append(f"{what}: {n} bytes, manifest says {size}")
        except (FileNotFoundError, ArtifactNotFound):
            problems.append(f"{what}: blob {sha} is missing")
        except PathEscape:
            problems.append(f"{what}: {sha!r} is not a blob name")
        progress("verify", i, len(blobs))
    return VerifyReport(id=manifest["id"], blobs=len(blobs), bytes=total, problems=problems)


@dataclass(frozen=True)
class PruneReport:
    """What a prune removed: manifests, then the blobs no remaining manifest names."""

    removed_backups: list[str]
    kept_backups: list[str]
    removed_blobs: int
    bytes_freed: int

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def prune_backups(repo: BackupRepository, *, keep: int, older_than: timedelta | None = None,
                  now: datetime | None = None) -> PruneReport:
    """Remove every backup but the newest ``keep`` (only those created more than ``older_than`` before ``now``,
    when given), then every blob that no remaining backup names.

    Backups hold what ``yarnit data forget`` removed from the workspace until they are pruned: run this on a
    schedule that expires them within the deletion deadline (30 days).
    """
    if keep < 1:
        raise InvalidInput(f"--keep {keep} would remove every backup; keep at least 1.")
    repo.open()
    with repo.locked():
        ids = repo.ids()
        candidates = ids[:-keep] if len(ids) > keep else []
        removed: list[str] = []
        for backup_id in candidates:
            if older_than is not None and now is not None:
                try:
                    created = datetime.fromisoformat(repo.manifest(backup_id)["created_at"])
                except BackupCorrupted:
                    created = None  # a damaged manifest protects nothing: prune it
                if created is not None and created > now - older_than:
                    continue
            path = repo.manifest_path(backup_id)
            path.unlink()
            removed.append(backup_id)
        kept = [i for i in ids if i not in removed]
        named: set[str] = set()
        for backup_id in kept:
            named |= {e["sha256"] for e in manifest_blobs(repo.manifest(backup_id))}
        blobs = 0
        freed = 0
        base = repo.root / "blobs" / "sha256"
        for fan in sorted(base.iterdir()) if base.is_dir() else []:
            for item in sorted(fan.iterdir()):
                if fan.name + item.name not in named:
                    freed += item.stat().st_size
                    item.unlink()
                    blobs += 1
    return PruneReport(removed_backups=removed, kept_backups=kept, removed_blobs=blobs, bytes_freed=freed)


def list_backups(repo: BackupRepository) -> list[dict[str, Any]]:
    """One summary per backup, oldest first (manifests that fail their checksum are listed as damaged)."""
    out = []
    for backup_id in repo.open().ids():
        try:
            m = repo.manifest(backup_id)
        except BackupCorrupted as exc:
            out.append({"id": backup_id, "damaged": exc.problems[0]})
            continue
        out.append({"id": backup_id, "created_at": m["created_at"], "dialect": m["source"]["dialect"],
                    "revisions": m["metadata"]["revisions"], "artifacts": len(m["artifacts"]),
                    "files": len(m["files"]), "rows": sum(m["metadata"]["tables"].values()),
                    "bytes": sum(e["size"] for e in manifest_blobs(m))})
    return out


__all__ = [
    "BackupCorrupted",
    "BackupNotFound",
    "BackupReport",
    "BackupRepository",
    "Progress",
    "PruneReport",
    "VerifyReport",
    "create_backup",
    "dumped_tables",
    "hash_file",
    "list_backups",
    "manifest_blobs",
    "prune_backups",
    "read_dump",
    "verify_backup",
    "workspace_files",
    "write_dump",
]
