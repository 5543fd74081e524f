"""Active learning reaches random sampling's accuracy with at most 60 % of the labels (several seeds);
the task's queue follows the model; pre-labels and their measured anchoring."""

from __future__ import annotations

import numpy as np
import pytest

from yarnit.data import Datasets
from yarnit.labels import Labels, run_raters
from yarnit.labels.active import labels_to_reach, learning_curve, select_batch
from yarnit.storage import Workspace
from yarnit.world import INTENTS, RaterPool, labeling_queries


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_uncertainty_and_diversity_reach_randoms_accuracy_with_at_most_60_percent_of_the_labels(seed: int) -> None:
    frame = labeling_queries(seed=300 + seed, n=1100)
    texts, y = frame["query"].tolist(), np.array([INTENTS.index(i) for i in frame["intent"]])
    args = (texts[:800], y[:800], texts[800:], y[800:])
    budget = 300
    random = learning_curve(*args, classes=INTENTS, strategy="random", seed=seed, budget=budget, initial=30, batch=30)
    active = learning_curve(*args, classes=INTENTS, strategy="uncertainty_diversity", seed=seed, budget=budget,
                            initial=30, batch=30)
    assert random[0] == active[0]  # same random start
    needed = labels_to_reach(active, random[-1]["accuracy"])
    assert needed is not None and needed <= 0.6 * budget, (needed, random[-1])


def test_diversity_keeps_near_duplicates_out_of_one_batch() -> None:
    from yarnit.labels.active import featurize

    texts = ["merino dk"] * 5 + ["how to cast on", "fjordull yarn", "silk blue"]
    x = featurize(texts)
    proba = np.tile([0.5, 0.5, 0.0, 0.0], (8, 1))  # equally unsure of everything
    chosen = select_batch(x, proba, 3, strategy="uncertainty_diversity", seed=0)
    assert len({texts[i] for i in chosen}) == 3
    with pytest.raises(ValueError, match="not known"):
        select_batch(x, proba, 3, strategy="loudest", seed=0)  # type: ignore[arg-type]


def _task(ws: Workspace) -> tuple[Labels, dict[str, int], RaterPool]:
    frame = labeling_queries(seed=9, n=120)
    version = Datasets(ws).ingest_frame("queries", frame[["query_id", "query"]], source="world")
    labels = Labels(ws)
    labels.define_schema("intent", INTENTS, "Intent of a search query.")
    golden = dict(zip(frame["query_id"][:24], frame["intent"][:24], strict=True))
    pool = RaterPool.default(4, seed=9, n_raters=5)
    labels.create_task("t", dataset=version.ref, schema="intent", raters=[p.rater_id for p in pool.profiles],
                       overlap=2, key_column="query_id", text_column="query", golden=golden, seed=9)
    truth = {k: INTENTS.index(v) for k, v in zip(frame["query_id"], frame["intent"], strict=True)}
    return labels, truth, pool


def test_prioritize_puts_the_models_choice_at_the_front_of_the_queues(sqlite_ws: Workspace) -> None:
    labels, truth, pool = _task(sqlite_ws)
    answer = lambda r, k, p: INTENTS[pool.answer(r, k, truth[k], prelabel=None)]
    run_raters(labels, "t", answer, max_answers_per_rater=15)
    wanted = labels.prioritize("t", 6)
    assert len(wanted) == 6
    for rater in pool.profiles:
        queue = [q["item_key"] for q in labels.next_items("t", rater.rater_id, limit=50)]
        mine = [k for k in wanted if k in queue]
        assert queue[: len(mine)] == mine  # the chosen items come first, in the chosen order


def test_prelabels_are_shown_on_half_the_items_and_the_anchoring_is_measured(sqlite_ws: Workspace) -> None:
    labels, truth, pool = _task(sqlite_ws)
    answer = lambda r, k, p: INTENTS[pool.answer(r, k, truth[k], prelabel=None if p is None else INTENTS.index(p))]
    run_raters(labels, "t", answer, max_answers_per_rater=10)
    assert labels.prelabel_from_model("t", show_share=0.5) == 120
    sources = {c.source for c in labels.consensus("t")}
    assert "model" in sources  # items nobody answered yet carry the model's label, marked as such
    with_model = labels.publish("t", "intent-with-model", include_model=True)
    assert labels.label_set_summary(with_model.id)["by_source"]["model"] > 0
    items = labels.items("t")
    shown = sum(i["show_prelabel"] for i in items)
    assert 40 <= shown <= 80 and all(i["prelabel"] in INTENTS for i in items)
    run_raters(labels, "t", answer)
    effect = labels.prelabel_effect("t")
    assert effect["shown"]["answers"] > 50 and effect["hidden"]["answers"] > 50
    assert effect["anchoring"] is not None and effect["anchoring"] > 0.05  # raters drift towards the model
    assert effect["shown"]["golden_answers"] + effect["hidden"]["golden_answers"] > 0
