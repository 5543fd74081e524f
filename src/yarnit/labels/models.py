"""The nouns of human labeling: label schemas, tasks, answers, the quality policy; and their errors."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from yarnit.core.errors import Conflict, InvalidInput, NotFound

MAX_CLASSES = 64
MAX_GUIDELINE = 20_000


@dataclass(frozen=True)
class LabelSchema:
    """The classes raters choose from and the guideline that defines them, at one version."""

    name: str
    version: int
    classes: tuple[str, ...]
    guideline: str
    created_at: datetime
    created_by: str
    id: str = ""

    @property
    def ref(self) -> str:
        return f"{self.name}:v{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "version": self.version, "ref": self.ref,
                "classes": list(self.classes), "guideline": self.guideline,
                "created_at": self.created_at.isoformat(), "created_by": self.created_by}


@dataclass(frozen=True)
class QualityPolicy:
    """When a rater is flagged, and how much a flagged rater's answers still count.

    A rater is flagged once they have answered at least ``min_golden`` golden items and the upper end of
    the Wilson interval (``z``) of their golden accuracy is below ``min_accuracy``: confident that they
    are below the bar, not merely unlucky on a few items. Flagged raters' answers count ``flagged_weight``
    in the consensus. Drift compares the first and last ``drift_window`` golden answers of a rater.
    """

    min_accuracy: float = 0.6
    min_golden: int = 4
    z: float = 1.96
    flagged_weight: float = 0.1
    drift_window: int = 10
    review_below: float = 0.6  # consensus confidence under which an item goes to the QA review queue

    def __post_init__(self) -> None:
        if not 0.0 < self.min_accuracy < 1.0 or not 0.0 <= self.flagged_weight <= 1.0:
            raise InvalidInput("Quality policy: min_accuracy must be in (0, 1) and flagged_weight in [0, 1]; got "
                               f"{self.min_accuracy} and {self.flagged_weight}.")
        if self.min_golden < 1 or self.drift_window < 1 or self.z <= 0:
            raise InvalidInput("Quality policy: min_golden and drift_window must be >= 1 and z > 0.")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QualityPolicy:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInput(f"Quality policy has unknown field(s) {unknown}; known: {sorted(known)}.")
        return cls(**data)


@dataclass(frozen=True)
class LabelTask:
    """Items of one dataset version to be labelled under a schema by k of the task's raters each."""

    id: str
    name: str
    schema_name: str
    schema_version: int
    dataset_version_id: str
    key_column: str
    text_column: str
    raters: tuple[str, ...]
    overlap: int
    seed: int
    policy: QualityPolicy
    created_at: datetime
    created_by: str
    counts: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "schema": f"{self.schema_name}:v{self.schema_version}",
                "schema_name": self.schema_name, "schema_version": self.schema_version,
                "dataset_version_id": self.dataset_version_id, "key_column": self.key_column,
                "text_column": self.text_column, "raters": list(self.raters), "overlap": self.overlap,
                "seed": self.seed, "policy": self.policy.to_dict(), "created_at": self.created_at.isoformat(),
                "created_by": self.created_by, "counts": dict(self.counts)}


@dataclass(frozen=True)
class Answer:
    """One rater's label for one item, under the schema version current when they gave it."""

    item_key: str
    rater: str
    label: str
    schema_version: int
    prelabel_shown: bool
    seq: int  # this rater's n-th answer in the task (1-based)
    answered_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"item_key": self.item_key, "rater": self.rater, "label": self.label,
                "schema_version": self.schema_version, "prelabel_shown": self.prelabel_shown, "seq": self.seq,
                "answered_at": self.answered_at.isoformat()}


class LabelTaskNotFound(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"No label task {name!r}. List the tasks with: yarnit labels tasks")
        self.name = name


class LabelSchemaNotFound(NotFound):
    def __init__(self, name: str, version: int | None = None) -> None:
        what = f"{name!r}" if version is None else f"{name!r} version {version}"
        super().__init__(f"No label schema {what}. Create one with: yarnit labels schema NAME --classes a,b "
                         "--guideline FILE")


class UnknownItem(NotFound):
    def __init__(self, task: str, item_key: str) -> None:
        super().__init__(f"Label task {task!r} has no item {item_key[:128]!r}. Items come from the task's dataset "
                         f"version; see the next items of a rater with: yarnit labels next {task} RATER")


class UnknownClass(InvalidInput):
    def __init__(self, label: str, schema: LabelSchema) -> None:
        super().__init__(f"Label {label[:63]!r} is not a class of label schema {schema.ref}; the classes are "
                         f"{list(schema.classes)}.")


class DuplicateAnswer(Conflict):
    def __init__(self, task: str, item_key: str, rater: str) -> None:
        super().__init__(f"Rater {rater!r} already answered item {item_key!r} of task {task!r}; an answer is "
                         "given once (the first one is kept). Ask a reviewer to correct the consensus instead.")


__all__ = ["Answer", "DuplicateAnswer", "LabelSchema", "LabelSchemaNotFound", "LabelTask", "LabelTaskNotFound",
           "QualityPolicy", "UnknownClass", "UnknownItem"]
