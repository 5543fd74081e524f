"""Run leases: a live runner renews its heartbeat; a run whose process died reads as interrupted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from yarnit.cli.app import app
from yarnit.core import Settings
from yarnit.core.clock import SimulatedClock
from yarnit.storage import Workspace, open_workspace
from yarnit.training import Pipeline, PipelineRunner, RunStore, Step, StepContext, ValueKind


def test_a_run_without_heartbeats_reads_as_interrupted_once_its_lease_expires(
        ws: Workspace, clock: SimulatedClock) -> None:
    store = RunStore(ws)
    run = store.start("toy", {}, lease_s=60)
    done = store.start("toy", {}, lease_s=60)
    store.finish(done.id, "succeeded")
    clock.advance(timedelta(seconds=59))
    assert store.get(run.id).state == "running" and store.get(run.id).resume_command is None
    store.beat(run.id)
    clock.advance(timedelta(seconds=59))
    assert store.get(run.id).state == "running"  # the beat renewed the lease
    clock.advance(timedelta(seconds=2))
    interrupted = store.get(run.id)
    assert interrupted.state == "interrupted"
    assert interrupted.resume_command == f"yarnit runs resume {run.id}"
    assert {r.id: r.state for r in store.list("toy")} == {run.id: "interrupted", done.id: "succeeded"}


def test_the_runner_renews_the_lease_while_a_long_step_runs(sqlite_ws: Workspace, clock: SimulatedClock) -> None:
    seen: dict[str, Any] = {}

    def long_step(ctx: StepContext) -> dict[str, Any]:
        store = RunStore(ctx.workspace)
        clock.advance(timedelta(minutes=10))  # far past the lease: only a heartbeat keeps the run alive
        advanced = clock.now()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            run = store.get(ctx.run_id)
            if run.heartbeat_at is not None and run.heartbeat_at >= advanced:
                break
            time.sleep(0.01)
        seen["state"], seen["heartbeat_at"], seen["advanced"] = run.state, run.heartbeat_at, advanced
        return {"report": {}}

    pipeline = Pipeline("toy", [Step("long", long_step, outputs={"report": ValueKind.REPORT})])
    result = PipelineRunner(sqlite_ws, lease_s=60, heartbeat_s=0.02).run(pipeline)
    assert seen["state"] == "running" and seen["heartbeat_at"] >= seen["advanced"]
    assert result.run.state == "succeeded" and result.run.lease_s == 60


def test_an_interrupted_run_resumes_to_success(sqlite_ws: Workspace, clock: SimulatedClock) -> None:
    def make(ctx: StepContext) -> dict[str, Any]:
        return {"report": {"n": 1}}

    pipeline = Pipeline("toy", [Step("make", make, outputs={"report": ValueKind.REPORT})])
    run = RunStore(sqlite_ws).start("toy", {}, lease_s=60)  # a run whose process died before its first step
    clock.advance(timedelta(minutes=5))
    assert RunStore(sqlite_ws).get(run.id).state == "interrupted"
    resumed = PipelineRunner(sqlite_ws).resume(run.id, pipeline)
    assert resumed.run.id == run.id and resumed.run.state == "succeeded"


def test_runs_list_shows_an_expired_run_as_interrupted_with_the_resume_command(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    # recorded at a simulated time long past: under the machine's clock its lease expired long ago
    past = open_workspace(Settings.for_home(home), SimulatedClock(datetime(2026, 1, 5, 9, tzinfo=timezone.utc)))
    run = RunStore(past).start("toy", {}, lease_s=60)
    RunStore(past).step_started(run.id, "train", attempts=1, cache_key=None, inputs={})  # killed in train
    past.close()
    env = {"YARNIT_HOME": str(home)}
    listed = CliRunner().invoke(app, ["runs", "list", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    row = json.loads(listed.stdout)[0]
    assert row["state"] == "interrupted" and row["resume"] == f"yarnit runs resume {run.id}"
    assert row["lease_s"] == 60 and row["heartbeat_at"].startswith("2026-01-05T09:00:00")
    shown_json = json.loads(CliRunner().invoke(app, ["runs", "show", run.id, "--json"], env=env).stdout)
    assert shown_json["state"] == "interrupted" and shown_json["resume"] == f"yarnit runs resume {run.id}"
    assert [(s["step"], s["state"]) for s in shown_json["steps"]] == [("train", "interrupted")]
    human = subprocess.run([sys.executable, "-m", "yarnit", "runs", "list"], capture_output=True, text=True,
                           env=os.environ | env | {"COLUMNS": "250"}, timeout=120, check=True)
    shown = human.stdout + human.stderr  # the table goes to the console (stderr), --json to stdout
    assert "interrupted" in shown and f"yarnit runs resume {run.id}" in shown
