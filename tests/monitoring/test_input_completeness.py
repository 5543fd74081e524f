"""input_completeness: the world's partner_lookup fault (partner attributes served empty) pages within 2 hours."""

from __future__ import annotations

import json
import time
import zlib
from datetime import timedelta

import httpx
import pytest
import yaml
from testsupport import register_ctr

from yarnit.api import create_app
from yarnit.api.server import BackgroundServer
from yarnit.core.clock import SimulatedClock
from yarnit.core.errors import ConfigError
from yarnit.core.settings import Settings
from yarnit.monitoring import traffic
from yarnit.monitoring.alerts import AlertStore
from yarnit.monitoring.input_counts import MAX_KEYSETS, OVERFLOW, InputCounts
from yarnit.monitoring.runner import Monitor
from yarnit.monitoring.slo import parse_slo_file
from yarnit.monitoring.workspace import WorkspaceSLISource, load_workspace_slos
from yarnit.serving import ServingOptions, read_prediction_log
from yarnit.storage import open_workspace
from yarnit.world import WorldConfig
from yarnit.world.faults import parse_fault
from yarnit.world.traffic import serve_traffic

WORLD = WorldConfig(seed=5, sessions_per_day=60, n_users=200)
PARTNER = ["fiber", "weight_class", "color", "brand"]
SLOS = {"service": "shop", "slos": [
    {"name": "ctr-inputs", "sli": "input_completeness", "model": "ctr", "objective": 99, "window": "28d"},
    {"name": "ctr-prices", "sli": "input_completeness", "model": "ctr", "objective": 99, "window": "28d",
     "params": {"columns": ["price_usd", "discount"]}}]}


def _pages(requests: list, n: int, start: int) -> list:
    return [requests[(start + i) % len(requests)] for i in range(n)]


def test_partner_lookup_fault_pages_within_two_hours_and_clean_traffic_never_alerts(tmp_path) -> None:
    clean = list(serve_traffic(WORLD, 1))
    faulty = list(serve_traffic(WorldConfig(seed=5, sessions_per_day=60, n_users=200,
                                            faults=(parse_fault("partner_lookup@0"),)), 1))
    empty_rows = sum(all(r[c] is None for c in PARTNER) for q in faulty for r in q.instances)
    assert 0.2 < empty_rows / sum(len(q.instances) for q in faulty) < 0.6  # the fault's ~40 %

    clock = SimulatedClock(WORLD.start)
    ws = open_workspace(Settings.for_home(tmp_path / "home"), clock)
    try:
        (ws.home / "slos.yaml").write_text(yaml.safe_dump(SLOS))
        register_ctr(ws)
        spec = load_workspace_slos(ws.home)
        monitor = Monitor(ws, spec, clock=clock, sinks=[])
        # generous budgets: a request shed or answered late on a loaded machine is not what this test is about
        app = create_app(ws, refresh_s=0.0, serving=ServingOptions(deadline_ms=60_000, max_queue_delay_ms=None))
        sent = 0
        with BackgroundServer(app) as server, httpx.Client(base_url=server.url, timeout=60) as http:

            def serve_hour(requests: list) -> dict:
                """12 pages every 5 simulated minutes through the real server, then the monitor's hourly pass."""
                nonlocal sent
                for step in range(12):
                    for page in _pages(requests, 2, sent):
                        answer = http.post("/v1/models/ctr:predict", json={"instances": page.instances})
                        assert answer.status_code == 200, answer.text
                        sent += 1
                    clock.advance(timedelta(minutes=5))
                deadline = time.monotonic() + 60  # the log writer flushes in the background: wait, generously
                while sum(r.get("role") == "primary" for r in read_prediction_log(ws.home / "prediction_log")) < sent:
                    assert time.monotonic() < deadline, "the prediction log did not get every request"
                    time.sleep(0.05)
                report = monitor.run_once()
                return {s["slo"]: s for s in report["slos"]}

            for _ in range(3):  # clean traffic: every row complete, never an alert
                slos = serve_hour(clean)
                assert slos["ctr-inputs"]["state"] == "ok", slos["ctr-inputs"]
                assert slos["ctr-inputs"]["period"]["good"] == slos["ctr-inputs"]["period"]["total"] > 0
            assert not [a for a in AlertStore.open(monitor.alerts_path).alerts if a.slo == "ctr-inputs"]

            fault_start = clock.now()
            states = []
            while clock.now() - fault_start < timedelta(hours=2) and "page" not in states:
                slos = serve_hour(faulty)
                states.append(slos["ctr-inputs"]["state"])
                assert slos["ctr-prices"]["state"] == "ok"  # prices stay: a narrowed SLO does not burn
            assert states == ["page"], states  # the first hourly pass after the fault began: within 2 hours
            page = slos["ctr-inputs"]["alerts"][0]
            assert page["firing"] and page["short"]["total"] > 0 and page["short"]["burn_rate"] > 14.4
            fired = [a for a in AlertStore.open(monitor.alerts_path).alerts if a.slo == "ctr-inputs"]
            assert ("page", "firing") in {(a.alert, a.state) for a in fired}  # the ticket pair fires as well
        app.state.serving.close()

        # the summaries say it too: the rows of the fault's hours lack exactly the partner columns
        summaries = traffic.window_inputs(ws, "ctr", fault_start.timestamp(), clock.now().timestamp())
        assert sum(s.incomplete_rows for s in summaries) > 0
        missing = {frozenset({c for k in s.keysets for c in k} - set(k)) for s in summaries for k in s.keysets}
        assert missing == {frozenset(), frozenset(PARTNER)}
        hours = traffic.window_summary(ws, "ctr", fault_start, clock.now()).summary
        assert hours.incomplete_rows == sum(s.incomplete_rows for s in summaries) > 0
        assert hours.to_dict()["incomplete_rows"] == hours.incomplete_rows
    finally:
        ws.close()


def test_summaries_count_rows_with_an_empty_input_per_minute_and_skip_personal_columns(tmp_path) -> None:
    clock = SimulatedClock(WORLD.start)
    ws = open_workspace(Settings.for_home(tmp_path / "home"), clock)
    try:
        log = ws.home / "prediction_log"
        log.mkdir()
        t = clock.now().timestamp()  # midnight: the records below share the hour before it
        at = traffic.iso_utc
        records = [  # the data plane drops nulls (absent = empty); other writers may log None: the same
            {"time": at(t - 600), "role": "primary", "model": "ctr", "version": 1, "status": 200,
             "predictions": [.1, .2], "instances": [{"fiber": None, "price": 3.0, "user_id": None},
                                                    {"fiber": "wool", "price": 2.0, "user_id": "u1"}]},
            {"time": at(t - 30), "role": "primary", "model": "ctr", "version": 1, "status": 200, "predictions": [.1],
             "instances": [{"fiber": "wool", "email": "someone@example.com"}]},
            {"time": at(t - 30), "role": "shadow", "model": "ctr", "version": 2, "status": 200, "predictions": [.1, .2],
             "instances": [{"price": 1.0}, {"fiber": "acrylic", "price": 1.0}]},
        ]
        lines = [json.dumps(r) for r in records]  # the log's line format: "<crc32 hex> <json>"
        (log / "seg-000001.log").write_text("".join(f"{zlib.crc32(line.encode()):08x} {line}\n" for line in lines))
        traffic.update(ws)
        (primary,) = traffic.window_inputs(ws, "ctr", t - 3600, t + 1)
        assert sorted(primary.keysets) == [("fiber",), ("fiber", "price"), ("price",)]  # user_id, email: never
        assert primary.events() == {int((t - 600) // 60): (1, 2), int((t - 30) // 60): (0, 1)}
        assert primary.events(columns={"fiber"}) == {int((t - 600) // 60): (1, 2), int((t - 30) // 60): (1, 1)}
        (shadow,) = traffic.window_inputs(ws, "ctr", t - 3600, t + 1, role="shadow")
        assert shadow.incomplete_rows == 1

        spec = parse_slo_file({"service": "s", "slos": [
            {"name": "in", "sli": "input_completeness", "model": "ctr", "objective": 99, "window": "7d"}]})
        counts = WorkspaceSLISource(ws, spec, clock=clock).counts(spec.slos[0], until_s=t + 60)
        assert counts.window(end_s=t + 60, window_s=3600) == (1, 3)  # primary rows only
    finally:
        ws.close()


def test_a_summary_written_before_inputs_were_counted_reads_as_no_input_events() -> None:
    old = traffic.TrafficSummary(requests=3, statuses={"200": 3}, rows=5).to_dict()
    del old["inputs"], old["incomplete_rows"]
    summary = traffic.TrafficSummary.from_dict(old)
    assert summary.incomplete_rows == 0 and summary.inputs.events() == {} and summary.rows == 5
    assert InputCounts.from_dict(None).minutes == {}


def test_key_sets_past_the_cap_count_as_incomplete_never_as_complete() -> None:
    counts = InputCounts()
    for i in range(MAX_KEYSETS + 3):
        counts.add(1, {("a", "b", f"x{i}"): 1})
    assert len(counts.keysets) == MAX_KEYSETS and counts.minutes[1][OVERFLOW] == 3
    assert counts.events(columns={"a"}) == {1: (MAX_KEYSETS, MAX_KEYSETS + 3)}


@pytest.mark.parametrize(("params", "field"), [
    ({"columns": "fiber"}, "params.columns"),
    ({"columns": []}, "params.columns"),
    ({"columns": ["fiber", 3]}, "params.columns"),
    ({"colums": ["fiber"]}, "colums"),
])
def test_a_bad_param_is_refused_naming_the_field(params, field) -> None:
    with pytest.raises(ConfigError) as err:
        parse_slo_file({"service": "s", "slos": [
            {"name": "ctr-inputs", "sli": "input_completeness", "model": "ctr", "objective": 99, "window": "28d",
             "params": params}]})
    assert field in str(err.value) and "ctr-inputs" in str(err.value)


def test_rows_of_a_request_refused_for_a_missing_input_count_but_other_refusals_do_not(tmp_path) -> None:
    """A required feature emptied upstream gets the request refused (422), not served: the SLI must still see it."""
    clock = SimulatedClock(WORLD.start)
    ws = open_workspace(Settings.for_home(tmp_path / "home"), clock)
    try:
        log = ws.home / "prediction_log"
        log.mkdir()
        t = clock.now().timestamp()
        at = traffic.iso_utc
        records = [
            {"time": at(t - 120), "role": "primary", "model": "ctr", "version": 1, "status": 200,
             "predictions": [.1], "instances": [{"fiber": "wool", "price": 2.0}]},
            {"time": at(t - 60), "role": "primary", "model": "ctr", "status": 422,  # the partner row lacks fiber
             "instances": [{"fiber": "wool", "price": 2.0}, {"price": 3.0}, {"fiber": "silk", "price": 4.0}]},
            {"time": at(t - 60), "role": "primary", "model": "ctr", "status": 422, "instances": "not a list"},
            {"time": at(t - 60), "role": "rejected", "model": "ctr", "status": 422, "count": 50},
        ]
        lines = [json.dumps(r) for r in records]
        (log / "seg-000001.log").write_text("".join(f"{zlib.crc32(line.encode()):08x} {line}\n" for line in lines))
        traffic.update(ws)
        spec = parse_slo_file({"service": "s", "slos": [
            {"name": "in", "sli": "input_completeness", "model": "ctr", "objective": 99, "window": "7d"}]})
        counts = WorkspaceSLISource(ws, spec, clock=clock).counts(spec.slos[0], until_s=t + 60)
        assert counts.window(end_s=t + 60, window_s=3600) == (3, 4)  # one served row, three refused, one bad
    finally:
        ws.close()
