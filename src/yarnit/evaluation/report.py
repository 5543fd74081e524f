"""The evaluation report: metric values, each tied to a distribution (CH5-R6), plus sections.

A :class:`MetricValue` is one number with its key: the metric, the
distribution, the slice (``""`` for the whole distribution) and the subject
(which model: ``candidate``, ``production``, ``popularity`` …). Differences
between two subjects on the same rows are stored with subject
``delta:<other>`` (candidate minus other).

An :class:`EvaluationReport` refuses to exist without distributions, and
refuses a metric value whose distribution it does not declare.

Example:
    >>> from yarnit.evaluation.distributions import time_ordered_holdout
    >>> report = EvaluationReport(model="ctr", candidate={"artifact_sha256": "ab" * 32},
    ...     distributions=(time_ordered_holdout("2026-01-07", "2026-01-07", rows=10),),
    ...     metrics=(MetricValue("auc", "holdout", 0.75, n=10),))
    >>> report.value("auc")
    0.75
    >>> EvaluationReport.from_dict({"model": "ctr", "candidate": {}, "metrics": []})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    yarnit.evaluation.errors.MissingDistribution: The evaluation report for 'ctr' names no distribution. ...
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .distributions import Distribution
from .errors import MissingDistribution

SCHEMA = "yarnit.evaluation/v1"


def _num(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


@dataclass(frozen=True)
class MetricValue:
    """One evaluation: ``metric`` on ``distribution`` (and ``slice``) for ``subject``."""

    metric: str
    distribution: str
    value: float | None
    subject: str = "candidate"
    slice: str = ""
    ci_low: float | None = None
    ci_high: float | None = None
    n: int | None = None
    positives: int | None = None
    undefined: str | None = None  # why ``value`` is None, as a sentence

    def __post_init__(self) -> None:
        if not isinstance(self.distribution, str) or not self.distribution.strip():
            raise MissingDistribution(
                f"Metric {self.metric!r} (subject {self.subject!r}) names no distribution; every evaluation is a "
                "(metric, distribution) pair (book CH5-R6). Say which rows it was computed on."
            )
        object.__setattr__(self, "value", _num(self.value))
        object.__setattr__(self, "ci_low", _num(self.ci_low))
        object.__setattr__(self, "ci_high", _num(self.ci_high))
        if self.value is None and self.undefined is None:
            object.__setattr__(self, "undefined", "no value was computed")

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.metric, self.distribution, self.slice, self.subject)

    @property
    def ci(self) -> tuple[float, float] | None:
        if self.ci_low is None or self.ci_high is None:
            return None
        return (self.ci_low, self.ci_high)

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "distribution": self.distribution, "slice": self.slice,
                "subject": self.subject, "value": self.value, "ci": list(self.ci) if self.ci else None,
                "n": self.n, "positives": self.positives, "undefined": self.undefined}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MetricValue:
        ci = data.get("ci") or (None, None)
        return cls(metric=str(data["metric"]), distribution=data.get("distribution") or "", value=data.get("value"),
                   subject=str(data.get("subject", "candidate")), slice=str(data.get("slice") or ""),
                   ci_low=ci[0], ci_high=ci[1], n=data.get("n"), positives=data.get("positives"),
                   undefined=data.get("undefined"))


@dataclass(frozen=True)
class EvaluationReport:
    """Everything one evaluation found, tied to the distributions it ran on."""

    model: str
    candidate: Mapping[str, Any]
    distributions: tuple[Distribution, ...]
    metrics: tuple[MetricValue, ...] = ()
    primary: str = ""
    sections: Mapping[str, Any] = field(default_factory=dict)
    compared_with: Mapping[str, Any] | None = None
    dataset_version_ids: tuple[str, ...] = ()
    run_id: str | None = None
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        distributions = tuple(self.distributions)
        if not distributions:
            raise MissingDistribution(
                f"The evaluation report for {self.model!r} names no distribution. Every evaluation is a (metric, "
                "distribution) pair (book CH5-R6): declare the data it ran on (e.g. a time-ordered holdout)."
            )
        names = [d.name for d in distributions]
        if len(set(names)) != len(names):
            raise MissingDistribution(f"The evaluation report declares a distribution twice: {names}.")
        primary = self.primary or names[0]
        if primary not in names:
            raise MissingDistribution(f"The report's primary distribution {primary!r} is not one it declares "
                                      f"({', '.join(names)}).")
        for m in self.metrics:
            if m.distribution not in names:
                raise MissingDistribution(
                    f"Metric {m.metric!r} names distribution {m.distribution!r}, which the report does not declare "
                    f"(declared: {', '.join(names)}). Declare it, or fix the metric's distribution."
                )
        object.__setattr__(self, "distributions", distributions)
        object.__setattr__(self, "metrics", tuple(self.metrics))
        object.__setattr__(self, "primary", primary)
        object.__setattr__(self, "dataset_version_ids", tuple(self.dataset_version_ids))
        object.__setattr__(self, "notes", tuple(self.notes))
        object.__setattr__(self, "candidate", dict(self.candidate))
        object.__setattr__(self, "sections", dict(self.sections))

    # -- lookups -------------------------------------------------------------------------------
    def distribution(self, name: str | None = None) -> Distribution:
        wanted = name or self.primary
        for d in self.distributions:
            if d.name == wanted:
                return d
        raise MissingDistribution(f"The report has no distribution {wanted!r}; it has: "
                                  f"{', '.join(d.name for d in self.distributions)}.")

    def get(self, metric: str, *, distribution: str | None = None, subject: str = "candidate",
            slice: str = "") -> MetricValue | None:
        key = (metric, distribution or self.primary, slice, subject)
        for m in self.metrics:
            if m.key == key:
                return m
        return None

    def value(self, metric: str, *, distribution: str | None = None, subject: str = "candidate",
              slice: str = "") -> float | None:
        found = self.get(metric, distribution=distribution, subject=subject, slice=slice)
        return None if found is None else found.value

    def select(self, *, metric: str | None = None, distribution: str | None = None, subject: str | None = None,
               slice_prefix: str | None = None) -> list[MetricValue]:
        return [m for m in self.metrics
                if (metric is None or m.metric == metric)
                and (distribution is None or m.distribution == distribution)
                and (subject is None or m.subject == subject)
                and (slice_prefix is None or m.slice.startswith(slice_prefix))]

    def subjects(self) -> list[str]:
        return list(dict.fromkeys(m.subject for m in self.metrics))

    def reference_label(self, subject: str) -> str:
        """How a reason names a subject: ``production v3`` rather than ``production``."""
        compared = self.compared_with or {}
        if subject == compared.get("alias") and compared.get("version") is not None:
            return f"{subject} v{compared['version']}"
        return subject

    def with_sections(self, **sections: Any) -> EvaluationReport:
        return EvaluationReport(self.model, self.candidate, self.distributions, self.metrics, self.primary,
                                {**self.sections, **sections}, self.compared_with, self.dataset_version_ids,
                                self.run_id, self.notes)

    def with_metrics(self, metrics: Iterable[MetricValue]) -> EvaluationReport:
        return EvaluationReport(self.model, self.candidate, self.distributions, (*self.metrics, *metrics),
                                self.primary, self.sections, self.compared_with, self.dataset_version_ids,
                                self.run_id, self.notes)

    # -- JSON ----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA, "model": self.model, "candidate": dict(self.candidate), "primary": self.primary,
            "distributions": [d.to_dict() for d in self.distributions],
            "metrics": [m.to_dict() for m in self.metrics], "sections": dict(self.sections),
            "compared_with": None if self.compared_with is None else dict(self.compared_with),
            "dataset_version_ids": list(self.dataset_version_ids), "run_id": self.run_id, "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvaluationReport:
        """Read a report (refusing one that names no distribution); unknown top-level keys are ignored."""
        if not isinstance(data, Mapping):
            raise MissingDistribution(f"An evaluation report must be a JSON object, got {type(data).__name__}.")
        raw = data.get("distributions") or []
        return cls(
            model=str(data.get("model", "")), candidate=data.get("candidate") or {},
            distributions=tuple(Distribution.from_dict(d) for d in raw),
            metrics=tuple(MetricValue.from_dict(m) for m in data.get("metrics") or []),
            primary=str(data.get("primary") or ""), sections=data.get("sections") or {},
            compared_with=data.get("compared_with"), dataset_version_ids=tuple(data.get("dataset_version_ids") or ()),
            run_id=data.get("run_id"), notes=tuple(data.get("notes") or ()),
        )


def metric_table(values: Sequence[MetricValue]) -> list[dict[str, Any]]:
    """Rows for printing: one per value, with the interval formatted."""
    return [m.to_dict() for m in values]


__all__ = ["SCHEMA", "EvaluationReport", "MetricValue", "metric_table"]
