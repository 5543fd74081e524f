"""Label Studio JSON: export and import round trip; malformed imports refused with the task at fault."""

from __future__ import annotations

import json

import pytest

from yarnit.core.errors import InvalidInput
from yarnit.data import Datasets
from yarnit.labels import Labels, export_tasks, import_tasks, label_config
from yarnit.storage import Workspace
from yarnit.world import INTENTS, labeling_queries


def _exported(ws: Workspace) -> tuple[Labels, list[dict]]:
    frame = labeling_queries(seed=4, n=20)
    version = Datasets(ws).ingest_frame("queries", frame[["query_id", "query"]], source="world")
    labels = Labels(ws)
    labels.define_schema("intent", INTENTS, "Intent of a search query.")
    labels.create_task("src", dataset=version.ref, schema="intent", raters=["ana", "bo", "cy"], overlap=2,
                       key_column="query_id", text_column="query", golden={"q00000": frame["intent"][0]}, seed=2)
    for rater in ("ana", "bo"):
        labels.answer_many("src", [(q["item_key"], rater, "brand") for q in labels.next_items("src", rater, limit=5)])
    return labels, json.loads(json.dumps(export_tasks(labels, "src")))  # through JSON, as a file would go


def test_export_then_import_keeps_items_answers_and_golden_items(sqlite_ws: Workspace) -> None:
    labels, tasks = _exported(sqlite_ws)
    assert len(tasks) == 20 and sum(len(t["annotations"]) for t in tasks) == 10 + 1
    gold = [a for t in tasks for a in t["annotations"] if a["ground_truth"]]
    assert len(gold) == 1 and gold[0]["result"][0]["value"]["choices"] == [labeling_queries(seed=4, n=20)["intent"][0]]
    assert '<Choice value="how_to"/>' in label_config(INTENTS)

    task = import_tasks(labels, tasks, task_name="copy", dataset_name="queries-ls", schema="intent", raters=["cy"])
    assert task.counts["items"] == 20 and task.counts["golden"] == 1 and task.counts["answers"] == 10
    assert sorted(task.raters) == ["ana", "bo", "cy"]
    original = {(a.item_key, a.rater, a.label) for a in labels.answers("src")}
    assert {(a.item_key, a.rater, a.label) for a in labels.answers("copy")} == original
    assert labels.golden("copy") == labels.golden("src")


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda t: t.__setitem__(3, {"id": 4}), "task #4: a task is an object with a 'data' object"),
    (lambda t: t[1]["data"].__setitem__("text", ""), "task #2: data.text must be non-empty"),
    (lambda t: t[0]["annotations"][0]["result"][0]["value"].__setitem__("choices", ["colour"]),
     "task #1, annotation #1: class 'colour' is not one of"),
    (lambda t: t[0]["annotations"].append(dict(t[0]["annotations"][0])), "answered this task twice"),
    (lambda t: t[5]["data"].__setitem__("item_key", t[6]["data"]["item_key"]), "task #7: the item key"),
    (lambda t: t[0]["annotations"][0].__setitem__("result", "brand"), "'result' list"),
])
def test_a_malformed_import_says_which_task_is_wrong_and_stores_nothing(sqlite_ws: Workspace, mutate,
                                                                       message: str) -> None:
    labels, tasks = _exported(sqlite_ws)
    tasks = [t for t in tasks if t["annotations"]] + [t for t in tasks if not t["annotations"]]
    mutate(tasks)
    with pytest.raises(InvalidInput, match=message):
        import_tasks(labels, tasks, task_name="copy", dataset_name="queries-ls", schema="intent")
    assert [t.name for t in labels.tasks()] == ["src"]
    assert "queries-ls" not in Datasets(sqlite_ws).names()
