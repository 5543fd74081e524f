"""The world's ground truth for label tasks: query intents and product categories, deterministic by seed."""

from __future__ import annotations

import numpy as np

from yarnit.data import Datasets
from yarnit.labels import Labels, run_raters
from yarnit.storage import Workspace
from yarnit.world import (
    INTENTS,
    RaterPool,
    RaterProfile,
    labeling_queries,
    product_categories,
    query_intent,
)
from yarnit.world import vocab as v


def test_vocabulary_queries_have_the_intent_their_attributes_say() -> None:
    by_text = {text: int(query_intent(qid)) for qid, text in enumerate(v.QUERY_TEXTS)}
    assert INTENTS[by_text["merino dk blue"]] == "specific_product"
    assert INTENTS[by_text["merino yarn"]] == "broad_category"
    assert INTENTS[by_text["yarn"]] == "broad_category"
    assert INTENTS[by_text["dk knitting needles"]] == "specific_product"
    assert INTENTS[by_text["knitting needles"]] == "broad_category"
    assert INTENTS[by_text["red stitch markers"]] == "specific_product"
    assert INTENTS[by_text["stitch markers"]] == "broad_category"
    assert np.array_equal(query_intent(np.arange(10)), [int(query_intent(i)) for i in range(10)])


def test_the_labeling_pool_is_deterministic_distinct_and_covers_every_intent() -> None:
    first, again, other = labeling_queries(3, 300), labeling_queries(3, 300), labeling_queries(4, 300)
    assert first.equals(again) and not first.equals(other)
    assert first["query"].is_unique and set(first["intent"]) == set(INTENTS)
    products = product_categories(3, 50)
    assert products.equals(product_categories(3, 50))
    assert set(products["category"]) <= set(v.PRODUCT_TYPES)


def test_products_to_category_runs_through_the_same_task_machinery(sqlite_ws: Workspace) -> None:
    products = product_categories(5, 40)
    version = Datasets(sqlite_ws).ingest_frame("products", products[["product_id", "name"]], source="world")
    labels = Labels(sqlite_ws)
    labels.define_schema("category", v.PRODUCT_TYPES, "The product's type as sold: yarn, needles, hook, notion.")
    labels.create_task("cat", dataset=version.ref, schema="category", raters=["a", "b", "c"], overlap=3,
                       key_column="product_id", text_column="name",
                       golden=dict(zip(products["product_id"][:5], products["category"][:5], strict=True)))
    truth = dict(zip(products["product_id"], products["category"], strict=True))
    pool = RaterPool(len(v.PRODUCT_TYPES), [RaterProfile(r, accuracy=0.85) for r in ("a", "b", "c")], seed=5)
    run_raters(labels, "cat", lambda r, k, _p: v.PRODUCT_TYPES[pool.answer(r, k, v.PRODUCT_TYPES.index(truth[k]))])
    for method in ("majority", "dawid_skene"):  # small, skewed, equal raters: majority 0.91, Dawid-Skene 0.86
        chosen = [c for c in labels.consensus("cat", method=method) if c.source == "human"]
        assert len(chosen) == 35 and np.mean([c.label == truth[c.item_key] for c in chosen]) > 0.8, method
