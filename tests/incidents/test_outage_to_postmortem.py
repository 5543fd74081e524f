"""An outage end to end: real prediction-log traffic, the monitor runner, an incident with its phases, triage that
puts the preceding alias move of the affected model first, a mitigation policy whose action really rolls the
model back, resolution and a postmortem with the phases and durations. Time is a SimulatedClock."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import yaml
from incidents.helpers import register, roll_back_action
from testsupport.monitoring import Traffic, write_slos

from yarnit.data import Datasets
from yarnit.incidents import IncidentStore, render_postmortem
from yarnit.incidents.config import config_path
from yarnit.monitoring.runner import Monitor
from yarnit.monitoring.workspace import load_workspace_slos
from yarnit.registry import ModelRegistry


def test_an_outage_opens_one_incident_triages_mitigates_resolves_and_writes_its_postmortem(sqlite_ws, clock):
    ws = sqlite_ws
    registry = ModelRegistry(ws)
    clicks = Datasets(ws).ingest_frame("clicks", pd.DataFrame({"x": [1, 2, 3]}), source="test",
                                       no_subject="synthetic")
    register(registry, "ctr", dataset_ids=[clicks.id])  # v1
    register(registry, "ctr", dataset_ids=[clicks.id])  # v2
    register(registry, "other")
    registry.set_alias("ctr", "production", 1, actor="user:alice")
    registry.set_alias("other", "production", 1, actor="user:bob")
    write_slos(ws.home, sinks=[{"type": "file"}])
    config_path(ws.home).write_text(yaml.safe_dump({"policies": [
        {"name": "serving-down", "when": {"sli": ["serving_availability"], "alert": ["page"]},
         "action": "roll_back", "auto": True}]}))
    calls = []
    actions = {"roll_back": roll_back_action(calls)}

    traffic = Traffic(ws, clock)
    traffic.healthy(100)
    registry.set_alias("ctr", "production", 2, actor="user:carol", reason="daily retrain")  # 20 min before
    move_at = clock.now()
    traffic.healthy(10)
    Datasets(ws).ingest_frame("weather", pd.DataFrame({"t": [1.0]}), source="test", no_subject="synthetic")
    registry.set_alias("other", "production", 1, actor="user:bob", reason="re-pin")  # 10 min before, unrelated
    traffic.healthy(10)

    monitor = Monitor(ws, load_workspace_slos(ws.home), clock=clock, actions=actions)
    assert monitor.run_once()["hooks"]["incidents"]["report"]["opened"] == []
    t0 = clock.now()
    reports = []
    for minute in range(40):
        traffic.minute("fallback" if minute < 3 else "model")
        reports.append(monitor.run_once())
    traffic.close()

    first = reports[0]["hooks"]["incidents"]
    assert first["state"] == "ok", first
    (incident_id,) = first["report"]["opened"]
    assert first["report"]["attached"] == [incident_id]  # the ticket of the same SLO joined the page's incident
    assert [r["hooks"]["incidents"]["report"]["opened"] for r in reports[1:]] == [[]] * 39

    store = IncidentStore.open(ws.home, clock)
    (incident,) = store.list("all")
    assert incident.id == incident_id and incident.models == ["ctr"]
    assert incident.severity == "SEV1"  # a page on an SLO whose budget is spent (2 h of history: 20 bad > 2.4)
    assert sorted(a["alert"] for a in incident.alerts.values()) == ["page", "ticket"]
    assert incident.phases["outage_start"] == t0.isoformat()  # the first bad minute, from the counts
    assert incident.phases["detection"] == (t0 + timedelta(minutes=1)).isoformat()
    assert {a["outage_start_from"] for a in incident.alerts.values()} == {"counts"}

    # triage: the alias move of ctr ranks first although the move of `other` and a new dataset came later
    first_item = incident.triage[0]
    assert first_item["kind"] == "alias_move" and first_item["detail"]["model"] == "ctr"
    assert first_item["lineage_distance"] == 0 and first_item["at"] == move_at.isoformat()
    assert first_item["before_outage_s"] == (t0 - move_at).total_seconds() == 1200
    other = next(i for i in incident.triage if i["kind"] == "alias_move" and i["detail"]["model"] == "other"
                 and i["at"] > move_at.isoformat())
    weather = next(i for i in incident.triage if i["kind"] == "dataset_version" and "weather" in i["summary"])
    assert other["lineage_distance"] is None and weather["lineage_distance"] is None
    assert other["rank"] > first_item["rank"] and weather["rank"] > first_item["rank"]

    # the policy ran once, for real: production went back to v1, recorded with actor incident:<id>
    assert registry.resolve("ctr", "production").version == 1
    assert len(calls) == 1 and registry.history("ctr", "production")[-1].actor == f"incident:{incident_id}"
    (mitigation,) = [e for e in incident.events if e.kind == "mitigation"]
    assert mitigation.actor == f"incident:{incident_id}" and mitigation.data["result"]["to_version"] == 1
    assert incident.phases["mitigation"] == (t0 + timedelta(minutes=1)).isoformat()
    assert incident.state == "mitigated"

    # the page cleared at t0+33m: on the timeline once
    resolved = [e for e in incident.events if e.kind == "alert_resolved"]
    assert [(e.at, e.data["alert"]) for e in resolved] == [
        ((t0 + timedelta(minutes=33)).isoformat(),
         next(i for i, a in incident.alerts.items() if a["alert"] == "page"))]
    impact = incident.impact[next(iter(incident.impact))]
    assert impact["bad_events"] == 60  # 3 minutes x 20 requests answered by the fallback
    assert impact["budget_spent"] > 0.2 and incident.postmortem_required  # 60 bad of a 2.9-event budget

    clock.advance(600)
    with IncidentStore.locked(ws.home, clock) as locked:
        locked.assign(incident_id, "commander", "dana", actor="user:dana")
        locked.resolve(incident_id, reason="rolled back to v1; v2 under investigation", actor="user:dana")
        locked.set_trigger(incident_id, first_item["id"], actor="user:dana")
    incident = IncidentStore.open(ws.home, clock).get(incident_id)
    resolved_at = clock.now()
    assert incident.state == "resolved" and incident.phases["resolution"] == resolved_at.isoformat()
    assert incident.phases["trigger"] == move_at.isoformat()

    text = render_postmortem(incident)
    assert incident.title == "ctr-availability (serving_availability) page on ctr"
    assert text.startswith("# Postmortem: ctr-availability \\(serving\\_availability\\) page on ctr\n")
    for row in (f"| trigger (the change that caused it) | {move_at.isoformat()} | -20 min |",
                f"| outage start (first bad minute) | {t0.isoformat()} | 0 s |",
                f"| detection (first alert) | {(t0 + timedelta(minutes=1)).isoformat()} | 1 min |",
                f"| mitigation | {(t0 + timedelta(minutes=1)).isoformat()} | 1 min |",
                f"| resolution | {resolved_at.isoformat()} | 50 min |"):
        assert row in text
    assert "- Time to detect: **1 min**" in text and "- Time to resolve: **50 min**" in text
    assert "`roll\\_back` on `ctr` by incident:" in text and "| 60 |" in text
    assert text.count("TO BE WRITTEN BY THE INCIDENT TEAM") == 6
    assert "**A postmortem is required by the error-budget policy:**" in text
    assert "commander: dana" in text


def test_the_default_policy_aborts_a_burning_canary_found_by_the_slos_alias(sqlite_ws, clock):
    """No incidents.yaml: the default `burning-canary` policy matches the SLO whose `alias` param is canary, read
    from the workspace SLO file, and its action runs once on the canary's model."""
    from yarnit.monitoring.workspace import prediction_log_dir
    from yarnit.serving.predlog import PredictionLog

    ws = sqlite_ws
    registry = ModelRegistry(ws)
    register(registry, "ctr")
    register(registry, "ctr")
    registry.set_alias("ctr", "production", 1)
    registry.set_alias("ctr", "production", 2, reason="canary promoted too early")
    write_slos(ws.home, sinks=[{"type": "file"}], extra=(
        {"name": "ctr-canary-availability", "sli": "serving_availability", "model": "ctr", "objective": 99,
         "window": "7d", "params": {"alias": "canary"}},))
    log = PredictionLog(prediction_log_dir(ws.home), clock, fsync=False, aggregate_window_s=1e9)
    n = 0
    for minute in range(61):
        for alias in ("production", "canary"):
            for _ in range(10):
                n += 1
                bad = alias == "canary" and minute >= 51  # 100 of the canary's 610 requests in the hour
                log.append({"request_id": f"r{n}", "time": clock.now(), "role": "primary", "protocol": "v1",
                            "model": "ctr", "status": 200, "latency_ms": 5.0, "key": None, "version": 1,
                            "alias": alias, "served_by": "fallback" if bad else "model", "predictions": [0.5]})
        clock.advance(60)
    assert log.flush()
    log.close()
    calls = []

    def abort_canary(ws, model, *, actor, reason):  # noqa: ANN001, ANN202  (the real one: test_canary_mitigation_server)
        calls.append((model, actor, reason))
        return {"action": "abort_canary", "model": model, "changed": True}

    report = Monitor(ws, load_workspace_slos(ws.home), clock=clock,
                     actions={"abort_canary": abort_canary}).run_once()
    hook = report["hooks"]["incidents"]["report"]
    assert [m["policy"] for m in hook["mitigations"]] == ["burning-canary"] and calls[0][0] == "ctr"
    assert registry.resolve("ctr", "production").version == 2  # a burning canary does not move production
    (incident,) = IncidentStore.open(ws.home, clock).list()
    assert [(s["slo"], s["state"]) for s in report["slos"]] == [("ctr-availability", "page"),
                                                                ("ctr-canary-availability", "page")]
    assert {a["slo"] for a in incident.alerts.values()} == {"ctr-availability", "ctr-canary-availability"}
    assert len(calls) == 1  # one policy, one action, although four alerts joined
    assert incident.state == "mitigated" and incident.mitigations["burning-canary"]["state"] == "ok"
