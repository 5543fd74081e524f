"""Run records: what a training job was asked to do, what it produced, and how it ended."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update

from yarnit.core.errors import NotFound
from yarnit.core.ids import check_name, new_id
from yarnit.storage import Workspace
from yarnit.storage.schema import runs


@dataclass(frozen=True)
class Run:
    id: str
    pipeline: str
    state: str
    started_at: datetime
    ended_at: datetime | None
    params: dict[str, Any]
    metrics: dict[str, Any]
    code_version: str | None


def detect_code_version(path: Path | None = None) -> str | None:
    """The git commit of the code at ``path`` (``+dirty`` if modified), or None outside git."""
    where = path or Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True,
                                timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                               capture_output=True, text=True, timeout=5, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit[:40]}{'+dirty' if dirty else ''}"[:64]


class RunStore:
    """Start and finish runs in the metadata store."""

    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace

    def start(self, pipeline: str, params: dict[str, Any], *, code_version: str | None = None) -> Run:
        check_name("Pipeline", pipeline)
        run_id = new_id("run", self.ws.clock)
        with self.ws.metadata.begin() as conn:
            conn.execute(insert(runs).values(
                id=run_id, pipeline=pipeline, state="running", started_at=self.ws.clock.now(), ended_at=None,
                params=params, metrics={}, code_version=code_version))
        return self.get(run_id)

    def finish(self, run_id: str, state: str, metrics: dict[str, Any] | None = None) -> Run:
        with self.ws.metadata.begin() as conn:
            conn.execute(update(runs).where(runs.c.id == run_id).values(
                state=state, ended_at=self.ws.clock.now(), metrics=metrics or {}))
        return self.get(run_id)

    def get(self, run_id: str) -> Run:
        with self.ws.metadata.begin() as conn:
            row = conn.execute(select(runs).where(runs.c.id == run_id)).mappings().first()
        if row is None:
            raise NotFound(f"There is no run {run_id!r}. List runs with: yarnit runs list")
        return Run(**dict(row))


__all__ = ["Run", "RunStore", "detect_code_version"]
