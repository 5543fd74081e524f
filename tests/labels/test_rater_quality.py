"""Rater quality from hidden golden items on the simulated pool: the adversarial rater is caught within 50
answers, a tiring rater's accuracy drifts down, Dawid-Skene beats majority vote."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from yarnit.data import Datasets
from yarnit.labels import (
    Answer,
    Labels,
    QualityPolicy,
    rater_quality,
    run_raters,
    wilson_bounds,
)
from yarnit.storage import Workspace
from yarnit.world import INTENTS, RaterPool, labeling_queries


def _simulated_task(ws: Workspace, seed: int, *, n: int = 160, n_golden: int = 16,
                    max_answers: int | None = None) -> tuple[Labels, dict[str, int], RaterPool]:
    frame = labeling_queries(seed=seed, n=n)
    version = Datasets(ws).ingest_frame(f"queries-{seed}", frame[["query_id", "query"]], source="world")
    labels = Labels(ws)
    labels.define_schema("intent", INTENTS, "See docs/labels.md for the intent guideline.")
    golden_rows = np.random.default_rng(seed).choice(n, n_golden, replace=False)
    golden = {frame["query_id"][i]: frame["intent"][i] for i in golden_rows}
    pool = RaterPool.default(len(INTENTS), seed=seed)
    labels.create_task(f"task-{seed}", dataset=version.ref, schema="intent", raters=[p.rater_id for p in pool.profiles],
                       overlap=3, key_column="query_id", text_column="query", golden=golden, seed=seed)
    truth = {k: INTENTS.index(v) for k, v in zip(frame["query_id"], frame["intent"], strict=True)}
    run_raters(labels, f"task-{seed}", lambda r, k, _p: INTENTS[pool.answer(r, k, truth[k])],
               max_answers_per_rater=max_answers, step_s=45)
    return labels, truth, pool


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_the_adversarial_rater_is_flagged_from_golden_items_within_50_answers(sqlite_ws: Workspace,
                                                                              seed: int) -> None:
    labels, _, pool = _simulated_task(sqlite_ws, seed, max_answers=50)
    quality = labels.quality(f"task-{seed}")
    adversary = next(p.rater_id for p in pool.profiles if p.adversarial)
    assert quality[adversary].flagged and quality[adversary].flagged_at_answer is not None
    assert quality[adversary].flagged_at_answer <= 50
    assert quality[adversary].weight == QualityPolicy().flagged_weight
    good = [p.rater_id for p in pool.profiles if p.accuracy >= 0.8 and not p.fatigue_per_100]
    assert good and not any(quality[r].flagged for r in good)


def test_dawid_skene_beats_majority_and_a_tiring_raters_accuracy_drifts_down(sqlite_ws: Workspace) -> None:
    labels, truth, pool = _simulated_task(sqlite_ws, 21, n=240, n_golden=40)
    scores = {}
    for method in ("majority", "dawid_skene"):
        chosen = [c for c in labels.consensus("task-21", method=method) if c.source == "human"]
        scores[method] = np.mean([INTENTS.index(c.label) == truth[c.item_key] for c in chosen])
    assert scores["dawid_skene"] > scores["majority"] + 0.03, scores
    tiring = next(p.rater_id for p in pool.profiles if p.fatigue_per_100)
    q = labels.quality("task-21")[tiring]
    assert q.drift is not None and q.drift < -0.2, q


def test_the_flag_needs_confidence_not_a_bad_start() -> None:
    golden = {f"g{i}": "a" for i in range(12)}
    at = datetime(2026, 1, 1, tzinfo=UTC)

    def answers(hits: list[bool]) -> list[Answer]:
        return [Answer(f"g{i}", "r", "a" if hit else "b", 1, False, i + 1, at) for i, hit in enumerate(hits)]

    policy = QualityPolicy(min_accuracy=0.6, min_golden=4)
    unlucky = rater_quality("r", answers([False, False, True, True, True, True, True, True]), golden, policy)
    assert not unlucky.flagged  # 0/2 then right: never confidently below 0.6
    bad = rater_quality("r", answers([False, False, False, True, False, False]), golden, policy)
    assert bad.flagged and bad.flagged_at_answer == 6  # 1/5 is not yet confidently below 0.6, 1/6 is
    assert wilson_bounds(1, 5)[1] > 0.6 > wilson_bounds(1, 6)[1]
