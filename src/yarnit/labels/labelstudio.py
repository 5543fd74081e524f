"""Label Studio's JSON task format, in and out, so teams can bring their existing tasks and take ours away.

Export writes one Label Studio task per item: ``data`` holds the text and our item key, each rater's
answer is an annotation whose result is a ``choices`` value (``from_name`` "label", ``to_name`` "text"),
a golden item's known class is an annotation marked ``ground_truth`` (Label Studio's own name for it),
and a model pre-label is a prediction with its score. Import reads the same shape (``completed_by`` may
be Label Studio's user id, an object with an ``email``, or a name): it validates the whole file first,
then ingests the texts as a dataset version and creates the task with the imported answers, so a
malformed file is refused with the task number and field at fault and stores nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from yarnit.core.errors import Conflict, InvalidInput
from yarnit.core.ids import check_name, parse_versioned_ref
from yarnit.data import Datasets

from .models import LabelTask, LabelTaskNotFound, QualityPolicy, UnknownClass
from .service import Labels, _check_key, check_rater

FROM_NAME, TO_NAME = "label", "text"
MAX_TASKS = 200_000


def _choice(value: str, score: float | None = None) -> dict[str, Any]:
    result = {"from_name": FROM_NAME, "to_name": TO_NAME, "type": "choices", "value": {"choices": [value]}}
    return {"result": [result]} | ({} if score is None else {"score": score})


def export_tasks(labels: Labels, task_name: str) -> list[dict[str, Any]]:
    """The task's items with answers, golden classes and pre-labels as Label Studio tasks."""
    task = labels.task(task_name)
    by_item: dict[str, list[dict[str, Any]]] = {}
    for n, a in enumerate(labels.answers(task_name), start=1):
        by_item.setdefault(a.item_key, []).append(
            {"id": n, "completed_by": a.rater, "created_at": a.answered_at.isoformat(), "ground_truth": False,
             "meta": {"schema_version": a.schema_version, "prelabel_shown": a.prelabel_shown}} | _choice(a.label))
    out = []
    for i, item in enumerate(labels.items(task_name), start=1):
        annotations = by_item.get(item["item_key"], [])
        if item["golden_label"] is not None:
            annotations = [*annotations,
                           {"completed_by": "golden", "ground_truth": True} | _choice(item["golden_label"])]
        entry: dict[str, Any] = {"id": i, "data": {TO_NAME: item["text"], "item_key": item["item_key"]},
                                 "annotations": annotations, "meta": {"yarnit_task": task.name}}
        if item["prelabel"] is not None:
            entry["predictions"] = [{"model_version": item["prelabel_model"]}
                                    | _choice(item["prelabel"], item["prelabel_confidence"])]
        out.append(entry)
    return out


def label_config(classes: Sequence[str]) -> str:
    """The Label Studio labeling config (XML) matching the export: one text, one single choice."""
    choices = "".join(f'<Choice value="{c}"/>' for c in classes)
    return (f'<View><Text name="{TO_NAME}" value="${TO_NAME}"/>'
            f'<Choices name="{FROM_NAME}" toName="{TO_NAME}" choice="single">{choices}</Choices></View>')


def _rater(value: Any, where: str) -> str:
    if isinstance(value, Mapping):
        value = value.get("email") or value.get("id")
    if isinstance(value, bool) or value is None:
        raise InvalidInput(f"{where}: completed_by is missing; give the annotator's id, email or name.")
    text = f"ls-user-{value}" if isinstance(value, int) else str(value)
    try:
        return check_rater(text)
    except InvalidInput as exc:
        raise InvalidInput(f"{where}: {exc}") from None


def _label(annotation: Any, where: str) -> str:
    if not isinstance(annotation, Mapping) or not isinstance(annotation.get("result"), list):
        raise InvalidInput(f"{where}: an annotation is an object with a 'result' list.")
    choices = [r.get("value", {}).get("choices") for r in annotation["result"]
               if isinstance(r, Mapping) and r.get("type") == "choices" and isinstance(r.get("value"), Mapping)]
    if len(choices) != 1 or not isinstance(choices[0], list) or len(choices[0]) != 1 \
            or not isinstance(choices[0][0], str):
        raise InvalidInput(f"{where}: expected exactly one 'choices' result with one chosen class; got "
                           f"{str(annotation['result'])[:200]}.")
    return choices[0][0]


def parse_tasks(data: Any, classes: Sequence[str]) -> tuple[pd.DataFrame, dict[str, str],
                                                            list[tuple[str, str, str]]]:
    """Validate Label Studio tasks: ``(items frame [item_key, text], golden, answers (key, rater, label))``."""
    if isinstance(data, Mapping):
        data = [data]
    if not isinstance(data, list) or not data or len(data) > MAX_TASKS:
        raise InvalidInput(f"A Label Studio import is a JSON list of 1-{MAX_TASKS} tasks "
                           "([{\"data\": {\"text\": ...}, \"annotations\": [...]}, ...]).")
    keys, texts, golden, answers = [], [], {}, []
    seen: set[str] = set()
    for n, task in enumerate(data, start=1):
        where = f"Label Studio task #{n}"
        if not isinstance(task, Mapping) or not isinstance(task.get("data"), Mapping):
            raise InvalidInput(f"{where}: a task is an object with a 'data' object.")
        text = task["data"].get(TO_NAME)
        if not isinstance(text, str) or not text.strip():
            raise InvalidInput(f"{where}: data.{TO_NAME} must be non-empty text.")
        key_value = task["data"].get("item_key", task.get("id", n))
        try:
            key = _check_key(str(key_value))
        except InvalidInput as exc:
            raise InvalidInput(f"{where}: {exc}") from None
        if key in seen:
            raise InvalidInput(f"{where}: the item key {key!r} appears twice; keys (data.item_key or id) are unique.")
        seen.add(key)
        keys.append(key)
        texts.append(text)
        annotations = task.get("annotations", [])
        if not isinstance(annotations, list):
            raise InvalidInput(f"{where}: 'annotations' must be a list.")
        raters: set[str] = set()
        for m, annotation in enumerate(annotations, start=1):
            at = f"{where}, annotation #{m}"
            label = _label(annotation, at)
            if label not in classes:
                raise InvalidInput(f"{at}: class {label[:63]!r} is not one of {list(classes)}.")
            if annotation.get("was_cancelled"):
                continue
            if annotation.get("ground_truth"):
                golden[key] = label
                continue
            rater = _rater(annotation.get("completed_by"), at)
            if rater in raters:
                raise InvalidInput(f"{at}: {rater!r} answered this task twice; keep one annotation per annotator.")
            raters.add(rater)
            answers.append((key, rater, label))
    return pd.DataFrame({"item_key": keys, TO_NAME: texts}), golden, answers


def import_tasks(labels: Labels, data: Any, *, task_name: str, dataset_name: str, schema: str,
                 raters: Sequence[str] = (), overlap: int | None = None, seed: int = 0,
                 policy: QualityPolicy | None = None, actor: str = "api") -> LabelTask:
    """Create task ``task_name`` from Label Studio tasks: items, golden classes (``ground_truth``) and answers.

    The raters are those who answered plus ``raters``; ``overlap`` (default: the most answers on one item,
    at least 1) applies to items nobody answered yet.
    """
    name, version = parse_versioned_ref("Label schema", schema)
    the_schema = labels.schema(name, version)
    frame, golden, answers = parse_tasks(data, the_schema.classes)
    for key, label in golden.items():
        if label not in the_schema.classes:
            raise UnknownClass(label, the_schema)
    people = list(dict.fromkeys([*(r for _, r, _ in answers), *(check_rater(r) for r in raters)]))
    if not people:
        raise InvalidInput("The import has no annotations and no raters were given: name the raters who will "
                           "label the items (--rater).")
    per_item: dict[str, list[str]] = {}
    for key, rater, _ in answers:
        per_item.setdefault(key, []).append(rater)
    k = overlap or max(1, min(len(people), max((len(v) for v in per_item.values()), default=1)))
    check_name("Label task", task_name)
    try:  # checked before anything is stored, so a clash leaves no stray dataset version
        labels.task(task_name)
        raise Conflict(f"Label task {task_name!r} exists already; import under another name.")
    except LabelTaskNotFound:
        pass
    dataset = Datasets(labels.ws).ingest_frame(dataset_name, frame, source=f"label-studio import ({task_name})")
    labels.create_task(task_name, dataset=dataset.ref, schema=the_schema.ref, raters=people,
                       overlap=min(k, len(people)), key_column="item_key", text_column=TO_NAME, golden=golden, seed=seed, policy=policy,
                       actor=actor, assigned=per_item)
    if answers:
        labels.answer_many(task_name, answers)
    return labels.task(task_name)


__all__ = ["export_tasks", "import_tasks", "label_config", "parse_tasks"]
