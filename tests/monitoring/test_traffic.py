"""Summaries of served traffic from a real prediction log: incremental, crash-safe, mergeable; drift on them."""

from __future__ import annotations

import json
import os
import zlib
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from yarnit.core.clock import SimulatedClock
from yarnit.core.errors import InvalidInput, NotFound
from yarnit.data import Datasets
from yarnit.monitoring import traffic
from yarnit.monitoring.workspace import prediction_log_dir
from yarnit.registry import ArtifactFormat, ModelRegistry, dump_sklearn
from yarnit.serving.predlog import LogPolicy, PredictionLog, erase_from_prediction_log

START = datetime(2026, 3, 1, 10, 0, tzinfo=timezone.utc)
COUNTRIES = ("fr", "de", "us", "uk")


class Traffic:
    """Writes requests with the real PredictionLog writer (policy: user_id hashed with a key) on a simulated clock."""

    def __init__(self, home: Path, clock: SimulatedClock) -> None:
        self.clock = clock
        self.log = PredictionLog(prediction_log_dir(home), clock, fsync=False, aggregate_window_s=1e9,
                                 policy=LogPolicy(hmac_key=b"k" * 32))
        self.n = 0
        self.rng = np.random.default_rng(7)

    def requests(self, n: int, *, shift: float = 0.0, version: int = 1, status: int = 200, at=None,
                 drop_country: str | None = None) -> list[dict]:
        rows = []
        for _ in range(n):
            self.n += 1
            country = COUNTRIES[self.n % len(COUNTRIES)]
            if country == drop_country:
                country = "fr"
            row = {"price": float(self.rng.normal(10.0 + shift, 2.0)), "country": country,
                   "device": "mobile" if self.n % 3 else "web", "qty": int(self.rng.integers(1, 5)),
                   "user_id": f"user-{self.n}"}
            record = {"request_id": f"r{self.n}", "time": at or self.clock.now(), "role": "primary",
                      "protocol": "v1", "model": "ctr", "status": status, "latency_ms": 5.0,
                      "instances": [row]}
            if status == 200:
                record.update(version=version, alias="production", served_by="model",
                              predictions=[float(1 / (1 + np.exp(-(row["price"] - 10) / 2)))])
            rows.append(dict(row))
            self.log.append(record)
        assert self.log.flush()
        return rows


@pytest.fixture
def home(sqlite_ws):
    return Path(sqlite_ws.home)


def _update(ws, clock, **kw):
    return traffic.update(ws, clock=clock, **kw)


def _segments(home: Path) -> list[Path]:
    return sorted(prediction_log_dir(home).glob("seg-*.log"))


def test_incremental_reads_only_new_bytes_and_counts_exactly(sqlite_ws, home):
    clock = SimulatedClock(START)
    t = Traffic(home, clock)
    t.requests(300)
    first = _update(sqlite_ws, clock)
    size = sum(p.stat().st_size for p in _segments(home))
    assert first["records"] == 300 and first["bytes"] == size and first["windows_touched"] == 1
    again = _update(sqlite_ws, clock)
    assert again["records"] == 0 and again["bytes"] == 0  # nothing new: nothing read
    clock.advance(3600)
    t.requests(200, status=200)
    t.requests(5, status=500)
    second = _update(sqlite_ws, clock)
    assert second["bytes"] == sum(p.stat().st_size for p in _segments(home)) - size
    assert second["records"] == 205
    got = traffic.window_summary(sqlite_ws, "ctr", START, START + timedelta(hours=2)).summary
    assert got.requests == 505 and got.rows == 500 and got.statuses == {"200": 500, "500": 5}
    assert got.features["price"].numeric.count == 500 and got.prediction.numeric.count == 500
    # personal data never reaches a summary: the keyed hash of user_id is recognised and skipped
    assert "user_id" not in got.features and got.private_columns == {"user_id"}
    blob = "".join(p.read_text() for p in (traffic.traffic_dir(home) / "windows").glob("*/*.json"))
    assert "user-1" not in blob and "hmac-sha256" not in blob


def test_crash_between_window_files_and_checkpoint_counts_nothing_twice(sqlite_ws, home):
    clock = SimulatedClock(START)
    t = Traffic(home, clock)
    t.requests(100)
    _update(sqlite_ws, clock)
    t.requests(50)
    with pytest.raises(RuntimeError, match="fault injected"):
        _update(sqlite_ws, clock, fault="after_windows")
    # the new window file exists but is not committed: a reader still sees the old state
    assert traffic.window_summary(sqlite_ws, "ctr", START, START + timedelta(hours=1)).summary.requests == 100
    model_dir = next((traffic.traffic_dir(home) / "windows").iterdir())
    (model_dir / ".tmp-123.json.99.abcd").write_text("{")  # what a kill -9 inside an atomic write leaves
    report = _update(sqlite_ws, clock)
    assert report["records"] == 50 and report["garbage_files"] == 2
    assert traffic.window_summary(sqlite_ws, "ctr", START, START + timedelta(hours=1)).summary.requests == 150
    files = list((traffic.traffic_dir(home) / "windows").glob("*/*.json"))
    assert len(files) == 1  # superseded epochs removed


def test_an_update_lists_the_window_files_once_and_deletes_the_files_its_commit_superseded(sqlite_ws, home,
                                                                                           monkeypatch):
    """The listing of every kept window grew with the month and ran twice a pass (h49): after the commit, only the
    files it superseded are deleted, by name. What is left on disk is the same: the files the index names."""
    clock = SimulatedClock(START)
    t = Traffic(home, clock)
    t.requests(40)
    clock.advance(3600)
    t.requests(40)  # a second hour: two kept windows
    _update(sqlite_ws, clock)
    windows = traffic.traffic_dir(home) / "windows"
    stray = next(windows.iterdir()) / f"{int(START.timestamp())}-e99.json"  # a crashed writer's, named by no index
    stray.write_text("{}")
    t.requests(10)  # the second hour again: its window is rewritten under a new epoch
    listed: list[str] = []
    entries = traffic._entries

    def counting(directory):
        listed.append(str(directory))
        return entries(directory)

    monkeypatch.setattr(traffic, "_entries", counting)
    report = _update(sqlite_ws, clock)
    model_dirs = [d for d in listed if Path(d).parent == windows]
    assert len(model_dirs) == 1, listed  # base: once before the read, once more after the commit
    assert report["garbage_files"] == 1 and not stray.exists()
    state = json.loads((traffic.traffic_dir(home) / "state.json").read_text())
    named = {f"{w}-e{e}.json" for w, e in state["index"]["ctr"].items()}
    assert {p.name for p in windows.glob("*/*.json")} == named and len(named) == 2
    assert traffic.window_summary(sqlite_ws, "ctr", START, START + timedelta(hours=2)).summary.requests == 90


def test_torn_tail_waits_until_whole_and_out_of_order_or_untimed_records_are_counted(sqlite_ws, home):
    clock = SimulatedClock(START)
    t = Traffic(home, clock)
    t.requests(10)
    clock.advance(7200)
    t.requests(4, at=START + timedelta(minutes=30))  # late records land in their own hour
    t.requests(3, at=clock.now() + timedelta(days=2))  # clock-skewed: far in the future
    segment = _segments(home)[-1]
    payload = json.dumps({"request_id": "x", "role": "primary", "model": "ctr", "status": 200}).encode()
    line = b"%08x %s\n" % (zlib.crc32(payload), payload)
    with open(segment, "ab") as f:
        f.write(line[:20])  # a torn line, as a crash leaves it
    report = _update(sqlite_ws, clock)
    assert report["records"] == 17 and report["skipped"] == {"future": 3}
    with open(segment, "ab") as f:
        f.write(line[20:])
    report = _update(sqlite_ws, clock)
    assert report["records"] == 1 and report["skipped"] == {"no_time": 1}
    first_hour = traffic.window_summary(sqlite_ws, "ctr", START, START + timedelta(hours=1)).summary
    assert first_hour.requests == 14
    assert traffic.status(sqlite_ws)["skipped"] == {"future": 3, "no_time": 1}


def test_erasure_rewritten_segment_is_not_read_again(sqlite_ws, home):
    clock = SimulatedClock(START)
    t = Traffic(home, clock)
    t.requests(40)
    t.log.close()
    _update(sqlite_ws, clock)
    hashed = LogPolicy(hmac_key=b"k" * 32).pseudonymise("user-3")
    erased = erase_from_prediction_log(prediction_log_dir(home), ["user-3", hashed])
    assert erased.records_removed == 1 and erased.segments_rewritten == 1
    report = _update(sqlite_ws, clock)
    assert report["rewritten_segments"] == 1 and report["records"] == 0
    assert traffic.window_summary(sqlite_ws, "ctr", START, START + timedelta(hours=1)).summary.requests == 40


def test_hourly_merge_equals_one_summary_of_all_rows(sqlite_ws, home):
    clock = SimulatedClock(START)
    t = Traffic(home, clock)
    rows = []
    for _hour in range(5):
        rows += t.requests(400, shift=float(_hour))
        clock.advance(3600)
    _update(sqlite_ws, clock)
    merged = traffic.window_summary(sqlite_ws, "ctr", START, START + timedelta(hours=5))
    assert merged.windows == 5
    whole = traffic.ColumnSummary()
    whole.add([r["price"] for r in rows])
    got = merged.summary.features["price"]
    assert got.rows == whole.rows == 2000 and got.numeric.count == 2000
    assert got.numeric.total == pytest.approx(whole.numeric.total, rel=1e-12)
    assert (got.numeric.min, got.numeric.max) == (whole.numeric.min, whole.numeric.max)
    values = np.sort([r["price"] for r in rows])
    levels = np.linspace(0.01, 0.99, 99)
    for level, q in zip(levels, got.numeric.quantiles(levels), strict=True):
        rank = np.searchsorted(values, q, side="right") / values.size
        assert abs(rank - level) <= traffic.RANK_ERROR + 1 / values.size  # within the stated bound
    countries = merged.summary.features["country"].categorical
    assert countries.counts == {c: sum(r["country"] == c for r in rows) for c in COUNTRIES} and countries.exact
    assert merged.summary.slices["device"].counts == {"mobile": sum(r["device"] == "mobile" for r in rows),
                                                      "web": sum(r["device"] == "web" for r in rows)}


def test_categorical_counts_are_capped_with_an_other_bucket():
    summary = traffic.ColumnSummary()
    summary.add([f"v{i}" for i in range(traffic.TOP_K + 50)] + ["v0"] * 10)
    cat = summary.categorical
    assert len(cat.counts) == traffic.TOP_K and cat.counts["v0"] == 11 and cat.other == 50
    assert 40 <= cat.overflow_distinct <= 60
    again = traffic.CategoricalSummary.from_dict(json.loads(json.dumps(cat.to_dict())))
    assert again.counts == cat.counts and again.overflow_distinct == cat.overflow_distinct
    assert cat.exact  # every kept count is whole so far
    evicted = next(f"v{i}" for i in range(traffic.TOP_K + 50) if f"v{i}" not in cat.counts)
    cat.add([evicted])  # folded into other before: its kept count would now be short
    assert not cat.exact


def _register(ws, frame: pd.DataFrame, **metrics):
    dataset = Datasets(ws).ingest_frame("clicks", frame, source="day1")
    model = dump_sklearn(LogisticRegression().fit([[0.0], [1.0]], [0, 1]))
    return ModelRegistry(ws).register("ctr", model, ArtifactFormat.SKOPS, dataset_version_ids=[dataset.id],
                                      signature={"inputs": {"price": "double", "country": "string"}},
                                      metrics=metrics)


def _training_frame(n=3000):
    rng = np.random.default_rng(1)
    return pd.DataFrame({"price": rng.normal(10.0, 2.0, n), "country": [COUNTRIES[i % 4] for i in range(n)],
                         "clicked": rng.integers(0, 2, n)})


def test_drift_on_a_planted_shift_against_training_data(sqlite_ws, home):
    clock = SimulatedClock(START)
    _register(sqlite_ws, _training_frame())
    t = Traffic(home, clock)
    t.requests(1500)
    clock.advance(3600)
    t.requests(1500, shift=4.0, drop_country="uk")
    clock.advance(3600)
    _update(sqlite_ws, clock)
    calm = traffic.drift_report(sqlite_ws, "ctr", window="1h", at=START + timedelta(hours=1))
    assert calm["state"] == "no_drift" and calm["reference"]["dataset"] == "clicks:v1"
    assert {c["column"]: c["state"] for c in calm["columns"]} == {"price": "no_drift", "country": "no_drift",
                                                                  "device": "no_data", "qty": "no_data"}
    assert [c["detail"]["reason"] for c in calm["columns"] if c["column"] == "qty"] == [
        "the reference has no values of this column"]  # served but not in the training data: said, not hidden
    shifted = traffic.drift_report(sqlite_ws, "ctr", window="1h", at=START + timedelta(hours=2))
    columns = {c["column"]: c for c in shifted["columns"]}
    assert shifted["state"] == "drift" and columns["price"]["state"] == "drift"
    assert columns["country"]["state"] == "drift"  # uk vanished
    low, high = columns["price"]["detail"]["effect_interval"]
    assert low <= columns["price"]["value"] <= high and columns["price"]["detail"]["rank_error"][1] > 0
    assert shifted["prediction"]["state"] == "drift"  # against the previous hour
    uk = [v for v in shifted["slices"]["country"]["values"] if v["slice"] == "uk"][0]
    assert uk["state"] == "drift" and shifted["slices"]["country"]["against"] == "previous_window"
    assert "user_id" not in columns and shifted["private_columns"] == ["user_id"]
    assert shifted["summaries"]["age_s"] == 0.0


def test_a_window_the_fallback_answered_most_follows_the_model_version_that_served(sqlite_ws, home):
    """Fallback answers carry version 0 (the owner's heuristic): drift is still judged against the training data
    of the model version that served, not refused because "version 0" is no model version."""
    clock = SimulatedClock(START)
    _register(sqlite_ws, _training_frame())
    t = Traffic(home, clock)
    t.requests(300)
    t.requests(900, version=0)  # a partner outage's hour: the fall-back switch answered most pages
    clock.advance(3600)
    _update(sqlite_ws, clock)
    report = traffic.drift_report(sqlite_ws, "ctr", window="1h", at=START + timedelta(hours=1))
    assert report["reference"]["dataset"] == "clicks:v1" and report["reference"]["model_version"] == 1
    assert report["state"] == "no_drift"


def test_drift_against_an_earlier_window_and_no_data(sqlite_ws, home):
    clock = SimulatedClock(START)
    t = Traffic(home, clock)
    t.requests(800)
    clock.advance(3600)
    t.requests(800)
    clock.advance(3 * 3600)
    _update(sqlite_ws, clock)
    same = traffic.drift_report(sqlite_ws, "ctr", window="1h", at=START + timedelta(hours=2),
                                reference_window="1h")
    assert same["state"] == "no_drift" and same["reference"]["kind"] == "window"
    empty = traffic.drift_report(sqlite_ws, "ctr", window="1h", at=START + timedelta(hours=4))
    assert empty["state"] == "no_data" and "no served traffic" in empty["reason"]
    with pytest.raises(NotFound, match="nope"):
        traffic.drift_report(sqlite_ws, "nope", window="1h")
    with pytest.raises(InvalidInput, match="--window"):
        traffic.drift_report(sqlite_ws, "ctr", window="soon")


def test_dask_local_cluster_gives_the_local_summaries(sqlite_ws, home, tmp_path):
    from distributed import Client, LocalCluster

    clock = SimulatedClock(START)
    t = Traffic(home, clock)
    t.requests(300)
    t.log.close()
    t2 = Traffic(home, clock)  # a second run: a second segment
    clock.advance(3600)
    t2.requests(200, shift=1.0)
    local = _update(sqlite_ws, clock)
    expected = traffic.window_summary(sqlite_ws, "ctr", START, START + timedelta(hours=2)).summary
    os.rename(traffic.traffic_dir(home), tmp_path / "local-summaries")
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        # the workspace's setting (YARNIT_DASK_SCHEDULER) sends the segments to the cluster
        sqlite_ws.settings = replace(sqlite_ws.settings, dask_scheduler=cluster.scheduler_address)
        remote = _update(sqlite_ws, clock)
        with Client(cluster) as client:
            assert any("summarize_segment" in str(key) for key in client.run_on_scheduler(
                lambda dask_scheduler: list(dask_scheduler.task_prefixes)))
    assert remote["dask"] and remote["records"] == local["records"] == 500 and remote["segments_read"] == 2
    got = traffic.window_summary(sqlite_ws, "ctr", START, START + timedelta(hours=2)).summary

    def exact_parts(summary):  # KLL compaction is randomized: sketches are compared by their quantiles below
        data = summary.to_dict()
        for column in [*data["features"].values(), data["prediction"]]:
            if column["numeric"]:
                column["numeric"].pop("kll")
                column["numeric"]["sum"] = round(column["numeric"]["sum"], 9)
                column["numeric"]["sumsq"] = round(column["numeric"]["sumsq"], 6)
        return data

    assert exact_parts(got) == exact_parts(expected)
    levels = np.linspace(0.05, 0.95, 19)
    a, b = got.features["price"].numeric, expected.features["price"].numeric
    ranks = np.array([b.sketch.get_rank(q) for q in a.quantiles(levels)])
    assert np.all(np.abs(ranks - levels) <= 2 * traffic.RANK_ERROR)


def _line(record: dict) -> bytes:
    payload = json.dumps(record).encode()
    return b"%08x %s\n" % (zlib.crc32(payload), payload)


def test_hostile_records_are_counted_never_a_crash(sqlite_ws, home):
    clock = SimulatedClock(START)
    directory = prediction_log_dir(home)
    directory.mkdir(parents=True)
    now = START.isoformat()
    records = [
        {"role": "primary", "model": "ctr", "status": 404, "time": now},  # unknown model: not a summary
        {"role": "rejected", "model": "scan-1", "status": 404, "count": "many", "time": now},
        {"role": "primary", "model": "ctr", "version": 1, "status": 200, "time": now,
         "instances": [{"price": {"nested": 1}, "qty": [1, 2], "x" * 500: 1.0, "contact": "ann@example.com"},
                       "not a row", None],
         "predictions": [0.5, None, "x"]},
        {"role": "primary", "model": "ctr", "version": 1, "status": 200, "time": "yesterday"},
        {"role": "primary", "model": ["ctr"], "status": 200, "time": now},
        {"role": "rejected", "model": "ctr", "status": 503, "count": -5, "time": now},
    ]
    (directory / "seg-plog-x-000001.log").write_bytes(b"".join(_line(r) for r in records) + b"garbage\n")
    report = traffic.update(sqlite_ws, clock=clock)
    assert report["records"] == 6 and report["corrupt_lines"] == 1
    assert report["skipped"] == {"unknown_model": 2, "no_time": 1, "not_a_request": 1, "bad_count": 1}
    assert traffic.models(sqlite_ws) == ["ctr"]
    got = traffic.window_summary(sqlite_ws, "ctr", START, START + timedelta(hours=1)).summary
    assert got.requests == 1 and got.rows == 3 and got.features_overflow == 1
    assert got.features["price"].unsupported == 1 and got.features["qty"].unsupported == 1
    assert got.prediction.numeric.count == 1 and got.prediction.nulls == 1
    assert "contact" not in got.features and got.private_columns == {"contact"}  # an e-mail, whatever its name


def test_a_backlog_is_committed_in_rounds(sqlite_ws, home):
    clock = SimulatedClock(START)
    for _run in range(3):  # three runs of the writer: three segments
        t = Traffic(home, clock)
        t.requests(20)
        t.log.close()
    report = _update(sqlite_ws, clock, commit_bytes=1)  # commit after every segment
    assert report["segments_read"] == 3 and report["epoch"] == 3 and report["windows_touched"] == 1
    assert traffic.window_summary(sqlite_ws, "ctr", START, START + timedelta(hours=1)).summary.requests == 60
    assert len(list((traffic.traffic_dir(home) / "windows").glob("*/*"))) == 1


def test_small_chunks_and_lines_longer_than_a_chunk_read_the_same(sqlite_ws, home):
    clock = SimulatedClock(START)
    t = Traffic(home, clock)
    t.requests(30)
    t.log.close()
    segment = str(_segments(home)[0])
    whole = traffic.summarize_segment(segment, 0, now_s=clock.now().timestamp())
    chunked = traffic.summarize_segment(segment, 0, now_s=clock.now().timestamp(), chunk_bytes=100)  # < a line
    assert chunked.end == whole.end == os.path.getsize(segment) and chunked.records == whole.records == 30
    (key, a), = whole.summaries.items()
    b = chunked.summaries[key]
    assert (a.requests, a.rows, a.features["price"].numeric.total) == (b.requests, b.rows,
                                                                         b.features["price"].numeric.total)


def test_a_damaged_checkpoint_is_a_clear_error_not_a_silent_reset(sqlite_ws, home):
    from yarnit.core.errors import IntegrityError

    clock = SimulatedClock(START)
    Traffic(home, clock).requests(5)
    _update(sqlite_ws, clock)
    (traffic.traffic_dir(home) / "state.json").write_text('{"version": 1, "epoch": "x"')
    with pytest.raises(IntegrityError, match="rebuild the traffic summaries from the log"):
        _update(sqlite_ws, clock)


def test_a_summary_stays_bounded_however_many_rows():
    rng = np.random.default_rng(5)
    sizes = []
    for n in (1_000, 200_000):
        column = traffic.ColumnSummary()
        column.add(rng.normal(size=n).tolist())
        column.add([f"id-{i}" for i in range(n)])  # a high-cardinality column: top-K, other, HLL
        sizes.append(len(json.dumps(column.to_dict())))
        assert len(column.categorical.counts) <= traffic.TOP_K and column.categorical.count == n
    assert sizes[1] < 2 * sizes[0] + 10_000 and sizes[1] < 64_000  # 200x the rows, not 200x the bytes


def test_dataset_verdict_weighs_columns_by_the_versions_feature_importance(sqlite_ws, home):
    clock = SimulatedClock(START)
    _register(sqlite_ws, _training_frame(), feature_importance={"price": 0.0, "country": 1.0})
    t = Traffic(home, clock)
    t.requests(1500, shift=4.0)  # only price moves
    clock.advance(3600)
    _update(sqlite_ws, clock)
    report = traffic.drift_report(sqlite_ws, "ctr", window="1h", at=START + timedelta(hours=1))
    states = {c["column"]: c["state"] for c in report["columns"]}
    assert states["price"] == "drift" and states["country"] == "no_drift"
    assert report["dataset"]["weighted"] and report["dataset"]["share"] == 0.0 and report["state"] == "no_drift"
    assert report["reference"]["importance"] == {"price": 0.0, "country": 1.0}


def test_sketch_quantile_intervals_contain_the_exact_distances():
    from yarnit.monitoring import distances as d

    rng = np.random.default_rng(11)
    a, b = rng.lognormal(0, 1, 50_000), rng.lognormal(0.2, 1, 50_000)
    sa, sb = traffic.NumericSummary(), traffic.NumericSummary()
    sa.add(a)
    sb.add(b)
    qa, qb = sa.quantiles(d.DEFAULT_LEVELS), sb.quantiles(d.DEFAULT_LEVELS)
    errors = (traffic.RANK_ERROR, traffic.RANK_ERROR)
    w = d.wasserstein_normed_from_quantiles(qa, qb, float(np.std(a)), rank_error=errors)
    k = d.ks_from_quantiles(qa, qb, rank_error=errors)
    assert w.lower <= d.wasserstein_normed(a, b) <= w.upper
    assert k.lower <= d.ks(a, b).statistic <= k.upper
    plain = d.wasserstein_normed_from_quantiles(qa, qb, float(np.std(a)))  # the default: the exact-quantile case
    assert plain.lower >= w.lower and plain.upper <= w.upper and plain.value == w.value
    assert d.ks_from_quantiles(qa, qb).upper + 2 * traffic.RANK_ERROR == pytest.approx(k.upper) or k.upper == 1.0


def test_the_prediction_column_merged_alone_is_the_window_summarys(sqlite_ws, home):
    """The daily drift merges the serving version's predictions alone (issue 18, h36): the same summary as
    ``window_summary(..., version=...)``. A KLL merge compacts at random (two merges of the same windows give
    different sketches), so the sketch is compared through its quantiles, within the stated rank error."""
    clock = SimulatedClock(START)
    t = Traffic(home, clock)
    for hour in range(5):
        t.requests(120, version=1 + hour % 2, shift=0.3 * hour)
        t.requests(10, status=503)
        clock.advance(3600)
        _update(sqlite_ws, clock)
    end = START + timedelta(hours=5)
    levels = [i / 20 for i in range(21)]
    for version in ("1", "2", "9"):
        whole = traffic.window_summary(sqlite_ws, "ctr", START, end, version=version).summary.prediction
        alone = traffic.window_prediction(sqlite_ws, "ctr", START, end, version)
        exact = {k: v for k, v in alone.to_dict().items() if k != "numeric"}
        assert exact == {k: v for k, v in whole.to_dict().items() if k != "numeric"}
        if whole.numeric.count:
            moments = ("count", "total", "sumsq", "min", "max")
            assert [getattr(alone.numeric, m) for m in moments] == [getattr(whole.numeric, m) for m in moments]
            a, b = alone.numeric.sketch, whole.numeric.sketch
            for level in levels[1:-1]:
                assert abs(a.get_rank(b.get_quantile(level)) - level) <= 2 * traffic.kll_rank_error() + 1 / 360
        else:
            assert alone.numeric.count == 0
    assert traffic.window_prediction(sqlite_ws, "ctr", START, end, "1").rows == 360
