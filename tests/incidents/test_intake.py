"""process_alerts on alert records: grouping, severity, phases, idempotence, auto-resolution, mitigation policies
(failing, suggested, unavailable), and a store that survives a torn or foreign file."""

from __future__ import annotations

from datetime import timedelta

import pytest
import yaml
from incidents.helpers import failing_action, make_alert, register, roll_back_action

from yarnit.core.errors import ConfigError
from yarnit.incidents import IncidentStore, process_alerts
from yarnit.incidents.config import (
    MitigationPolicy,
    config_path,
    load_config,
    parse_config,
)
from yarnit.incidents.intake import outage_start
from yarnit.incidents.store import incidents_path
from yarnit.registry import ModelRegistry

NO_POLICIES = parse_config({"policies": []})


def test_alerts_group_by_model_within_the_window_and_severity_only_rises(sqlite_ws, clock):
    t = clock.now()
    ticket = make_alert("alert_1", t, alert="ticket")
    other = make_alert("alert_2", t + timedelta(minutes=5), model="ranker", slo="ranker-availability")
    report = process_alerts(sqlite_ws, [ticket, other], clock=clock, config=NO_POLICIES)
    assert len(report["opened"]) == 2 and report["attached"] == []
    clock.advance(600)
    page = make_alert("alert_3", clock.now(), alert="page")
    report = process_alerts(sqlite_ws, [ticket, other, page], clock=clock, config=NO_POLICIES)
    store = IncidentStore.open(sqlite_ws.home, clock)
    ctr = next(i for i in store.incidents if i.models == ["ctr"])
    assert report["opened"] == [] and report["attached"] == [ctr.id]
    assert ctr.severity == "SEV2" and set(ctr.alerts) == {"alert_1", "alert_3"}  # ticket SEV3, raised by a page
    assert [e.data for e in ctr.events if e.kind == "severity"] == [{"from": "SEV3", "to": "SEV2"}]
    assert ctr.phases["detection"] == t.isoformat()
    # nothing new: a second pass changes nothing and does not rewrite the file
    before = incidents_path(sqlite_ws.home).read_text()
    again = process_alerts(sqlite_ws, [ticket, other, page], clock=clock, config=NO_POLICIES)
    assert again["opened"] == again["attached"] == [] and incidents_path(sqlite_ws.home).read_text() == before


def test_kinds_outside_open_for_only_join_an_active_incident_and_a_small_impact_needs_no_postmortem(sqlite_ws,
                                                                                                   clock):
    config = parse_config({"policies": [], "open_for": ["page"]})
    t = clock.now()
    no_data = make_alert("alert_1", t, alert="no_data", model="ranker", slo="ranker-availability")
    assert process_alerts(sqlite_ws, [no_data], clock=clock, config=config)["opened"] == []
    page = make_alert("alert_2", t, period_bad=60, period_total=1_000_000)  # 60 of a 1,000-event budget: 6 %
    ticket = make_alert("alert_3", t + timedelta(minutes=2), alert="ticket", period_bad=60, period_total=1_000_000)
    report = process_alerts(sqlite_ws, [no_data, page, ticket], clock=clock, config=config)
    (incident,) = IncidentStore.open(sqlite_ws.home, clock).list()
    assert report["opened"] == [incident.id] and set(incident.alerts) == {"alert_2", "alert_3"}
    assert incident.impact["yarnit-serving-ctr-availability"]["budget_spent"] == pytest.approx(0.06)
    assert incident.postmortem_required is False


def test_outage_start_is_estimated_from_the_evidence_windows_without_counts(clock):
    t = clock.now()
    # 60 bad in the hour, 20 in the last 5 minutes: 15 minutes of errors at the short window's rate
    start, how = outage_start(make_alert("a", t, long_bad=60, short_bad=20))
    assert (start, how) == (t - timedelta(minutes=15), "estimated")
    start, how = outage_start(make_alert("a", t, long_bad=5000, short_bad=20))  # never beyond the long window
    assert start == t - timedelta(hours=1)
    no_data = make_alert("a", t, alert="no_data")
    assert outage_start(no_data) == (t - timedelta(hours=1), "estimated")


def test_alerts_clearing_mitigate_and_the_incident_resolves_itself_after_resolve_after_then_reopens(sqlite_ws,
                                                                                                     clock):
    config = parse_config({"policies": [], "resolve_after": "30m", "grouping_window": "1h"})
    t = clock.now()
    firing = make_alert("alert_1", t)
    process_alerts(sqlite_ws, [firing], clock=clock, config=config)
    clock.advance(600)
    cleared = make_alert("alert_1", t, state="resolved", ended_at=clock.now())
    process_alerts(sqlite_ws, [cleared], clock=clock, config=config)
    incident = IncidentStore.open(sqlite_ws.home, clock).list("all")[0]
    assert incident.state == "mitigated" and incident.phases["mitigation"] == clock.now().isoformat()
    assert [e.kind for e in incident.events].count("alert_resolved") == 1
    clock.advance(1800)
    report = process_alerts(sqlite_ws, [cleared], clock=clock, config=config)
    incident = IncidentStore.open(sqlite_ws.home, clock).get(incident.id)
    assert report["auto_resolved"] == [incident.id] and incident.state == "resolved"
    assert incident.phases["resolution"] == clock.now().isoformat() and incident.events[-1].actor == "incident:auto"
    clock.advance(600)  # the SLO flaps 40 minutes after the resolution: the same incident, reopened
    report = process_alerts(sqlite_ws, [cleared, make_alert("alert_2", clock.now())], clock=clock, config=config)
    assert report["reopened"] == [incident.id] and report["opened"] == []
    incident = IncidentStore.open(sqlite_ws.home, clock).get(incident.id)
    assert incident.state == "open" and incident.phases["resolution"] is None


def test_a_failing_action_is_recorded_retried_up_to_max_attempts_and_never_stops_the_run(sqlite_ws, clock):
    config = parse_config({"policies": [{"name": "collapse", "when": {"sli": ["prediction_quality"]},
                                         "action": "fall_back", "max_attempts": 2}]})
    calls: list[str] = []
    alert = make_alert("alert_1", clock.now(), sli="prediction_quality", slo="ctr-quality")
    for _ in range(3):
        report = process_alerts(sqlite_ws, [alert], clock=clock, config=config,
                                actions={"fall_back": failing_action(calls)})
        clock.advance(60)
    assert calls == ["ctr", "ctr"]  # two attempts, then the policy gives up
    incident = IncidentStore.open(sqlite_ws.home, clock).list()[0]
    failed = [e for e in incident.events if e.kind == "mitigation_failed"]
    assert [e.actor for e in failed] == [f"incident:{incident.id}"] * 2
    assert "RuntimeError: the fallback switch is unreachable" in failed[0].summary
    assert incident.state == "open" and incident.phases["mitigation"] is None and report["failed"] == []


def test_without_actions_given_the_action_is_resolved_from_continuous_actions_or_recorded_unavailable(sqlite_ws,
                                                                                                       clock):
    config = parse_config({"policies": [{"name": "p", "when": {"alert": ["page"]}, "action": "roll_back"}]})
    process_alerts(sqlite_ws, [make_alert("alert_1", clock.now())], clock=clock, config=config)
    incident = IncidentStore.open(sqlite_ws.home, clock).list()[0]
    (event,) = [e for e in incident.events if e.kind in ("mitigation", "mitigation_failed")]
    try:
        import yarnit.continuous.actions  # noqa: F401
    except ImportError:
        assert event.kind == "mitigation_failed" and "yarnit.continuous.actions is not installed" in event.summary
    else:  # the real module: ctr has no production version here, so the action itself refuses
        assert event.data["action"] == "roll_back"


def test_a_suggested_policy_runs_nothing_and_says_how_to_run_it(sqlite_ws, clock):
    registry = ModelRegistry(sqlite_ws)
    register(registry, "ctr")
    register(registry, "ctr")
    registry.set_alias("ctr", "production", 1)
    registry.set_alias("ctr", "production", 2)
    config = parse_config({"policies": [{"name": "p", "when": {"alert": ["page"]}, "action": "roll_back",
                                         "auto": False}]})
    calls: list[tuple[str, str, str]] = []
    actions = {"roll_back": roll_back_action(calls)}
    process_alerts(sqlite_ws, [make_alert("alert_1", clock.now())], clock=clock, config=config, actions=actions)
    incident = IncidentStore.open(sqlite_ws.home, clock).list()[0]
    (event,) = [e for e in incident.events if e.kind == "mitigation_suggested"]
    assert f"yarnit incidents mitigate {incident.id} --action roll_back" in event.summary
    assert calls == [] and registry.resolve("ctr", "production").version == 2
    from yarnit.incidents import mitigate

    result = mitigate(sqlite_ws, incident.id, "roll_back", actor="user:erin", actions=actions)
    assert result["ok"] and registry.resolve("ctr", "production").version == 1
    incident = IncidentStore.open(sqlite_ws.home, clock).get(incident.id)
    assert incident.state == "mitigated" and incident.events[-2].actor == "user:erin"


def test_default_policies_map_a_canary_slo_to_abort_canary_quality_to_fall_back_labels_to_stop_training():
    policies = {p.name: p for p in load_config("/nonexistent").policies}
    canary = {"sli": "serving_availability", "alert": "page", "slo": "ctr-canary", "model": "ctr"}
    assert policies["burning-canary"].matches(canary, {"alias": "canary"})
    assert not policies["burning-canary"].matches(canary, {})
    assert policies["collapsed-predictions"].matches({"sli": "prediction_quality", "alert": "page"}, {})
    assert policies["labels-incomplete"].matches({"sli": "label_completeness", "alert": "ticket"}, {})
    # a no-data alert (nothing served yet) never freezes training: a new workspace's first models would stop
    assert not policies["labels-incomplete"].matches({"sli": "label_completeness", "alert": "no_data"}, {})
    assert [p.action for p in policies.values()] == ["abort_canary", "fall_back", "stop_training", "remove_bad_data",
                                                     "fall_back"]
    assert policies["bad-data"].matches({"sli": "data_validation", "alert": "ticket"}, {})
    assert policies["inputs-incomplete"].matches({"sli": "input_completeness", "alert": "page"}, {})
    assert not policies["inputs-incomplete"].matches({"sli": "input_completeness", "alert": "ticket"}, {})
    assert {n: p.reversal for n, p in policies.items()} == {
        "burning-canary": None, "collapsed-predictions": "restore_model", "labels-incomplete": "resume_training",
        "bad-data": None, "inputs-incomplete": "restore_model"}
    assert MitigationPolicy("x", "roll_back", {"model": "ctr-*"}).matches({"model": "ctr-eu"}, {})


@pytest.mark.parametrize(("doc", "message"), [
    ({"policy": []}, r"unknown key\(s\) policy"),
    ({"policies": [{"name": "p", "when": {"sli": ["x"]}, "action": "roll back"}]}, "action must be an action name"),
    ({"policies": [{"name": "p", "when": {"color": "red"}, "action": "roll_back"}]}, "unknown key 'color'"),
    ({"policies": [{"name": "p", "when": {"alert": "page"}, "action": "roll_back", "auto": "yes"}]},
     "auto must be true or false"),
    ({"severity": {"page": "SEV9"}}, "severity.page"),
    ({"grouping_window": "soon"}, "grouping_window must be a duration"),
])
def test_a_bad_incidents_file_is_refused_naming_the_field(doc, message):
    with pytest.raises(ConfigError, match=message):
        parse_config(doc)


def test_a_torn_store_is_set_aside_and_the_next_run_starts_clean(sqlite_ws, clock):
    path = incidents_path(sqlite_ws.home)
    path.parent.mkdir(parents=True)
    path.write_text('{"version": 1, "incidents": [{"id": ')  # a foreign or truncated file
    report = process_alerts(sqlite_ws, [make_alert("alert_1", clock.now())], clock=clock, config=NO_POLICIES)
    assert report["store_recovered"] is True and len(report["opened"]) == 1
    assert path.with_name("incidents.json.corrupt").exists()
    assert IncidentStore.open(sqlite_ws.home, clock).recovered is False


def test_a_broken_incidents_file_fails_the_hook_not_the_monitor(sqlite_ws, clock):
    from testsupport.monitoring import Traffic, write_slos

    from yarnit.monitoring.alerts import read_alert_file
    from yarnit.monitoring.runner import Monitor
    from yarnit.monitoring.workspace import load_workspace_slos, monitoring_dir

    write_slos(sqlite_ws.home, sinks=[{"type": "file"}])
    config_path(sqlite_ws.home).write_text(yaml.safe_dump({"policies": "roll back everything"}))
    traffic = Traffic(sqlite_ws, clock)
    traffic.healthy(60)
    traffic.minute("fallback")
    traffic.close()
    report = Monitor(sqlite_ws, load_workspace_slos(sqlite_ws.home), clock=clock).run_once()
    assert report["hooks"]["incidents"]["state"] == "error"
    assert "policies must be a list" in report["hooks"]["incidents"]["error"]
    assert report["alerts"]["opened"] == 2 and len(read_alert_file(monitoring_dir(sqlite_ws.home) / "alerts.jsonl")) == 2


def test_concurrent_writers_take_turns_and_lose_no_change(sqlite_ws, clock):
    import threading

    (incident_id,) = process_alerts(sqlite_ws, [make_alert("alert_1", clock.now())], clock=clock,
                                    config=NO_POLICIES)["opened"]
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(10):
                with IncidentStore.locked(sqlite_ws.home, clock) as store:
                    store.note(incident_id, f"writer {n} note {i}", actor=f"user:w{n}")
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == [] and not any(t.is_alive() for t in threads)
    notes = [e.summary for e in IncidentStore.open(sqlite_ws.home, clock).get(incident_id).events if e.kind == "note"]
    assert sorted(notes) == sorted(f"writer {n} note {i}" for n in range(4) for i in range(10))


def test_a_note_cannot_inject_markup_into_the_postmortem(sqlite_ws, clock):
    from yarnit.incidents import render_postmortem

    (incident_id,) = process_alerts(sqlite_ws, [make_alert("alert_1", clock.now())], clock=clock,
                                    config=NO_POLICIES)["opened"]
    with IncidentStore.locked(sqlite_ws.home, clock) as store:
        store.note(incident_id, "see <script>alert(1)</script> and [click](http://evil) | # x", actor="user:a")
        text = render_postmortem(store.get(incident_id))
    assert "<script>" not in text and "[click](" not in text
    assert r"see \<script\>alert\(1\)\</script\> and \[click\]\(http://evil\) \| \# x" in text


def test_alerts_fired_in_the_same_instant_open_the_same_incident_whatever_their_random_ids(tmp_path, clock):
    # two tickets of one model in one millisecond: the incident is named after the same one on every run (the
    # random id used to break the tie, and two runs of the demo's seed named it after different alerts)
    from yarnit.core import Settings
    from yarnit.storage import open_workspace

    t = clock.now()
    titles = []
    for ids in (("alert_a", "alert_z"), ("alert_z", "alert_a")):
        ws = open_workspace(Settings.for_home(tmp_path / ids[0]), clock)
        try:
            labels = make_alert(ids[0], t, alert="ticket", slo="ctr-labels", sli="label_completeness")
            inputs = make_alert(ids[1], t, alert="ticket", slo="ctr-inputs", sli="input_completeness")
            labels["alert_name"], inputs["alert_name"] = "CtrLabelsBurn", "CtrInputsBurn"
            process_alerts(ws, [labels, inputs], clock=clock, config=NO_POLICIES)
            (incident,) = IncidentStore.open(ws.home, clock).list()
            titles.append(incident.title)
        finally:
            ws.close()
    assert titles == ["ctr-inputs (input_completeness) ticket on ctr"] * 2
