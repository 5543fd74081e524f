"""Load-test results in the metadata store (table ``load_tests``, migration 0015), like evaluations.

One row per run, written in one transaction with its audit-log row (action ``loadtest.run``), so
every replica and the staged rollout see the same results on SQLite or PostgreSQL. The row holds
the searchable facts (model, version, the production version it was measured against, passed, the
load offered, an injected delay) and the whole report as JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import desc, insert, select

from yarnit.core.errors import NotFound
from yarnit.storage import Workspace
from yarnit.storage.schema import audit_log, load_tests


class LoadTestStore:
    """Reads and writes load-test results of a workspace."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def add(self, report: Mapping[str, Any], *, at: datetime, actor: str) -> None:
        """Record ``report`` (as :func:`yarnit.loadtest.run_loadtest` builds it) and its audit row."""
        with self.ws.metadata.begin() as conn:
            conn.execute(insert(load_tests).values(
                id=report["id"], model_name=report["model"], model_version=report["version"],
                baseline_version=report["baseline_version"], created_at=at, passed=bool(report["passed"]),
                rps=float(report["rps"]), duration_s=float(report["duration_s"]),
                injected_delay_ms=float(report["injected_delay_ms"]), actor=actor[:128], report=dict(report)))
            conn.execute(insert(audit_log).values(
                at=at, actor=actor[:128], action="loadtest.run", subject=f"model:{report['model']}",
                detail={"id": report["id"], "version": report["version"],
                        "baseline_version": report["baseline_version"], "passed": report["passed"],
                        "reason": report["reason"]}))

    def get(self, loadtest_id: str) -> dict[str, Any]:
        with self.ws.metadata.begin() as conn:
            row = conn.execute(select(load_tests.c.report).where(load_tests.c.id == loadtest_id)).first()
        if row is None:
            raise NotFound(f"No load test {loadtest_id!r}; list them with: yarnit loadtest MODEL --history.")
        return dict(row[0])

    def history(self, model: str, version: int | None = None, *, limit: int = 20) -> list[dict[str, Any]]:
        """The latest results of ``model`` (of one version), newest first."""
        query = select(load_tests.c.report).where(load_tests.c.model_name == model)
        if version is not None:
            query = query.where(load_tests.c.model_version == version)
        query = query.order_by(desc(load_tests.c.created_at), desc(load_tests.c.id)).limit(max(1, min(limit, 1000)))
        with self.ws.metadata.begin() as conn:
            return [dict(r[0]) for r in conn.execute(query)]

    def latest(self, model: str, version: int) -> dict[str, Any] | None:
        """The newest result of ``model`` v``version``, or None."""
        found = self.history(model, version, limit=1)
        return found[0] if found else None


__all__ = ["LoadTestStore"]
