"""The purge queue: artifacts scheduled for deletion after a grace period, then deleted.

``forget`` and retention do not delete bytes at once: they schedule the old
artifacts for purge ``grace`` later (time to notice a mistaken request while
the data is no longer readable through yarnit). :meth:`PurgeQueue.purge_due`
deletes what is due, but never an artifact that an active dataset version or a
model version still references (content addressing means identical bytes are
shared). When every purge of a deletion request is done and nothing else
remains, its receipt is closed (``completed``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, insert, or_, select, update

from yarnit.storage import Workspace
from yarnit.storage.schema import artifact_purges, dataset_versions, deletion_receipts, model_versions


@dataclass(frozen=True)
class PurgeReport:
    """What one purge pass did."""

    purged: list[str] = field(default_factory=list)
    still_referenced: list[str] = field(default_factory=list)
    already_gone: list[str] = field(default_factory=list)
    pending: int = 0
    receipts_completed: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"purged": self.purged, "still_referenced": self.still_referenced,
                "already_gone": self.already_gone, "pending": self.pending,
                "receipts_completed": self.receipts_completed}


def _close_receipt(conn: Connection, request_id: str, now: datetime) -> bool:
    """Every file of a deletion request is purged: drop those waits from its receipt; close it if nothing else
    remains (a receipt still naming other remains, e.g. an unreachable store, stays ``partial``)."""
    row = conn.execute(select(deletion_receipts.c.status, deletion_receipts.c.detail).where(and_(
        deletion_receipts.c.id == request_id, deletion_receipts.c.completed_at.is_(None)))).first()
    if row is None or row[0] != "partial":
        return False  # unknown, already closed, or still in progress (forget finishes it)
    detail = dict(row[1] or {})
    detail["remaining"] = [r for r in detail.get("remaining", []) if r.get("kind") != "purge"]
    done = not detail["remaining"]
    conn.execute(update(deletion_receipts).where(deletion_receipts.c.id == request_id).values(
        detail=detail, status="completed" if done else "partial", completed_at=now if done else None))
    return done


class PurgeQueue:
    """Schedule and carry out artifact purges."""

    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace

    def schedule(self, conn: Connection, sha256: str, *, reason: str, request_id: str | None,
                 purge_after: datetime) -> None:
        """Queue ``sha256`` for deletion at ``purge_after`` (inside the caller's transaction)."""
        conn.execute(insert(artifact_purges).values(
            artifact_sha256=sha256, reason=reason, request_id=request_id, scheduled_at=self.ws.clock.now(),
            purge_after=purge_after, purged_at=None, outcome=None))

    def pending(self) -> list[dict[str, Any]]:
        with self.ws.metadata.begin() as conn:
            rows = conn.execute(select(artifact_purges).where(artifact_purges.c.purged_at.is_(None))
                                .order_by(artifact_purges.c.purge_after)).mappings().all()
        return [dict(r) for r in rows]

    def _referenced(self, conn: Connection, sha: str) -> bool:
        active = conn.execute(select(dataset_versions.c.id).where(and_(
            dataset_versions.c.status == "active",
            or_(dataset_versions.c.artifact_sha256 == sha, dataset_versions.c.subjects_sha256 == sha)))).first()
        if active is not None:
            return True
        return conn.execute(select(model_versions.c.id).where(model_versions.c.artifact_sha256 == sha)).first() \
            is not None

    def purge_due(self) -> PurgeReport:
        """Delete every artifact whose grace period has passed (by the workspace clock)."""
        now = self.ws.clock.now()
        with self.ws.metadata.begin() as conn:
            due = conn.execute(select(artifact_purges).where(and_(
                artifact_purges.c.purged_at.is_(None), artifact_purges.c.purge_after <= now))
                .order_by(artifact_purges.c.id)).mappings().all()
        report = PurgeReport()
        requests: set[str] = set()
        for row in due:
            sha = row["artifact_sha256"]
            with self.ws.metadata.begin() as conn:
                if self._referenced(conn, sha):
                    outcome = "still_referenced"
                    report.still_referenced.append(sha)
                else:
                    # Delete first, then record: a crash in between leaves a row that the next pass
                    # finds due again and records as already gone.
                    existed = self.ws.artifacts.delete(sha)
                    outcome = "purged" if existed else "already_gone"
                    (report.purged if existed else report.already_gone).append(sha)
                    conn.execute(update(dataset_versions).where(and_(
                        dataset_versions.c.artifact_sha256 == sha, dataset_versions.c.status != "active"))
                        .values(status="purged", status_changed_at=now))
                conn.execute(update(artifact_purges).where(artifact_purges.c.id == row["id"])
                             .values(purged_at=now, outcome=outcome))
            if row["request_id"]:
                requests.add(row["request_id"])
        with self.ws.metadata.begin() as conn:
            for request_id in sorted(requests):
                left = conn.execute(select(artifact_purges.c.id).where(and_(
                    artifact_purges.c.request_id == request_id, artifact_purges.c.purged_at.is_(None)))).first()
                if left is None and _close_receipt(conn, request_id, now):
                    report.receipts_completed.append(request_id)
            pending = conn.execute(select(artifact_purges.c.id).where(artifact_purges.c.purged_at.is_(None))).all()
        return PurgeReport(purged=report.purged, still_referenced=report.still_referenced,
                           already_gone=report.already_gone, pending=len(pending),
                           receipts_completed=report.receipts_completed)


__all__ = ["PurgeQueue", "PurgeReport"]
