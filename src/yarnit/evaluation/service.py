"""Putting it together: build a report from predictions, and evaluate a registered version end to end.

:class:`ReportBuilder` turns labels and each model's predictions on one
distribution into metric values (overall and per slice, with intervals),
paired differences against reference models, calibration, fairness and
ranking sections. Recipes use it for their pipeline's evaluate step;
:func:`evaluate_version` uses it for ``yarnit eval run``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from yarnit.access import Principal
from yarnit.core.errors import InvalidInput
from yarnit.data.restricted import compliant_outputs, restrictions_of
from yarnit.registry import AliasNotFound, ModelNotFound, ModelRegistry, ModelVersion
from yarnit.storage import Workspace

from .bootstrap import Bootstrap
from .cards import CardInfo, ModelCard
from .distributions import Distribution, time_ordered_holdout
from .errors import UnknownSliceColumn
from .evaluator import evaluate_binary, evaluate_ranking, paired_deltas
from .fairness import group_fairness, read_evaluation_frame
from .report import EvaluationReport, MetricValue
from .slices import Slices
from .store import EvaluationStore, StoredEvaluation
from .validity import Candidate, ValidityBudget, ValidityProbe, check_version, golden_requests


class ReportBuilder:
    """Accumulates distributions, metric values and sections; :meth:`build` checks and returns the report."""

    def __init__(self, model: str, candidate: Mapping[str, Any], *, bootstrap: Bootstrap | None = None,
                 run_id: str | None = None, compared_with: Mapping[str, Any] | None = None,
                 dataset_version_ids: Sequence[str] = ()) -> None:
        self.model = model
        self.candidate = dict(candidate)
        self.bootstrap = bootstrap
        self.run_id = run_id
        self.compared_with = dict(compared_with) if compared_with else None
        self.dataset_version_ids = list(dataset_version_ids)
        self.distributions: list[Distribution] = []
        self.metrics: list[MetricValue] = []
        self.sections: dict[str, Any] = {}
        self.notes: list[str] = []
        if bootstrap is not None:
            self.sections["bootstrap"] = bootstrap.to_dict()

    def note(self, text: str) -> None:
        if text and text not in self.notes:
            self.notes.append(text)

    def add(self, distribution: Distribution, y: Any, predictions: Mapping[str, Any], *,
            frame: pd.DataFrame | None = None, slices: Sequence[str] = (),
            slice_bins: Mapping[str, Sequence[float]] | None = None, paired_against: Sequence[str] = ("production",),
            fairness: Sequence[str] = (), fairness_threshold: float = 0.5, fairness_min_group_rows: int = 1,
            ranking_group: str | None = None, k: int = 10, intervals_for: Sequence[str] = ("candidate",),
            calibration: bool = False) -> None:
        """Evaluate every subject of ``predictions`` on ``distribution`` (rows of ``frame``, labels ``y``)."""
        if any(d.name == distribution.name for d in self.distributions):
            raise InvalidInput(f"Distribution {distribution.name!r} was added twice to the report.")
        y = np.asarray(y)
        if len(y) == 0:
            self.distributions.append(distribution)
            self.note(f"{distribution.description}: no rows, so no metric could be computed on it")
            return
        sliced = Slices.from_frame(frame, list(slices), bins=slice_bins) if slices and frame is not None else None
        if slices and frame is None:
            raise InvalidInput("Slices need the evaluation frame (frame=...) to read their columns from.")
        result = evaluate_binary(y, predictions, distribution=distribution.name, slices=sliced,
                                 bootstrap=self.bootstrap, intervals_for=intervals_for)
        self.distributions.append(distribution)
        self.metrics += result.metrics
        confidence = self.bootstrap.confidence if self.bootstrap is not None else 0.95
        for reference in paired_against:
            if reference in predictions and "candidate" in predictions:
                self.metrics += paired_deltas(y, predictions["candidate"], predictions[reference],
                                              distribution=distribution.name, reference_name=reference,
                                              slices=sliced, confidence=confidence)
        if calibration:
            self.sections.setdefault("calibration", {})
            for subject, cal in result.calibration.items():
                self.sections["calibration"][subject] = cal.to_dict() | {"distribution": distribution.name}
        if "candidate" not in predictions:
            return
        for column in fairness:
            if frame is None or column not in frame.columns:
                raise UnknownSliceColumn(column, [] if frame is None else [str(c) for c in frame.columns])
            found = group_fairness(y, predictions["candidate"], frame[column].to_numpy(), threshold=fairness_threshold,
                                   column=column, distribution=distribution.name, bootstrap=self.bootstrap,
                                   min_group_rows=fairness_min_group_rows)
            self.metrics += found.metrics()
            self.sections.setdefault("fairness", []).append(found.to_dict())
        if ranking_group is not None:
            if frame is None or ranking_group not in frame.columns:
                raise UnknownSliceColumn(ranking_group, [] if frame is None else [str(c) for c in frame.columns])
            groups = frame[ranking_group].astype(str).to_numpy()
            self.metrics += evaluate_ranking(y, predictions["candidate"], groups, k=k, distribution=distribution.name,
                                             bootstrap=self.bootstrap)
            if "ranking" not in self.sections:
                self.sections["ranking"] = {"distribution": distribution.name, "group": ranking_group, "k": k,
                                            "groups": int(pd.Series(groups).nunique())}

    def section(self, name: str, value: Any) -> None:
        self.sections[name] = value

    def build(self) -> EvaluationReport:
        return EvaluationReport(model=self.model, candidate=self.candidate, distributions=tuple(self.distributions),
                                metrics=tuple(self.metrics), primary=self.distributions[0].name if self.distributions
                                else "", sections=self.sections, compared_with=self.compared_with,
                                dataset_version_ids=tuple(self.dataset_version_ids), run_id=self.run_id,
                                notes=tuple(self.notes))


def training_coverage(train: pd.DataFrame | TrainingCounts, evaluation: pd.DataFrame, columns: Sequence[str], *,
                      distribution: str) -> list[dict[str, Any]]:
    """Share of each slice value in the training data vs the evaluation data (biased-data-loss check).

    ``train`` is the training rows, or their :class:`TrainingCounts` (counted a batch at a time)."""
    counts = train if isinstance(train, TrainingCounts) else TrainingCounts(len(train), {
        c: _text_counts(train[c]) for c in columns if c in train.columns}, [str(c) for c in train.columns])
    out = []
    for column in columns:
        if column not in evaluation.columns:
            raise UnknownSliceColumn(column, [str(c) for c in evaluation.columns])
        if column not in counts.values:
            raise UnknownSliceColumn(column, counts.columns)
        ev, tr = _text_counts(evaluation[column]), counts.values[column]
        for value in sorted(set(ev.index) | set(tr.index)):
            e, t = int(ev.get(value, 0)), int(tr.get(value, 0))
            out.append({"distribution": distribution, "slice": f"{column}={value}", "eval_rows": e,
                        "eval_share": e / max(len(evaluation), 1), "train_rows": t,
                        "train_share": t / max(counts.rows, 1)})
    return out


@dataclass(frozen=True)
class TrainingCounts:
    """The training rows as :func:`training_coverage` needs them: how many, and each slice column's rows per
    value (as text). :meth:`of` counts batches, so the rows are never whole in memory (issue 20)."""

    rows: int
    values: dict[str, pd.Series]
    columns: list[str]

    @classmethod
    def of(cls, batches: Iterable[pd.DataFrame], columns: Sequence[str]) -> TrainingCounts:
        rows = 0
        seen: list[str] = []
        parts: dict[str, list[pd.Series]] = {}
        for batch in batches:
            rows += len(batch)
            seen = seen or [str(c) for c in batch.columns]
            for c in columns:
                if c in batch.columns:
                    parts.setdefault(c, []).append(_text_counts(batch[c]))
        values = {c: pd.concat(found).groupby(level=0, sort=False).sum() for c, found in parts.items()}
        return cls(rows, values, seen)


def _text_counts(column: pd.Series) -> pd.Series:
    """``column.astype(str).value_counts()``, counted before the values become text: converting every row of
    the training days to a string took 0.66 GB at 30 days (issue 20); converting the distinct values does not."""
    counts = column.value_counts(dropna=False, sort=False)
    counts = counts[counts > 0]  # a categorical's unused categories
    counts.index = counts.index.astype(object).astype(str)
    return counts.groupby(level=0, sort=False).sum()


# --- evaluating a registered version (yarnit eval run) ------------------------------------------------
@dataclass(frozen=True)
class EvaluationRequest:
    """What ``yarnit eval run`` evaluates and how."""

    model: str
    version: int | None = None
    alias: str | None = None
    dataset: str | None = None  # NAME[:vN] or ds_…; default: the version's training dataset
    label: str = "clicked"
    since: str | None = None  # first day of a time-ordered holdout (column ``day``); default: from the run's split
    slices: tuple[str, ...] = ()
    fairness: tuple[str, ...] = ()
    fairness_threshold: float = 0.1
    ranking_group: str | None = None
    k: int = 10
    compare_with: str | None = "production"
    validity: bool = True
    budget: ValidityBudget = ValidityBudget()
    bootstrap: Bootstrap = Bootstrap()
    max_rows: int = 2_000_000
    principal: Principal | None = None  # a token with 'read-restricted' lets fairness read restricted columns raw


def _resolve(registry: ModelRegistry, request: EvaluationRequest) -> ModelVersion:
    if request.version is not None:
        return registry.get(request.model, request.version)
    return registry.resolve(request.model, request.alias or "production")


def holdout_start(ws: Workspace, run_id: str | None) -> str | None:
    """The first holdout day the run's reports recorded (``holdout_from``), or None."""
    if not run_id:
        return None
    from yarnit.core.errors import NotFound
    from yarnit.training import RunStore, load_value

    try:
        steps = RunStore(ws).steps(run_id)
    except NotFound:
        return None
    for step in steps:
        for entry in (step.outputs or {}).values():
            if entry.get("kind") != "report":
                continue
            try:
                value = load_value(ws.artifacts, entry)
            except Exception:  # a purged output only loses the default, never the evaluation
                continue
            if isinstance(value, dict) and isinstance(value.get("holdout_from"), str):
                return str(value["holdout_from"])
    return None


def score_frame(version: ModelVersion, predictor: Any, frame: pd.DataFrame) -> np.ndarray:
    """Scores of raw rows through the version's request-time transform (vectorized twin when one exists)."""
    from yarnit.features import get_transform
    from yarnit.features.request_time_frame import FRAME_TRANSFORMS

    name = version.signature.get("transform")
    if name and name in FRAME_TRANSFORMS:
        features = FRAME_TRANSFORMS[name](frame)
        records = features.astype({c: object for c in features.columns if features[c].dtype == "category"})
        rows = records.to_dict("records")
    else:
        transform = get_transform(name) if name else None
        raw = frame.to_dict("records")
        rows = [transform(r) for r in raw] if transform is not None else raw
    return np.asarray(predictor.predict_proba(rows), dtype=np.float64)


def evaluate_version(ws: Workspace, request: EvaluationRequest) -> tuple[StoredEvaluation, EvaluationReport]:
    """Evaluate a registered version on a dataset version, validity-check it, and store the report."""
    from yarnit.data import Datasets

    registry = ModelRegistry(ws)
    version = _resolve(registry, request)
    candidate = Candidate.from_version(version)
    probe = ValidityProbe(ws, candidate, golden_requests(version.signature), request.budget) \
        if request.validity else None
    datasets = Datasets(ws)
    if request.dataset:
        dataset = datasets.resolve(request.dataset)
    elif version.dataset_version_ids:
        dataset = datasets.get_by_id(version.dataset_version_ids[0])
    else:
        raise InvalidInput(f"{version.ref} records no dataset; name one with --dataset NAME[:vN].")
    available = [*dataset.schema, *compliant_outputs(restrictions_of(ws, dataset))]
    inputs = list((version.signature.get("inputs") or {}).keys())
    wanted = list(dict.fromkeys([*inputs, "position", request.label, "day", *request.slices,
                                 *request.fairness, *([request.ranking_group] if request.ranking_group else [])]))
    wanted = [c.partition("=")[0] for c in wanted]
    if request.label not in available:
        raise InvalidInput(f"{dataset.ref} has no label column {request.label!r}; its columns: "
                           f"{', '.join(sorted(available))}. Name the label with --label.")
    missing = [c for c in [*(s.partition("=")[0] for s in request.slices), *request.fairness] if c not in available]
    if missing:
        raise UnknownSliceColumn(missing[0], available)
    frame = read_evaluation_frame(ws, dataset, [c for c in dict.fromkeys(wanted) if c in available],
                                  fairness=request.fairness, principal=request.principal,
                                  purpose=f"fairness evaluation of {version.ref} on {dataset.ref}")
    since = request.since or holdout_start(ws, version.run_id)
    if since and "day" in frame.columns:
        day = pd.to_datetime(frame["day"].astype(str)).dt.date
        frame = frame[day >= pd.Timestamp(since).date()].reset_index(drop=True)
        days = sorted(frame["day"].astype(str).unique())
        if not days:
            raise InvalidInput(f"{dataset.ref} has no rows on or after {since}; pick an earlier --since.")
        distribution = time_ordered_holdout(days[0], days[-1], rows=len(frame), dataset_version_ids=[dataset.id])
    else:
        distribution = Distribution("dataset", "iid", f"all rows of {dataset.ref} ({len(frame)} rows)", len(frame),
                                    (dataset.id,))
    if len(frame) > request.max_rows:
        frame = frame.sample(n=request.max_rows, random_state=0).reset_index(drop=True)
    if dataset.id in version.dataset_version_ids and not since:
        note = (f"{dataset.ref} is the data {version.ref} was trained on and no holdout was given: metrics are "
                "optimistic")
    else:
        note = ""
    y = pd.to_numeric(frame[request.label], errors="coerce").to_numpy()
    scores = {"candidate": score_frame(version, registry.load(version), frame)}
    compared = None
    if request.compare_with:
        try:
            reference = registry.resolve(request.model, request.compare_with)
        except (ModelNotFound, AliasNotFound):
            reference = None
        if reference is not None and reference.version != version.version:
            scores[request.compare_with] = score_frame(reference, registry.load(reference), frame)
            compared = {"alias": request.compare_with, "version": reference.version, "id": reference.id}
    builder = ReportBuilder(version.model_name, {"artifact_sha256": version.artifact_sha256, "version": version.version,
                                                 "version_id": version.id, "format": version.artifact_format.value},
                            bootstrap=request.bootstrap, compared_with=compared, dataset_version_ids=[dataset.id])
    builder.note(note)
    builder.add(distribution, y, scores, frame=frame, slices=request.slices,
                paired_against=[request.compare_with] if compared else [], fairness=request.fairness,
                fairness_threshold=request.fairness_threshold, ranking_group=request.ranking_group, k=request.k,
                calibration=True)
    if probe is not None:
        validity = check_version(ws, version, probe=probe, reference_scores=scores["candidate"])
        builder.section("validity", validity.to_dict())
    report = builder.build()
    stored = EvaluationStore(ws).add(report, model_version=version)
    return stored, report


def latest_evaluation(ws: Workspace, model_name: str, *, version: int | None = None,
                      evaluation_id: str | None = None) -> StoredEvaluation:
    """The evaluation asked for: by id, else the newest of ``version`` (by its bytes), else the model's newest."""
    from .errors import EvaluationNotFound

    store = EvaluationStore(ws)
    if evaluation_id is not None:
        stored = store.get(evaluation_id)
        if stored.model_name != model_name:
            raise InvalidInput(f"Evaluation {evaluation_id} is of model {stored.model_name!r}, not {model_name!r}.")
        return stored
    if version is not None:
        found = store.for_version(ModelRegistry(ws).get(model_name, version), limit=1)
        if not found:
            raise EvaluationNotFound(f"{model_name}:v{version}", f"{model_name} v{version} has no evaluation yet. "
                                     f"Evaluate it with: yarnit eval run {model_name} --version {version}")
        return found[0]
    found = store.list(model_name, limit=1)
    if not found:
        raise EvaluationNotFound(model_name, f"Model {model_name!r} has no evaluation yet. Evaluate it with: "
                                             f"yarnit eval run {model_name}")
    return found[0]


def card_for(ws: Workspace, model_name: str, *, version: int | None = None, evaluation_id: str | None = None,
             info: Mapping[str, Any] | None = None) -> ModelCard:
    """The model card of a version (default: the one behind ``production``, else the newest evaluated)."""
    from yarnit.data import DatasetNotFound, Datasets

    registry = ModelRegistry(ws)
    store = EvaluationStore(ws)
    mv: ModelVersion | None = None
    if version is not None:
        mv = registry.get(model_name, version)
    elif evaluation_id is None:
        try:
            mv = registry.resolve(model_name, "production")
        except (ModelNotFound, AliasNotFound):
            mv = None
    if mv is not None:
        # Default: the evaluation that gated this version when it was registered, else its newest one.
        gated = mv.metrics.get("evaluation_id") if evaluation_id is None else None
        if isinstance(gated, str) and any(e.id == gated for e in store.for_version(mv, limit=1000)):
            evaluation_id = gated
        stored = latest_evaluation(ws, model_name, version=mv.version, evaluation_id=evaluation_id)
    else:
        stored = latest_evaluation(ws, model_name, evaluation_id=evaluation_id)
        matches = [v for v in (registry.versions(model_name) if registry.exists(model_name) else [])
                   if v.artifact_sha256 == stored.artifact_sha256]
        mv = matches[-1] if matches else None
    report = store.report(stored.id)
    recorded = report.sections.get("card")
    if not recorded:  # card answers describe the model: take the newest evaluation of it that recorded them
        for other in store.list(model_name, limit=20):
            recorded = store.report(other.id).sections.get("card")
            if recorded:
                break
    card_info = CardInfo.from_config({**(recorded or {}), **(info or {})})
    datasets = []
    for dataset_id in (mv.dataset_version_ids if mv is not None else report.dataset_version_ids):
        try:
            d = Datasets(ws).get_by_id(dataset_id)
        except DatasetNotFound:
            datasets.append({"ref": dataset_id, "rows": None, "source": "(gone)", "pii_columns": []})
            continue
        datasets.append({"ref": d.ref, "rows": d.row_count, "source": d.source, "pii_columns": list(d.pii_columns)})
    history = store.history(model_name, metric="auc")
    by_sha = {v.artifact_sha256: v.version for v in (registry.versions(model_name) if registry.exists(model_name)
                                                     else [])}
    history = [h | {"model_version": h.get("model_version") or by_sha.get(h["artifact_sha256"])} for h in history]
    return ModelCard(report=report, version=mv, info=card_info, verdict=stored.verdict,
                     aliases=registry.aliases(model_name) if registry.exists(model_name) else {},
                     datasets=datasets, history=history, evaluation_id=stored.id)


__all__ = ["EvaluationRequest", "ReportBuilder", "card_for", "evaluate_version", "holdout_start", "latest_evaluation",
           "score_frame", "training_coverage"]
