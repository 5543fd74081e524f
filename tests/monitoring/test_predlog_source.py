"""Serving SLI counts from a prediction log written by the real ``PredictionLog`` writer."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
import yaml
from typer.testing import CliRunner

from yarnit.cli.app import app
from yarnit.core.clock import SimulatedClock
from yarnit.monitoring.predlog_source import PredictionLogSource, classify
from yarnit.monitoring.slo import parse_slo_file
from yarnit.serving.predlog import PredictionLog, read_prediction_log, scan_prediction_log

START = datetime(2026, 3, 1, 10, 0, tzinfo=timezone.utc)
M0 = int(START.timestamp()) // 60  # the bucket index of START's minute
SLOS = {"service": "yarnit-serving", "slos": [
    {"name": "ctr-availability", "sli": "serving_availability", "model": "ctr", "objective": 99.9, "window": "30d"},
    {"name": "ctr-latency", "sli": "serving_latency", "model": "ctr", "objective": 99,
     "window": "30d", "params": {"threshold_ms": 100}},
]}


@pytest.fixture
def spec():
    return parse_slo_file(SLOS)


class Writer:
    """A real prediction log on a simulated clock; rejected windows close only on flush (deterministic)."""

    def __init__(self, directory, clock, exemplars=2):
        self.clock = clock
        self.log = PredictionLog(directory, clock, fsync=False, aggregate_window_s=1e9, exemplars=exemplars)
        self.n = 0

    def request(self, status=200, served_by="model", latency_ms=10.0, model="ctr", role="primary", at=None):
        self.n += 1
        record = {"request_id": f"r{self.n}", "time": at or self.clock.now(), "role": role, "protocol": "v1",
                  "model": model, "status": status, "latency_ms": latency_ms, "key": None}
        if status == 200:
            record.update(version=3, alias="production", served_by=served_by, predictions=[0.5])
        self.log.append(record)

    def flush(self):
        assert self.log.flush()


def series(source, spec, name):
    slo = spec.get(name)
    return source.counts(slo, until_s=START.timestamp() + 86400).buckets()


def write_two_minutes(writer):
    # minute 0: 3 answered by the model, 1 fallback, 1 server error, 1 client error (422), 1 shadow, 1 other model
    for _ in range(3):
        writer.request()
    writer.request(served_by="fallback")
    writer.request(status=500)
    writer.request(status=422)
    writer.request(status=200, served_by="shadow", role="shadow")
    writer.request(model="search")
    writer.clock.advance(60)
    # minute 1: 5 shed (2 logged as exemplars, 3 folded into one rejected record at the flush), 1 slow answer
    for _ in range(5):
        writer.request(status=503)
    writer.request(latency_ms=500.0)
    writer.flush()


def test_counts_good_and_total_per_minute_from_a_real_log(tmp_path, spec):
    clock = SimulatedClock(START)
    writer = Writer(tmp_path / "log", clock)
    write_two_minutes(writer)
    folded = [r for r in read_prediction_log(tmp_path / "log") if r["role"] == "rejected"]
    assert [(r["status"], r["count"]) for r in folded] == [(503, 3)]  # the writer really folded them

    source = PredictionLogSource(tmp_path / "log", spec, clock)
    # availability: the 422 is outside the total; fallback, 500 and every 503 (folded ones too) are bad
    assert series(source, spec, "ctr-availability") == [(M0, 3, 5), (M0 + 1, 1, 6)]
    # latency: answered 200s only (the fallback is fast), the 500 ms one is bad
    assert series(source, spec, "ctr-latency") == [(M0, 4, 4), (M0 + 1, 0, 1)]
    assert source.last.skipped == 0 and source.last.corrupt_lines == 0


def test_client_errors_leave_the_availability_total_but_429_counts_as_bad(spec):
    slo = spec.get("ctr-availability")
    base = {"role": "primary", "model": "ctr", "time": START.isoformat()}
    assert classify(slo, {**base, "status": 404}) == (0, 0)
    assert classify(slo, {**base, "status": 408}) == (0, 0)
    assert classify(slo, {**base, "status": 429}) == (0, 1)
    assert classify(slo, {**base, "role": "rejected", "status": 503, "count": 40}) == (0, 40)
    assert classify(slo, {**base, "role": "rejected", "status": 503, "count": "40"}) == (0, 0)  # hostile value


def test_a_torn_last_line_is_not_counted_until_it_is_whole(tmp_path, spec):
    clock = SimulatedClock(START)
    writer = Writer(tmp_path / "log", clock)
    writer.request()
    writer.flush()
    writer.log.close()
    segment = next((tmp_path / "log").glob("seg-*.log"))
    whole = segment.read_bytes().splitlines(keepends=True)[0]
    with segment.open("ab") as handle:
        handle.write(whole[:30])  # a crash mid-write
    assert scan_prediction_log(tmp_path / "log").torn_tails == 1
    source = PredictionLogSource(tmp_path / "log", spec, clock)
    assert series(source, spec, "ctr-availability") == [(M0, 1, 1)]
    assert source.last.corrupt_lines == 0
    with segment.open("ab") as handle:
        handle.write(whole[30:])  # the write completes (a reader raced a writer)
    assert series(source, spec, "ctr-availability") == [(M0, 2, 2)]


def test_an_incremental_read_counts_only_the_new_records_and_equals_a_full_reread(tmp_path, spec):
    clock = SimulatedClock(START)
    writer = Writer(tmp_path / "log", clock)
    write_two_minutes(writer)
    source = PredictionLogSource(tmp_path / "log", spec, clock)
    first = source.refresh()
    clock.advance(60)
    writer.request()
    writer.request(status=500)
    writer.flush()
    second = source.refresh()
    assert second.records == 2 and 0 < second.bytes_read < first.bytes_read
    assert source.refresh().records == 0  # nothing new: nothing read
    full = PredictionLogSource(tmp_path / "log", spec, clock)
    for name in ("ctr-availability", "ctr-latency"):
        assert series(source, spec, name) == series(full, spec, name)
    assert series(source, spec, "ctr-availability")[-1] == (M0 + 2, 1, 2)


def test_a_restart_from_the_saved_checkpoint_neither_double_counts_nor_skips(tmp_path, spec):
    clock = SimulatedClock(START)
    writer = Writer(tmp_path / "log", clock)
    state = tmp_path / "state" / "slo.json"
    write_two_minutes(writer)
    PredictionLogSource(tmp_path / "log", spec, clock, state_path=state).refresh()
    saved = state.read_bytes()
    clock.advance(60)
    for _ in range(4):
        writer.request()
    writer.flush()

    restarted = PredictionLogSource(tmp_path / "log", spec, clock, state_path=state)
    assert restarted.refresh().records == 4  # only what is new since the checkpoint
    full = PredictionLogSource(tmp_path / "log", spec, clock)
    expected = series(full, spec, "ctr-availability")
    assert series(restarted, spec, "ctr-availability") == expected
    assert series(PredictionLogSource(tmp_path / "log", spec, clock, state_path=state), spec,
                  "ctr-availability") == expected  # a second restart reads nothing twice

    state.write_bytes(saved)  # a crash after reading the new records but before saving: the old checkpoint
    assert series(PredictionLogSource(tmp_path / "log", spec, clock, state_path=state), spec,
                  "ctr-availability") == expected

    state.write_text("{not json")  # an unusable state is recomputed from the log, not trusted
    again = PredictionLogSource(tmp_path / "log", spec, clock, state_path=state)
    assert again.last.reset and series(again, spec, "ctr-availability") == expected


def test_out_of_order_records_land_in_their_minute_and_skewed_ones_are_skipped(tmp_path, spec):
    clock = SimulatedClock(START)
    writer = Writer(tmp_path / "log", clock)
    clock.advance(600)
    writer.request()
    writer.request(status=500, at=START)  # late: ten minutes back
    writer.request(at=START - timedelta(days=40))  # older than the 30-day ring
    writer.request(at=START + timedelta(days=365))  # a skewed clock a year ahead
    writer.flush()
    source = PredictionLogSource(tmp_path / "log", spec, clock)
    assert series(source, spec, "ctr-availability") == [(M0, 0, 1), (M0 + 10, 1, 1)]
    assert source.last.skipped == 2


def test_slo_status_reads_the_workspace_log_and_a_full_outage_pages(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("YARNIT_HOME", str(home))
    (tmp_path / "slos.yaml").write_text(yaml.safe_dump(SLOS))
    clock = SimulatedClock(START)
    writer = Writer(home / "prediction_log", clock)
    for _ in range(120):  # two healthy hours, two requests a minute
        writer.request()
        writer.request()
        clock.advance(60)
    for _ in range(10):  # then ten minutes of full outage
        writer.request(status=500)
        writer.request(status=500)
        clock.advance(60)
    writer.flush()
    runner = CliRunner()
    args = ["slo", "status", str(tmp_path / "slos.yaml"), "--at", clock.now().isoformat(), "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    states = {s["slo"]: s["state"] for s in data["slos"]}
    assert states == {"ctr-availability": "page", "ctr-latency": "ok"}
    assert data["prediction_log"]["records"] == 260
    rerun = json.loads(runner.invoke(app, args).stdout)
    assert rerun["prediction_log"]["records"] == 0 and rerun["slos"] == data["slos"]

    other = runner.invoke(app, [*args, "--log-dir", str(tmp_path / "nowhere")])
    assert other.exit_code == 1 and "No prediction log at" in other.output


def test_a_segment_rewritten_by_erasure_keeps_its_counts_and_is_not_reread(tmp_path, spec):
    from yarnit.serving.predlog import erase_from_prediction_log

    clock = SimulatedClock(START)
    writer = Writer(tmp_path / "log", clock)
    writer.request()
    writer.request(status=500)
    writer.flush()
    writer.log.close()
    state = tmp_path / "slo.json"
    source = PredictionLogSource(tmp_path / "log", spec, clock, state_path=state)
    before = series(source, spec, "ctr-availability")
    assert before == [(M0, 1, 2)]
    assert erase_from_prediction_log(tmp_path / "log", ["r1"]).records_removed == 1  # a new, shorter file
    assert series(source, spec, "ctr-availability") == before and source.last.records == 0
    restarted = PredictionLogSource(tmp_path / "log", spec, clock, state_path=state)
    assert series(restarted, spec, "ctr-availability") == before and restarted.last.records == 0
