"""Label tasks in the metadata store, on SQLite and PostgreSQL: schemas, assignment, answers, bad input,
guideline versions, label sets as dataset versions with lineage."""

from __future__ import annotations

from collections import Counter

import pandas as pd
import pytest
from sqlalchemy import select

from yarnit.core.errors import Conflict, InvalidInput, NotFound
from yarnit.data import Datasets, Lineage, Node
from yarnit.labels import (
    DuplicateAnswer,
    Labels,
    QualityPolicy,
    UnknownClass,
    UnknownItem,
    run_raters,
)
from yarnit.storage import Workspace
from yarnit.storage.schema import label_answers
from yarnit.world import INTENTS, RaterPool, labeling_queries

RATERS = ["ana", "bo", "cy", "dee"]


def _task(ws: Workspace, *, n: int = 40, n_golden: int = 8, overlap: int = 2, name: str = "intent-1") -> Labels:
    pool = labeling_queries(seed=5, n=n)
    version = Datasets(ws).ingest_frame("queries", pool[["query_id", "query"]], source="world")
    labels = Labels(ws)
    labels.define_schema("intent", INTENTS, "specific_product: names two or more attributes.\nbrand: names a brand.")
    golden = dict(zip(pool["query_id"][:n_golden], pool["intent"][:n_golden], strict=True))
    labels.create_task(name, dataset=version.ref, schema="intent", raters=RATERS, overlap=overlap,
                       key_column="query_id", text_column="query", golden=golden, seed=1)
    return labels


def test_each_item_goes_to_k_raters_and_every_rater_gets_every_golden_item(ws: Workspace) -> None:
    labels = _task(ws)
    task = labels.task("intent-1")
    assert task.counts == {"items": 40, "golden": 8, "assigned": 32 * 2 + 8 * 4, "answers": 0}
    per_rater = Counter()
    golden = labels.golden("intent-1")
    for rater in RATERS:
        queue = labels.next_items("intent-1", rater, limit=1000)
        assert golden.keys() <= {q["item_key"] for q in queue}
        assert all(set(q) == {"item_key", "text", "prelabel"} for q in queue)  # nothing says "golden"
        per_rater[rater] = len(queue) - len(golden)
    assert sorted(per_rater.values()) == [16, 16, 16, 16]  # the rotation shares ordinary items evenly


def test_answers_are_checked_and_a_bad_batch_stores_nothing(ws: Workspace) -> None:
    labels = _task(ws)
    first = labels.next_items("intent-1", "ana", limit=2)
    labels.answer("intent-1", first[0]["item_key"], "ana", "brand")
    with pytest.raises(DuplicateAnswer, match="already answered.*first one is kept"):
        labels.answer("intent-1", first[0]["item_key"], "ana", "how_to")
    with pytest.raises(UnknownItem, match="no item 'q99999'"):
        labels.answer("intent-1", "q99999", "ana", "brand")
    with pytest.raises(UnknownClass, match="'colour' is not a class of label schema intent:v1.*how_to"):
        labels.answer("intent-1", first[1]["item_key"], "ana", "colour")
    with pytest.raises(InvalidInput, match="not valid"):
        labels.answer("intent-1", first[1]["item_key"], "ana\x1b[2J", "brand")
    not_mine = next(i["item_key"] for i in labels.items("intent-1")
                    if i["item_key"] not in {q["item_key"] for q in labels.next_items("intent-1", "ana", limit=99)}
                    and i["item_key"] != first[0]["item_key"])
    with pytest.raises(InvalidInput, match="not assigned to rater 'ana'"):
        labels.answer("intent-1", not_mine, "ana", "brand")
    with pytest.raises(UnknownClass):
        labels.answer_many("intent-1", [(first[1]["item_key"], "ana", "brand"), (first[1]["item_key"], "bo", "x")])
    with ws.metadata.begin() as conn:
        assert len(conn.execute(select(label_answers)).all()) == 1  # the good half of the batch was not kept
    with pytest.raises(NotFound, match="No label task 'nope'.*yarnit labels tasks"):
        labels.answer("nope", "q1", "ana", "brand")


def test_task_creation_refuses_bad_input_and_creates_nothing(ws: Workspace) -> None:
    labels = _task(ws)
    ref = "queries:v1"
    with pytest.raises(Conflict, match="exists already"):
        labels.create_task("intent-1", dataset=ref, schema="intent", raters=RATERS, key_column="query_id",
                           text_column="query")
    with pytest.raises(InvalidInput, match="no column 'text'"):
        labels.create_task("t2", dataset=ref, schema="intent", raters=RATERS, key_column="query_id",
                           text_column="text")
    with pytest.raises(UnknownClass):
        labels.create_task("t2", dataset=ref, schema="intent", raters=RATERS, key_column="query_id",
                           text_column="query", golden={"q00001": "colour"})
    with pytest.raises(InvalidInput, match="Overlap 5"):
        labels.create_task("t2", dataset=ref, schema="intent", raters=RATERS, overlap=5, key_column="query_id",
                           text_column="query")
    dup = Datasets(ws).ingest_frame("dups", pd.DataFrame({"k": ["a", "a"], "t": ["x", "y"]}), source="t")
    with pytest.raises(InvalidInput, match="repeats the key 'a'"):
        labels.create_task("t2", dataset=dup.ref, schema="intent", raters=RATERS, key_column="k", text_column="t")
    assert [t.name for t in labels.tasks()] == ["intent-1"]


def test_a_guideline_changed_mid_way_keeps_old_answers_on_their_definition_version(ws: Workspace) -> None:
    labels = _task(ws)
    item = labels.next_items("intent-1", "ana", limit=1)[0]["item_key"]
    labels.answer("intent-1", item, "ana", "broad_category")
    new = labels.update_guideline("intent-1", "A colour and a fiber make a specific product.",
                                  classes=["specific_product", "broad_category", "brand", "how_to", "other"])
    assert new.version == 2 and labels.task("intent-1").schema_version == 2
    item2 = labels.next_items("intent-1", "ana", limit=1)[0]["item_key"]
    labels.answer("intent-1", item2, "ana", "other")
    versions = {a.item_key: a.schema_version for a in labels.answers("intent-1")}
    assert versions == {item: 1, item2: 2}
    assert labels.schema("intent", 1).guideline.startswith("specific_product")
    assert [s.version for s in labels.schema_versions("intent")] == [1, 2]


def test_simulated_raters_to_a_published_label_set_with_metadata_and_lineage(ws: Workspace) -> None:
    labels = _task(ws, n=60, n_golden=10, overlap=3)
    pool_df = labeling_queries(seed=5, n=60)
    truth = {k: INTENTS.index(v) for k, v in zip(pool_df["query_id"], pool_df["intent"], strict=True)}
    raters = RaterPool(4, [p for p in RaterPool.default(4, seed=2).profiles[:3]] +
                       [RaterPool.default(4, seed=2).profiles[-1]], seed=2)
    by_name = dict(zip(RATERS, [p.rater_id for p in raters.profiles], strict=True))
    answers = run_raters(labels, "intent-1", lambda r, k, p: INTENTS[raters.answer(by_name[r], k, truth[k])],
                         step_s=60)
    assert len(answers) == 50 * 3 + 10 * 4 and len(labels.answers("intent-1")) == len(answers)
    quality = labels.quality("intent-1")
    assert quality["dee"].flagged and quality["dee"].weight == 0.1  # the adversarial one
    assert not any(quality[r].flagged for r in ("ana", "bo", "cy"))
    agreement = labels.agreement("intent-1")
    assert agreement["items"] == 50 and agreement["fleiss_kappa"] is not None
    assert agreement["krippendorff_alpha"] == pytest.approx(agreement["fleiss_kappa"], abs=0.05)

    version = labels.publish("intent-1", "intent-labels")
    frame = Datasets(ws).read(version)
    assert len(frame) == 60 and set(frame["source"]) == {"human", "golden"}
    assert set(frame.columns) >= {"query_id", "query", "label", "confidence", "rater_count", "definition_version"}
    assert (frame.loc[frame["source"] == "human", "rater_count"] == 3).all()
    assert set(frame["definition_version"]) == {1}
    task = labels.task("intent-1")
    assert version.parents == (task.dataset_version_id,)
    summary = labels.label_set_summary(version.id)
    assert summary["schema"] == "intent:v1" and summary["flagged_raters"] == ["dee"]
    assert summary["by_source"] == {"golden": 10, "human": 50} and summary["definition_versions"] == [1]
    assert summary["agreement"]["fleiss_kappa"] == pytest.approx(agreement["fleiss_kappa"])
    with pytest.raises(NotFound, match="not published from a label task"):
        labels.label_set_summary(task.dataset_version_id)
    up = Lineage(ws).upstream(Node("dataset_version", version.id))
    assert {n.kind for n in up.nodes} >= {"label_task", "dataset_version"}
    assert task.dataset_version_id in {n.id for n in up.nodes}


def test_review_queue_and_a_reviewers_decision_override_the_consensus(ws: Workspace) -> None:
    labels = _task(ws, overlap=2)
    golden = labels.golden("intent-1")
    for rater, label in (("ana", "brand"), ("bo", "how_to"), ("cy", "brand"), ("dee", "how_to")):
        items = [i["item_key"] for i in labels.next_items("intent-1", rater, limit=100)]
        labels.answer_many("intent-1", [(k, rater, golden.get(k, label)) for k in items])  # pairs always disagree
    queue = labels.review_queue("intent-1", method="majority")
    assert queue and all(c.confidence < QualityPolicy().review_below for c in queue)
    labels.review("intent-1", queue[0].item_key, "specific_product", reviewer="lead")
    settled = {c.item_key: c for c in labels.consensus("intent-1", method="majority")}
    assert settled[queue[0].item_key].label == "specific_product" and settled[queue[0].item_key].source == "review"
    with pytest.raises(UnknownItem):
        labels.review("intent-1", "q77777", "brand", reviewer="lead")


def test_two_writers_racing_on_one_answer_store_it_once(ws: Workspace) -> None:
    import threading

    labels = _task(ws)
    item = labels.next_items("intent-1", "ana", limit=1)[0]["item_key"]
    barrier, outcomes = threading.Barrier(4), []

    def write(label: str) -> None:
        barrier.wait()
        try:
            Labels(ws).answer("intent-1", item, "ana", label)
            outcomes.append("stored")
        except DuplicateAnswer:
            outcomes.append("duplicate")

    threads = [threading.Thread(target=write, args=(label,)) for label in INTENTS]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(outcomes) == ["duplicate", "duplicate", "duplicate", "stored"]
    assert len(labels.answers("intent-1")) == 1
