"""Dataset versions: immutable Parquet snapshots in the artifact store plus a manifest row.

A version's manifest records its name and number, the sha256 of its Parquet
bytes, row count, column types, statistics, source, parents, producing run,
retention class, PII treatment, the curated schema version it was checked
against, and its data subjects: the sorted unique subject ids are stored as
their own small Parquet artifact (``subjects_sha256``), so "which versions hold
subject S" never scans the data itself.

Rows are written in fixed-size row groups with canonical types, so the same
rows give the same bytes however they arrived: re-ingesting identical content
returns the existing version. A Parquet file whose columns already have
canonical types (and no PII to drop or hash) is stored byte for byte instead of
being re-encoded; the same file again is the same version. The Parquet file is streamed to a staging file
(cleaned by the workspace's recovery pass if the writer is killed), published
content-addressed, and only then is the manifest inserted in one transaction:
a version exists entirely or not at all.

Example:
    >>> from yarnit.core import Settings, SimulatedClock, utc
    >>> from yarnit.storage import open_workspace
    >>> import tempfile, pandas as pd
    >>> ws = open_workspace(Settings.for_home(tempfile.mkdtemp()), SimulatedClock(utc(2026, 1, 1)))
    >>> ds = Datasets(ws)
    >>> v1 = ds.ingest_frame("yarn", pd.DataFrame({"fiber": ["wool", "silk"]}), source="doctest")
    >>> v1.ref, ds.ingest_frame("yarn", pd.DataFrame({"fiber": ["wool", "silk"]}), source="again").ref
    ('yarn:v1', 'yarn:v1')
    >>> ws.close()
"""

from __future__ import annotations

import hashlib
import io
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import Connection, and_, func, insert, select, update
from sqlalchemy.exc import IntegrityError as SqlIntegrityError

from yarnit.core.atomic import make_dirs, sync_fd
from yarnit.core.errors import Conflict, InvalidInput
from yarnit.core.ids import check_name, check_version, new_id, parse_versioned_ref
from yarnit.storage import ArtifactWriteFailed, LocalArtifactStore, Workspace, touch_existing
from yarnit.storage.schema import dataset_versions, lineage_edges

from .conform import conform_table
from .errors import DatasetNotFound, DatasetUnavailable, IngestError
from .ingest import ProgressCallback, detect_format, read_batches
from .privacy import apply_pii_policy, suppressed_hashes, suppression_mask, workspace_key
from .schema import DatasetSchema, personal_columns, yarnit_type
from .schema_registry import Schemas
from .statistics import DatasetStatistics, merge_statistics, profile

ROW_GROUP_ROWS = 1 << 20
COMPRESSION = "zstd"
ACTIVE = "active"
STATUSES = ("active", "forgotten", "expired", "purged")
SUBJECT_KEY = b"yarnit.subject"  # Parquet metadata: the column that identifies the data subject
NO_SUBJECT_KEY = b"yarnit.no_subject"  # Parquet metadata: why a file of personal data has no such column


@dataclass(frozen=True)
class DatasetVersion:
    """One immutable snapshot of a named dataset (its manifest)."""

    id: str
    name: str
    version: int
    content_sha256: str
    artifact_sha256: str
    row_count: int
    schema: dict[str, str]
    source: str
    created_at: datetime
    parents: tuple[str, ...] = ()
    run_id: str | None = None
    retention_class: str | None = None
    pii_columns: tuple[str, ...] = ()
    statistics: dict[str, Any] = field(default_factory=dict)
    status: str = ACTIVE
    subject_column: str | None = None
    subjects_sha256: str | None = None
    subject_count: int | None = None
    schema_id: str | None = None
    privacy: dict[str, Any] = field(default_factory=dict)
    superseded_by: str | None = None
    status_changed_at: datetime | None = None
    retain_from: datetime | None = None

    @property
    def ref(self) -> str:
        return f"{self.name}:v{self.version}"

    @property
    def active(self) -> bool:
        return self.status == ACTIVE

    @property
    def suppressed_rows(self) -> int:
        """Rows of forgotten subjects dropped at ingest (the suppression list)."""
        return int(self.privacy.get("suppressed_rows", 0))

    @property
    def no_subject(self) -> str | None:
        """Why this version has no subject column although it holds personal data (declared at ingest)."""
        return self.privacy.get("no_subject")

    @property
    def personal_columns(self) -> list[str]:
        """Columns that make this version personal data (identifiers, kept PII)."""
        recorded = self.privacy.get("personal_columns")
        if recorded is not None:
            return list(recorded)
        return personal_columns(list(self.schema), {c: "keep" for c in self.pii_columns})

    def stats(self) -> DatasetStatistics | None:
        """The statistics profile recorded at ingest (None for versions made before profiles existed)."""
        return DatasetStatistics.from_dict(self.statistics)

    def to_dict(self, *, with_statistics: bool = False) -> dict[str, Any]:
        """JSON-ready manifest (API responses, ``--json`` output)."""
        out = {
            "id": self.id, "ref": self.ref, "name": self.name, "version": self.version,
            "content_sha256": self.content_sha256, "artifact_sha256": self.artifact_sha256,
            "row_count": self.row_count, "schema": dict(self.schema), "source": self.source,
            "created_at": self.created_at.isoformat(), "parents": list(self.parents), "run_id": self.run_id,
            "retention_class": self.retention_class, "pii_columns": list(self.pii_columns),
            "status": self.status, "subject_column": self.subject_column, "subjects_sha256": self.subjects_sha256,
            "subject_count": self.subject_count, "schema_id": self.schema_id, "privacy": dict(self.privacy),
            "superseded_by": self.superseded_by,
            "status_changed_at": None if self.status_changed_at is None else self.status_changed_at.isoformat(),
            "retain_from": (self.retain_from or self.created_at).isoformat(),
            "suppressed_rows": self.suppressed_rows, "no_subject": self.no_subject,
        }
        if with_statistics:
            out["statistics"] = self.statistics
        return out


def _row_to_version(row: Any) -> DatasetVersion:
    privacy = row["privacy"] or {}
    return DatasetVersion(
        id=row["id"], name=row["name"], version=row["version"], content_sha256=row["content_sha256"],
        artifact_sha256=row["artifact_sha256"], row_count=row["row_count"], schema=row["schema"],
        source=row["source"], created_at=row["created_at"], parents=tuple(row["parents"] or ()),
        run_id=row["run_id"], retention_class=row["retention_class"], pii_columns=tuple(row["pii_columns"] or ()),
        statistics=row["statistics"] or {}, status=row["status"], subject_column=row["subject_column"],
        subjects_sha256=row["subjects_sha256"], subject_count=row["subject_count"], schema_id=row["schema_id"],
        privacy=privacy, superseded_by=row["superseded_by"], status_changed_at=row["status_changed_at"],
        retain_from=row["retain_from"],
    )


def _dictionary_columns(schema: pa.Schema) -> list[str]:
    # Dictionary pages pay off for repetitive text; for floats they are wasted work.
    return [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_boolean(f.type)]


def _parquet_writer(where: Any, schema: pa.Schema) -> pq.ParquetWriter:
    return pq.ParquetWriter(where, schema, compression=COMPRESSION, write_statistics=True, store_schema=True,
                            use_dictionary=_dictionary_columns(schema))


def table_to_parquet_bytes(table: pa.Table) -> bytes:
    """Deterministic Parquet bytes for a table (same table → same bytes)."""
    sink = io.BytesIO()
    table = table.replace_schema_metadata(None)
    with _parquet_writer(sink, table.schema) as writer:
        writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
    return sink.getvalue()


def _canonical_parquet(path: str | Path, schema: DatasetSchema | None) -> bool:
    """True when a Parquet file's columns already have the types and order ingest would give them."""
    try:
        file_schema = pq.read_schema(path).remove_metadata()
    except (pa.ArrowInvalid, OSError):
        return False  # read_batches reports the problem with the file name
    try:
        conformed = conform_table(file_schema.empty_table(), schema, where=str(path))
    except IngestError:
        return False
    return conformed.schema.remove_metadata() == file_schema


def _copy_hashing(source: Path, target: Path) -> str:
    """Copy ``source`` to a new file ``target`` (fsynced) and return the sha256 of the bytes."""
    digest = hashlib.sha256()
    with open(source, "rb") as src, open(target, "xb") as dst:
        while chunk := src.read(1 << 22):
            digest.update(chunk)
            dst.write(chunk)
        dst.flush()
        sync_fd(dst.fileno())
    return digest.hexdigest()


def _publish(store: LocalArtifactStore, staged: Path, sha: str | None = None) -> str:
    """Move a fully written staging file into the content-addressed store; return its sha256.

    Equivalent to ``store.put_file`` without copying the bytes a second time: the
    file is fsynced, hashed, made read-only and hard-linked under its final name
    (link never overwrites, so racing writers of identical bytes are safe).
    Debt: belongs in LocalArtifactStore (e.g. ``put_staged``); move it there when
    storage grows that method.
    """
    try:
        if sha is None:
            digest = hashlib.sha256()
            with open(staged, "rb") as stream:
                sync_fd(stream.fileno())
                while chunk := stream.read(1 << 22):
                    digest.update(chunk)
            sha = digest.hexdigest()
        os.chmod(staged, 0o444)
        final = store.path_for(sha)
        make_dirs(final.parent)
        try:
            store.ops.link(staged, final)
        except FileExistsError:
            touch_existing(final, staged, ops=store.ops)  # identical bytes are already stored: tell the GC
        else:
            store.sync_new_name(final)  # a failed fsync takes the name back: no later writer trusts it
    except OSError as exc:
        raise ArtifactWriteFailed(store.root, exc) from exc
    return sha


def _rechunk(batches: Iterable[pa.RecordBatch | pa.Table], rows: int) -> Iterator[pa.Table]:
    """Regroup batches into tables of exactly ``rows`` rows (the last may be shorter)."""
    pending: list[pa.Table] = []
    size = 0
    empty: pa.Table | None = None  # every batch had no row: one empty table still carries the columns
    yielded = False
    for batch in batches:
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        if not table.num_rows and empty is None:
            empty = table
        while table.num_rows:
            take = min(rows - size, table.num_rows)
            pending.append(table.slice(0, take))
            size += take
            table = table.slice(take)
            if size == rows:
                yield pa.concat_tables(pending)
                yielded, pending, size = True, [], 0
    if pending:
        yield pa.concat_tables(pending)
    elif not yielded and empty is not None:
        yield empty


def _profile_back(path: Path, pieces: list[int], per_chunk: int, slices: Sequence[str]) -> list[DatasetStatistics]:
    """The profiles of a written file's chunks: each chunk is ``per_chunk`` consecutive pieces (a row group
    each, of ``pieces[i]`` rows), read back a column at a time, so a chunk's table is never whole in memory.

    :func:`profile` computes each column on its own, so a column's profile is the one the whole chunk's table
    gives (sums in Arrow may differ in the last bit); the slices' counts are the slice columns' value counts."""
    parquet = pq.ParquetFile(path)
    groups = iter(range(parquet.metadata.num_row_groups))
    out: list[DatasetStatistics] = []
    for start in range(0, len(pieces), per_chunk):
        rows = sum(pieces[start:start + per_chunk])
        if not rows:  # every row of the chunk suppressed: the empty table's profile, as before
            out.append(profile(parquet.schema_arrow.empty_table(), slices=slices, workers=1))
            continue
        chosen: list[int] = []
        held = 0
        while held < rows:  # a piece is one row group; a piece with no rows left wrote none
            group = next(groups)
            chosen.append(group)
            held += parquet.metadata.row_group(group).num_rows
        def column(name: str, chosen: list[int] = chosen) -> DatasetStatistics:
            # a reader of its own: one ParquetFile read from two threads fails at random ("ReadRangeCache did
            # not find matching cache entry", a 90-day select)
            table = pq.ParquetFile(path).read_row_groups(chosen, columns=[name])
            return profile(table, slices=[s for s in slices if s == name], workers=1)

        columns: dict[str, Any] = {}
        counts: dict[str, dict[str, int]] = {}
        with ThreadPoolExecutor(2) as pool:  # two columns at a time, one a core
            for part in pool.map(column, parquet.schema_arrow.names):
                columns |= part.columns
                counts |= part.slices
        out.append(DatasetStatistics(row_count=rows, columns=columns,
                                     slices={s: counts[s] for s in slices if s in counts}))
    return out


@dataclass
class _Written:
    path: Path
    rows: int
    schema: pa.Schema | None
    statistics: DatasetStatistics | None
    subjects: pa.Array | None
    suppressed: int = 0


class Datasets:
    """Ingest, look up and read dataset versions in a workspace."""

    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace

    # -- ingest ------------------------------------------------------------
    def ingest_frame(
        self,
        name: str,
        frame: pd.DataFrame | pa.Table,
        *,
        source: str,
        parents: Sequence[str] = (),
        run_id: str | None = None,
        retention_class: str | None = None,
        pii_columns: Sequence[str] = (),
        schema: DatasetSchema | None = None,
        subject: str | None = None,
        allow_empty: bool = False,
        no_subject: str | None = None,
    ) -> DatasetVersion:
        """Record a pandas or Arrow table as a version of ``name`` (or return the identical existing one)."""
        table = frame if isinstance(frame, pa.Table) else _arrow_table(frame, source)
        if table.num_columns == 0:
            raise InvalidInput(f"Dataset {name!r} from {source!r} has no columns; nothing to ingest.")
        return self.ingest_batches(name, [table], source=source, parents=parents, run_id=run_id,
                                   retention_class=retention_class, pii_columns=pii_columns, schema=schema,
                                   subject=subject, allow_empty=allow_empty, where=source, no_subject=no_subject)

    def ingest_file(
        self,
        name: str,
        path: str | Path,
        *,
        fmt: str | None = None,
        source: str | None = None,
        parents: Sequence[str] = (),
        run_id: str | None = None,
        retention_class: str | None = None,
        pii_columns: Sequence[str] = (),
        schema: DatasetSchema | None = None,
        subject: str | None = None,
        delimiter: str | None = None,
        progress: ProgressCallback | None = None,
        allow_empty: bool = False,
        no_subject: str | None = None,
    ) -> DatasetVersion:
        """Stream a CSV, Parquet, JSON Lines or Arrow file into a version of ``name``.

        A Parquet file written by yarnit (the world's tables) declares its subject column in its metadata;
        it is used when neither ``subject``, ``no_subject`` nor the schema says otherwise.
        """
        check_name("Dataset", name)
        is_parquet = detect_format(path, fmt) == "parquet"
        if is_parquet and subject is None and no_subject is None and (schema is None or not (
                schema.subject or schema.no_subject)):
            subject, no_subject = declared_subject(path)
        batches = read_batches(path, fmt, schema=schema, delimiter=delimiter, progress=progress)
        as_is = Path(path) if is_parquet and _canonical_parquet(path, schema) else None
        return self.ingest_batches(name, batches, source=source or str(path), parents=parents, run_id=run_id,
                                   retention_class=retention_class, pii_columns=pii_columns, schema=schema,
                                   subject=subject, allow_empty=allow_empty, where=str(path), store_as_is=as_is,
                                   no_subject=no_subject)

    def ingest_batches(
        self,
        name: str,
        batches: Iterable[pa.RecordBatch | pa.Table],
        *,
        source: str,
        parents: Sequence[str] = (),
        run_id: str | None = None,
        retention_class: str | None = None,
        pii_columns: Sequence[str] = (),
        schema: DatasetSchema | None = None,
        subject: str | None = None,
        allow_empty: bool = False,
        where: str = "input",
        environment: str = "training",
        relation: str = "derived_from",
        chunk_rows: int = ROW_GROUP_ROWS,
        row_group_rows: int | None = None,
        schema_id: str | None = None,
        privacy: dict[str, Any] | None = None,
        retain_from: datetime | None = None,
        store_as_is: Path | None = None,
        no_subject: str | None = None,
    ) -> DatasetVersion:
        """Stream batches into a new version; the core that every ingest path uses.

        ``store_as_is`` names a Parquet file (the source of ``batches``) whose
        columns already have canonical types: it is stored byte for byte instead
        of being re-encoded, unless PII must be dropped or hashed.

        ``chunk_rows`` rows are converted and profiled at a time; ``row_group_rows`` (default: ``chunk_rows``)
        sets the stored row groups' size, so smaller row groups leave the statistics as they were.

        ``schema_id``, ``privacy`` and ``retain_from`` carry a rewritten version's
        manifest over from its original (``forget``): PII is already treated and
        retention keeps counting from the original ingest.

        A dataset holding personal data (an identifier column such as
        ``user_id``, or a kept PII column) must name its ``subject`` column, or
        give ``no_subject``: the reason it has none. Rows of subjects on the
        suppression list (forgotten before) are dropped and counted
        (``suppressed_rows``).
        """
        check_name("Dataset", name)
        parent_ids = [self.resolve(p).id for p in parents]
        if schema is not None:
            schema_id = Schemas(self.ws).register(schema.dataset or name, schema, source=schema.source).id
        subject_column = subject or (schema.subject if schema is not None else None)
        no_subject = no_subject if no_subject is not None else (schema.no_subject if schema is not None else None)
        if no_subject is not None and not no_subject.strip():
            raise InvalidInput(f"--no-subject for dataset {name!r} needs a reason (e.g. 'aggregates over at least "
                               "50 shoppers'), got an empty one.")
        if subject_column is not None and no_subject is not None:
            raise InvalidInput(f"Dataset {name!r} names subject column {subject_column!r} and also says it has no "
                               "subject column; pass one of --subject and --no-subject.")
        policy: dict[str, str] = dict(schema.pii_columns) if schema is not None else {}
        for column in pii_columns:
            policy.setdefault(column, "keep")
        encoding = (privacy or {}).get("subject_encoding") or (
            "hmac" if policy.get(subject_column or "") == "hash" else "raw")
        hashes = suppressed_hashes(self.ws) if subject_column is not None else pa.array([], pa.string())
        key = workspace_key(self.ws) if "hash" in policy.values() or len(hashes) else None
        slices = tuple(schema.slices) if schema is not None else ()
        if any(action in ("drop", "hash") for action in policy.values()) or len(hashes):
            store_as_is = None  # the stored bytes must not hold the raw PII, nor rows of forgotten subjects
        copy: Future[str] | None = None
        copier = ThreadPoolExecutor(1) if store_as_is is not None else None
        if copier is not None and store_as_is is not None:
            # Copy the file into staging while it is read and profiled (hashing as it goes).
            copied = self.ws.artifacts.root / "staging" / f"ingest-{os.getpid()}-{os.urandom(6).hex()}.parquet"
            make_dirs(copied.parent)
            copy = copier.submit(_copy_hashing, store_as_is, copied)
        try:
            written = self._write_staging(batches, schema=schema, policy=policy, key=key, slices=slices,
                                          subject_column=subject_column, where=where, environment=environment,
                                          chunk_rows=chunk_rows, row_group_rows=row_group_rows,
                                          write=store_as_is is None,
                                          suppressed=(hashes, encoding))
        except BaseException:
            if copier is not None and copy is not None:
                copier.shutdown(wait=True)
                copied.unlink(missing_ok=True)
            raise
        try:
            if written.schema is None or (written.rows == 0 and not allow_empty):
                raise IngestError("has a header but no data rows: there is nothing to ingest.", path=where)
            kept = [c for c in policy if policy[c] != "drop"]
            missing = [c for c in kept if c not in written.schema.names]
            if missing:
                raise InvalidInput(f"PII columns {missing} are not in dataset {name!r}; its columns are "
                                   f"{written.schema.names}.")
            if subject_column is not None and subject_column not in written.schema.names:
                raise InvalidInput(f"Subject column {subject_column!r} is not in dataset {name!r}; its columns are "
                                   f"{written.schema.names}. Name the column that identifies the person.")
            personal = personal_columns(written.schema.names, policy)
            if personal and subject_column is None and no_subject is None:
                raise InvalidInput(
                    f"Dataset {name!r} holds personal data (columns {personal}) but names no subject column, so a "
                    "deletion request could not find a person's rows in it. Pass --subject COLUMN (e.g. "
                    "--subject user_id), or --no-subject 'REASON' if no column identifies the person.")
            if copy is not None:
                content = _publish(self.ws.artifacts, copied, copy.result())
            else:
                content = _publish(self.ws.artifacts, written.path)
        finally:
            written.path.unlink(missing_ok=True)
            if copier is not None:
                copier.shutdown(wait=True)
                copied.unlink(missing_ok=True)
        subjects_sha = None
        if written.subjects is not None:
            subjects_sha = self.ws.artifacts.put_bytes(table_to_parquet_bytes(
                pa.table({"subject": written.subjects}))).sha256
        if privacy is None:
            privacy = {"pii": policy, "subject_column": subject_column, "subject_encoding": encoding,
                       "personal_columns": personal}
            if no_subject is not None:
                privacy["no_subject"] = no_subject.strip()
        privacy = {**privacy, "suppressed_rows": written.suppressed}
        private = set(privacy.get("pii", {})) | ({subject_column} if subject_column else set())
        private |= set(schema.restricted_columns) if schema is not None else set()  # no raw values (CH4-R3)
        stats = written.statistics.redact(private).to_dict() if written.statistics is not None else None
        column_types = {f.name: yarnit_type(f.type) for f in written.schema}
        version = self._record(
            name=name, content=content, rows=written.rows, column_types=column_types, statistics=stats,
            source=source, parents=parent_ids, run_id=run_id,
            retention_class=retention_class or (schema.retention if schema is not None else None),
            pii_columns=[c for c in policy if policy[c] != "drop"], subject_column=subject_column,
            subjects_sha256=subjects_sha,
            subject_count=None if written.subjects is None else len(written.subjects),
            schema_id=schema_id, privacy=privacy, relation=relation, retain_from=retain_from)
        if version.suppressed_rows != written.suppressed:
            # The same content was recorded before: the result still counts what this ingest dropped.
            version = replace(version, privacy={**version.privacy, "suppressed_rows": written.suppressed})
        return version

    def _write_staging(self, batches: Iterable[pa.RecordBatch | pa.Table], *, schema: DatasetSchema | None,
                       policy: dict[str, str], key: bytes | None, slices: Sequence[str], subject_column: str | None,
                       where: str, environment: str, chunk_rows: int, row_group_rows: int | None = None,
                       write: bool = True, suppressed: tuple[pa.Array, str] | None = None) -> _Written:
        staging = self.ws.artifacts.root / "staging"
        make_dirs(staging)
        # The name carries our pid: LocalArtifactStore.recover() removes it if we are killed.
        path = staging / f"ingest-{os.getpid()}-{os.urandom(6).hex()}.parquet"
        writer: pq.ParquetWriter | None = None
        out_schema: pa.Schema | None = None
        rows = 0
        profiles: list[Future[DatasetStatistics]] = []
        subjects: list[pa.Array] = []
        dropped = 0
        hashes, encoding = suppressed if suppressed is not None else (pa.array([], pa.string()), "raw")
        # Smaller row groups than profiled chunks (the ctr log's Dask parts): convert and write a row group at a
        # time, and profile each chunk's rows afterwards, read back from the file a column at a time. The
        # chunks profiled are the same rows as before, so the statistics are too, and the ingest never holds a
        # whole chunk (issue 20).
        per_chunk = chunk_rows // row_group_rows if write and row_group_rows and row_group_rows < chunk_rows \
            and chunk_rows % row_group_rows == 0 else 0
        written_rows: list[int] = []  # rows written of each piece converted (a row group each), when per_chunk
        try:
            with ThreadPoolExecutor(1) as pool:
                for chunk in _rechunk(batches, row_group_rows if per_chunk else chunk_rows):
                    table = conform_table(chunk, schema, environment=environment, where=where, row_offset=rows)
                    table = apply_pii_policy(table, policy, key=key).replace_schema_metadata(None)
                    if len(hashes) and subject_column in table.column_names:
                        assert key is not None
                        gone = suppression_mask(table.column(subject_column), hashes, encoding, key)
                        n_gone = int(pc.sum(gone).as_py() or 0)
                        if n_gone:
                            table = table.filter(pc.invert(gone))
                            dropped += n_gone
                    if out_schema is None:
                        out_schema = table.schema
                        if write:
                            writer = _parquet_writer(path, out_schema)
                    elif table.schema != out_schema:
                        try:
                            table = table.cast(out_schema)
                        except (pa.ArrowInvalid, ValueError) as exc:
                            raise IngestError(f"changes its columns or types part-way (rows after {rows}): "
                                              f"{exc}. Declare the types in a schema (--schema).",
                                              path=where) from None
                    # Profile this chunk on the other core while this one encodes Parquet. One profile at a time:
                    # the previous chunk's finishes first, so at most two chunks are held, however slowly the
                    # profiles go (issue 20).
                    if per_chunk:
                        written_rows.append(table.num_rows)
                    else:
                        if profiles:
                            profiles[-1].result()
                        profiles.append(pool.submit(profile, table, slices=slices, workers=1))
                    if subject_column is not None and subject_column in table.column_names:
                        subjects.append(pc.unique(table.column(subject_column)))
                    if writer is not None:
                        writer.write_table(table, row_group_size=row_group_rows or chunk_rows)
                    rows += table.num_rows
                    del chunk, table  # not held while the next chunk is gathered
                if out_schema is None:
                    return _Written(path, 0, None, None, None, dropped)
                if writer is not None:
                    writer.close()
                    writer = None
                if per_chunk:
                    stats = merge_statistics(_profile_back(path, written_rows, per_chunk, slices))
                else:
                    stats = merge_statistics([f.result() for f in profiles]) if profiles else None
        except BaseException:
            if writer is not None:
                writer.close()
            path.unlink(missing_ok=True)
            raise
        unique = None
        if subject_column is not None and out_schema is not None and subject_column in out_schema.names:
            values = pa.chunked_array(subjects, type=out_schema.field(subject_column).type) if subjects else \
                pa.chunked_array([], type=out_schema.field(subject_column).type)
            distinct = pc.drop_null(pc.unique(values.combine_chunks()))
            unique = pc.take(distinct, pc.sort_indices(distinct))
        return _Written(path, rows, out_schema, stats, unique, dropped)

    def _record(self, *, name: str, content: str, rows: int, column_types: dict[str, str],
                statistics: dict[str, Any] | None, source: str, parents: Sequence[str], run_id: str | None,
                retention_class: str | None, pii_columns: Sequence[str], subject_column: str | None,
                subjects_sha256: str | None, subject_count: int | None, schema_id: str | None,
                privacy: dict[str, Any], relation: str, retain_from: datetime | None) -> DatasetVersion:
        for attempt in range(50):
            existing = self._find_by_content(name, content)
            if existing is not None:
                if existing.status != ACTIVE:
                    replacement = self.replacement(existing)
                    raise DatasetUnavailable(existing.ref, existing.status,
                                             None if replacement is None else replacement.ref)
                return existing
            now = self.ws.clock.now()
            try:
                with self.ws.metadata.begin() as conn:
                    number = (conn.execute(select(func.max(dataset_versions.c.version))
                                           .where(dataset_versions.c.name == name)).scalar() or 0) + 1
                    version_id = new_id("ds", self.ws.clock)
                    conn.execute(insert(dataset_versions).values(
                        id=version_id, name=name, version=number, content_sha256=content, artifact_sha256=content,
                        row_count=rows, schema=column_types, statistics=statistics, source=source,
                        created_at=now, parents=list(parents), run_id=run_id, retention_class=retention_class,
                        pii_columns=list(pii_columns), subject_column=subject_column,
                        subjects_sha256=subjects_sha256, status=ACTIVE, schema_id=schema_id,
                        subject_count=subject_count, privacy=privacy, retain_from=retain_from))
                    for parent in parents:
                        _edge(conn, "dataset_version", parent, "dataset_version", version_id, relation, now)
                    if run_id is not None:
                        _edge(conn, "run", run_id, "dataset_version", version_id, "produced", now)
                return self.get(name, number)
            except SqlIntegrityError:
                # Another writer took this number or recorded the same content: look again.
                time.sleep(0.002 * (attempt + 1))
        raise Conflict(f"Could not record dataset {name!r}: concurrent writers kept colliding. Retry the ingest.")

    def _find_by_content(self, name: str, content: str) -> DatasetVersion | None:
        with self.ws.metadata.begin() as conn:
            row = conn.execute(select(dataset_versions).where(and_(
                dataset_versions.c.name == name, dataset_versions.c.content_sha256 == content))).mappings().first()
        return None if row is None else _row_to_version(row)

    # -- lookup ------------------------------------------------------------
    def get(self, name: str, version: int | None = None) -> DatasetVersion:
        """A version of ``name``; with ``version`` None, the newest active one."""
        query = select(dataset_versions).where(dataset_versions.c.name == name)
        if version is not None:
            check_version("Dataset", name, version)
        if version is None:
            query = query.order_by((dataset_versions.c.status == ACTIVE).desc(),
                                   dataset_versions.c.version.desc()).limit(1)
        else:
            query = query.where(dataset_versions.c.version == version)
        with self.ws.metadata.begin() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            raise DatasetNotFound(name, version)
        return _row_to_version(row)

    def get_by_id(self, version_id: str) -> DatasetVersion:
        with self.ws.metadata.begin() as conn:
            row = conn.execute(select(dataset_versions).where(dataset_versions.c.id == version_id)).mappings().first()
        if row is None:
            raise DatasetNotFound(version_id)
        return _row_to_version(row)

    def resolve(self, ref: str) -> DatasetVersion:
        """A version from ``NAME``, ``NAME:vN``, ``NAME:N``, ``dataset:NAME:vN`` or an id ``ds_…``."""
        text = ref.strip()
        if text.startswith("ds_"):
            return self.get_by_id(text)
        name, version = parse_versioned_ref("Dataset", text.removeprefix("dataset:"), usage=(
            "use NAME, NAME:vN or a version id (ds_…). List datasets with: yarnit data list"))
        return self.get(name, version)

    def list(self, name: str | None = None, *, include_inactive: bool = True) -> list[DatasetVersion]:
        query = select(dataset_versions).order_by(dataset_versions.c.name, dataset_versions.c.version)
        if name is not None:
            query = query.where(dataset_versions.c.name == name)
        if not include_inactive:
            query = query.where(dataset_versions.c.status == ACTIVE)
        with self.ws.metadata.begin() as conn:
            return [_row_to_version(r) for r in conn.execute(query).mappings().all()]

    def summaries(self, *, limit: int = 200) -> list[dict[str, Any]]:
        """The newest ``limit`` versions (newest first) without their schema and statistics: a status page's list."""
        c = dataset_versions.c
        query = select(c.id, c.name, c.version, c.row_count, c.created_at, c.source, c.status, c.retention_class,
                       c.subject_count).order_by(c.created_at.desc(), c.name, c.version.desc()).limit(limit)
        with self.ws.metadata.begin() as conn:
            return [dict(r) | {"ref": f"{r['name']}:v{r['version']}"} for r in conn.execute(query).mappings().all()]

    def names(self) -> list[str]:
        with self.ws.metadata.begin() as conn:
            return [r[0] for r in conn.execute(select(dataset_versions.c.name).distinct()
                                               .order_by(dataset_versions.c.name)).all()]

    def previous(self, version: DatasetVersion) -> DatasetVersion | None:
        """The newest active version of the same dataset older than ``version`` (the validation baseline)."""
        with self.ws.metadata.begin() as conn:
            row = conn.execute(select(dataset_versions).where(and_(
                dataset_versions.c.name == version.name, dataset_versions.c.version < version.version,
                dataset_versions.c.status == ACTIVE)).order_by(dataset_versions.c.version.desc()).limit(1)
            ).mappings().first()
        return None if row is None else _row_to_version(row)

    def replacement(self, version: DatasetVersion) -> DatasetVersion | None:
        """The version that replaced a forgotten one (following chains), if any."""
        current = version
        for _ in range(100):
            if current.superseded_by is None:
                return current if current.id != version.id else None
            current = self.get_by_id(current.superseded_by)
        return current

    # -- reading -----------------------------------------------------------
    def _check_readable(self, version: DatasetVersion) -> None:
        if version.status != ACTIVE:
            replacement = self.replacement(version)
            raise DatasetUnavailable(version.ref, version.status,
                                     None if replacement is None else replacement.ref)

    def read_table(self, version: DatasetVersion, *, columns: Sequence[str] | None = None) -> pa.Table:
        """The version's rows, read from verified bytes (refused once it is forgotten or expired)."""
        self._check_readable(version)
        with self.ws.artifacts.open_verified(version.artifact_sha256) as stream:
            return pq.read_table(stream, columns=None if columns is None else list(columns))

    def read(self, version: DatasetVersion) -> pd.DataFrame:
        return self.read_table(version).to_pandas()

    def subjects(self, version: DatasetVersion) -> pa.Array:
        """The sorted unique data-subject ids of a version (as stored: raw or keyed hash)."""
        if version.subjects_sha256 is None:
            return pa.array([], pa.string())
        self._check_readable(version)
        data = self.ws.artifacts.get_bytes(version.subjects_sha256)
        return pq.read_table(io.BytesIO(data)).column("subject").combine_chunks()

    # -- status (used by forget and retention) -------------------------------
    def set_status(self, conn: Connection, version_id: str, status: str, *, superseded_by: str | None = None) -> None:
        if status not in STATUSES:
            raise InvalidInput(f"Dataset status {status!r} is not valid; use one of {', '.join(STATUSES)}.")
        values: dict[str, Any] = {"status": status, "status_changed_at": self.ws.clock.now()}
        if superseded_by is not None:
            values["superseded_by"] = superseded_by
        conn.execute(update(dataset_versions).where(dataset_versions.c.id == version_id).values(**values))


def declared_subject(path: str | Path) -> tuple[str | None, str | None]:
    """(subject column, no-subject reason) a yarnit-written Parquet file declares in its metadata."""
    try:
        metadata = pq.read_schema(path).metadata or {}
    except (pa.ArrowInvalid, OSError):
        return None, None  # read_batches reports the problem with the file name
    subject = metadata.get(SUBJECT_KEY)
    reason = metadata.get(NO_SUBJECT_KEY)
    return (None if subject is None else subject.decode()), (None if reason is None else reason.decode())


def _edge(conn: Connection, src_kind: str, src_id: str, dst_kind: str, dst_id: str, relation: str,
          now: datetime) -> None:
    exists = conn.execute(select(lineage_edges.c.id).where(and_(
        lineage_edges.c.src_kind == src_kind, lineage_edges.c.src_id == src_id,
        lineage_edges.c.dst_kind == dst_kind, lineage_edges.c.dst_id == dst_id,
        lineage_edges.c.relation == relation))).first()
    if exists is None:
        conn.execute(insert(lineage_edges).values(src_kind=src_kind, src_id=src_id, dst_kind=dst_kind, dst_id=dst_id,
                                                  relation=relation, created_at=now))



# What pyarrow raises when a pandas column cannot become one Arrow column, and what it means for the caller.
_UNCONVERTIBLE: tuple[tuple[type[BaseException], str], ...] = (
    (OverflowError, "an integer past 64 bits"),
    (UnicodeError, "text that is not valid UTF-8 (e.g. a lone surrogate)"),
    (pa.ArrowException, "values of more than one type (e.g. numbers and strings), or of a type a column cannot "
                        "hold"),
)


def _arrow_table(frame: pd.DataFrame, source: str) -> pa.Table:
    """``frame`` as an Arrow table, or an :class:`IngestError` naming the first column that cannot be one.

    The reason is said in words, not with pyarrow's message, which quotes the offending value (it may be
    personal data).
    """
    errors = tuple(kind for kind, _why in _UNCONVERTIBLE)
    try:
        return pa.Table.from_pandas(frame, preserve_index=False)
    except errors:
        pass
    for position in range(frame.shape[1]):
        try:
            pa.Table.from_pandas(frame.iloc[:, [position]], preserve_index=False)
        except errors as exc:
            why = next(w for kind, w in _UNCONVERTIBLE if isinstance(exc, kind))
            raise IngestError(f"holds {why}; a column's values must all be of one type. Convert the column "
                              "before ingesting.", path=source, column=str(frame.columns[position])) from None
    raise IngestError("cannot be stored as an Arrow table (its columns convert one by one, but not together); "
                      "check the column names and the index.", path=source)

__all__ = ["DatasetNotFound", "DatasetVersion", "Datasets", "table_to_parquet_bytes"]
