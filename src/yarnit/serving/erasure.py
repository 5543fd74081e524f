"""The prediction log's privacy duties: erasing a data subject (``yarnit data forget``) and retention.

:class:`PredictionLogRetention` deletes the segments older than the
``prediction_log`` retention class allows (``yarnit data enforce-retention``).

The log never holds a subject id in clear when the policy hashes personal
fields: it holds ``hmac-sha256:<32 hex>`` keyed by ``YARNIT_HMAC_KEY``, and
drops those fields when no key is set. So the log is searched for the raw id
(a field the policy did not know as personal) and for its keyed hash, and
records holding either are removed from every segment no server is writing
(:func:`~yarnit.serving.predlog.erase_from_prediction_log`).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from yarnit.data.deletion import ErasureReport
from yarnit.storage import Workspace

from .predlog import LogPolicy, erase_from_prediction_log, prune_prediction_log


class PredictionLogEraser:
    """Removes a subject's records from the prediction log under ``log_dir`` (default: the workspace's)."""

    name = "prediction-log"

    def __init__(self, workspace: Workspace, *, log_dir: Path | None = None) -> None:
        self.ws = workspace
        self.log_dir = log_dir or workspace.home / "prediction_log"

    def erase(self, subject_id: str) -> ErasureReport:
        key = self.ws.settings.hmac_key
        needles = [subject_id]
        if key:
            hashed = LogPolicy(hmac_key=key.encode("utf-8")).pseudonymise(subject_id)
            needles.append(hashed or "")
        result = erase_from_prediction_log(self.log_dir, needles)
        how = "by id and keyed hash" if key else "by id (no YARNIT_HMAC_KEY: the log drops personal fields)"
        report = ErasureReport(self.name, removed=result.records_removed,
                               searched=[f"prediction log: {result.segments_searched} segments ({how})"])
        for segment in result.live_segments_with_matches:
            report.remaining.append({"where": f"prediction log segment {segment}", "why": (
                "a running server is still writing it; run the deletion again after the server restarts or "
                "rolls to a new segment")})
        return report


class PredictionLogRetention:
    """Deletes prediction-log segments whose newest record is older than the ``prediction_log`` class allows."""

    name = "prediction-log"
    retention_class = "prediction_log"

    def __init__(self, workspace: Workspace, *, log_dir: Path | None = None) -> None:
        self.log_dir = log_dir or workspace.home / "prediction_log"

    def expire(self, older_than: datetime, *, dry_run: bool) -> list[str]:
        pruned = prune_prediction_log(self.log_dir, older_than=older_than, dry_run=dry_run)
        return [f"prediction log segment {name}" for name in pruned.deleted]


__all__ = ["PredictionLogEraser", "PredictionLogRetention"]
