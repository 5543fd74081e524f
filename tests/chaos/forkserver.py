"""A fork server for crash tests: imports yarnit once, then runs each trial in a forked child and kills it.

Run as ``python forkserver.py``; it reads one JSON request per line on stdin and answers one JSON line
on stdout. A request names a scenario (an operation on a workspace), the workspace home, a trial
number and how to die:

* ``{"kill": "boundary", "at": k}``: the child is SIGKILLed at the k-th *boundary*. Every call of
  ``os.fsync``, ``os.replace``, ``os.rename`` and ``os.link`` (what yarnit.core.atomic's ``FileOps``,
  the artifact store and the dataset publisher call) has two boundaries, just before and just after
  it, so k = 0, 1, 2, … walks every fsync/rename/link of the operation. The answer says whether the
  child was killed or finished first (then k was past the last boundary).
* ``{"kill": "after", "seconds": s}``: the server SIGKILLs the child s seconds after the fork.
* ``{"kill": "none"}``: the child runs to the end; the answer counts the boundaries it passed.

Forking from a process that already imported numpy, pandas, pyarrow and scikit-learn makes a trial
cost the operation, not an interpreter start (about 2.5 s here). The server itself never opens a
workspace, so no connection or thread is shared with a child.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline as SkPipeline

import yarnit.data
import yarnit.features
import yarnit.registry
import yarnit.storage
import yarnit.training  # noqa: F401  (imported before the fork, so trials do not pay for it)
from yarnit.core import Settings
from yarnit.core import SimulatedClock, utc

BOUNDARY_CALLS = ("fsync", "replace", "rename", "link")


def _artifacts() -> list[bytes]:
    from yarnit.registry import dump_sklearn

    rows = [{"fiber": "merino", "price": 12.0}, {"fiber": "acrylic", "price": 3.0}] * 10
    out = []
    for i in range(4):
        model = SkPipeline([("vec", DictVectorizer()), ("lr", LogisticRegression(C=10.0 ** -i))])
        model.fit(rows, [1, 0] * 10)
        out.append(dump_sklearn(model))
    return out


ARTIFACTS = _artifacts()


def _open(home: str) -> Any:
    return yarnit.storage.open_workspace(Settings.for_home(home))


def register(home: str, trial: int) -> dict[str, Any]:
    """Register a version (new bytes on most trials, bytes already stored on some) and promote it."""
    from yarnit.registry import ArtifactFormat, ModelRegistry

    with _open(home) as ws:
        registry = ModelRegistry(ws)
        version = registry.register("ctr", ARTIFACTS[trial % len(ARTIFACTS)] + b"", ArtifactFormat.SKOPS)
        registry.promote("ctr", version.version)
        return {"version": version.version}


def clicks_frame(trial: int) -> pd.DataFrame:
    rng = np.random.default_rng(trial)
    n = 500
    return pd.DataFrame({"user_id": [f"u{i}" for i in rng.integers(0, 50, n)],
                         "price": rng.normal(10, 2, n), "clicked": rng.integers(0, 2, n).astype(bool)})


def ingest(home: str, trial: int) -> dict[str, Any]:
    """Ingest a small frame as a dataset version (trial 0's content again on every third trial)."""
    from yarnit.data import Datasets

    with _open(home) as ws:
        version = Datasets(ws).ingest_frame("clicks", clicks_frame(0 if trial % 3 == 0 else trial), source="chaos", subject="user_id")
        return {"version": version.version}


FEATURE_NOW = utc(2026, 6, 1)


def activity_rows(trial: int) -> pd.DataFrame:
    """200 rows on one day of its own (2026-01-01 + trial days): a write replaces whole days, so trials never
    replace each other's rows and the newest offline row of each user is what the online store must hold."""
    rng = np.random.default_rng(trial)
    n = 200
    day = pd.Timestamp("2026-01-01T00:00Z") + pd.Timedelta(days=trial)
    times = day + pd.to_timedelta(rng.choice(24 * 60, n, replace=False), unit="min")
    return pd.DataFrame({"user_id": [f"u{i}" for i in rng.integers(0, 40, n)], "event_time": times,
                         "clicks_7d": rng.integers(0, 100, n), "ctr_7d": rng.random(n),
                         "country": rng.choice(["ES", "DE", "FR"], n), "is_new": rng.integers(0, 2, n).astype(bool)})


def _user_view() -> Any:
    from yarnit.features import feature_view

    @feature_view(
        entities={"user_id": "string"},
        features={"clicks_7d": "int64", "ctr_7d": "float64", "country": "string", "is_new": "bool"},
        ttl=timedelta(days=365),
        sources=("activity",),
    )
    def user_activity(activity: pd.DataFrame) -> pd.DataFrame:
        """Clicks and click-through rate of each shopper."""
        return activity

    return user_activity


USER_VIEW = _user_view()


def features(home: str, trial: int) -> dict[str, Any]:
    """Write a trial's rows to the offline store (whole days, atomically), then materialize online."""
    from yarnit.features import OfflineStore, materialize, open_online_store

    offline = OfflineStore(Path(home) / "features" / "offline")
    offline.write(USER_VIEW, activity_rows(trial))
    online = open_online_store(f"sqlite:///{home}/online.db")
    try:
        result = materialize(USER_VIEW, offline, online, clock=SimulatedClock(FEATURE_NOW))
    finally:
        online.close()
    return {"rows_total": result.rows_total}


def _make(ctx: Any) -> dict[str, Any]:
    return {"table": clicks_frame(ctx.seed)}


def _fit(ctx: Any, table: pd.DataFrame) -> dict[str, Any]:
    from yarnit.training.trainers import make_trainer

    model = make_trainer("logistic").fit(table[["price"]], table["clicked"].astype(int).to_numpy(), seed=ctx.seed)
    return {"model": model}


def _register(ctx: Any, model: Any) -> dict[str, Any]:
    from yarnit.core import sha256_bytes
    from yarnit.registry import ModelRegistry

    registry = ModelRegistry(ctx.workspace)
    same = [v for v in (registry.versions("toy") if registry.exists("toy") else [])
            if v.artifact_sha256 == sha256_bytes(model.artifact)]
    version = same[-1] if same else registry.register("toy", model.artifact, model.artifact_format, run_id=ctx.run_id)
    return {"ref": {"version": version.version}}


def _pipeline() -> Any:
    from yarnit.training import Pipeline, Step, ValueKind

    return Pipeline("toy", [
        Step("make", _make, outputs={"table": ValueKind.TABLE}),
        Step("fit", _fit, inputs={"table": "make.table"}, outputs={"model": ValueKind.MODEL}),
        Step("register", _register, inputs={"model": "fit.model"}, outputs={"ref": ValueKind.REF}, cacheable=False),
    ])


PIPELINE = _pipeline()


def pipeline(home: str, trial: int) -> dict[str, Any]:
    """Run the toy pipeline (make → fit → register); seeds repeat, so some steps come from the cache."""
    from yarnit.training import PipelineRunner

    with _open(home) as ws:
        result = PipelineRunner(ws).run(PIPELINE, seed=trial % 3)
        return {"run": result.run.id, "state": result.run.state}


MONITOR_START = utc(2026, 3, 1, 10)


def monitor(home: str, trial: int) -> dict[str, Any]:
    """One pass of the monitor (``yarnit monitor run`` runs these): new log bytes into hourly windows, SLOs,
    alerts, the state file. ``trial`` is the number of hours after MONITOR_START it runs at."""
    from yarnit.monitoring.runner import Monitor
    from yarnit.monitoring.workspace import load_workspace_slos

    clock = SimulatedClock(MONITOR_START + timedelta(hours=trial))
    with yarnit.storage.open_workspace(Settings.for_home(home), clock) as ws:
        report = Monitor(ws, load_workspace_slos(ws.home), clock=clock).run_once()
    return {"slos": len(report.get("slos", []))}


SCENARIOS: dict[str, Callable[[str, int], dict[str, Any]]] = {
    "register": register, "ingest": ingest, "features": features, "pipeline": pipeline,
    "monitor": monitor,
}


def _install_kill_points(at: int | None, counter: list[int]) -> None:
    """Wrap the boundary calls in ``os``: count them, and SIGKILL this process at boundary ``at``."""

    def point() -> None:
        if at is not None and counter[0] == at:
            os.kill(os.getpid(), signal.SIGKILL)
        counter[0] += 1

    for name in BOUNDARY_CALLS:
        real = getattr(os, name)

        def wrapped(*args: Any, _real: Any = real, **kwargs: Any) -> Any:
            point()
            result = _real(*args, **kwargs)
            point()
            return result

        setattr(os, name, wrapped)


def _child(request: dict[str, Any], out_fd: int) -> None:
    counter = [0]
    kill = request.get("kill", "none")
    _install_kill_points(request["at"] if kill == "boundary" else None, counter)
    try:
        result = SCENARIOS[request["scenario"]](request["home"], int(request.get("trial", 0)))
        answer: dict[str, Any] = {"result": result, "boundaries": counter[0]}
        code = 0
    except BaseException:  # noqa: B036 - reported to the test, which fails on it
        answer, code = {"error": traceback.format_exc(), "boundaries": counter[0]}, 1
    os.write(out_fd, json.dumps(answer).encode())
    os.close(out_fd)
    os._exit(code)


def serve() -> None:
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        read_fd, write_fd = os.pipe()
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:
            os.close(read_fd)
            _child(request, write_fd)
        os.close(write_fd)
        status = None
        if request.get("kill") == "after":
            deadline = started + float(request["seconds"])
            while status is None and time.monotonic() < deadline:
                done, code = os.waitpid(pid, os.WNOHANG)
                if done:
                    status = code
                else:
                    time.sleep(0.002)
            if status is None:
                os.kill(pid, signal.SIGKILL)
        chunks = []
        while chunk := os.read(read_fd, 1 << 16):
            chunks.append(chunk)
        os.close(read_fd)
        if status is None:
            _, status = os.waitpid(pid, 0)
        killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL or not chunks
        answer = json.loads(b"".join(chunks)) if chunks else {}
        answer.update(killed=bool(killed), seconds=time.monotonic() - started)
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    serve()
