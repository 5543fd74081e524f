"""Forgetting a data subject: rewrite every dataset version that holds them, taint what was built from it.

``forget(subject_id)``:

1. finds every active dataset version whose subject list contains the subject
   (one DuckDB query over the small sorted subject artifacts, never the data);
2. rewrites each as a new version of the same dataset without the subject's
   rows (lineage ``rewritten_from``); the old version becomes ``forgotten``
   (unreadable) and its data and subject artifacts are queued for purge after
   the grace period;
3. walks lineage downstream of every old version: model versions are tainted
   in the registry (which blocks their promotion) and listed for retraining;
   other derived nodes (feature materializations, derived datasets,
   deployments) are tainted in the lineage graph;
4. calls the registered erasers for the subject (the feature store, offline and
   every online store ever materialized into; the prediction log);
5. adds the subject to the suppression list (a keyed hash), so a later ingest
   that brings the subject back drops those rows;
6. purges what is due, then looks again and writes a deletion receipt that
   names what was searched, rewritten, queued for purge, tainted and must be
   retrained, and what remains with the reason. It is ``completed`` only when
   every place was searched and the subject is gone from all of them
   (including the bytes of old versions, which wait for the grace period);
   otherwise it is ``partial``. The receipt holds a keyed hash of the subject
   id (HMAC with the workspace key), never the id itself.

What is searched: every dataset version through its subject list; a version
that holds personal data but declares no subject column (``--no-subject``,
or one ingested before subject columns were required) by a full scan of its
Parquet; versions with no personal data are listed as such; and every blob
that no row references (a writer crashed between storing it and recording its
row, so no dataset version leads to it) by a full scan: those holding the
subject are queued for purge like the old versions' files (the artifact GC
would remove them only after its own grace period, and the receipt must not
claim the subject gone while they exist). Monitoring keeps
no per-subject summaries yet (issue 17): the receipt says so rather than
claiming them searched.

The request is resumable: a crash part-way leaves an ``in_progress`` receipt
that the next ``forget`` of the same subject continues. Its due date is 30 days
after the request (GDPR Art. 12(3) allows one month); the grace period must fit
inside it. Nothing here logs or stores the raw subject id.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import and_, insert, select, update

from yarnit.core.errors import InvalidInput, NotFound
from yarnit.core.ids import new_id
from yarnit.registry import ModelRegistry
from yarnit.storage import Workspace, unreferenced
from yarnit.storage.schema import audit_log, deletion_receipts, model_versions

from .lineage import Lineage, Node
from .privacy import hmac_hex, subject_hash, subject_mask, suppress, workspace_key
from .purge import PurgeQueue
from .versions import Datasets, DatasetVersion

SLA = timedelta(days=30)
DEFAULT_GRACE = timedelta(days=7)


@dataclass
class ErasureReport:
    """What an eraser did: records removed, places searched, and what remains (``{"where", "why"}``)."""

    name: str
    removed: int = 0
    searched: list[str] = field(default_factory=list)
    remaining: list[dict[str, str]] = field(default_factory=list)


class SubjectEraser(Protocol):
    """Something outside dataset versions that holds per-subject data (e.g. an online store)."""

    name: str

    def erase(self, subject_id: str) -> ErasureReport | int:
        """Delete the subject's data; report what was searched and what remains (or just a count)."""
        ...


MONITORING_NOTE = "monitoring keeps no per-subject summaries yet (issue 17): nothing to search"


@dataclass(frozen=True)
class DeletionReceipt:
    """Proof of a deletion request: what was done, with no personal data in it."""

    id: str
    subject_hash: str
    requested_at: datetime
    due_by: datetime
    purge_after: datetime
    completed_at: datetime | None
    status: str
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def to_retrain(self) -> list[str]:
        return list(self.detail.get("to_retrain", []))

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "subject_hash": self.subject_hash, "requested_at": self.requested_at.isoformat(),
                "due_by": self.due_by.isoformat(), "purge_after": self.purge_after.isoformat(),
                "completed_at": None if self.completed_at is None else self.completed_at.isoformat(),
                "status": self.status, **self.detail}


@dataclass(frozen=True)
class Finding:
    """Rows of the subject found in a stored Parquet artifact by :meth:`Deletions.scan`."""

    artifact_sha256: str
    column: str
    rows: int


def _receipt(row: Any) -> DeletionReceipt:
    return DeletionReceipt(id=row["id"], subject_hash=row["subject_hash"], requested_at=row["requested_at"],
                           due_by=row["due_by"], purge_after=row["purge_after"], completed_at=row["completed_at"],
                           status=row["status"], detail=row["detail"] or {})


class Deletions:
    """Find, forget and prove the deletion of a data subject across the workspace."""

    def __init__(self, workspace: Workspace, *, erasers: Sequence[SubjectEraser] | None = None) -> None:
        """``erasers`` default to the workspace's feature store and prediction log (pass ``()`` for none)."""
        self.ws = workspace
        self.erasers = None if erasers is None else tuple(erasers)
        self._last_orphan_scan = 0

    @contextlib.contextmanager
    def _erasers(self) -> Iterator[tuple[SubjectEraser, ...]]:
        if self.erasers is not None:
            yield self.erasers
            return
        # Imported here: the feature store and serving build on this package, not the other way round.
        from yarnit.features import FeatureStore
        from yarnit.features.erasure import FeatureStoreEraser
        from yarnit.serving.erasure import PredictionLogEraser

        with FeatureStore(self.ws) as features:
            yield (FeatureStoreEraser(features, subject_columns=self.subject_columns()), PredictionLogEraser(self.ws))

    # -- finding -----------------------------------------------------------
    def find(self, subject_id: str) -> list[DatasetVersion]:
        """Every active dataset version whose subject list holds ``subject_id``."""
        _check_subject(subject_id)
        key = workspace_key(self.ws)
        candidates = [v for v in Datasets(self.ws).list(include_inactive=False) if v.subjects_sha256]
        by_path: dict[str, list[DatasetVersion]] = {}
        for v in candidates:
            path = self.ws.artifacts.path_for(v.subjects_sha256 or "")
            if path.is_file():
                by_path.setdefault(str(path), []).append(v)
        if not by_path:
            return []
        keys = [subject_id, hmac_hex(key, subject_id)]
        con = duckdb.connect()
        try:
            rows = con.execute(
                "SELECT DISTINCT filename FROM read_parquet($files, filename = true, union_by_name = true) "
                "WHERE CAST(subject AS VARCHAR) IN ($raw, $hashed)",
                {"files": sorted(by_path), "raw": keys[0], "hashed": keys[1]}).fetchall()
        finally:
            con.close()
        found = [v for (filename,) in rows for v in by_path.get(str(filename), [])]
        return sorted(found, key=lambda v: (v.name, v.version))

    def unchecked(self) -> list[DatasetVersion]:
        """Active versions with personal data but no subject column: ``forget`` scans them in full."""
        return [v for v in Datasets(self.ws).list(include_inactive=False)
                if v.subject_column is None and v.personal_columns]

    def subject_columns(self) -> list[str]:
        """``user_id`` and every subject column a dataset declares (the keys feature views are erased by)."""
        declared = {v.subject_column for v in Datasets(self.ws).list() if v.subject_column}
        return sorted(declared | {"user_id"})

    def _stored_holders(self, subject_id: str) -> list[DatasetVersion]:
        """Versions of any status whose data file is still stored and whose subject list holds the subject."""
        key = workspace_key(self.ws)
        needles = {subject_id, hmac_hex(key, subject_id)}
        out = []
        for v in Datasets(self.ws).list():
            if not v.subjects_sha256 or not self.ws.artifacts.path_for(v.artifact_sha256).is_file():
                continue
            path = self.ws.artifacts.path_for(v.subjects_sha256)
            if not path.is_file():
                continue
            subjects = pq.read_table(path).column("subject")
            text = subjects if pa.types.is_string(subjects.type) else pc.cast(subjects, pa.string())
            if pc.any(pc.is_in(text, value_set=pa.array(sorted(needles)))).as_py():
                out.append(v)
        return out

    def _scan_version(self, version: DatasetVersion, subject_id: str) -> int:
        """Rows of ``version`` that hold the subject in any text or integer column (a full scan)."""
        path = self.ws.artifacts.path_for(version.artifact_sha256)
        return sum(f.rows for f in _scan_file(path, version.artifact_sha256, subject_id, workspace_key(self.ws)))

    # -- forgetting ----------------------------------------------------------
    def forget(self, subject_id: str, *, grace: timedelta = DEFAULT_GRACE, actor: str = "cli",
               dry_run: bool = False) -> DeletionReceipt:
        """Remove ``subject_id`` from every dataset version and taint what was built from them."""
        _check_subject(subject_id)
        if grace < timedelta(0) or grace > SLA:
            raise InvalidInput(f"Grace period {grace} is not valid: use 0 to {SLA.days} days so the purge "
                               "completes within the 30-day deadline (GDPR Art. 12(3): one month).")
        hashed = subject_hash(self.ws, subject_id)
        affected = self.find(subject_id)
        now = self.ws.clock.now()
        if dry_run:
            return DeletionReceipt(id="dry-run", subject_hash=hashed, requested_at=now, due_by=now + SLA,
                                   purge_after=now + grace, completed_at=None, status="dry_run",
                                   detail={"would_rewrite": [v.ref for v in affected],
                                           "would_taint": self._downstream_models(affected),
                                           "unchecked_datasets": [v.ref for v in self.unchecked()]})
        receipt = self._open_receipt(hashed, now, grace, subject_id)
        datasets = Datasets(self.ws)
        queue = PurgeQueue(self.ws)
        key = workspace_key(self.ws)
        detail = dict(receipt.detail)
        rewritten: list[dict[str, Any]] = list(detail.get("rewritten", []))
        purges: list[str] = list(detail.get("scheduled_purges", []))
        for old in affected:
            table = datasets.read_table(old)
            encoding = (old.privacy or {}).get("subject_encoding", "raw")
            column = old.subject_column
            assert column is not None
            mask = subject_mask(table.column(column), subject_id, encoding, key)
            removed = int(pc.sum(mask).as_py() or 0)
            kept = table.filter(pc.invert(mask))
            new = datasets.ingest_batches(
                old.name, [kept], source=f"{old.source} [subject removed by {receipt.id}]", parents=[old.id],
                retention_class=old.retention_class, pii_columns=old.pii_columns, subject=column,
                allow_empty=True, relation="rewritten_from", where=old.ref, schema_id=old.schema_id,
                privacy=old.privacy, retain_from=old.retain_from or old.created_at)
            old_shas = [s for s in (old.artifact_sha256, old.subjects_sha256) if s]
            with self.ws.metadata.begin() as conn:
                datasets.set_status(conn, old.id, "forgotten", superseded_by=new.id)
                for sha in old_shas:
                    queue.schedule(conn, sha, reason="forget", request_id=receipt.id, purge_after=receipt.purge_after)
                rewritten.append({"from": old.ref, "from_id": old.id, "to": new.ref, "to_id": new.id,
                                  "rows_removed": removed})
                purges += old_shas
                detail |= {"rewritten": rewritten, "scheduled_purges": purges}
                conn.execute(update(deletion_receipts).where(deletion_receipts.c.id == receipt.id)
                             .values(detail=detail))
        # Blobs that no row references (a writer crashed between its blob and its row) are not reachable through
        # any dataset version, but may hold the subject: scan them in full and queue the ones that do for purge.
        orphans = self._orphans_holding(subject_id)
        scanned_orphans = self._last_orphan_scan
        fresh = [sha for sha in orphans if sha not in purges]
        if fresh:
            with self.ws.metadata.begin() as conn:
                for sha in fresh:
                    queue.schedule(conn, sha, reason="forget_unreferenced", request_id=receipt.id,
                                   purge_after=receipt.purge_after)
            purges += fresh
        # Taint everything downstream of every version that held the subject (also those of earlier attempts).
        old_ids = [r["from_id"] for r in rewritten]
        new_ids = {r["to_id"] for r in rewritten}
        tainted_models, tainted_nodes = self._taint_downstream(old_ids, new_ids, receipt.id)
        searched: list[str] = []
        remaining: list[dict[str, Any]] = []
        erased: dict[str, int] = {}
        with self._erasers() as erasers:
            for eraser in erasers:
                result = eraser.erase(subject_id)
                if isinstance(result, int):
                    result = ErasureReport(eraser.name, removed=result, searched=[eraser.name])
                erased[eraser.name] = int(result.removed)
                searched += result.searched
                remaining += result.remaining
        queue.purge_due()  # a zero grace period purges the old files now
        searched_data, not_personal, left = self._verify(subject_id)
        orphans_searched = f"{scanned_orphans} unreferenced artifacts (left by interrupted writes; full scan)"
        detail |= {
            "rewritten": rewritten, "scheduled_purges": purges,
            "tainted_models": tainted_models, "tainted_nodes": tainted_nodes, "to_retrain": tainted_models,
            "rebuilt_datasets": sorted({r["to"] for r in rewritten}), "erased": erased,
            "unchecked_datasets": [v.ref for v in self.unchecked()],
            "searched": [*searched_data, orphans_searched, *searched],
            "no_personal_data": not_personal,
            "monitoring_summaries": MONITORING_NOTE, "remaining": left + remaining,
        }
        status = "partial" if detail["remaining"] else "completed"
        with self.ws.metadata.begin() as conn:
            conn.execute(update(deletion_receipts).where(deletion_receipts.c.id == receipt.id).values(
                detail=detail, status=status, completed_at=None if status == "partial" else self.ws.clock.now()))
            conn.execute(insert(audit_log).values(
                at=self.ws.clock.now(), actor=actor, action="data.forget", subject=receipt.id,
                detail={"subject_hash": hashed, "rewritten": len(rewritten), "tainted_models": len(tainted_models),
                        "scheduled_purges": len(purges)}))
        return self.receipt(receipt.id)

    def _verify(self, subject_id: str) -> tuple[list[str], list[str], list[dict[str, Any]]]:
        """Look again after the rewrite: (places searched, versions without personal data, what remains)."""
        searched: list[str] = []
        not_personal: list[str] = []
        remaining: list[dict[str, Any]] = []
        versions = Datasets(self.ws).list()
        for v in versions:
            if not v.active:
                continue
            if v.subject_column is not None:
                searched.append(f"dataset {v.ref} (subject column {v.subject_column})")
            elif not v.personal_columns:
                not_personal.append(v.ref)
            else:
                rows = self._scan_version(v, subject_id)
                searched.append(f"dataset {v.ref} (no subject column: full scan)")
                if rows:
                    why = v.no_subject or "ingested before subject columns were declared"
                    remaining.append({"where": f"dataset {v.ref}", "why": (
                        f"{rows} rows hold the subject but the version names no subject column ({why}); ingest "
                        "it again with --subject COLUMN so forget can rewrite it")})
        pending = {row["artifact_sha256"]: row["purge_after"] for row in PurgeQueue(self.ws).pending()}
        for v in self._stored_holders(subject_id):
            if v.active:
                remaining.append({"where": f"dataset {v.ref}", "why": "still holds the subject after the rewrite"})
            else:
                after = pending.get(v.artifact_sha256)
                remaining.append({"where": f"file of dataset {v.ref} ({v.status}, no longer readable)",
                                  "why": ("purged after the grace period, at " + after.isoformat()) if after
                                  else "not queued for purge", "kind": "purge" if after else "file",
                                  "sha256": v.artifact_sha256})
        for sha in self._orphans_holding(subject_id):
            after = pending.get(sha)
            remaining.append({"where": f"unreferenced artifact {sha} (left by an interrupted write)",
                              "why": ("purged after the grace period, at " + after.isoformat()) if after
                              else "not queued for purge", "kind": "purge" if after else "file", "sha256": sha})
        return searched, not_personal, remaining

    def _orphans_holding(self, subject_id: str) -> list[str]:
        """Unreferenced blobs (see :mod:`yarnit.storage.gc`) that hold the subject's rows (a full scan of each)."""
        key = workspace_key(self.ws)
        orphans = unreferenced(self.ws)
        self._last_orphan_scan = len(orphans)
        return [sha for sha in orphans if _scan_file(self.ws.artifacts.path_for(sha), sha, subject_id, key)]

    def _open_receipt(self, hashed: str, now: datetime, grace: timedelta, subject_id: str) -> DeletionReceipt:
        with self.ws.metadata.begin() as conn:
            row = conn.execute(select(deletion_receipts).where(and_(
                deletion_receipts.c.subject_hash == hashed, deletion_receipts.c.status == "in_progress"))
                .order_by(deletion_receipts.c.requested_at.desc())).mappings().first()
            if row is not None:
                return _receipt(row)
            receipt_id = new_id("del", self.ws.clock)
            conn.execute(insert(deletion_receipts).values(
                id=receipt_id, subject_hash=hashed, requested_at=now, due_by=now + SLA, purge_after=now + grace,
                completed_at=None, status="in_progress", detail={}))
            # From now on every ingest drops the subject's rows, also while this request runs.
            suppress(conn, self.ws, subject_id, receipt_id=receipt_id)
        return self.receipt(receipt_id)

    def _downstream_models(self, versions: Sequence[DatasetVersion]) -> list[str]:
        lineage = Lineage(self.ws)
        refs: list[str] = []
        for v in versions:
            for node in lineage.downstream(Node("dataset_version", v.id)).of_kind("model_version"):
                ref = node.label.removeprefix("model:")  # the registry's NAME:vN
                if ref not in refs:
                    refs.append(ref)
        return refs

    def _taint_downstream(self, old_ids: Sequence[str], new_ids: set[str],
                          request_id: str) -> tuple[list[str], list[str]]:
        lineage = Lineage(self.ws)
        registry = ModelRegistry(self.ws)
        models: list[str] = []
        nodes: list[str] = []
        seen: set[Node] = set()
        for old_id in old_ids:
            graph = lineage.downstream(Node("dataset_version", old_id))
            for node in graph.nodes[1:]:
                if node in seen or node.id in new_ids or node.id in old_ids:
                    continue
                seen.add(node)
                reason = (f"built from data of a forgotten data subject (deletion {request_id}); "
                          "retrain on the rewritten dataset versions")
                if node.kind == "model_version":
                    with self.ws.metadata.begin() as conn:
                        row = conn.execute(select(model_versions.c.model_name, model_versions.c.version)
                                           .where(model_versions.c.id == node.id)).first()
                    if row is None:
                        continue
                    registry.taint(row[0], row[1], reason)
                    lineage.taint(node, reason, request_id=request_id)
                    models.append(f"{row[0]}:v{row[1]}")
                else:
                    lineage.taint(node, reason, request_id=request_id)
                    nodes.append(node.label or f"{node.kind}:{node.id}")
        return models, nodes

    # -- receipts ------------------------------------------------------------
    def receipt(self, receipt_id: str) -> DeletionReceipt:
        with self.ws.metadata.begin() as conn:
            row = conn.execute(select(deletion_receipts).where(deletion_receipts.c.id == receipt_id)).mappings().first()
        if row is None:
            raise NotFound(f"There is no deletion receipt {receipt_id!r}. List them with: yarnit data forget --list")
        return _receipt(row)

    def receipts(self) -> list[DeletionReceipt]:
        with self.ws.metadata.begin() as conn:
            rows = conn.execute(select(deletion_receipts).order_by(deletion_receipts.c.requested_at)).mappings().all()
        return [_receipt(r) for r in rows]

    def receipts_for(self, subject_id: str) -> list[DeletionReceipt]:
        """The receipts of one subject (looked up by keyed hash)."""
        hashed = subject_hash(self.ws, subject_id)
        return [r for r in self.receipts() if r.subject_hash == hashed]

    # -- proof ------------------------------------------------------------------
    def scan(self, subject_id: str) -> list[Finding]:
        """Look for the subject in every column of every stored Parquet artifact (slow; for audits and tests)."""
        _check_subject(subject_id)
        key = workspace_key(self.ws)
        findings: list[Finding] = []
        for sha in self.ws.artifacts.iter_shas():
            findings += _scan_file(self.ws.artifacts.path_for(sha), sha, subject_id, key)
        return findings


def _scan_file(path: Path, sha: str, subject_id: str, key: bytes) -> list[Finding]:
    """The subject's rows (raw id or keyed hash) in each text or integer column of a Parquet file."""
    if not _is_parquet(path):
        return []
    needles = pa.array([subject_id, hmac_hex(key, subject_id)])
    table = pq.read_table(path)
    findings = []
    for name in table.column_names:
        values = table.column(name)
        if pa.types.is_dictionary(values.type):
            values = pc.cast(values, values.type.value_type)
        if not (pa.types.is_string(values.type) or pa.types.is_integer(values.type)
                or pa.types.is_large_string(values.type)):
            continue
        text = values if pa.types.is_string(values.type) else pc.cast(values, pa.string())
        rows = int(pc.sum(pc.fill_null(pc.is_in(text, value_set=needles), False)).as_py() or 0)
        if rows:
            findings.append(Finding(sha, name, rows))
    return findings


def _is_parquet(path: Path) -> bool:
    try:
        with open(path, "rb") as stream:
            return stream.read(4) == b"PAR1"
    except OSError:
        return False


def _check_subject(subject_id: str) -> None:
    if not isinstance(subject_id, str) or not subject_id.strip() or len(subject_id) > 256:
        raise InvalidInput("A subject id must be a non-empty string of at most 256 characters (the value of the "
                           "dataset's subject column, e.g. a user id).")


__all__ = ["DEFAULT_GRACE", "MONITORING_NOTE", "SLA", "DeletionReceipt", "Deletions", "ErasureReport", "Finding",
           "SubjectEraser"]
