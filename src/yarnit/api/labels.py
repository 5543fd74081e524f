"""Human labels over HTTP, for the rater tools and external annotation tools.

Reads are open like every GET under /api; writes need the control-plane token (the app's middleware
refuses them otherwise):

``POST /api/labels/schemas`` ``{name, classes, guideline}``,
``GET|POST /api/labels/tasks`` (list; create ``{name, dataset, schema, raters, overlap, key_column,
text_column, golden, seed}``), ``GET /api/labels/tasks/{task}``,
``GET /api/labels/tasks/{task}/next?rater=R&limit=N`` (golden items among them, unmarked),
``POST /api/labels/tasks/{task}/answers`` ``{rater, answers: [{item_key, label}]}`` (all or none),
``GET /api/labels/tasks/{task}/quality``, ``GET /api/labels/tasks/{task}/consensus?method=``,
``POST …/guideline`` ``{guideline, classes?}``, ``GET|POST …/review`` (queue; ``{item_key, label}``),
``POST …/prioritize`` ``{n, strategy}``, ``POST …/prelabels`` ``{show_share}``,
``POST /api/labels/tasks/{task}/publish`` ``{dataset, method}``,
``GET /api/labels/tasks/{task}/export`` (Label Studio JSON) and ``POST /api/labels/import``.

Unknown tasks or items are 404, unknown classes and malformed bodies 422, a second answer 409.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from yarnit.labels import Labels, QualityPolicy, export_tasks, import_tasks

from .auth import actor_of

router = APIRouter(prefix="/api/labels", tags=["labels"])
Name = Annotated[str, Field(min_length=1, max_length=63)]
Rater = Annotated[str, Field(min_length=1, max_length=128)]


class SchemaBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    classes: list[Annotated[str, Field(min_length=1, max_length=63)]] = Field(min_length=2, max_length=64)
    guideline: str = Field(min_length=1, max_length=20_000)


class TaskBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    dataset: str = Field(min_length=1, max_length=80)
    schema_ref: str = Field(min_length=1, max_length=80, alias="schema")
    raters: list[Rater] = Field(min_length=1, max_length=1000)
    overlap: int = Field(3, ge=1, le=1000)
    key_column: str = Field(min_length=1, max_length=128)
    text_column: str = Field(min_length=1, max_length=128)
    golden: dict[str, str] = Field(default_factory=dict)
    seed: int = Field(0, ge=0, le=2**62)
    policy: dict[str, float | int] | None = None  # QualityPolicy fields (min_accuracy, flagged_weight, …)


class GuidelineBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    guideline: str = Field(min_length=1, max_length=20_000)
    classes: list[Annotated[str, Field(min_length=1, max_length=63)]] | None = Field(None, min_length=2,
                                                                                      max_length=64)


class ReviewBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    item_key: str = Field(min_length=1, max_length=128)
    label: str = Field(min_length=1, max_length=63)


class PrioritizeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int = Field(20, ge=1, le=10_000)
    strategy: Literal["uncertainty_diversity", "uncertainty", "random"] = "uncertainty_diversity"


class PrelabelBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    show_share: float = Field(0.5, ge=0.0, le=1.0)


class AnswerItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    item_key: str = Field(min_length=1, max_length=128)
    label: str = Field(min_length=1, max_length=63)


class AnswersBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rater: Rater
    answers: list[AnswerItem] = Field(min_length=1, max_length=1000)


class PublishBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dataset: Name
    method: Literal["dawid_skene", "majority"] = "dawid_skene"


class ImportBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task: Name
    dataset: Name
    schema_ref: str = Field(min_length=1, max_length=80, alias="schema")
    raters: list[Rater] = Field(default_factory=list, max_length=1000)
    tasks: list[Any] = Field(min_length=1, max_length=200_000)


def _labels(request: Request) -> Labels:
    return Labels(request.app.state.workspace)


@router.post("/schemas")
def define_schema(request: Request, body: SchemaBody) -> dict[str, Any]:
    """Define a label schema (a new version when the classes or guideline change)."""
    return _labels(request).define_schema(body.name, body.classes, body.guideline,
                                          actor=actor_of(request)).to_dict()


@router.get("/tasks")
def list_tasks(request: Request) -> dict[str, Any]:
    labels = _labels(request)
    return {"tasks": [labels.task(t.name).to_dict() for t in labels.tasks()]}


@router.post("/tasks")
def create_task(request: Request, body: TaskBody) -> dict[str, Any]:
    """Create a task over a dataset version: each item to ``overlap`` raters, golden items to all."""
    task = _labels(request).create_task(
        body.name, dataset=body.dataset, schema=body.schema_ref, raters=body.raters, overlap=body.overlap,
        key_column=body.key_column, text_column=body.text_column, golden=body.golden, seed=body.seed,
        policy=None if body.policy is None else QualityPolicy.from_dict(body.policy), actor=actor_of(request))
    return task.to_dict()


@router.get("/tasks/{task}")
def show_task(request: Request, task: str) -> dict[str, Any]:
    labels = _labels(request)
    found = labels.task(task[:63])
    schema = labels.schema(found.schema_name, found.schema_version)
    return found.to_dict() | {"classes": list(schema.classes), "guideline": schema.guideline}


@router.get("/tasks/{task}/next")
def next_items(request: Request, task: str, rater: Annotated[str, Query(min_length=1, max_length=128)],
               limit: Annotated[int, Query(ge=1, le=1000)] = 10) -> dict[str, Any]:
    """The rater's next items in queue order (golden items are among them, unmarked)."""
    return {"rater": rater, "items": _labels(request).next_items(task[:63], rater, limit=limit)}


@router.post("/tasks/{task}/answers")
def answer(request: Request, task: str, body: AnswersBody) -> dict[str, Any]:
    """Record a rater's answers: all of them, or (on any bad one) none."""
    given = _labels(request).answer_many(task[:63], [(a.item_key, body.rater, a.label) for a in body.answers])
    return {"recorded": len(given), "answers": [a.to_dict() for a in given]}


@router.get("/tasks/{task}/quality")
def quality(request: Request, task: str) -> dict[str, Any]:
    """Raters' golden accuracy, drift, flags and weights; agreement; the pre-labels' anchoring effect."""
    labels = _labels(request)
    return {"raters": [q.to_dict() for q in labels.quality(task[:63]).values()],
            "agreement": labels.agreement(task[:63]), "prelabels": labels.prelabel_effect(task[:63])}


@router.post("/tasks/{task}/guideline")
def update_guideline(request: Request, task: str, body: GuidelineBody) -> dict[str, Any]:
    """A new schema version for the task; answers given so far keep theirs."""
    return _labels(request).update_guideline(task[:63], body.guideline, classes=body.classes,
                                             actor=actor_of(request)).to_dict()


@router.get("/tasks/{task}/review")
def review_queue(request: Request, task: str) -> dict[str, Any]:
    """Items the raters did not agree on (consensus confidence below the policy's review_below)."""
    return {"queue": [c.to_dict() for c in _labels(request).review_queue(task[:63])]}


@router.post("/tasks/{task}/review")
def review(request: Request, task: str, body: ReviewBody) -> dict[str, Any]:
    """A reviewer settles an item's label (recorded with the caller)."""
    _labels(request).review(task[:63], body.item_key, body.label, reviewer=actor_of(request))
    return {"item_key": body.item_key, "label": body.label, "reviewed_by": actor_of(request)}


@router.post("/tasks/{task}/prioritize")
def prioritize(request: Request, task: str, body: PrioritizeBody) -> dict[str, Any]:
    """Active learning: move the items the current model most needs to the front of the queues."""
    return {"prioritized": _labels(request).prioritize(task[:63], body.n, strategy=body.strategy)}


@router.post("/tasks/{task}/prelabels")
def prelabel(request: Request, task: str, body: PrelabelBody) -> dict[str, Any]:
    """Pre-label every item with the task's current model; show it on a seeded share of the items."""
    return {"prelabelled": _labels(request).prelabel_from_model(task[:63], show_share=body.show_share)}


@router.get("/tasks/{task}/consensus")
def consensus(request: Request, task: str,
              method: Literal["dawid_skene", "majority"] = "dawid_skene") -> dict[str, Any]:
    return {"method": method, "labels": [c.to_dict() for c in _labels(request).consensus(task[:63], method=method)]}


@router.post("/tasks/{task}/publish")
def publish(request: Request, task: str, body: PublishBody) -> dict[str, Any]:
    """Publish the consensus as a dataset version with lineage to the task."""
    labels = _labels(request)
    version = labels.publish(task[:63], body.dataset, method=body.method, actor=actor_of(request))
    return version.to_dict() | {"label_summary": labels.label_set_summary(version.id)}


@router.get("/tasks/{task}/export")
def export(request: Request, task: str) -> list[dict[str, Any]]:
    """The task as Label Studio JSON tasks."""
    return export_tasks(_labels(request), task[:63])


@router.post("/import")
def import_label_studio(request: Request, body: ImportBody) -> dict[str, Any]:
    """Create a task from Label Studio JSON tasks (validated whole; a bad file stores nothing)."""
    made = import_tasks(_labels(request), body.tasks, task_name=body.task, dataset_name=body.dataset,
                        schema=body.schema_ref, raters=body.raters, actor=actor_of(request))
    return made.to_dict()
