"""GET /api/slos, GET /api/alerts and the SLO gauges on /metrics, read from what the monitor runner wrote."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from testsupport.monitoring import RUNBOOK, Traffic, write_slos

from yarnit.api import create_app
from yarnit.monitoring.runner import Monitor
from yarnit.monitoring.workspace import load_workspace_slos


@pytest.fixture
def client(sqlite_ws) -> Iterator[TestClient]:
    with TestClient(create_app(sqlite_ws)) as http:
        yield http


def _gauge(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            got = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
            if got == labels:
                return float(line.rsplit(" ", 1)[1])
    return None


def test_before_the_monitor_runs_slos_are_empty_with_the_next_step_and_no_gauge_has_a_value(client):
    body = client.get("/api/slos").json()
    assert body["slos"] == [] and "yarnit monitor run" in body["detail"]
    assert client.get("/api/alerts").json() == {"state": "all", "count": 0, "alerts": []}
    metrics = client.get("/metrics").text
    assert "# TYPE yarnit_slo_budget_remaining_ratio gauge" in metrics
    assert _gauge(metrics, "yarnit_slo_state_age_seconds") is None


def test_slos_alerts_and_gauges_show_a_page_the_monitor_opened(client, sqlite_ws, clock):
    write_slos(sqlite_ws.home, sinks=[{"type": "file"}])
    traffic = Traffic(sqlite_ws, clock)
    traffic.healthy(60)
    traffic.minute("fallback")  # one minute of full outage: 20 of 1,200 requests in the hour
    traffic.close()
    Monitor(sqlite_ws, load_workspace_slos(sqlite_ws.home), clock=clock).run_once()
    at = clock.now().isoformat()

    slos = client.get("/api/slos").json()
    assert slos["service"] == "yarnit-serving" and slos["at"] == at and slos["age_s"] == 0
    (slo,) = slos["slos"]
    assert (slo["slo"], slo["state"], slo["objective"], slo["window"]) == ("ctr-availability", "page", 0.999, "30d")
    assert slo["burn_rates"]["5m"] == pytest.approx(20 / 100 / 0.001)  # 20 bad of 100 in 5 minutes: 200x
    assert slo["burn_rates"]["1h"] == pytest.approx(20 / 1200 / 0.001)
    assert slo["budget_remaining"] == pytest.approx(1 - 20 / 1220 / 0.001)
    assert slo["firing"] == {"page": True, "ticket": True, "no_data": False}

    firing = client.get("/api/alerts", params={"state": "firing"}).json()
    assert firing["count"] == 2 and {a["alert"] for a in firing["alerts"]} == {"page", "ticket"}
    page = next(a for a in firing["alerts"] if a["alert"] == "page")
    assert page["runbook"] == RUNBOOK and page["started_at"] == at and page["evidence"]["pairs"][0]["firing"]
    assert client.get("/api/alerts", params={"state": "resolved"}).json()["count"] == 0
    assert client.get("/api/alerts", params={"state": "open"}).status_code == 422
    assert client.get("/api/alerts", params={"limit": 0}).status_code == 422

    clock.advance(90)
    metrics = client.get("/metrics").text
    ids = {"sloth_service": "yarnit-serving", "sloth_slo": "ctr-availability"}
    assert _gauge(metrics, "yarnit_slo_alert_firing", **ids, alert="page", severity="page") == 1.0
    # the same names as the alert records and the rules: a no-data alert is alert="no_data", severity="ticket"
    assert _gauge(metrics, "yarnit_slo_alert_firing", **ids, alert="no_data", severity="ticket") == 0.0
    assert _gauge(metrics, "yarnit_slo_burn_rate", **ids, window="5m") == pytest.approx(200.0)
    assert _gauge(metrics, "yarnit_slo_budget_remaining_ratio", **ids) == pytest.approx(1 - 20 / 1220 / 0.001)
    assert _gauge(metrics, "yarnit_slo_state_age_seconds") == 90.0

    # the next run's file is picked up (the cache follows the file's mtime and size)
    Monitor(sqlite_ws, load_workspace_slos(sqlite_ws.home), clock=clock).run_once()
    assert client.get("/api/slos").json()["at"] == clock.now().isoformat()
    assert _gauge(client.get("/metrics").text, "yarnit_slo_state_age_seconds") == 0.0
