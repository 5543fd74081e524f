"""The continuous loop over small simulated worlds: quarantine, label gating, training, promotion, failures, leases."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from testsupport import register_ctr
from testsupport.loop_world import (
    DUPLICATES,
    FAST,
    add_duplicate_flood,
    first_close,
    until_after,
    write_small_world,
)

from yarnit.continuous.loop import ContinuousLoop, LoopConfig, LoopLease, load_state
from yarnit.core import Settings, SimulatedClock, utc
from yarnit.core.errors import Conflict
from yarnit.data import Datasets
from yarnit.monitoring.alerts import AlertStore, alerts_path
from yarnit.monitoring.workspace import monitoring_dir
from yarnit.recipes.ctr import ctr_pipeline
from yarnit.registry import ModelRegistry
from yarnit.storage import Workspace, open_workspace
from yarnit.training import RunStore

SIX_HOURS = 6 * 3600.0


def _workspace(home: Path, start: Any) -> Workspace:
    return open_workspace(Settings.for_home(home), SimulatedClock(start))


@pytest.fixture(scope="module")
def flood_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three days: day 1 carries a duplicate flood, day 2 the app re-query flood (ch. 15 case 2)."""
    world = write_small_world(tmp_path_factory.mktemp("world") / "w", 3, faults=("app_requery@2",))
    add_duplicate_flood(world, "2026-01-06")
    return world


@pytest.fixture(scope="module")
def flood_loop(flood_world: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, dict[str, Any]]:
    """The loop run uninterrupted over the three days, a tick every 6 simulated hours."""
    ws = _workspace(tmp_path_factory.mktemp("home"), first_close(flood_world))
    status = ContinuousLoop(ws, flood_world, LoopConfig(pipeline=FAST)).run(until=until_after(flood_world, 3),
                                                                           interval_s=SIX_HOURS)
    return ws, status


def _days(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["day"]: d for d in status["days"]}


def test_each_day_is_validated_trained_gated_registered_and_promoted_once(flood_loop: Any) -> None:
    ws, status = flood_loop
    days = _days(status)
    # day 0 alone is too short a window (a holdout needs a training day): its data is in day 1's window
    assert [days[d]["phase"] for d in sorted(days)] == ["superseded", "done", "done"]
    assert [days[d]["version"] for d in sorted(days)] == [None, 1, 2]
    assert days["2026-01-06"]["promoted"] and days["2026-01-07"]["promoted"]
    registry = ModelRegistry(ws)
    assert [v.version for v in registry.versions("ctr")] == [1, 2]
    assert registry.aliases("ctr")["production"] == 2
    runs = RunStore(ws)
    assert [r.state for r in runs.list("yarnit-ctr")] == ["succeeded", "succeeded"]
    assert len(runs.list("yarnit-loop-day")) == 3 and len(runs.list("yarnit-loop-window")) == 2
    # every ctr run trained on a window version whose parents are the clean daily versions (lineage)
    datasets = Datasets(ws)
    window = datasets.get("yarnit-impressions", 2)
    daily = {d["clean"]["id"] for d in days.values()}
    assert set(window.parents) == daily
    assert window.row_count == sum(d["clean"]["rows"] for d in days.values())
    assert list(registry.get("ctr", 2).dataset_version_ids) == [window.id]
    # warm start: the second version continued from the first (the logistic trainer supports it)
    second = runs.list("yarnit-ctr")[0]
    assert any("warm start from ctr" in line for line in runs.step(second.id, "train").logs)


def test_floods_are_quarantined_with_their_reason_and_the_clean_rows_still_train(flood_loop: Any,
                                                                                 flood_world: Path) -> None:
    from yarnit.world.writer import read_table

    ws, status = flood_loop
    days = _days(status)
    assert days["2026-01-05"]["quarantine"]["rows"] == 0
    assert days["2026-01-06"]["quarantine"]["reasons"] == {"duplicate": DUPLICATES}
    truth = read_table(flood_world, "truth", [pd.Timestamp("2026-01-07").date()])
    flood_rows = int((truth["source"] == "app_requery").sum())
    caught = days["2026-01-07"]["quarantine"]["reasons"]["query_flood"]
    assert 0.95 * flood_rows <= caught <= flood_rows + 100  # the excess, not the day's ordinary app traffic
    held = Datasets(ws).get("yarnit-impressions-quarantine")
    frame = Datasets(ws).read(held)
    assert set(frame["quarantine_reason"]) == {"query_flood"} and len(frame) == caught
    assert days["2026-01-07"]["phase"] == "done"  # the flood day still trained, on its clean rows
    clean = Datasets(ws).read(Datasets(ws).get_by_id(days["2026-01-06"]["clean"]["id"]))
    assert clean["impression_id"].is_unique


def test_loop_status_cli_reports_days_versions_and_lease(flood_loop: Any) -> None:
    import json

    from typer.testing import CliRunner

    from yarnit.cli.app import app

    ws, _ = flood_loop
    result = CliRunner().invoke(app, ["loop", "status", "--json"], env={"YARNIT_HOME": str(ws.home)})
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["versions"] == [1, 2] and data["phases"] == {"superseded": 1, "done": 2}
    assert data["lease"]["held"] is False and data["quarantined"] > DUPLICATES
    assert CliRunner().invoke(app, ["loop", "status"], env={"YARNIT_HOME": str(ws.home)}).exit_code == 0


def test_catch_up_after_an_outage_runs_newest_first_then_backfills(flood_world: Path, tmp_path: Path) -> None:
    """Three days pending at once: the newest window (days 2, 1) first and its training, then day 0 (backfill).

    The order is the loop's, not the model's: the click model here stops at its split step (fast), which
    also shows a training retry waiting for its backoff while the backfill goes on.
    """
    ws = _workspace(tmp_path / "home", until_after(flood_world, 2) + timedelta(hours=1))
    loop = ContinuousLoop(ws, flood_world, LoopConfig(window_days=2, max_runs_per_tick=4, pipeline=FAST),
                          pipelines={"train": _failing_ctr()})
    loop.tick()
    state = load_state(ws.home, "ctr")
    assert "2026-01-05" not in state["days"]  # the bound: 4 runs = two days in, a window, a training
    assert state["sequence"] == [["day", "2026-01-07"], ["day", "2026-01-06"], ["window", "2026-01-07"],
                                 ["train", "2026-01-07"]]
    loop.tick()  # the training waits for its backoff; the backfill does not wait
    state = load_state(ws.home, "ctr")
    assert state["sequence"][4:] == [["day", "2026-01-05"]]
    assert state["days"]["2026-01-05"]["phase"] == "ready" and state["days"]["2026-01-05"]["clean"]["rows"] > 0
    ws.clock.advance(3600)
    loop.tick()
    assert load_state(ws.home, "ctr")["sequence"][5:] == [["train", "2026-01-07"]]  # the retry: newest window


def test_incomplete_labels_hold_training_until_the_late_clicks_arrive(tmp_path: Path) -> None:
    """Click-log outage on day 1 (ch. 15 case 5): clicks replayed 48 h late. No model trains on its zeros."""
    world = write_small_world(tmp_path / "w", 3, faults=("click_log_outage@1",))
    start = first_close(world)
    ws = _workspace(tmp_path / "home", start + timedelta(days=1))  # days 0 and 1 are in
    loop = ContinuousLoop(ws, world, LoopConfig(pipeline=FAST))
    loop.tick()
    ws.clock.advance(timedelta(days=1))  # day 2 in; day 1's clicks are still held back
    loop.tick()
    days = load_state(ws.home, "ctr")["days"]
    assert days["2026-01-06"]["phase"] == "waiting_labels", days["2026-01-06"]
    assert days["2026-01-06"]["label"]["rate"] < 0.5 * days["2026-01-05"]["label"]["rate"]
    assert days["2026-01-07"]["phase"] == "ready"
    assert RunStore(ws).list("yarnit-ctr") == []  # held: nothing trained on the incomplete day
    ws.clock.advance(timedelta(hours=24))  # the backlog has been replayed
    loop.tick()
    days = load_state(ws.home, "ctr")["days"]
    assert days["2026-01-06"]["label"]["complete"] and days["2026-01-06"]["label"]["rate"] > 0.02
    assert days["2026-01-07"]["phase"] == "done" and days["2026-01-07"]["version"] == 1
    assert days["2026-01-06"]["phase"] == "superseded"  # inside the window just trained
    window = Datasets(ws).get_by_id(days["2026-01-07"]["window"]["id"])
    assert days["2026-01-06"]["clean"]["id"] in window.parents  # trained on the re-joined day, late clicks in


def _failing_ctr(error: Exception | None = None) -> Any:
    pipeline = ctr_pipeline()

    def broken_split(ctx: Any, dataset: Any) -> Any:
        raise error or RuntimeError("the feature store is unreachable")

    steps = [dataclasses.replace(s, fn=broken_split) if s.name == "split" else s for s in pipeline.steps]
    return dataclasses.replace(pipeline, steps=steps)


def test_a_failing_step_is_retried_with_backoff_then_alerted_and_never_promoted(tmp_path: Path) -> None:
    world = write_small_world(tmp_path / "w", 2)
    ws = _workspace(tmp_path / "home", first_close(world) + timedelta(days=1))
    loop = ContinuousLoop(ws, world, LoopConfig(pipeline=FAST, max_attempts=2, backoff_s=3600),
                          pipelines={"train": _failing_ctr()})
    loop.tick()
    runs = RunStore(ws)
    assert [r.state for r in runs.list("yarnit-ctr")] == ["failed"]
    day = load_state(ws.home, "ctr")["days"]["2026-01-06"]
    assert day["phase"] == "train" and "attempt 1 of 2" in day["note"]
    loop.tick()  # not due yet: the backoff is an hour on the loop's clock
    assert len(runs.list("yarnit-ctr")) == 1
    ws.clock.advance(3600)
    loop.tick()
    assert [r.state for r in runs.list("yarnit-ctr")] == ["failed", "failed"]  # what pipeline_success counts
    day = load_state(ws.home, "ctr")["days"]["2026-01-06"]
    assert day["phase"] == "failed" and len(day["failed_runs"]) == 2
    assert not ModelRegistry(ws).exists("ctr")  # nothing registered, nothing promoted
    alerts = AlertStore.open(alerts_path(monitoring_dir(ws.home))).list("firing")
    assert len(alerts) == 1 and alerts[0].model == "ctr" and "2026-01-06" in alerts[0].summary
    assert "feature store is unreachable" in alerts[0].summary and alerts[0].sli == "pipeline_success"
    ws.clock.advance(6 * 3600)
    loop.tick()  # a failed day stays failed: no third run
    assert len(runs.list("yarnit-ctr")) == 2


HOLDER = """
import sys, time
from yarnit.core import SimulatedClock, utc
from yarnit.continuous.loop import LoopLease
lease = LoopLease(sys.argv[1], "ctr", clock=SimulatedClock(utc(2026, 1, 6)))
lease.acquire()
print("held", flush=True)
time.sleep(120)
"""


def test_a_second_loop_is_refused_and_a_killed_loops_lease_expires(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("YARNIT_")}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(home)], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        second = LoopLease(home, "ctr", clock=SimulatedClock(utc(2026, 1, 6)))
        with pytest.raises(Conflict, match=rf"pid {holder.pid} on host .*yarnit loop status"):
            second.acquire()
        assert second.held_elsewhere()
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=60)
        assert not second.held_elsewhere()  # the kernel dropped the dead loop's lock: the lease is free
        second.acquire()
        second.release()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=60)


def _run_states(home: Path) -> list[tuple[str, str]]:
    import sqlite3

    if not (home / "yarnit.db").exists():
        return []
    try:
        with sqlite3.connect(home / "yarnit.db", timeout=30) as conn:
            return [tuple(r) for r in conn.execute("SELECT pipeline, state FROM runs ORDER BY started_at")]
    except sqlite3.OperationalError:  # the schema is not there yet
        return []


@pytest.mark.slow
def test_kill_9_at_random_points_then_restart_gives_the_same_versions_as_an_uninterrupted_loop(
        flood_loop: Any, flood_world: Path, tmp_path: Path) -> None:
    import json
    import random
    import time

    from testsupport.loop_world import cli_settings

    reference, _ = flood_loop
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("YARNIT_")} | {"YARNIT_HOME": str(home)}
    command = [sys.executable, "-m", "yarnit", "loop", "run", "--world", str(flood_world), "--days", "3",
               "--interval", "6h", "--json", *cli_settings()]
    rng = random.Random(3)
    killed_after: list[int] = []
    for _ in range(3):
        proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # wait for a random number of new runs to be recorded (start-up is slow on a loaded machine), then kill
        before, wanted = len(_run_states(home)), rng.randint(1, 4)
        deadline = time.monotonic() + 240
        while len(_run_states(home)) < before + wanted and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 1.0))  # somewhere inside the run that just started
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        killed_after.append(len(_run_states(home)))
    final = subprocess.run(command, env=env, capture_output=True, timeout=900)
    assert final.returncode == 0, final.stderr.decode()
    status = json.loads(final.stdout)
    ws = open_workspace(Settings.for_home(home))
    got = [(v.version, v.artifact_sha256) for v in ModelRegistry(ws).versions("ctr")]
    want = [(v.version, v.artifact_sha256) for v in ModelRegistry(reference).versions("ctr")]
    assert got == want  # no duplicate version, no skipped day, the same bytes
    assert ModelRegistry(ws).aliases("ctr")["production"] == 2
    assert [d["phase"] for d in status["days"]] == ["superseded", "done", "done"]
    assert status["lease"]["held"] is False
    finished = [r.state for r in RunStore(ws).list() if r.state != "interrupted"]
    assert set(finished) == {"succeeded"}, finished
    assert killed_after[-1] > killed_after[0], killed_after  # the kills landed at different points


def test_refused_input_is_not_retried_it_fails_the_day_and_alerts_at_once(tmp_path: Path) -> None:
    from yarnit.recipes.ctr import BlockingAnomalies

    world = write_small_world(tmp_path / "w", 2)
    ws = _workspace(tmp_path / "home", first_close(world) + timedelta(days=1))
    loop = ContinuousLoop(ws, world, LoopConfig(pipeline=FAST, max_attempts=3),
                          pipelines={"train": _failing_ctr(BlockingAnomalies("price_usd is in cents"))})
    loop.tick()
    day = load_state(ws.home, "ctr")["days"]["2026-01-06"]
    assert day["phase"] == "failed" and "not retried" in day["note"] and "price_usd is in cents" in day["note"]
    assert [r.state for r in RunStore(ws).list("yarnit-ctr")] == ["failed"]
    assert AlertStore.open(alerts_path(monitoring_dir(ws.home))).list("firing")[0].model == "ctr"


@pytest.mark.slow
def test_a_frozen_model_trains_nothing_and_a_blessed_version_goes_to_a_staged_rollout(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The contracts with h8's ``training_frozen`` and h6's ``RolloutController`` (stand-ins until they merge)."""
    import types

    frozen: dict[str, str] = {"ctr": "bad data under investigation"}
    started: list[tuple[int, str]] = []

    class RolloutController:
        def __init__(self, ws: Workspace, model: str, *, clock: Any, config: Any) -> None:
            self.model = model

        def start(self, version: int, actor: str) -> dict[str, Any]:
            started.append((version, actor))
            return {"stage": "shadow", "version": version}

        def step(self) -> dict[str, Any]:
            return {"decision": "hold"}

    actions = types.ModuleType("yarnit.continuous.actions")
    actions.training_frozen = lambda ws, model: frozen.get(model)  # type: ignore[attr-defined]
    rollout = types.ModuleType("yarnit.continuous.rollout")
    rollout.RolloutController = RolloutController  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "yarnit.continuous.actions", actions)
    monkeypatch.setitem(sys.modules, "yarnit.continuous.rollout", rollout)

    world = write_small_world(tmp_path / "w", 2)
    ws = _workspace(tmp_path / "home", first_close(world) + timedelta(days=1))
    register_ctr(ws, versions=1)  # a production version: a canary has a baseline (a first version is promoted)
    loop = ContinuousLoop(ws, world, LoopConfig(pipeline=FAST, rollout={}))
    loop.tick()
    day = load_state(ws.home, "ctr")["days"]["2026-01-06"]
    assert day["phase"] == "ready" and day["note"] == "training frozen: bad data under investigation"
    assert RunStore(ws).list("yarnit-ctr") == []
    del frozen["ctr"]
    ws.clock.advance(3600)
    loop.tick()
    day = load_state(ws.home, "ctr")["days"]["2026-01-06"]
    assert day["phase"] == "done" and day["version"] == 2 and day["promoted"] is False  # the rollout promotes
    assert started == [(2, "loop:ctr")] and day["rollout"]["started"] is True
    assert ModelRegistry(ws).aliases("ctr")["production"] == 1
    assert load_state(ws.home, "ctr")["last_rollout_step"] == {"decision": "hold"}
