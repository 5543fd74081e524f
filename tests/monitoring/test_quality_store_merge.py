"""QualityStore.merged keeps parsed summaries between calls but never hands out one that a merge could change."""

from __future__ import annotations

import numpy as np

from yarnit.monitoring.quality_store import QualityStore
from yarnit.monitoring.quality_summary import QualitySummary


def _summary(scores: list[float], labels: list[int]) -> QualitySummary:
    summary = QualitySummary()
    summary.add_predictions(scores)
    summary.add_labelled(scores, labels)
    return summary


def test_merging_the_same_stored_hours_twice_gives_the_same_answer(tmp_path) -> None:
    store = QualityStore(tmp_path / "quality.sqlite3")
    try:
        with store.transaction():
            for hour, scores in enumerate(([0.1, 0.2, 0.9], [0.3, 0.8], [0.5])):
                store.put_summary("ctr", "1", "", hour, _summary(scores, [0, 1, 1][: len(scores)]))
        first = store.merged("ctr", start_hour=0, end_hour=3)[("1", "")]
        expected = first.n.copy()
        first.merge(_summary([0.05] * 10, [0] * 10))  # a caller merges into what it got
        again = store.merged("ctr", start_hour=0, end_hour=3)[("1", "")]
        assert np.array_equal(again.n, expected) and int(again.n.sum()) == 6
        assert int(store.merged("ctr", start_hour=0, end_hour=1)[("1", "")].n.sum()) == 3  # the first hour alone
    finally:
        store.close()


def test_closing_a_store_leaves_the_wal_to_sqlite_while_the_process_keeps_one_idle_connection(tmp_path):
    """Closing the last connection to a WAL database checkpoints it (a copy and a sync); a monitor pass opens
    and closes the store several times, so one idle connection per file stays open and the WAL stays."""
    path = tmp_path / "quality.sqlite3"
    QualityStore(path).close()
    store = QualityStore(path)
    with store.transaction():
        store.set_meta("probe", 1)
    store.close()
    wal = tmp_path / "quality.sqlite3-wal"
    assert wal.exists() and wal.stat().st_size > 0  # no checkpoint on close
    reopened = QualityStore(path)
    assert reopened.meta("probe") == 1
    reopened.close()
