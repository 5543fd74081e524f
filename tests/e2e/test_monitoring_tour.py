"""The monitoring tour a new user takes, end to end: train, apply the SLOs, serve, send traffic, then every
monitoring command and route (each also as JSON), checked against what was actually sent.

One test on purpose: each step needs the state the previous one left. The CLI runs in-process through typer's
CliRunner against the same ``YARNIT_HOME`` a real server (``BackgroundServer``: uvicorn on 127.0.0.1) serves.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from yarnit.api import create_app
from yarnit.api.server import BackgroundServer
from yarnit.cli.app import app
from yarnit.core.clock import SystemClock
from yarnit.core.settings import Settings
from yarnit.registry import ModelRegistry
from yarnit.serving import ServingOptions, read_prediction_log
from yarnit.storage import open_workspace
from yarnit.world import HttpRanker, World, WorldConfig

SLOS = Path(__file__).resolve().parents[2] / "docs" / "slos.yaml"
NO_DATA_YET = {"features-fresh", "ctr-quality", "ctr-labels"}  # no history view, no labels yet in a tour


def _gauge(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + "{"):
            if dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0])) == labels:
                return float(line.rsplit(" ", 1)[1])
    return None


def test_a_new_user_monitoring_tour(tmp_path, monkeypatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("YARNIT_HOME", str(home))
    for name in ("YARNIT_DB_URL", "YARNIT_ONLINE_STORE", "YARNIT_DASK_SCHEDULER", "YARNIT_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    runner = CliRunner()

    def cli(*args: str) -> dict:
        """A command with --json: exit 0 and one JSON document on stdout; the same command without --json too."""
        human = runner.invoke(app, list(args))
        assert human.exit_code == 0, (args, human.output)
        result = runner.invoke(app, [*args, "--json"])
        assert result.exit_code == 0, (args, result.output)
        return json.loads(result.stdout)

    # 1. a small world and the ctr pipeline (the demo's size: blessed and promoted to production)
    run = runner.invoke(app, ["pipeline", "run", "yarnit-ctr", "--set", "days=2", "--set", "sessions_per_day=300",
                              "--json"])
    assert run.exit_code == 0, run.output
    assert json.loads(run.stdout)["metrics"]["promoted"] is True

    # 2. the example SLO file, applied (validated, written, audited)
    applied = cli("slo", "apply", str(SLOS))
    assert set(applied["slos"]) >= {"ctr-availability", "ctr-latency"} | NO_DATA_YET

    ws = open_workspace(Settings.for_home(home), SystemClock())
    try:
        version = ModelRegistry(ws).resolve("ctr", "production")
        importance = version.signature["feature_importance"]  # recorded at registration by the trainer
        assert sum(importance.values()) == pytest.approx(1.0) and set(importance) <= set(version.signature["inputs"])

        # 3. serve on loopback and send the world's shoppers through it (plus one bad request: a client error)
        # generous budgets: on a loaded machine a request past its deadline is answered by the fallback, and the
        # counts below must not depend on speed
        server_app = create_app(ws, serving=ServingOptions(deadline_ms=60_000, max_queue_delay_ms=None))
        with BackgroundServer(server_app) as server:
            ranker = HttpRanker(server.url, "ctr", chunk=200, id_prefix="tour")
            try:
                day = next(iter(World(WorldConfig(seed=5, sessions_per_day=60, n_users=200), ranker=ranker).run(1)))
            finally:
                ranker.close()
            bad = httpx.post(f"{server.url}/v1/models/ctr:predict", json={"instances": "not a list"}, timeout=30)
            assert bad.status_code == 422
            sent, rows = ranker.requests, len(day.impressions) + len(ranker.unshown)
            assert sent > 0 and ranker.served_versions == {version.version}
            deadline = time.monotonic() + 60  # the log writer flushes every 50 ms; wait for it, generously
            while time.monotonic() < deadline:
                logged = [r for r in read_prediction_log(home / "prediction_log") if r.get("role") == "primary"]
                if len(logged) >= sent + 1:
                    break
                time.sleep(0.05)
            assert len(logged) == sent + 1

            # 4. the monitor: summaries, SLOs, alerts (the log and file sinks by default)
            report = cli("monitor", "run", "--nice", "0")
            slos = {s["slo"]: s for s in report["slos"]}
            availability = slos["ctr-availability"]
            assert availability["state"] == "ok" and availability["budget_remaining"] == 1.0
            assert availability["period"]["total"] == availability["period"]["good"] == sent  # the 422 is no event
            inputs = slos["ctr-inputs"]  # every served row held every input column: no fault in this world
            assert inputs["state"] == "ok" and inputs["period"]["good"] == inputs["period"]["total"] == rows
            # model freshness probes each whole minute after the version was made: "no_data" until the first one
            assert {name for name, s in slos.items() if s["state"] == "no_data"} - {"ctr-model-fresh"} == NO_DATA_YET
            assert slos["ctr-model-fresh"]["state"] in ("ok", "no_data") and slos["ctr-model-fresh"]["error"] is None
            training = slos["nightly-training"]  # the pipeline run of step 1: one good event, too few to judge
            assert (training["period"]["good"], training["period"]["total"]) == (1, 1)
            assert report["modules"]["traffic"]["state"] == report["modules"]["quality"]["state"] == "ok"
            assert report["modules"]["retention"]["report"]["removed"] == []  # nothing is 400 days old

            status = {s["slo"]: s for s in cli("slo", "status")["slos"]}
            assert status["ctr-availability"]["period"]["total"] == sent

            alerts = cli("alerts", "list")
            assert alerts["count"] == len(alerts["alerts"]) == len(NO_DATA_YET) + (slos["ctr-model-fresh"]["state"]
                                                                                   == "no_data")
            assert {(a["slo"], a["alert"], a["severity"], a["state"]) for a in alerts["alerts"]} - {
                ("ctr-model-fresh", "no_data", "ticket", "firing")} == {
                (name, "no_data", "ticket", "firing") for name in NO_DATA_YET}
            labels_alert = next(a for a in alerts["alerts"] if a["slo"] == "ctr-labels")
            assert labels_alert["runbook"].startswith("Are click labels arriving?")  # the SLO file's runbook
            assert (home / "monitoring" / "alerts.jsonl").is_file()  # the file sink the SLO file names

            # 5. drift of the served traffic against the training data, weighted by the model's importances
            drift = cli("monitor", "drift", "ctr", "--window", "1d")
            # the summary counts every request by status (the 422 too); the rows are the ones the model scored
            assert drift["window"]["requests"] == sent + 1 and drift["window"]["rows"] == rows
            assert drift["window"]["versions"] == {str(version.version): sent, "none": 1}  # the 422: no version
            assert drift["reference"]["kind"] == "training_dataset"
            assert drift["reference"]["importance"] == pytest.approx(importance)
            assert drift["dataset"]["weighted"] is True and drift["state"] in ("drift", "no_drift")
            judged = {c["column"] for c in drift["columns"] if c["state"] in ("drift", "no_drift")}
            assert {"price_usd", "country", "fiber"} <= judged
            assert not {"user_id", "session_id"} & {c["column"] for c in drift["columns"]}  # never personal data

            # 6. quality before labels: every scored candidate counted, CBPE's estimate said to be one
            quality = cli("monitor", "quality", "ctr")
            (group,) = quality["groups"]
            assert group["realized"]["count"] == rows and group["realized"]["labelled"] == 0
            assert group["estimate"]["estimated"] is True and 0.0 < group["estimate"]["ctr"] < 1.0

            # 7. the same over HTTP, and the gauges on /metrics, named as the CLI names them
            with httpx.Client(base_url=server.url, timeout=30) as http:
                api_slos = http.get("/api/slos").json()
                api = {s["slo"]: s for s in api_slos["slos"]}
                assert api["ctr-availability"]["state"] == "ok" and api["ctr-availability"]["budget_remaining"] == 1.0
                api_alerts = http.get("/api/alerts").json()
                assert api_alerts["count"] == alerts["count"]
                assert {a["id"] for a in api_alerts["alerts"]} == {a["id"] for a in alerts["alerts"]}
                api_drift = http.get("/api/monitoring/drift/ctr", params={"window": "1d"}).json()
                assert api_drift["dataset"]["weighted"] is True and api_drift["window"]["rows"] == rows
                api_quality = http.get("/api/monitoring/quality/ctr").json()
                assert api_quality["groups"][0]["realized"]["count"] == rows
                assert http.get("/api/monitoring/quality/nope").status_code == 404
                assert http.get("/api/monitoring/drift/nope").status_code == 404
                metrics = http.get("/metrics").text
            ids = {"sloth_service": "yarnit-shop"}
            assert _gauge(metrics, "yarnit_slo_budget_remaining_ratio", **ids, sloth_slo="ctr-availability") == 1.0
            assert _gauge(metrics, "yarnit_slo_alert_firing", **ids, sloth_slo="features-fresh", alert="no_data",
                          severity="ticket") == 1.0
            assert _gauge(metrics, "yarnit_slo_alert_firing", **ids, sloth_slo="ctr-availability", alert="page",
                          severity="page") == 0.0
        server_app.state.serving.close()
    finally:
        ws.close()
