"""Run and step records: what a pipeline run was asked to do, what each step did, how it ended.

A running run holds a lease: the runner renews ``heartbeat_at`` (from the
workspace clock) while the run is alive. A run whose process died (``kill -9``,
a lost machine) stops renewing it, and once ``heartbeat_at + lease_s`` has
passed it reads as ``interrupted``, with the command that resumes it.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import socket
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, and_, delete, insert, select, update

from yarnit.core.errors import NotFound
from yarnit.core.ids import check_name, new_id
from yarnit.storage import Workspace
from yarnit.storage.schema import run_steps, runs

DEFAULT_LEASE_S = 60.0  # a live runner renews its heartbeat every lease/4; a dead one shows after one lease

TRACKED_PACKAGES = ("yarnit", "numpy", "pandas", "pyarrow", "scikit-learn", "lightgbm", "skops", "duckdb",
                    "scipy", "dask", "distributed")


@dataclass(frozen=True)
class StepRecord:
    step: str
    state: str  # pending | running | succeeded | cached | failed | interrupted
    attempts: int
    cache_key: str | None
    inputs: dict[str, Any]
    outputs: dict[str, Any] | None
    started_at: datetime | None
    ended_at: datetime | None
    wall_s: float | None
    cpu_s: float | None
    peak_rss_mb: float | None
    rows: int | None
    rows_per_s: float | None
    error: str | None
    logs: list[str]


@dataclass(frozen=True)
class Run:
    id: str
    pipeline: str
    state: str  # running | succeeded | failed | interrupted (running, but its lease expired: the process died)
    started_at: datetime
    ended_at: datetime | None
    params: dict[str, Any]
    metrics: dict[str, Any]
    code_version: str | None
    source: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    environment: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    reproduces: str | None = None
    heartbeat_at: datetime | None = None
    lease_s: float | None = None

    @property
    def resume_command(self) -> str | None:
        """How to continue this run, when it can be continued."""
        return f"yarnit runs resume {self.id}" if self.state in ("interrupted", "failed") else None

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        for key in ("started_at", "ended_at", "heartbeat_at"):
            data[key] = data[key].isoformat() if data[key] else None
        data["resume"] = self.resume_command
        return data


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


@functools.lru_cache(maxsize=1)
def _installed() -> tuple[str, str, tuple[tuple[str, str | None], ...]]:
    """Python, platform and package versions: fixed for a process, and slow to look up (each package's metadata
    is searched for on ``sys.path``), so looked up once rather than for every run a long-running loop starts."""
    packages = []
    for name in TRACKED_PACKAGES:
        try:
            packages.append((name, importlib.metadata.version(name)))
        except importlib.metadata.PackageNotFoundError:
            packages.append((name, None))
    return platform.python_version(), platform.platform(), tuple(packages)


def environment() -> dict[str, Any]:
    """Python, platform and package versions of this process (recorded with every run)."""
    python, system, packages = _installed()
    return {"python": python, "platform": system, "packages": dict(packages),
            "host": socket.gethostname(), "pid": os.getpid()}


def _run(row: Any, now: datetime) -> Run:
    state = row["state"]
    if state == "running":
        last = row["heartbeat_at"] or row["started_at"]  # runs recorded before leases: their start
        if now > last + timedelta(seconds=row["lease_s"] or DEFAULT_LEASE_S):
            state = "interrupted"
    return Run(
        id=row["id"], pipeline=row["pipeline"], state=state, started_at=row["started_at"],
        ended_at=row["ended_at"], params=row["params"] or {}, metrics=row["metrics"] or {},
        code_version=row["code_version"], source=row["source"], config=row["config"] or {}, seed=row["seed"],
        environment=row["environment"] or {}, error=row["error"], reproduces=row["reproduces"],
        heartbeat_at=row["heartbeat_at"], lease_s=row["lease_s"],
    )


class RunStore:
    """Runs and their steps in the metadata store."""

    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace

    def start(self, pipeline: str, params: dict[str, Any], *, code_version: str | None = None,
              source: str | None = None, seed: int | None = None, reproduces: str | None = None,
              lease_s: float = DEFAULT_LEASE_S) -> Run:
        check_name("Pipeline", pipeline)
        run_id = new_id("run", self.ws.clock)
        now = self.ws.clock.now()
        with self.ws.metadata.begin() as conn:
            conn.execute(insert(runs).values(
                id=run_id, pipeline=pipeline, state="running", started_at=now, ended_at=None,
                params=params, metrics={}, code_version=code_version, source=source, config=params, seed=seed,
                environment=environment(), error=None, reproduces=reproduces, heartbeat_at=now, lease_s=lease_s))
        return self.get(run_id)

    def reopen(self, run_id: str, *, lease_s: float = DEFAULT_LEASE_S) -> Run:
        """Mark a run as running again (resume), recording this process as its owner."""
        with self.ws.metadata.begin() as conn:
            conn.execute(update(runs).where(runs.c.id == run_id).values(
                state="running", ended_at=None, error=None, environment=environment(),
                heartbeat_at=self.ws.clock.now(), lease_s=lease_s))
        return self.get(run_id)

    def beat(self, run_id: str) -> None:
        """Renew a running run's lease (the runner calls this while the run is alive)."""
        with self.ws.metadata.begin() as conn:
            conn.execute(update(runs).where(and_(runs.c.id == run_id, runs.c.state == "running"))
                         .values(heartbeat_at=self.ws.clock.now()))

    def finish(self, run_id: str, state: str, metrics: dict[str, Any] | None = None,
               error: str | None = None) -> Run:
        with self.ws.metadata.begin() as conn:
            conn.execute(update(runs).where(runs.c.id == run_id).values(
                state=state, ended_at=self.ws.clock.now(), metrics=metrics or {}, error=error))
        return self.get(run_id)

    def get(self, run_id: str) -> Run:
        with self.ws.metadata.begin() as conn:
            row = conn.execute(select(runs).where(runs.c.id == run_id)).mappings().first()
        if row is None:
            raise NotFound(f"There is no run {run_id!r}. List runs with: yarnit runs list")
        return _run(row, self.ws.clock.now())

    def list(self, pipeline: str | None = None, limit: int = 50) -> list[Run]:
        query = select(runs).order_by(runs.c.started_at.desc(), runs.c.id.desc()).limit(limit)
        if pipeline is not None:
            query = query.where(runs.c.pipeline == pipeline)
        with self.ws.metadata.begin() as conn:
            rows = conn.execute(query).mappings().all()
        now = self.ws.clock.now()
        return [_run(r, now) for r in rows]

    # -- steps -------------------------------------------------------------
    def steps(self, run_id: str) -> list[StepRecord]:
        with self.ws.metadata.begin() as conn:
            rows = conn.execute(select(run_steps).where(run_steps.c.run_id == run_id)
                                .order_by(run_steps.c.started_at)).mappings().all()
        return [StepRecord(**{k: v for k, v in r.items() if k != "run_id"}) for r in rows]

    def step(self, run_id: str, step: str) -> StepRecord | None:
        for record in self.steps(run_id):
            if record.step == step:
                return record
        return None

    def step_started(self, run_id: str, step: str, *, attempts: int, cache_key: str | None,
                     inputs: dict[str, Any]) -> None:
        """Record a step as running; starting a step renews the run's lease too (one transaction, one sync)."""
        now = self.ws.clock.now()
        with self.ws.metadata.begin() as conn:
            conn.execute(delete(run_steps).where(and_(run_steps.c.run_id == run_id, run_steps.c.step == step)))
            conn.execute(insert(run_steps).values(
                run_id=run_id, step=step, state="running", attempts=attempts, cache_key=cache_key, inputs=inputs,
                outputs=None, started_at=now, ended_at=None, logs=[]))
            conn.execute(update(runs).where(and_(runs.c.id == run_id, runs.c.state == "running"))
                         .values(heartbeat_at=now))

    def step_finished(self, run_id: str, step: str, *, state: str, outputs: dict[str, Any] | None = None,
                      error: str | None = None, logs: list[str] | None = None, conn: Connection | None = None,
                      **measures: Any) -> None:
        """Record how a step ended; in ``conn``'s transaction when given (the runner adds its cache entry)."""
        if conn is None:
            with self.ws.metadata.begin() as own:
                self.step_finished(run_id, step, state=state, outputs=outputs, error=error, logs=logs, conn=own,
                                   **measures)
            return
        conn.execute(update(run_steps).where(and_(run_steps.c.run_id == run_id, run_steps.c.step == step))
                     .values(state=state, outputs=outputs, error=error, logs=(logs or [])[-200:],
                             ended_at=self.ws.clock.now(), **measures))


__all__ = ["DEFAULT_LEASE_S", "Run", "RunStore", "StepRecord", "detect_code_version", "environment"]
