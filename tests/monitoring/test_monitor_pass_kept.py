"""What a monitor pass keeps in memory between passes (issue 18, h36) answers what a cold pass answers.

The quality join keeps each hour's parsed summary with the text it was stored as; traffic gathers a page whose
rows hold the same names column by column. Both are checked against the plain path here.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from datetime import timedelta
from typing import Any

import numpy as np
import pytest

from yarnit.core.clock import SimulatedClock
from yarnit.core.settings import Settings
from yarnit.monitoring import quality, traffic
from yarnit.monitoring.quality_store import _KEPT_SUMMARIES, QualityStore
from yarnit.monitoring.quality_summary import QualitySummary
from yarnit.storage import open_workspace

from .test_quality import T0, label, log_requests, write_labels


def _summaries(home: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(quality.quality_db_path(home)) as conn:
        return sorted(conn.execute("SELECT model, version, slice, hour, data FROM summaries"))


def _month(tmp_path: Any, name: str, *, cold: bool) -> list[list[tuple[Any, ...]]]:
    """Hourly requests, their labels a day late (one never shown), a pass an hour; the summaries after each."""
    clock = SimulatedClock(T0)
    ws = open_workspace(Settings.for_home(tmp_path / name / "home"), clock)
    seen = []
    try:
        for hour in range(6):
            at = clock.now()
            log_requests(ws, clock, [(f"h{hour}-{i}", [0.1 + 0.01 * i + 0.1 * hour, 0.31, 0.7],
                                      [{"country": "DE"}, {"country": "US"}, {"device": "mobile"}], at)
                                     for i in range(4)])
            if hour >= 3:  # late labels for an hour summarized passes ago, one candidate never shown
                old = hour - 3
                rows = [label(f"h{old}-{i}", j, int(i % 2 == 0), T0 + timedelta(hours=old, minutes=5))
                        for i in range(4) for j in range(2)]
                rows.append(label(f"h{old}-0", 2, 0, T0 + timedelta(hours=old, minutes=5), kind="shown"))
                quality.ingest_labels(ws, write_labels(tmp_path / f"{name}-{hour}.jsonl", rows))
            clock.advance(timedelta(minutes=61))
            if cold:
                _KEPT_SUMMARIES.clear()
            quality.update(ws)
            seen.append(_summaries(ws.home))
    finally:
        ws.close()
    return seen


def test_late_labels_for_an_old_hour_change_the_kept_summaries_as_a_cold_pass(tmp_path):
    kept = _month(tmp_path, "kept", cold=False)
    assert any(key[0] == str(quality.quality_db_path(tmp_path / "kept" / "home")) for key in _KEPT_SUMMARIES)
    cold = _month(tmp_path, "cold", cold=True)
    assert kept == cold
    assert kept[3] != kept[2]  # the late labels did change hour 0's stored summaries


def test_a_summary_changed_by_another_writer_is_read_afresh(tmp_path):
    path = tmp_path / "quality.sqlite3"
    store = QualityStore(path)
    try:
        first = QualitySummary()
        first.add_predictions([0.1, 0.2])
        with store.transaction():
            store.put_summary("ctr", "1", "", 5, first)
        assert store.summary("ctr", "1", "", 5).count == 2  # parsed
        taken = store.summary("ctr", "1", "", 5, take=True)  # the kept object itself, handed over
        taken.add_predictions([0.3])
        assert store.summary("ctr", "1", "", 5).count == 2  # not from the object handed over: parsed again
        with store.transaction():
            store.put_summary("ctr", "1", "", 5, taken, keep=True)
        assert store.summary("ctr", "1", "", 5).count == 3
        assert store.summary("ctr", "1", "", 5, take=True) is taken
        other = QualitySummary()
        other.add_predictions([0.4, 0.5, 0.6])
        with sqlite3.connect(path) as conn:  # another process (or retention) rewrites the hour
            conn.execute("UPDATE summaries SET data = ? WHERE hour = 5",
                         (json.dumps(other.to_json()),))
        again = store.summary("ctr", "1", "", 5)
        assert again.count == 3 and np.array_equal(again.n, other.n)
        again.add_predictions([0.9])  # the caller's own object: the kept one is not changed by it
        assert store.summary("ctr", "1", "", 5).count == 3
        with sqlite3.connect(path) as conn:
            conn.execute("DELETE FROM summaries")
        assert store.summary("ctr", "1", "", 5).count == 0
    finally:
        store.close()


def test_a_summary_without_its_unstored_bins_is_what_parsing_its_stored_text_gives():
    rng = np.random.default_rng(3)
    summary = QualitySummary()
    scores = rng.random(500) * 0.4
    summary.add_predictions(scores)
    summary.add_labelled(scores[:200], (rng.random(200) < 0.3).astype(int))
    summary.remove_predictions(scores[300:])  # leaves rounding residue of p in bins whose predictions all left
    parsed = QualitySummary.from_json(summary.to_json())
    summary.drop_unstored()
    for name in ("n", "p", "pos", "neg", "lab_p"):
        assert getattr(summary, name).tobytes() == getattr(parsed, name).tobytes(), name


def _row_loop(instances: list[Any]) -> traffic._Group:
    """The row-by-row gather, as it was before the column path (the oracle)."""
    group = traffic._Group()
    keysets: Counter[tuple[str, ...]] = Counter()
    group.inputs[0] = keysets
    columns = group.columns
    for row in instances:
        if type(row) is not dict:
            continue
        group.logged_rows += 1
        empty = False
        for name, value in row.items():
            if value is None:
                empty = True
            try:
                columns[name].append(value)
            except KeyError:
                if len(columns) >= traffic.MAX_FEATURES or type(name) is not str or len(name) > traffic.MAX_NAME:
                    group.overflow += 1
                else:
                    columns[name] = [value]
        keysets[tuple(k for k, v in row.items() if v is not None) if empty else tuple(row)] += 1
    return group


def _gathered(instances: list[Any], columns: dict[str, list[Any]] | None = None) -> traffic._Group:
    groups: dict[tuple[str, str, str, int], traffic._Group] = {}
    record = {"role": "primary", "model": "ctr", "status": 200, "version": 1, "time": T0.isoformat(),
              "instances": instances, "predictions": [0.5] * len(instances)}
    if columns is not None:  # a group that already holds columns from an earlier record
        key = ("ctr", "1", "primary", int(T0.timestamp() // traffic.BUCKET_S) * traffic.BUCKET_S)
        groups[key] = traffic._Group(columns={k: list(v) for k, v in columns.items()})
    traffic._gather(record, groups, now_s=T0.timestamp(), bucket_s=traffic.BUCKET_S, max_future_s=300,
                    max_age_s=86_400 * 30, skipped=Counter())
    (group,) = groups.values()
    return group


@pytest.mark.parametrize("case", ["same_names", "nulls", "other_order", "mixed_names", "not_dicts", "too_many"])
def test_gather_by_columns_matches_the_row_loop(case):
    rows: list[Any] = [{"q": f"s{i}", "price": 1.5 * i, "lang": "en", "n": i} for i in range(30)]
    if case == "nulls":
        rows[3]["lang"] = None
        rows[7]["price"] = None
    elif case == "other_order":
        rows[5] = {"n": 5, "lang": "de", "price": 2.0, "q": "x"}
    elif case == "mixed_names":
        rows[4]["extra"] = 1
    elif case == "not_dicts":
        rows[2] = ["not", "a", "dict"]
    elif case == "too_many":
        rows = [{f"f{j}": j for j in range(traffic.MAX_FEATURES + 10)} for _ in range(3)]
    expected = _row_loop(rows)
    got = _gathered(rows)
    assert list(got.columns.items()) == list(expected.columns.items())
    assert (got.logged_rows, got.overflow) == (expected.logged_rows, expected.overflow)
    (keysets,) = got.inputs.values()
    assert list(keysets.items()) == list(expected.inputs[0].items())
    # a record whose names extend a group's columns: values go after the earlier ones, new names are added
    earlier = {"q": ["a"], "zz": [1]}
    grown = _gathered(rows, earlier)
    oracle = traffic._Group(columns={k: list(v) for k, v in earlier.items()})
    for row in rows:
        if type(row) is dict:
            for name, value in row.items():
                if name in oracle.columns:
                    oracle.columns[name].append(value)
                elif len(oracle.columns) < traffic.MAX_FEATURES:
                    oracle.columns[name] = [value]
    assert list(grown.columns.items()) == list(oracle.columns.items())
