"""The prediction log: durable batches, torn tails detected, drops counted, personal data hashed or dropped."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

import pytest

from yarnit.core import SimulatedClock
from yarnit.serving import LogPolicy, PredictionLog, scan_prediction_log
from yarnit.serving.predlog import prune_prediction_log


def test_flushed_records_are_on_disk_in_order(tmp_path: Path, clock: SimulatedClock) -> None:
    log = PredictionLog(tmp_path / "log", clock, flush_interval_s=0.01)
    for i in range(250):
        assert log.append({"request_id": f"r{i}", "status": 200 if i % 5 else 422, "time": clock.now()})
    assert log.flush()
    stats = log.stats()
    assert (stats.enqueued, stats.flushed_records, stats.flushed_seq, stats.dropped) == (250, 250, 250, 0)
    scan = scan_prediction_log(tmp_path / "log")
    assert [r["seq"] for r in scan.records] == list(range(1, 251))
    assert sum(r["status"] == 422 for r in scan.records) == 50  # failures are logged, not only 200s
    assert scan.records[0]["time"] == "2026-01-05T09:00:00+00:00"
    log.close()


def test_a_torn_tail_is_skipped_and_counted(tmp_path: Path, clock: SimulatedClock) -> None:
    log = PredictionLog(tmp_path / "log", clock, flush_interval_s=0.01)
    for i in range(10):
        log.append({"request_id": f"r{i}"})
    log.close()
    segment = next((tmp_path / "log").glob("seg-*.log"))
    with open(segment, "ab") as stream:
        stream.write(b'0badc0de {"request_id": "half-writ')
    scan = scan_prediction_log(tmp_path / "log")
    assert len(scan.records) == 10 and scan.torn_tails == 1 and scan.corrupt_lines == 0


def test_a_flipped_byte_is_detected(tmp_path: Path, clock: SimulatedClock) -> None:
    log = PredictionLog(tmp_path / "log", clock)
    for i in range(3):
        log.append({"request_id": f"r{i}", "prediction": 0.25})
    log.close()
    segment = next((tmp_path / "log").glob("seg-*.log"))
    data = bytearray(segment.read_bytes())
    data[data.index(b"0.25")] = ord("9")
    segment.write_bytes(bytes(data))
    scan = scan_prediction_log(tmp_path / "log")
    assert len(scan.records) == 2 and scan.corrupt_lines == 1


def test_a_full_queue_drops_and_counts_instead_of_blocking(tmp_path: Path, clock: SimulatedClock) -> None:
    log = PredictionLog(tmp_path / "log", clock, max_queue=5, flush_interval_s=60.0)
    accepted = [log.append({"i": i}) for i in range(8)]
    assert accepted == [True] * 5 + [False] * 3
    assert log.stats().dropped == 3
    log.close()  # close writes what was queued
    assert len(scan_prediction_log(tmp_path / "log").records) == 5


def test_personal_data_is_hashed_with_the_key_or_dropped(tmp_path: Path, clock: SimulatedClock) -> None:
    keyed = PredictionLog(tmp_path / "keyed", clock, policy=LogPolicy(hmac_key=b"k" * 32))
    unkeyed = PredictionLog(tmp_path / "unkeyed", clock)
    for log in (keyed, unkeyed):
        log.append({"instances": [{"user_id": "alice", "email": "a@x.org", "loyalty": "gold", "fiber": "merino"}],
                    "pii": ["loyalty"], "key": "alice"})
        log.close()
    hashed = scan_prediction_log(tmp_path / "keyed").records[0]
    instance = hashed["instances"][0]
    assert instance["fiber"] == "merino"
    assert instance["user_id"].startswith("hmac-sha256:") and "alice" not in str(hashed)
    assert instance["loyalty"].startswith("hmac-sha256:")  # PII by the version's signature
    assert hashed["key"] == instance["user_id"]  # the same keyed hash joins the two
    plain = scan_prediction_log(tmp_path / "unkeyed").records[0]
    assert plain["instances"][0] == {"fiber": "merino"} and plain["key"] is None


def test_close_flushes_and_later_appends_are_counted_as_dropped(tmp_path: Path, clock: SimulatedClock) -> None:
    log = PredictionLog(tmp_path / "log", clock, flush_interval_s=60.0)
    log.append({"a": 1})
    log.close()
    assert log.stats().flushed_records == 1
    assert not log.append({"a": 2}) and log.stats().dropped == 1


def test_segments_roll_over_by_size(tmp_path: Path, clock: SimulatedClock) -> None:
    log = PredictionLog(tmp_path / "log", clock, max_segment_bytes=2_000, flush_interval_s=0.01)
    for i in range(100):
        log.append({"request_id": f"r{i}", "padding": "x" * 50})
        if i % 10 == 9:
            log.flush()
    log.close()
    assert len(list((tmp_path / "log").glob("seg-*.log"))) > 1
    assert [r["seq"] for r in scan_prediction_log(tmp_path / "log").records] == list(range(1, 101))


def test_the_writer_writes_once_per_interval_under_steady_traffic(tmp_path: Path, clock: SimulatedClock) -> None:
    log = PredictionLog(tmp_path / "log", clock, flush_interval_s=0.05)
    acknowledged: set[int] = set()
    started = time.monotonic()
    n = 0
    # Until the writer has acknowledged a few batches (a generous bound for a loaded machine), not a fixed time.
    while len(acknowledged - {0}) < 4 and (elapsed := time.monotonic() - started) < 20:
        if n < elapsed * 100_000:  # a steady 100k records/s: more than one per write + fdatasync
            n += 1
            assert log.append({"request_id": f"r{n}", "status": 200})
            if n % 20 == 0:
                acknowledged.add(log.stats().flushed_seq)
    batches = (time.monotonic() - started) / 0.05
    log.close()
    # One batch per interval is acknowledged while records keep coming: the log keeps up (the records
    # are durable within an interval or two), and records that arrive during a write wait for the next
    # interval instead of getting a write and an fdatasync of their own.
    assert 3 <= len(acknowledged - {0}) <= batches + 3, len(acknowledged)
    assert [r["seq"] for r in scan_prediction_log(tmp_path / "log").records] == list(range(1, n + 1))


def _rejected(clock: SimulatedClock, i: int, status: int, error: str) -> dict:  # type: ignore[type-arg]
    """A record as the service writes it for a request answered without a prediction."""
    return {"request_id": f"{status}-{i}", "time": clock.now(), "role": "primary", "protocol": "v1",
            "model": "ctr", "status": status, "latency_ms": 0.5 + i % 3, "error": error}


def test_shed_and_rejected_requests_past_their_exemplars_are_counted_per_window(tmp_path: Path,
                                                                               clock: SimulatedClock) -> None:
    log = PredictionLog(tmp_path / "log", clock, flush_interval_s=0.01, exemplars=2, aggregate_window_s=10.0)
    for i in range(1_000):  # an overload: one answer for every hundred sheds
        log.append(_rejected(clock, i, 503, "queue"))
        if i % 100 == 0:
            log.append({"request_id": f"ok-{i}", "time": clock.now(), "role": "primary", "status": 200,
                        "predictions": [0.5]})
    for i in range(5):
        log.append(_rejected(clock, i, 404, "NotFound: nope"))
    log.append({"request_id": "bug", "time": clock.now(), "role": "primary", "status": 500, "error": "KeyError"})
    clock.advance(11)  # the window is over: the writer writes its counts by itself
    deadline = time.monotonic() + 10
    while not any(r.get("role") == "rejected" for r in scan_prediction_log(tmp_path / "log").records):
        assert time.monotonic() < deadline, "the window's counts were never written"
        time.sleep(0.02)
    log.append(_rejected(clock, 0, 503, "queue"))  # a new window: an exemplar again
    log.close()
    records = scan_prediction_log(tmp_path / "log").records
    one_by_one = [r["request_id"] for r in records if r.get("role") == "primary"]
    assert one_by_one == ["503-0", "ok-0", "503-1"] + [f"ok-{i}" for i in range(100, 1_000, 100)] + \
        ["404-0", "404-1", "bug", "503-0"]  # answers and 500s always; two exemplars of each rejection
    counts = {(r["status"], r["error"]): r for r in records if r.get("role") == "rejected"}
    assert set(counts) == {(503, "queue"), (404, "NotFound: nope")}
    shed = counts[(503, "queue")]
    assert (shed["count"], shed["logged"], shed["model"], shed["protocol"]) == (998, 2, "ctr", "v1")
    assert (shed["first_request_id"], shed["last_request_id"]) == ("503-2", "503-999")
    assert shed["latency_ms_max"] == 2.5 and shed["window_start"] < shed["window_end"]
    assert counts[(404, "NotFound: nope")]["count"] == 3
    assert log.stats().aggregated == 1_001 and log.stats().dropped == 0


def test_rejections_of_many_names_are_bounded_per_window(tmp_path: Path, clock: SimulatedClock) -> None:
    log = PredictionLog(tmp_path / "log", clock, exemplars=5, max_exemplars=50)
    for i in range(5_000):  # a scanner: every request names another model
        log.append(_rejected(clock, i, 404, f"NotFound: m{i}"))
    log.close()
    records = scan_prediction_log(tmp_path / "log").records
    assert sum(r.get("role") == "primary" for r in records) == 50
    assert sum(r["count"] for r in records if r.get("role") == "rejected") == 4_950
    assert len(records) < 50 + 2_100  # at most 2 × MAX_WINDOW_KEYS count records, whatever the names


def _segments(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("seg-*.log"))


def test_prune_deletes_old_segments_and_never_one_a_live_writer_holds(tmp_path: Path, clock: SimulatedClock) -> None:
    directory = tmp_path / "log"
    log = PredictionLog(directory, clock, max_segment_bytes=1, flush_interval_s=0.01)
    for day in range(4):  # one segment per day (every flush rotates at this size)
        log.append({"request_id": f"d{day}", "time": clock.now(), "role": "primary", "status": 200})
        assert log.flush()
        clock.advance(86_400)
    log.close()
    (directory / "seg-plog_0000000000AAAAAAAAAAAAAAAA-000001.log").write_bytes(b"")  # an empty, older run
    before = _segments(directory)
    assert len(before) == 5
    live = PredictionLog(directory, clock, flush_interval_s=0.01)  # a running server: it holds its segment's flock
    live.append({"request_id": "live", "time": clock.now() - timedelta(days=30), "role": "primary", "status": 200})
    assert live.flush()
    try:
        result = prune_prediction_log(directory, older_than=clock.now() - timedelta(days=2, hours=12))
        # the empty run (no record counts as old) and days 0 and 1 go; days 2 and 3 are newer than the cutoff;
        # the live segment is older but its writer holds it
        assert result.deleted == before[:3] and result.live_kept == 1
        assert [r["request_id"] for r in scan_prediction_log(directory).records] == ["d2", "d3", "live"]
        dry = prune_prediction_log(directory, max_total_bytes=1, dry_run=True)
        assert dry.deleted == before[3:] and _segments(directory)[:2] == before[3:]  # reported, not deleted
        by_size = prune_prediction_log(directory, max_total_bytes=1)
        assert by_size.deleted == before[3:] and by_size.live_kept == 1  # the oldest first; the live one stays
    finally:
        live.close()


def test_the_log_applies_its_retention_as_it_rotates(tmp_path: Path, clock: SimulatedClock) -> None:
    directory = tmp_path / "log"
    log = PredictionLog(directory, clock, max_segment_bytes=1, flush_interval_s=0.01, retention_s=3 * 3600.0)
    for hour in range(6):
        log.append({"request_id": f"h{hour}", "time": clock.now(), "role": "primary", "status": 200})
        assert log.flush()
        clock.advance(3600)
    log.close()
    assert [r["request_id"] for r in scan_prediction_log(directory).records] == ["h2", "h3", "h4", "h5"]
    assert log.stats().pruned_segments == 2


def test_a_full_disk_backs_off_reuses_its_segment_and_loses_nothing(tmp_path: Path, clock: SimulatedClock) -> None:
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full (writes to it fail with ENOSPC)")
    directory = tmp_path / "log"
    log = PredictionLog(directory, clock, max_segment_bytes=1, flush_interval_s=0.01)  # each batch rotates
    log.append({"request_id": "r0"})
    assert log.flush()
    (first,) = _segments(directory)
    run = first.rsplit("-", 1)[0]
    full = [directory / f"{run}-{n:06d}.log" for n in range(2, 40)]
    for path in full:  # every next segment is on a full disk
        path.symlink_to("/dev/full")
    for i in range(1, 6):
        log.append({"request_id": f"r{i}"})
    deadline = time.monotonic() + 20
    while getattr(log, "write_failures", 0) < 4 and log.segments < 6:
        assert time.monotonic() < deadline, "the writer never retried"
        clock.advance(10)  # past any back-off
        time.sleep(0.02)
    assert log.segments == 2, "a new segment file was opened for each failed write"
    assert log.stats().lost == 0 and log.stats().flushed_records == 1
    full[0].unlink()  # space is back
    clock.advance(10)
    assert log.flush()
    log.close()
    for path in full[1:]:
        path.unlink()  # (reading /dev/full never ends)
    assert [r["request_id"] for r in scan_prediction_log(directory).records] == [f"r{i}" for i in range(6)]
    assert full[0].is_file() and not full[0].is_symlink()  # the same segment, rewritten once there was room


def test_without_a_key_personal_fields_are_dropped_and_the_rest_keep_their_order() -> None:
    """The keyless policy drops in one comprehension (issue 18, h38): the same dict, field order included, as
    the field-by-field loop it replaced, for declared and extra personal fields."""
    instance = {"session_id": "s1", "product_id": "p9", "user_id": "u7", "price_usd": 12.5, "name": None,
                "country": "ES", "email": "a@b"}
    policy = LogPolicy()
    out = policy.apply(instance, ("country",))
    assert list(out.items()) == [("product_id", "p9"), ("price_usd", 12.5)]
    assert list(policy.apply(instance).items()) == [("product_id", "p9"), ("price_usd", 12.5), ("country", "ES")]
    keyed = LogPolicy(hmac_key=b"k" * 32).apply(instance)
    assert list(keyed) == list(instance) and keyed["user_id"].startswith("hmac-sha256:")
    clean = {"product_id": "p9"}
    assert policy.apply(clean) is clean  # nothing personal: not copied
