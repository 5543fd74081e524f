"""``yarnit monitor run`` and ``yarnit alerts list`` through the real CLI (and --follow ended by SIGTERM)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from testsupport.monitoring import write_slos
from typer.testing import CliRunner

from yarnit.cli.app import app
from yarnit.core.clock import SimulatedClock, utc
from yarnit.core.settings import Settings
from yarnit.monitoring.runner import Monitor, state_path
from yarnit.monitoring.workspace import load_workspace_slos
from yarnit.storage import open_workspace

runner = CliRunner()  # in-process commands get --nice 0: the test process must keep its priority
PIPELINE_SLO = {"name": "train-ok", "sli": "pipeline_success", "objective": 99, "window": "7d",
                "alerting": {"min_events": 1, "page": [],
                             "ticket": [{"long": "1d", "short": "1h", "burn_rate": 1}]}}


def test_monitor_run_without_an_slo_file_says_how_to_apply_one(tmp_path, monkeypatch):
    monkeypatch.setenv("YARNIT_HOME", str(tmp_path / "home"))
    result = runner.invoke(app, ["monitor", "run", "--nice", "0", "--json"])
    assert result.exit_code == 1
    assert "No SLO file is applied" in result.output and "yarnit slo apply FILE" in result.output


def test_monitor_run_json_reports_each_slo_and_the_missing_update_modules(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("YARNIT_HOME", str(home))
    home.mkdir()
    write_slos(home, sinks=[{"type": "file"}], extra=(PIPELINE_SLO,))
    result = runner.invoke(app, ["monitor", "run", "--nice", "0", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [(s["slo"], s["state"]) for s in report["slos"]] == [("ctr-availability", "no_data"),
                                                                ("train-ok", "no_data")]
    assert report["alerts"]["opened"] == 2 and state_path(home).is_file()  # "no data" is an alert of its own
    assert [s["firing"]["no_data"] for s in report["slos"]] == [True, True]
    assert set(report["modules"]) == {"traffic", "quality", "retention"}
    bad = runner.invoke(app, ["monitor", "run", "--nice", "0", "--webhook", "gopher://x"])
    assert bad.exit_code == 1 and "--webhook 1.url must be an http:// or https:// URL" in bad.output
    interval = runner.invoke(app, ["monitor", "run", "--nice", "0", "--follow", "--interval", "0s"])
    assert interval.exit_code == 1 and "--interval must be a duration from 1s to 24h" in interval.output


def test_alerts_list_json_and_a_bad_state(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("YARNIT_HOME", str(home))
    ws = open_workspace(Settings.for_home(home), SimulatedClock(utc(2026, 1, 5, 9)))
    write_slos(home, sinks=[{"type": "log"}], extra=(PIPELINE_SLO,))
    from yarnit.training.runs import RunStore

    store = RunStore(ws)
    for _ in range(3):  # three failed runs: a burning ticket
        store.finish(store.start("train", {}).id, "failed")
        ws.clock.advance(60)
    Monitor(ws, load_workspace_slos(home)).run_once()
    ws.close()
    listed = json.loads(runner.invoke(app, ["alerts", "list", "--json"]).stdout)
    assert sorted((a["slo"], a["alert"], a["severity"], a["state"]) for a in listed["alerts"]) == [
        ("ctr-availability", "no_data", "ticket", "firing"),  # no traffic at all
        ("train-ok", "ticket", "ticket", "firing")]  # 3 failed runs of 3
    assert listed["count"] == 2
    assert json.loads(runner.invoke(app, ["alerts", "list", "--state", "resolved", "--json"]).stdout)["count"] == 0
    human = runner.invoke(app, ["alerts", "list"])
    assert human.exit_code == 0 and "firing" in human.output and "ticket" in human.output
    # the table names the SLO, and each alert's summary is printed in full (the command's help promises both)
    assert "train-ok" in human.output and "ctr-availability" in human.output
    train = next(a for a in listed["alerts"] if a["slo"] == "train-ok")
    assert f"{train['alert_name']} (firing): {train['summary']}" in " ".join(human.output.split())
    bad = runner.invoke(app, ["alerts", "list", "--state", "open"])
    assert bad.exit_code == 1 and "--state must be one of firing, resolved, all; got 'open'" in bad.output


def test_alerts_list_shows_who_acknowledged_an_alert(tmp_path, monkeypatch):
    from yarnit.continuous.actions import roll_through

    home = tmp_path / "home"
    monkeypatch.setenv("YARNIT_HOME", str(home))
    ws = open_workspace(Settings.for_home(home), SimulatedClock(utc(2026, 1, 5, 9)))
    write_slos(home, sinks=[{"type": "log"}])
    Monitor(ws, load_workspace_slos(home)).run_once()  # no traffic: a no-data ticket
    before = json.loads(runner.invoke(app, ["alerts", "list", "--json"]).stdout)["alerts"]
    assert len(before) == 1 and (before[0]["acked_by"], before[0]["acked_at"], before[0]["ack_reason"]) == (None,) * 3
    assert "Acknowledged" not in runner.invoke(app, ["alerts", "list"]).output
    ws.clock.advance(60)
    roll_through(ws, alert_ids=[before[0]["id"]], actor="oncall-bo", reason="known gap in the feed")
    ws.close()
    (alert,) = json.loads(runner.invoke(app, ["alerts", "list", "--json"]).stdout)["alerts"]
    assert (alert["acked_by"], alert["acked_at"][:19], alert["ack_reason"]) == (
        "oncall-bo", "2026-01-05T09:01:00", "known gap in the feed")
    human = runner.invoke(app, ["alerts", "list"])
    assert human.exit_code == 0 and "acked" in human.output and "by oncall-bo" in human.output
    assert "Acknowledged by oncall-bo at 2026-01-05T09:01:00: known gap in the feed." in " ".join(human.output.split())


def test_monitor_run_follow_stops_cleanly_on_sigterm(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    write_slos(home, sinks=[{"type": "log"}])
    env = {k: v for k, v in os.environ.items() if not k.startswith("YARNIT_")} | {"YARNIT_HOME": str(home)}
    proc = subprocess.Popen([sys.executable, "-m", "yarnit", "monitor", "run", "--follow", "--interval", "1h",
                             "--json"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120  # start-up is slow on a loaded machine
        while not state_path(home).is_file() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert state_path(home).is_file(), proc.stderr.read().decode() if proc.poll() is not None else "no run"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err.decode()
    runs = [json.loads(line) for line in out.decode().splitlines()]
    assert len(runs) == 1 and runs[0]["slos"][0]["state"] == "no_data"


def test_a_run_still_going_after_the_stop_timeout_is_abandoned_and_the_next_start_is_clean(tmp_path):
    """SIGTERM used to wait for the current run however long it took: the 30-minute soak's monitor, starved at
    nice 10 beside a busy server, needed minutes a run and was killed 180 s after its SIGTERM. Here a run is
    stuck delivering an alert to a webhook that never answers (60 s an attempt, 10 retries): with
    --stop-timeout 1s the process ends long before the sink would let it go, and the workspace opens cleanly."""
    import socket

    home = tmp_path / "home"
    home.mkdir()
    silent = socket.create_server(("127.0.0.1", 0), backlog=16)  # accepts connections, never answers
    silent.settimeout(120)
    url = f"http://127.0.0.1:{silent.getsockname()[1]}/hook"
    write_slos(home, sinks=[{"type": "webhook", "url": url, "timeout_s": 60, "retries": 10}])
    env = {k: v for k, v in os.environ.items() if not k.startswith("YARNIT_")} | {"YARNIT_HOME": str(home)}
    proc = subprocess.Popen([sys.executable, "-m", "yarnit", "monitor", "run", "--follow", "--interval", "1h",
                             "--stop-timeout", "1s", "--json"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    held = []
    try:
        held.append(silent.accept()[0])  # the run is delivering its first alert, and will wait for an answer
        proc.send_signal(signal.SIGTERM)
        # within the sink's first 60 s attempt: the grace period's signal interrupts the blocking read itself
        out, err = proc.communicate(timeout=45)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for conn in held:
            conn.close()
        silent.close()
    assert proc.returncode == 0, err.decode()
    assert "was abandoned" in err.decode() and "the next start redoes it" in err.decode()
    assert out.decode().strip() == ""  # no run finished
    write_slos(home, sinks=[{"type": "log"}])
    result = subprocess.run([sys.executable, "-m", "yarnit", "monitor", "run", "--json"], env=env,
                            capture_output=True, timeout=300)
    assert result.returncode == 0, result.stderr.decode()
    assert [s["slo"] for s in json.loads(result.stdout)["slos"]] == ["ctr-availability"]
