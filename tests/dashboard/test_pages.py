"""The dashboard's pages over the app without a browser: empty workspaces, hostile text, unknown names, history.

An empty workspace gets every page with a sentence saying what to run, not an error; text people
typed (an alias reason) is escaped; an unknown model or incident is a 404 that says so; the monitor's
SLO history keeps one point an hour and a bounded number of them.
"""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from testsupport import register_ctr

from yarnit.api import create_app
from yarnit.monitoring import slo_history
from yarnit.registry import ModelRegistry

PAGES = ["/", "/ui/slos", "/ui/data", "/ui/incidents", "/ui/runs", "/ui/static/dashboard.js"]


def test_an_empty_workspace_gets_every_page_with_what_to_run_next(sqlite_ws) -> None:
    with TestClient(create_app(sqlite_ws)) as client:
        for path in PAGES:
            response = client.get(path)
            assert response.status_code == 200, (path, response.text[:300])
        assert "yarnit demo" in client.get("/").text
        assert "yarnit monitor run" in client.get("/ui/slos").text
        assert "No pipeline run yet." in client.get("/ui/runs").text
        assert "No incident yet." in client.get("/ui/incidents").text


def test_text_people_typed_is_escaped_and_unknown_names_are_404s(sqlite_ws) -> None:
    register_ctr(sqlite_ws, versions=2)
    ModelRegistry(sqlite_ws).promote("ctr", 2, actor="user:<b>eve</b>", reason='<script>alert("x")</script>')
    with TestClient(create_app(sqlite_ws)) as client:
        page = client.get("/ui/models/ctr")
        assert page.status_code == 200
        assert "<script>alert" not in page.text and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page.text
        assert "user:&lt;b&gt;eve&lt;/b&gt;" in page.text
        assert "Roll back production" in page.text and 'data-endpoint="/api/models/ctr/actions/roll-back"' in page.text
        missing = client.get("/ui/models/nosuch")
        assert missing.status_code == 404 and "nosuch" in missing.text
        assert client.get("/ui/incidents/inc_nosuch").status_code == 404
        assert client.get("/ui/models/ctr?window=2d").status_code == 422
        assert "has had no staged rollout" in client.get("/ui/rollouts/ctr").text
        assert "No drift to show" in client.get("/ui/drift/ctr").text


def test_the_slo_history_keeps_one_point_an_hour_and_a_bounded_number(sqlite_ws, clock, monkeypatch) -> None:
    entry = {"id": "svc-ctr-availability", "budget_remaining": 0.5, "burn_rates": {"1h": 2.0}, "state": "ok"}
    assert slo_history.record(sqlite_ws.home, clock.now(), [entry])
    assert not slo_history.record(sqlite_ws.home, clock.now() + timedelta(minutes=59), [entry])  # too soon
    monkeypatch.setattr(slo_history, "MAX_POINTS", 3)
    for hour in range(1, 6):
        assert slo_history.record(sqlite_ws.home, clock.now() + timedelta(hours=hour),
                                  [entry | {"budget_remaining": hour / 10}])
    points = slo_history.read_history(sqlite_ws.home)
    assert len(points) == 3 and [p["slos"]["svc-ctr-availability"]["budget"] for p in points] == [0.3, 0.4, 0.5]
    assert points[-1]["slos"]["svc-ctr-availability"]["burn"] == {"1h": 2.0}


def test_a_refresh_within_seconds_is_served_from_the_page_cache_and_a_reload_renders_anew(sqlite_ws) -> None:
    register_ctr(sqlite_ws, versions=2)
    with TestClient(create_app(sqlite_ws)) as client:
        before = client.get("/ui/models/ctr").text
        assert "production → v1" in before
        ModelRegistry(sqlite_ws).promote("ctr", 2, actor="user:test", reason="a newer model")
        assert client.get("/ui/models/ctr").text == before  # an automatic refresh within the TTL: kept
        reloaded = client.get("/ui/models/ctr", headers={"Cache-Control": "max-age=0"}).text  # a browser reload
        assert "production → v2" in reloaded and "a newer model" in reloaded
        client.app.state.dashboard_cache.ttl_s = 0  # off: every request renders
        assert "production → v2" in client.get("/ui/models/ctr").text
