"""Label tasks in the metadata store: schemas, items, assignments, answers, consensus, label sets.

A task labels the rows of one dataset version. Creating it copies each row's key and text into
``label_items``, hides the golden items (known class, never shown as such) at random positions, and gives
each ordinary item to ``overlap`` raters (a rotation over a seeded shuffle, so every rater gets the same
share and every pair of neighbours shares items) and every golden item to every rater; all of it in one
transaction, so a task exists whole or not at all.

Answers are validated where they arrive: an unknown item is a 404, a class outside the schema or an item
not assigned to that rater a 422, a second answer to the same item by the same rater a 409 (the unique
key on ``(task, item, rater)`` settles a race). Each answer records the schema version current when it
was given; :meth:`Labels.update_guideline` adds a version without touching earlier answers.

A label set is published as a dataset version (``Datasets.ingest_frame``) whose parent is the task's
input, with per-label metadata (definition version, source, rater count, confidence) and lineage edges
``dataset_version -labeled_in-> label_task -labeled_as-> dataset_version``, so a model trained on it
traces back through the task to the guideline version its labels were made under.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, and_, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from yarnit.core.errors import Conflict, InvalidInput, NotFound
from yarnit.core.ids import check_name, new_id, parse_versioned_ref
from yarnit.core.text import check_plain_text
from yarnit.data import Datasets, DatasetVersion, Lineage, Node
from yarnit.storage import Workspace
from yarnit.storage.schema import (
    audit_log,
    label_answers,
    label_assignments,
    label_items,
    label_schemas,
    label_tasks,
)

from .agreement import (
    MISSING,
    cohen_kappa,
    count_table,
    dawid_skene,
    fleiss_kappa,
    krippendorff_alpha,
    majority_vote,
)
from .models import (
    MAX_CLASSES,
    MAX_GUIDELINE,
    Answer,
    DuplicateAnswer,
    LabelSchema,
    LabelSchemaNotFound,
    LabelTask,
    LabelTaskNotFound,
    QualityPolicy,
    UnknownClass,
    UnknownItem,
)
from .quality import RaterQuality, rater_quality

MAX_ITEMS = 200_000
_RATER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@:\-]{0,127}$")
_CLASS = re.compile(r"^[a-z][a-z0-9_\-]{0,62}$")
METHODS = ("dawid_skene", "majority")


def check_rater(rater: str) -> str:
    if not isinstance(rater, str) or not _RATER.match(rater):
        raise InvalidInput(f"Rater id {str(rater)[:40]!r} is not valid: 1-128 letters, digits, '_', '.', '@', ':' "
                           "or '-', starting with a letter or digit.")
    return rater


def _check_key(key: object) -> str:
    if not isinstance(key, str) or not 1 <= len(key) <= 128:
        raise InvalidInput(f"Item key {str(key)[:40]!r} is not valid: 1-128 characters of text.")
    return check_plain_text("item key", key)


def _stable_unit(seed: int, text: str) -> float:
    digest = hashlib.sha256(f"{seed}:{text}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


@dataclass(frozen=True)
class ConsensusLabel:
    """The label a task settles on for one item, and how sure it is."""

    item_key: str
    text: str
    label: str | None
    confidence: float
    rater_count: int
    source: str  # human (consensus), review (a reviewer's decision), golden, or model (a pre-label nobody answered)
    definition_version: int | None  # the newest schema version among the answers it rests on

    def to_dict(self) -> dict[str, Any]:
        return {"item_key": self.item_key, "text": self.text, "label": self.label, "confidence": self.confidence,
                "rater_count": self.rater_count, "source": self.source,
                "definition_version": self.definition_version}


@dataclass(frozen=True)
class AnswerTable:
    """A task's answers as the items x raters matrix the agreement functions take (current classes)."""

    items: list[str]
    raters: list[str]
    classes: tuple[str, ...]
    matrix: np.ndarray
    versions: np.ndarray  # schema version of each answer (0 where missing)


class Labels:
    """Label schemas and tasks of a workspace."""

    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace

    # -- schemas -----------------------------------------------------------
    def define_schema(self, name: str, classes: Sequence[str], guideline: str, *, actor: str = "api") -> LabelSchema:
        """Add a version of schema ``name`` (or return the latest one if it has these classes and text)."""
        check_name("Label schema", name)
        chosen = tuple(classes)
        if not 2 <= len(chosen) <= MAX_CLASSES or len(set(chosen)) != len(chosen):
            raise InvalidInput(f"Label schema {name!r} needs 2-{MAX_CLASSES} distinct classes; got {list(chosen)}.")
        for c in chosen:
            if not isinstance(c, str) or not _CLASS.match(c):
                raise InvalidInput(f"Class {str(c)[:63]!r} of label schema {name!r} is not valid: lowercase letters, "
                                   "digits, '_' or '-', starting with a letter (e.g. 'broad_category').")
        if not isinstance(guideline, str) or not guideline.strip() or len(guideline) > MAX_GUIDELINE:
            raise InvalidInput(f"The guideline of label schema {name!r} must be 1-{MAX_GUIDELINE} characters of text "
                               "saying how to choose each class.")
        check_plain_text("guideline", re.sub(r"[\n\t]", " ", guideline))
        with self.ws.metadata.begin() as conn:
            latest = self._latest_schema(conn, name)
            if latest is not None and latest.classes == chosen and latest.guideline == guideline:
                return latest
            version = 1 if latest is None else latest.version + 1
            schema = LabelSchema(name=name, version=version, classes=chosen, guideline=guideline,
                                 created_at=self.ws.clock.now(), created_by=actor,
                                 id=new_id("lsch", self.ws.clock))
            conn.execute(insert(label_schemas).values(id=schema.id, name=name, version=version, classes=list(chosen),
                                                      guideline=guideline, created_at=schema.created_at,
                                                      created_by=actor))
        return schema

    def schema(self, name: str, version: int | None = None) -> LabelSchema:
        with self.ws.metadata.begin() as conn:
            return self._schema(conn, name, version)

    def schema_versions(self, name: str) -> list[LabelSchema]:
        with self.ws.metadata.begin() as conn:
            rows = conn.execute(select(label_schemas).where(label_schemas.c.name == name)
                                .order_by(label_schemas.c.version)).mappings().all()
        return [_schema_from(r) for r in rows]

    def _latest_schema(self, conn: Connection, name: str) -> LabelSchema | None:
        row = conn.execute(select(label_schemas).where(label_schemas.c.name == name)
                           .order_by(label_schemas.c.version.desc()).limit(1)).mappings().first()
        return None if row is None else _schema_from(row)

    def _schema(self, conn: Connection, name: str, version: int | None) -> LabelSchema:
        if version is None:
            found = self._latest_schema(conn, name)
        else:
            row = conn.execute(select(label_schemas).where(and_(label_schemas.c.name == name,
                                                                label_schemas.c.version == version))).mappings().first()
            found = None if row is None else _schema_from(row)
        if found is None:
            raise LabelSchemaNotFound(name, version)
        return found

    # -- tasks -------------------------------------------------------------
    def create_task(self, name: str, *, dataset: str, schema: str, raters: Sequence[str], overlap: int = 3,
                    key_column: str, text_column: str, golden: Mapping[str, str] | None = None, seed: int = 0,
                    policy: QualityPolicy | None = None, actor: str = "api",
                    assigned: Mapping[str, Sequence[str]] | None = None) -> LabelTask:
        """A task over the rows of dataset version ``dataset`` (``name:vN``), labelled under ``schema``.

        ``assigned`` gives some items' raters explicitly (an import keeps who answered what); the other
        ordinary items rotate over the raters.
        """
        check_name("Label task", name)
        people = [check_rater(r) for r in raters]
        if len(set(people)) != len(people) or not people:
            raise InvalidInput(f"Label task {name!r} needs one or more distinct raters; got {list(raters)[:20]}.")
        if not 1 <= overlap <= len(people):
            raise InvalidInput(f"Overlap {overlap} is not valid for {len(people)} rater(s): each item goes to 1 to "
                               f"{len(people)} raters (3 is usual; 2 or more measures agreement).")
        schema_name, schema_version = parse_versioned_ref("Label schema", schema)
        version = Datasets(self.ws).resolve(dataset)
        frame = Datasets(self.ws).read(version)
        for column in (key_column, text_column):
            if column not in frame.columns:
                raise InvalidInput(f"Dataset {version.ref} has no column {column!r}; its columns are "
                                   f"{list(frame.columns)}.")
        if len(frame) == 0 or len(frame) > MAX_ITEMS:
            raise InvalidInput(f"Dataset {version.ref} has {len(frame)} rows; a label task takes 1-{MAX_ITEMS}.")
        keys = [_check_key(str(k)) if k is not None else _check_key(k) for k in frame[key_column].tolist()]
        if len(set(keys)) != len(keys):
            dup = pd.Series(keys)[pd.Series(keys).duplicated()].iloc[0]
            raise InvalidInput(f"Column {key_column!r} of {version.ref} repeats the key {dup!r}; item keys must be "
                               "unique. Choose a key column with one value per row.")
        texts = ["" if t is None else str(t) for t in frame[text_column].tolist()]
        gold = dict(golden or {})
        policy = policy or QualityPolicy()
        with self.ws.metadata.begin() as conn:
            the_schema = self._schema(conn, schema_name, schema_version)
            known = set(keys)
            for key, label in gold.items():
                if key not in known:
                    raise UnknownItem(name, str(key))
                if label not in the_schema.classes:
                    raise UnknownClass(str(label), the_schema)
            if conn.execute(select(label_tasks.c.id).where(label_tasks.c.name == name)).first() is not None:
                raise Conflict(f"Label task {name!r} exists already. Choose another name, or see it with: "
                               f"yarnit labels show {name}")
            task = LabelTask(id=new_id("ltask", self.ws.clock), name=name, schema_name=the_schema.name,
                             schema_version=the_schema.version, dataset_version_id=version.id, key_column=key_column,
                             text_column=text_column, raters=tuple(people), overlap=overlap, seed=seed,
                             policy=policy, created_at=self.ws.clock.now(), created_by=actor)
            conn.execute(insert(label_tasks).values(
                id=task.id, name=name, schema_name=task.schema_name, schema_version=task.schema_version,
                dataset_version_id=version.id, key_column=key_column, text_column=text_column, raters=people,
                overlap=overlap, seed=seed, policy=policy.to_dict(), created_at=task.created_at, created_by=actor))
            order = _queue_order(keys, gold, seed)
            position = np.empty(len(keys), dtype=np.int64)
            position[order] = np.arange(len(keys))
            items = [{"task_id": task.id, "item_key": k, "position": int(position[i]), "text": texts[i],
                      "golden_label": gold.get(k), "show_prelabel": False} for i, k in enumerate(keys)]
            assignments = []
            ordinary = 0
            for i in order:  # in position order, so the rotation spreads each rater's items through the queue
                key = keys[i]
                if key in gold:
                    chosen = people
                elif assigned and key in assigned:
                    chosen = [check_rater(r) for r in dict.fromkeys(assigned[key])]
                    unknown = sorted(set(chosen) - set(people))
                    if unknown:
                        raise InvalidInput(f"Item {key!r} is assigned to {unknown}, who are not raters of task "
                                           f"{name!r} ({people[:20]}).")
                else:
                    chosen = [people[(ordinary * overlap + j) % len(people)] for j in range(overlap)]
                    ordinary += 1
                assignments += [{"task_id": task.id, "item_key": key, "rater": r, "position": int(position[i])}
                                for r in chosen]
            for start in range(0, len(items), 5000):
                conn.execute(insert(label_items), items[start:start + 5000])
            for start in range(0, len(assignments), 5000):
                conn.execute(insert(label_assignments), assignments[start:start + 5000])
        Lineage(self.ws).record(Node("dataset_version", version.id), Node("label_task", task.id), "labeled_in")
        return self.task(name)

    def task(self, name: str) -> LabelTask:
        with self.ws.metadata.begin() as conn:
            task = self._task(conn, name)
            n_items, n_golden = conn.execute(select(func.count(), func.count(label_items.c.golden_label))
                                             .where(label_items.c.task_id == task.id)).one()
            n_assigned = conn.execute(select(func.count()).select_from(label_assignments)
                                      .where(label_assignments.c.task_id == task.id)).scalar_one()
            n_answers = conn.execute(select(func.count()).select_from(label_answers)
                                     .where(label_answers.c.task_id == task.id)).scalar_one()
        return replace(task, counts={"items": int(n_items), "golden": int(n_golden), "assigned": int(n_assigned),
                                     "answers": int(n_answers)})

    def tasks(self) -> list[LabelTask]:
        with self.ws.metadata.begin() as conn:
            rows = conn.execute(select(label_tasks).order_by(label_tasks.c.created_at)).mappings().all()
        return [_task_from(r) for r in rows]

    def _task(self, conn: Connection, name: str) -> LabelTask:
        row = conn.execute(select(label_tasks).where(label_tasks.c.name == name)).mappings().first()
        if row is None:
            raise LabelTaskNotFound(str(name)[:63])
        return _task_from(row)

    def update_guideline(self, task_name: str, guideline: str, *, classes: Sequence[str] | None = None,
                         actor: str = "api") -> LabelSchema:
        """A new schema version for the task; answers given so far keep the version they were given under."""
        task = self.task(task_name)
        current = self.schema(task.schema_name, task.schema_version)
        new = self.define_schema(task.schema_name, classes if classes is not None else current.classes, guideline,
                                 actor=actor)
        with self.ws.metadata.begin() as conn:
            conn.execute(update(label_tasks).where(label_tasks.c.id == task.id).values(schema_version=new.version))
        return new

    # -- raters ------------------------------------------------------------
    def next_items(self, task_name: str, rater: str, *, limit: int = 10) -> list[dict[str, Any]]:
        """The rater's next unanswered items, in queue order: key, text, and the pre-label where shown.

        Golden items are among them, unmarked.
        """
        check_rater(rater)
        with self.ws.metadata.begin() as conn:
            task = self._task(conn, task_name)
            answered = select(label_answers.c.item_key).where(and_(label_answers.c.task_id == task.id,
                                                                   label_answers.c.rater == rater))
            rows = conn.execute(
                select(label_items.c.item_key, label_items.c.text, label_items.c.prelabel,
                       label_items.c.show_prelabel)
                .join(label_assignments, and_(label_assignments.c.task_id == label_items.c.task_id,
                                              label_assignments.c.item_key == label_items.c.item_key))
                .where(and_(label_assignments.c.task_id == task.id, label_assignments.c.rater == rater,
                            label_assignments.c.item_key.not_in(answered)))
                .order_by(label_assignments.c.position).limit(max(1, min(limit, 1000)))).all()
        return [{"item_key": k, "text": t, "prelabel": p if shown else None} for k, t, p, shown in rows]

    def answer(self, task_name: str, item_key: str, rater: str, label: str) -> Answer:
        """Record one answer (see :meth:`answer_many`)."""
        return self.answer_many(task_name, [(item_key, rater, label)])[0]

    def answer_many(self, task_name: str, answers: Iterable[tuple[str, str, str]]) -> list[Answer]:
        """Record answers ``(item_key, rater, label)`` in one transaction: all of them or, on an error, none."""
        wanted = [(_check_key(k), check_rater(r), label) for k, r, label in answers]
        out: list[Answer] = []
        with self.ws.metadata.begin() as conn:
            task = self._task(conn, task_name)
            schema = self._schema(conn, task.schema_name, task.schema_version)
            keys = sorted({k for k, _, _ in wanted})
            items: dict[str, bool] = {}
            for start in range(0, len(keys), 500):
                items.update(conn.execute(select(label_items.c.item_key, label_items.c.show_prelabel)
                                          .where(and_(label_items.c.task_id == task.id,
                                                      label_items.c.item_key.in_(keys[start:start + 500])))).all())
            raters = sorted({r for _, r, _ in wanted})
            assigned = set(conn.execute(select(label_assignments.c.item_key, label_assignments.c.rater)
                                        .where(and_(label_assignments.c.task_id == task.id,
                                                    label_assignments.c.rater.in_(raters)))).all())
            done = set(conn.execute(select(label_answers.c.item_key, label_answers.c.rater)
                                    .where(and_(label_answers.c.task_id == task.id,
                                                label_answers.c.rater.in_(raters)))).all())
            seq = dict(conn.execute(select(label_answers.c.rater, func.max(label_answers.c.seq))
                                    .where(and_(label_answers.c.task_id == task.id,
                                                label_answers.c.rater.in_(raters)))
                                    .group_by(label_answers.c.rater)).all())
            now = self.ws.clock.now()
            rows = []
            for key, rater, label in wanted:
                if key not in items:
                    raise UnknownItem(task.name, key)
                if not isinstance(label, str) or label not in schema.classes:
                    raise UnknownClass(str(label), schema)
                if (key, rater) not in assigned:
                    raise InvalidInput(f"Item {key!r} of task {task.name!r} is not assigned to rater {rater!r}; "
                                       f"ask for the rater's items with: yarnit labels next {task.name} {rater}")
                if (key, rater) in done:
                    raise DuplicateAnswer(task.name, key, rater)
                done.add((key, rater))
                seq[rater] = int(seq.get(rater) or 0) + 1
                answer = Answer(item_key=key, rater=rater, label=label, schema_version=schema.version,
                                prelabel_shown=bool(items[key]), seq=seq[rater], answered_at=now)
                out.append(answer)
                rows.append({"task_id": task.id, **{k: v for k, v in answer.to_dict().items() if k != "answered_at"},
                             "answered_at": now})
            try:
                if rows:
                    conn.execute(insert(label_answers), rows)
            except IntegrityError as exc:  # another writer answered the same item for the same rater first
                first = wanted[0]
                raise DuplicateAnswer(task.name, first[0], first[1]) from exc
        return out

    def answers(self, task_name: str) -> list[Answer]:
        with self.ws.metadata.begin() as conn:
            task = self._task(conn, task_name)
            rows = conn.execute(select(label_answers).where(label_answers.c.task_id == task.id)
                                .order_by(label_answers.c.id)).mappings().all()
        return [Answer(item_key=r["item_key"], rater=r["rater"], label=r["label"], schema_version=r["schema_version"],
                       prelabel_shown=bool(r["prelabel_shown"]), seq=r["seq"], answered_at=r["answered_at"])
                for r in rows]

    def items(self, task_name: str) -> list[dict[str, Any]]:
        """Every item of the task in queue order: key, text, position, golden label, pre-label, review."""
        with self.ws.metadata.begin() as conn:
            task = self._task(conn, task_name)
            rows = conn.execute(select(label_items).where(label_items.c.task_id == task.id)
                                .order_by(label_items.c.position)).mappings().all()
        return [{k: v for k, v in r.items() if k != "task_id"} for r in rows]

    def golden(self, task_name: str) -> dict[str, str]:
        with self.ws.metadata.begin() as conn:
            task = self._task(conn, task_name)
            return dict(conn.execute(select(label_items.c.item_key, label_items.c.golden_label)
                                     .where(and_(label_items.c.task_id == task.id,
                                                 label_items.c.golden_label.is_not(None)))).all())

    # -- pre-labels and review --------------------------------------------
    def set_prelabels(self, task_name: str, predictions: Mapping[str, tuple[str, float]], *, model: str,
                      show_share: float = 0.5) -> int:
        """Store a model's label per item; show it to raters on a seeded ``show_share`` of the items.

        The other items are the control group: comparing them measures how much raters follow the model.
        """
        if not 0.0 <= show_share <= 1.0:
            raise InvalidInput(f"show_share must be within [0, 1]; got {show_share}.")
        with self.ws.metadata.begin() as conn:
            task = self._task(conn, task_name)
            schema = self._schema(conn, task.schema_name, task.schema_version)
            keys = set(conn.execute(select(label_items.c.item_key).where(label_items.c.task_id == task.id))
                       .scalars().all())
            for key, (label, confidence) in predictions.items():
                if key not in keys:
                    raise UnknownItem(task.name, key)
                if label not in schema.classes:
                    raise UnknownClass(label, schema)
                conn.execute(update(label_items).where(and_(label_items.c.task_id == task.id,
                                                            label_items.c.item_key == key))
                             .values(prelabel=label, prelabel_confidence=float(confidence), prelabel_model=model,
                                     show_prelabel=_stable_unit(task.seed, key) < show_share))
        return len(predictions)

    def fit_model(self, task_name: str, *, method: str = "dawid_skene", seed: int = 0) -> tuple[Any, list[str]]:
        """A :class:`~yarnit.labels.active.TextClassifier` fitted on the task's labelled items (consensus,
        golden, reviewed); returns it with the keys it was fitted on."""
        from .active import TextClassifier, featurize

        task = self.task(task_name)
        schema = self.schema(task.schema_name, task.schema_version)
        known = [c for c in self.consensus(task_name, method=method) if c.label is not None
                 and c.source != "model" and (c.source != "human" or c.rater_count > 0)]  # never its own output
        if not known:
            raise InvalidInput(f"Label task {task.name!r} has no labelled item to learn from yet; collect answers "
                               f"first: yarnit labels next {task.name} RATER")
        y = np.array([schema.classes.index(c.label) for c in known if c.label in schema.classes])
        texts = [c.text for c in known if c.label in schema.classes]
        return TextClassifier(schema.classes, seed=seed).fit(featurize(texts), y), [c.item_key for c in known]

    def prioritize(self, task_name: str, n: int, *, strategy: str = "uncertainty_diversity", seed: int = 0
                   ) -> list[str]:
        """Move the ``n`` unanswered ordinary items the current model most needs to the front of their raters'
        queues (active learning); returns their keys, most wanted first."""
        from .active import featurize, select_batch

        model, _ = self.fit_model(task_name, seed=seed)
        task = self.task(task_name)
        answered = {a.item_key for a in self.answers(task_name)}
        open_items = [i for i in self.items(task_name) if i["golden_label"] is None and i["item_key"] not in answered]
        if not open_items:
            return []
        x = featurize([i["text"] for i in open_items])
        chosen = select_batch(x, model.predict_proba(x), n, strategy=strategy, seed=seed)  # type: ignore[arg-type]
        keys = [open_items[int(i)]["item_key"] for i in chosen]
        with self.ws.metadata.begin() as conn:
            front = conn.execute(select(func.min(label_assignments.c.position))
                                 .where(label_assignments.c.task_id == task.id)).scalar_one()
            for rank, key in enumerate(keys):
                conn.execute(update(label_assignments).where(and_(label_assignments.c.task_id == task.id,
                                                                  label_assignments.c.item_key == key))
                             .values(position=int(front) - len(keys) + rank))
        return keys

    def prelabel_from_model(self, task_name: str, *, model_name: str = "intent-text-lr", show_share: float = 0.5,
                            seed: int = 0) -> int:
        """Pre-label every item with the model fitted on the task's labels so far (see :meth:`set_prelabels`)."""
        from .active import featurize

        model, _ = self.fit_model(task_name, seed=seed)
        task = self.task(task_name)
        schema = self.schema(task.schema_name, task.schema_version)
        items = self.items(task_name)
        proba = model.predict_proba(featurize([i["text"] for i in items]))
        predictions = {i["item_key"]: (schema.classes[int(p.argmax())], float(p.max()))
                       for i, p in zip(items, proba, strict=True)}
        return self.set_prelabels(task_name, predictions, model=model_name, show_share=show_share)

    def prelabel_effect(self, task_name: str) -> dict[str, Any]:
        """Agreement with the model's pre-label when shown vs hidden (anchoring), and raters' accuracy on
        golden items with and without a pre-label shown."""
        from .active import prelabel_agreement

        items = self.items(task_name)
        prelabels = {i["item_key"]: i["prelabel"] for i in items if i["prelabel"] is not None}
        golden = {i["item_key"]: i["golden_label"] for i in items if i["golden_label"] is not None}
        answers = self.answers(task_name)
        out = prelabel_agreement(answers, prelabels)
        for shown in (True, False):
            graded = [a for a in answers if a.item_key in golden and a.item_key in prelabels
                      and a.prelabel_shown == shown]
            out["shown" if shown else "hidden"]["golden_answers"] = len(graded)
            out["shown" if shown else "hidden"]["golden_accuracy"] = (
                sum(a.label == golden[a.item_key] for a in graded) / len(graded) if graded else None)
        return out

    def review_queue(self, task_name: str, *, method: str = "dawid_skene") -> list[ConsensusLabel]:
        """Items whose consensus confidence is below the policy's ``review_below``, least sure first."""
        task = self.task(task_name)
        low = [c for c in self.consensus(task_name, method=method)
               if c.source == "human" and c.confidence < task.policy.review_below]
        return sorted(low, key=lambda c: c.confidence)

    def review(self, task_name: str, item_key: str, label: str, *, reviewer: str) -> None:
        """A reviewer settles an item's label (it overrides the consensus; the raters' answers stay)."""
        check_rater(reviewer)
        with self.ws.metadata.begin() as conn:
            task = self._task(conn, task_name)
            schema = self._schema(conn, task.schema_name, task.schema_version)
            if label not in schema.classes:
                raise UnknownClass(str(label), schema)
            done = conn.execute(update(label_items).where(and_(label_items.c.task_id == task.id,
                                                               label_items.c.item_key == item_key))
                                .values(reviewed_label=label, reviewed_by=reviewer, reviewed_at=self.ws.clock.now()))
            if done.rowcount == 0:
                raise UnknownItem(task.name, item_key)

    # -- quality and consensus --------------------------------------------
    def answer_table(self, task_name: str, *, answers: Sequence[Answer] | None = None,
                     only: Callable[[Answer], bool] | None = None) -> AnswerTable:
        task = self.task(task_name)
        schema = self.schema(task.schema_name, task.schema_version)
        given = self.answers(task_name) if answers is None else answers
        items = [i["item_key"] for i in self.items(task_name)]
        raters = list(task.raters)
        row, col = {k: i for i, k in enumerate(items)}, {r: j for j, r in enumerate(raters)}
        index = {c: i for i, c in enumerate(schema.classes)}
        matrix = np.full((len(items), len(raters)), MISSING, dtype=np.int64)
        versions = np.zeros_like(matrix)
        for a in given:
            if (only is None or only(a)) and a.label in index and a.rater in col:  # a removed class no longer counts
                matrix[row[a.item_key], col[a.rater]] = index[a.label]
                versions[row[a.item_key], col[a.rater]] = a.schema_version
        return AnswerTable(items, raters, schema.classes, matrix, versions)

    def quality(self, task_name: str) -> dict[str, RaterQuality]:
        """Each rater's golden accuracy, drift, flag and consensus weight."""
        task = self.task(task_name)
        answers, golden = self.answers(task_name), self.golden(task_name)
        return {r: rater_quality(r, answers, golden, task.policy) for r in task.raters}

    def agreement(self, task_name: str) -> dict[str, Any]:
        """Inter-rater agreement over the ordinary items: Krippendorff's alpha, Fleiss' kappa (items with
        exactly ``overlap`` answers) and the mean of Cohen's kappa over rater pairs sharing >= 10 items."""
        task = self.task(task_name)
        golden = self.golden(task_name)
        table = self.answer_table(task_name, only=lambda a: a.item_key not in golden)
        m = table.matrix
        answered = (m != MISSING).sum(axis=1)
        out: dict[str, Any] = {"items": int((answered > 0).sum()), "answers": int(answered.sum())}
        out["krippendorff_alpha"] = krippendorff_alpha(m.T) if (answered >= 2).any() else None
        full = m[answered == task.overlap]
        out["fleiss_kappa"] = (fleiss_kappa(count_table(full, len(table.classes)))
                               if task.overlap >= 2 and len(full) else None)
        pairs = []
        for i in range(len(table.raters)):
            for j in range(i + 1, len(table.raters)):
                both = (m[:, i] != MISSING) & (m[:, j] != MISSING)
                if both.sum() >= 10:
                    kappa = cohen_kappa(m[both, i], m[both, j])
                    if not np.isnan(kappa):
                        pairs.append({"raters": [table.raters[i], table.raters[j]], "items": int(both.sum()),
                                      "cohen_kappa": kappa})
        out["cohen_kappa_mean"] = float(np.mean([p["cohen_kappa"] for p in pairs])) if pairs else None
        out["cohen_kappa_pairs"] = pairs
        return out

    def consensus(self, task_name: str, *, method: str = "dawid_skene", weighted: bool | None = None
                  ) -> list[ConsensusLabel]:
        """One label per item: a reviewer's decision, else the golden class, else the raters' consensus, else
        (no answers yet) the model's pre-label, marked ``source="model"``.

        ``weighted`` counts flagged raters' answers at the policy's ``flagged_weight``. By default majority
        vote is weighted and Dawid-Skene is not: Dawid-Skene estimates each rater's confusion matrix, and a
        rater who is wrong the same way every time still carries information it can use (on the simulated
        pool, down-weighting the adversarial rater cost Dawid-Skene 7 points of accuracy; see
        docs/benchmarks.md).
        """
        if method not in METHODS:
            raise InvalidInput(f"Consensus method {method!r} is not known; choose one of {list(METHODS)}.")
        if weighted is None:
            weighted = method == "majority"
        items = self.items(task_name)
        table = self.answer_table(task_name)
        quality = self.quality(task_name)
        weights = np.array([quality[r].weight if weighted else 1.0 for r in table.raters])
        k = len(table.classes)
        if method == "majority":
            label, confidence = majority_vote(table.matrix, k, weights)
        else:
            index = {c: i for i, c in enumerate(table.classes)}
            known = np.array([index.get(row["golden_label"] or row["reviewed_label"] or "", MISSING)
                              for row in items])  # golden and reviewed items anchor the raters' confusions
            posterior, _, _ = dawid_skene(table.matrix, k, weights=weights, known=known)
            answered = (table.matrix != MISSING).any(axis=1)
            label = np.where(answered, posterior.argmax(axis=1), MISSING)
            confidence = np.where(answered, posterior.max(axis=1), 0.0)
        count = (table.matrix != MISSING).sum(axis=1)
        out = []
        for i, row in enumerate(items):
            version = int(table.versions[i].max()) or None
            if row["reviewed_label"] is not None:
                out.append(ConsensusLabel(row["item_key"], row["text"], row["reviewed_label"], 1.0, int(count[i]),
                                          "review", version))
            elif row["golden_label"] is not None:
                out.append(ConsensusLabel(row["item_key"], row["text"], row["golden_label"], 1.0, int(count[i]),
                                          "golden", version))
            elif count[i] == 0 and row["prelabel"] is not None:  # nobody answered: the model's label, said so
                out.append(ConsensusLabel(row["item_key"], row["text"], row["prelabel"],
                                          float(row["prelabel_confidence"] or 0.0), 0, "model", None))
            else:
                out.append(ConsensusLabel(row["item_key"], row["text"],
                                          table.classes[int(label[i])] if label[i] != MISSING else None,
                                          float(confidence[i]), int(count[i]), "human", version))
        return out

    # -- label sets --------------------------------------------------------
    def publish(self, task_name: str, dataset_name: str, *, method: str = "dawid_skene",
                min_raters: int = 1, include_model: bool = False, actor: str = "api") -> DatasetVersion:
        """The task's consensus labels as a dataset version, with per-label metadata and lineage to the task.

        Items only the model labelled (``source="model"``) are left out unless ``include_model``. The label
        set's quality summary (agreement, flagged raters, sources, confidence, schema versions) is
        recorded in the audit log beside it, for :meth:`label_set_summary` and whoever trains on the set.
        """
        check_name("Dataset", dataset_name)
        task = self.task(task_name)
        chosen = [c for c in self.consensus(task_name, method=method)
                  if c.label is not None and (c.source != "human" or c.rater_count >= min_raters)
                  and (include_model or c.source != "model")]
        if not chosen:
            raise InvalidInput(f"Label task {task.name!r} has no labelled item to publish yet (min_raters="
                               f"{min_raters}). Collect answers first: yarnit labels next {task.name} RATER")
        frame = pd.DataFrame({
            task.key_column: [c.item_key for c in chosen], task.text_column: [c.text for c in chosen],
            "label": [c.label for c in chosen], "confidence": [c.confidence for c in chosen],
            "rater_count": [c.rater_count for c in chosen], "source": [c.source for c in chosen],
            "definition_version": [c.definition_version or task.schema_version for c in chosen],
            "label_schema": [task.schema_name] * len(chosen), "label_task": [task.name] * len(chosen),
            "method": [method if c.source == "human" else c.source for c in chosen],
        })
        version = Datasets(self.ws).ingest_frame(dataset_name, frame, source=f"labels:{task.name}",
                                                 parents=[task.dataset_version_id])
        Lineage(self.ws).record(Node("label_task", task.id), Node("dataset_version", version.id), "labeled_as")
        agreement = self.agreement(task_name)
        quality = self.quality(task_name)
        summary = {
            "dataset": version.ref, "dataset_version_id": version.id, "task": task.name,
            "schema": f"{task.schema_name}:v{task.schema_version}", "method": method, "labels": len(chosen),
            "by_source": {src: int((frame["source"] == src).sum()) for src in sorted(set(frame["source"]))},
            "definition_versions": sorted({int(x) for x in frame["definition_version"]}),
            "mean_confidence": float(frame.loc[frame["source"] == "human", "confidence"].mean())
            if (frame["source"] == "human").any() else None,
            "agreement": {k: agreement[k] for k in ("krippendorff_alpha", "fleiss_kappa", "cohen_kappa_mean")},
            "raters": len(task.raters), "flagged_raters": sorted(r for r, q in quality.items() if q.flagged),
        }
        with self.ws.metadata.begin() as conn:
            conn.execute(insert(audit_log).values(at=self.ws.clock.now(), actor=actor[:128], action="labels.publish",
                                                  subject=f"dataset_version:{version.id}", detail=summary))
        return version

    def label_set_summary(self, dataset_version_id: str) -> dict[str, Any]:
        """The quality summary recorded when the label set ``dataset_version_id`` was published (newest)."""
        with self.ws.metadata.begin() as conn:
            row = conn.execute(select(audit_log.c.detail).where(and_(
                audit_log.c.action == "labels.publish",
                audit_log.c.subject == f"dataset_version:{dataset_version_id}"))
                .order_by(audit_log.c.id.desc()).limit(1)).first()
        if row is None:
            raise NotFound(f"Dataset version {dataset_version_id!r} was not published from a label task. "
                           "Publish one with: yarnit labels publish TASK DATASET")
        return dict(row[0])


def _queue_order(keys: Sequence[str], golden: Mapping[str, str], seed: int) -> np.ndarray:
    """Row indexes in queue order: ordinary items shuffled, golden items spread evenly (with jitter) among
    them, so every rater meets golden items at a steady rate from their first answers on."""
    rng = np.random.default_rng([seed, 0x1ABE])
    is_gold = np.array([k in golden for k in keys])
    place = np.empty(len(keys))
    ordinary, gold = np.flatnonzero(~is_gold), np.flatnonzero(is_gold)
    place[ordinary[rng.permutation(len(ordinary))]] = (np.arange(len(ordinary)) + 0.5) / max(len(ordinary), 1)
    place[gold[rng.permutation(len(gold))]] = (np.arange(len(gold)) + rng.random(len(gold))) / max(len(gold), 1)
    return np.argsort(place, kind="stable")


def _schema_from(row: Any) -> LabelSchema:
    return LabelSchema(name=row["name"], version=row["version"], classes=tuple(row["classes"]),
                       guideline=row["guideline"], created_at=row["created_at"], created_by=row["created_by"],
                       id=row["id"])


def _task_from(row: Any) -> LabelTask:
    return LabelTask(id=row["id"], name=row["name"], schema_name=row["schema_name"],
                     schema_version=row["schema_version"], dataset_version_id=row["dataset_version_id"],
                     key_column=row["key_column"], text_column=row["text_column"], raters=tuple(row["raters"]),
                     overlap=row["overlap"], seed=row["seed"], policy=QualityPolicy.from_dict(row["policy"]),
                     created_at=row["created_at"], created_by=row["created_by"])


__all__ = ["METHODS", "AnswerTable", "ConsensusLabel", "Labels", "check_rater"]
