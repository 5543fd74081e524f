"""revert_on_resolve: a resolved incident undoes its stop_training (resume_training), audited and on the timeline;
the per-policy switch, and the loop's alerts left alone by the monitor."""

from __future__ import annotations

from datetime import timedelta

import pytest
from testsupport.monitoring import write_slos

from yarnit.continuous.actions import history, training_frozen
from yarnit.continuous.loop_alerts import raise_alert
from yarnit.core.errors import ConfigError
from yarnit.incidents import IncidentStore, process_alerts
from yarnit.incidents.config import parse_config
from yarnit.monitoring.alerts import AlertStore, alerts_path
from yarnit.monitoring.runner import Monitor
from yarnit.monitoring.workspace import load_workspace_slos, monitoring_dir


def _labels_ticket(ws, clock, *, state="firing", ended_at=None):
    at = clock.now().isoformat()
    return {"id": "alert_labels", "slo_id": "loop:ctr:labels", "service": "yarnit-loop-ctr", "slo": "loop labels",
            "sli": "label_completeness", "model": "ctr", "alert": "ticket", "alert_name": "YarnitLoopLabelsIncomplete",
            "severity": "ticket", "state": state, "started_at": at, "updated_at": ended_at or at,
            "ended_at": ended_at, "summary": "held", "runbook": "",
            "evidence": {"day": "2026-01-08", "window": {"start": "2026-01-08T00:00:00+00:00",
                                                         "end": "2026-01-09T00:00:00+00:00"}}}


@pytest.mark.parametrize("revert", [None, False])
def test_a_resolved_incident_resumes_the_training_its_policy_stopped(sqlite_ws, clock, revert):
    ws = sqlite_ws
    policy = {"name": "labels-incomplete", "when": {"sli": ["label_completeness"]}, "action": "stop_training"}
    config = parse_config({"policies": [policy if revert is None else {**policy, "revert_on_resolve": revert}],
                           "resolve_after": "1h"})
    firing = _labels_ticket(ws, clock)
    report = process_alerts(ws, [firing], clock=clock, config=config)
    assert report["mitigations"] and training_frozen(ws, "ctr") is not None
    clock.advance(600)
    cleared = {**firing, "state": "resolved", "ended_at": clock.now().isoformat()}
    assert process_alerts(ws, [cleared], clock=clock, config=config)["auto_resolved"] == []
    assert training_frozen(ws, "ctr") is not None  # not before the incident resolves
    clock.advance(3601)
    report = process_alerts(ws, [cleared], clock=clock, config=config)
    (incident,) = IncidentStore.open(ws.home, clock).list("all")
    assert report["auto_resolved"] == [incident.id] and incident.state == "resolved"
    if revert is False:
        assert training_frozen(ws, "ctr") is not None and "reverted" not in report
        return
    assert training_frozen(ws, "ctr") is None
    assert [e.kind for e in incident.events][-1] == "mitigation_reverted"
    actions = [(h["action"], h["actor"]) for h in history(ws, model="ctr")]
    assert actions == [("resume_training", f"incident:{incident.id}"), ("stop_training", f"incident:{incident.id}")]
    # idempotent: a later run reverts nothing again
    assert "reverted" not in process_alerts(ws, [cleared], clock=clock, config=config)


def test_revert_on_resolve_is_refused_for_an_action_without_a_reversal():
    with pytest.raises(ConfigError, match="roll_back has no reversal"):
        parse_config({"policies": [{"name": "x", "when": {"sli": "a"}, "action": "roll_back",
                                    "revert_on_resolve": True}]})
    with pytest.raises(ConfigError, match="revert_on_resolve must be true or false"):
        parse_config({"policies": [{"name": "x", "when": {"sli": "a"}, "action": "fall_back",
                                    "revert_on_resolve": "yes"}]})


def test_the_monitor_leaves_the_loops_alerts_open_though_no_slo_names_them(sqlite_ws, clock):
    ws = sqlite_ws
    write_slos(ws.home, sinks=[{"type": "log"}])
    alert = raise_alert(ws, slo_id="loop:ctr:data:out_of_stock", model="ctr", sli="data_validation",
                        name="YarnitLoopDataOutOfStock", slo="loop data out_of_stock", summary="oos up", runbook="",
                        evidence={"day": "2026-01-08", "days": ["2026-01-08"]})
    clock.advance(timedelta(minutes=5).total_seconds())
    Monitor(ws, load_workspace_slos(ws.home), clock=clock).run_once()
    store = AlertStore.open(alerts_path(monitoring_dir(ws.home)))
    assert store.get(alert["id"]).state == "firing"
    (incident,) = [i for i in IncidentStore.open(ws.home, clock).list() if alert["id"] in i.alerts]
    assert incident.alerts[alert["id"]]["sli"] == "data_validation"


def test_a_mitigation_is_undone_when_its_cause_clears_though_another_alert_keeps_the_incident_open(sqlite_ws, clock):
    """Regression (the 30-day demo): the alert that called for a mitigation cleared, but another alert on the same
    model (there: the availability page a forced fallback itself causes) kept the incident open, so the mitigation
    was never undone (the shop ran on the heuristic, or trained nothing, for the rest of the month)."""
    ws = sqlite_ws
    config = parse_config({"resolve_after": "1h", "policies": [
        {"name": "labels-incomplete", "when": {"sli": ["label_completeness"]}, "action": "stop_training"}]})
    cause = _labels_ticket(ws, clock)
    first = process_alerts(ws, [cause], clock=clock, config=config)
    assert first["mitigations"] and training_frozen(ws, "ctr") is not None
    clock.advance(600)
    at = clock.now().isoformat()
    other = {**cause, "id": "alert_up", "slo_id": "shop-ctr-up", "slo": "ctr-up", "sli": "serving_availability",
             "alert": "page", "severity": "page", "alert_name": "Up", "started_at": at, "updated_at": at}
    cleared = {**cause, "state": "resolved", "ended_at": at, "updated_at": at}
    process_alerts(ws, [cleared, other], clock=clock, config=config)
    assert training_frozen(ws, "ctr") is not None  # not before its cause has been clear for resolve_after
    clock.advance(3601)
    report = process_alerts(ws, [cleared, other], clock=clock, config=config)
    (incident,) = IncidentStore.open(ws.home, clock).list("all")
    assert incident.state != "resolved"  # the other alert is still firing
    assert training_frozen(ws, "ctr") is None and report["reverted"][0]["action"] == "resume_training"


def test_each_bad_window_joining_an_open_incident_is_removed_not_only_the_first(sqlite_ws, clock):
    """Regression (the demo): a second day's data alert joined the incident the first one opened, and the bad-data
    policy, already "done" there, never removed the second window."""
    import pandas as pd

    from yarnit.data import Datasets

    ws = sqlite_ws
    frame = pd.DataFrame({"event_time": pd.to_datetime(["2026-01-08T10:00Z", "2026-01-09T10:00Z",
                                                        "2026-01-10T10:00Z"]), "x": [1, 2, 3]})
    version = Datasets(ws).ingest_frame("impressions", frame, source="test", no_subject="test rows")
    config = parse_config({"policies": [{"name": "bad-data", "when": {"sli": ["data_validation"]},
                                         "action": "remove_bad_data"}]})

    def data_alert(day: str, nxt: str) -> dict:
        at = clock.now().isoformat()
        return {"id": f"alert_{day}", "slo_id": f"loop:ctr:data:slice_volume:{day}", "service": "yarnit-loop-ctr",
                "slo": "loop data slice_volume", "sli": "data_validation", "model": "ctr", "alert": "ticket",
                "alert_name": "Data", "severity": "ticket", "state": "firing", "started_at": at, "updated_at": at,
                "ended_at": None, "summary": "", "runbook": "",
                "evidence": {"day": day, "check": "slice_volume", "dataset": version.name,
                             "window": {"time_column": "event_time", "start": f"{day}T00:00:00+00:00",
                                        "end": f"{nxt}T00:00:00+00:00"}}}

    first = data_alert("2026-01-08", "2026-01-09")
    assert len(process_alerts(ws, [first], clock=clock, config=config)["mitigations"]) == 1
    clock.advance(600)
    second = data_alert("2026-01-09", "2026-01-10")
    report = process_alerts(ws, [first, second], clock=clock, config=config)
    assert len(report["mitigations"]) == 1 and report["mitigations"][0]["alert"] == "alert_2026-01-09"
    (incident,) = IncidentStore.open(ws.home, clock).list("all")  # both alerts in one incident
    assert set(incident.alerts) == {"alert_2026-01-08", "alert_2026-01-09"}
    latest = Datasets(ws).get("impressions")
    assert Datasets(ws).read(latest)["x"].tolist() == [3]  # both bad days' rows are gone
