"""kill -9 of `yarnit pipeline run` at random points, then `yarnit runs resume` (issue 6)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from yarnit.core import Settings
from yarnit.registry import ModelRegistry
from yarnit.storage import open_workspace
from yarnit.training import RunStore

PIPELINE = '''
import time
import numpy as np
import pandas as pd
from yarnit.training import Pipeline, Step, ValueKind
from yarnit.training.trainers import make_trainer
from yarnit.registry import ModelRegistry

def make(ctx):
    time.sleep(0.3)
    rng = np.random.default_rng(ctx.seed)
    x = rng.normal(size=2000)
    return {"table": pd.DataFrame({"x": x, "fiber": np.where(x > 0, "merino", "acrylic"),
                                   "y": (x + rng.normal(size=2000) > 0).astype(int)})}

def prepare(ctx, table):
    time.sleep(0.3)
    return {"table": table.assign(x2=table["x"] ** 2)}

def fit(ctx, table):
    time.sleep(0.3)
    return {"model": make_trainer("logistic").fit(table[["x", "x2", "fiber"]], table["y"].to_numpy(), seed=ctx.seed)}

def register(ctx, model):
    time.sleep(0.2)
    registry = ModelRegistry(ctx.workspace)
    from yarnit.core import sha256_bytes
    same = [v for v in (registry.versions("toy") if registry.exists("toy") else [])
            if v.artifact_sha256 == sha256_bytes(model.artifact)]
    version = same[-1] if same else registry.register("toy", model.artifact, model.artifact_format, run_id=ctx.run_id)
    time.sleep(0.2)
    return {"ref": {"version": version.version}}

pipeline = Pipeline("toy", [
    Step("make", make, outputs={"table": ValueKind.TABLE}),
    Step("prepare", prepare, inputs={"table": "make.table"}, outputs={"table": ValueKind.TABLE}),
    Step("fit", fit, inputs={"table": "prepare.table"}, outputs={"model": ValueKind.MODEL}),
    Step("register", register, inputs={"model": "fit.model"}, outputs={"ref": ValueKind.REF}, cacheable=False),
])
'''


def _run_count(home: Path) -> int:
    if not (home / "yarnit.db").exists():
        return 0
    import sqlite3

    try:
        with sqlite3.connect(home / "yarnit.db", timeout=30) as conn:
            return int(conn.execute("SELECT count(*) FROM runs").fetchone()[0])
    except sqlite3.OperationalError:  # the schema is not there yet
        return 0


def _yarnit(home: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YARNIT_")} | {"YARNIT_HOME": str(home)}
    return subprocess.Popen([sys.executable, "-m", "yarnit", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


@pytest.mark.slow
@pytest.mark.chaos  # six interpreter starts and kills: make chaos
@pytest.mark.timeout(1800)
def test_killed_runs_resume_to_the_same_result_without_duplicate_versions(tmp_path: Path) -> None:
    spec = tmp_path / "toy.py"
    spec.write_text(PIPELINE)
    home = tmp_path / "ws"
    rng = random.Random(0)
    killed_in = []
    for _ in range(6):
        before = _run_count(home)
        proc = _yarnit(home, "pipeline", "run", str(spec), "--force", "--json")
        # wait until this run is recorded (start-up is slow on a loaded machine), then kill it at a random
        # point of its ~1.5 s of steps (or just after it finished)
        deadline = time.monotonic() + 120
        while _run_count(home) == before and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 1.8))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        ws = open_workspace(Settings.for_home(home))
        assert ws.metadata.integrity_check() == "ok"
        runs = RunStore(ws).list("toy")
        if not runs:  # killed before the run was recorded: nothing to resume, nothing half-done
            killed_in.append("before start")
            ws.close()
            continue
        latest = runs[0]
        killed_in.append(next((s.step for s in RunStore(ws).steps(latest.id) if s.state == "running"), latest.state))
        ws.close()
        if latest.state != "succeeded":
            resumed = _yarnit(home, "runs", "resume", latest.id, "--json")
            out, err = resumed.communicate(timeout=120)
            assert resumed.returncode == 0, err.decode()
            assert json.loads(out)["state"] == "succeeded"
    final = _yarnit(home, "pipeline", "run", str(spec), "--json")
    out, err = final.communicate(timeout=120)
    assert final.returncode == 0, err.decode()
    ws = open_workspace(Settings.for_home(home))
    states = [r.state for r in RunStore(ws).list("toy")]
    assert set(states) == {"succeeded"}
    assert [v.version for v in ModelRegistry(ws).versions("toy")] == [1]
    ws.artifacts.verify(ModelRegistry(ws).get("toy", 1).artifact_sha256)
    ws.close()
    assert len(set(killed_in) - {"before start"}) >= 2, f"kills did not land in different steps: {killed_in}"


HANGING = '''
import time
from pathlib import Path
from yarnit.training import Pipeline, Step, ValueKind

MARKER = Path(__file__).with_name("hang")

def first(ctx):
    return {"report": {"n": 1}}

def second(ctx, report):
    while MARKER.exists():  # stands for a long training step; the test kills the process here
        time.sleep(0.05)
    return {"report": {"n": report["n"] + 1}}

pipeline = Pipeline("hangs", [
    Step("first", first, outputs={"report": ValueKind.REPORT}),
    Step("second", second, inputs={"report": "first.report"}, outputs={"report": ValueKind.REPORT}),
])
'''


def test_a_killed_run_reads_as_interrupted_once_its_lease_expires_and_resumes(tmp_path: Path) -> None:
    from datetime import timedelta

    from yarnit.core.clock import SimulatedClock

    spec = tmp_path / "hangs.py"
    spec.write_text(HANGING)
    (tmp_path / "hang").touch()
    home = tmp_path / "ws"
    proc = _yarnit(home, "pipeline", "run", str(spec), "--json")
    deadline = time.monotonic() + 120
    run_id = None
    while run_id is None and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
        if _run_count(home):
            ws = open_workspace(Settings.for_home(home))
            runs = RunStore(ws).list("hangs")
            if runs and any(s.step == "second" and s.state == "running" for s in RunStore(ws).steps(runs[0].id)):
                run_id = runs[0].id
            ws.close()
    assert run_id is not None, proc.stderr.read().decode() if proc.poll() is not None else "the step never started"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    ws = open_workspace(Settings.for_home(home))
    recorded = RunStore(ws).get(run_id)
    ws.close()
    assert recorded.heartbeat_at is not None and recorded.lease_s
    lease = timedelta(seconds=recorded.lease_s)
    # nothing renews the lease now: the run reads as running until the lease runs out, then as interrupted
    for offset, expected in ((lease - timedelta(seconds=1), "running"), (lease + timedelta(seconds=1), "interrupted")):
        ws = open_workspace(Settings.for_home(home), SimulatedClock(recorded.heartbeat_at + offset))
        run = RunStore(ws).get(run_id)
        assert run.state == expected
        assert [r.state for r in RunStore(ws).list("hangs")] == [expected]
        ws.close()
    assert run.resume_command == f"yarnit runs resume {run_id}"
    (tmp_path / "hang").unlink()
    resumed = _yarnit(home, "runs", "resume", run_id, "--json")
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err.decode()
    assert json.loads(out)["state"] == "succeeded" and json.loads(out)["id"] == run_id
