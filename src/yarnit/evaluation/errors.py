"""Errors raised by yarnit.evaluation, placed in the core hierarchy.

::

    InvalidInput (core)
     ├── MissingDistribution    an evaluation names no distribution, or one the report does not declare (CH5-R6)
     ├── UndefinedMetric        a metric has no value on these inputs (one label class, an empty slice …)
     ├── UnknownSliceColumn     a slice names a column the evaluation data does not have
     └── UnknownMetric          a gate or request names a metric yarnit does not compute
    ConfigError (core)
     └── GateConfigError        a gate, written as data, is malformed
    NotFound (core)
     └── EvaluationNotFound     no stored evaluation has that id
"""

from __future__ import annotations

from yarnit.core.errors import ConfigError, InvalidInput, NotFound


class MissingDistribution(InvalidInput):
    """An evaluation that does not say which distribution it was measured on (book CH5-R6)."""


class UndefinedMetric(InvalidInput):
    """A metric has no value on these inputs; ``reason`` says why in one sentence."""

    def __init__(self, metric: str, reason: str) -> None:
        super().__init__(f"{metric} is undefined: {reason}")
        self.metric, self.reason = metric, reason


class UnknownSliceColumn(InvalidInput):
    """A slice names a column that the evaluation data does not have."""

    def __init__(self, column: str, available: list[str]) -> None:
        shown = ", ".join(sorted(available)[:40])
        super().__init__(
            f"Cannot slice by {column!r}: the evaluation data has no such column. Available columns: {shown}. "
            "Fix the slice list (config key 'slices' or --slice)."
        )
        self.column = column


class UnknownMetric(InvalidInput):
    """A gate or request names a metric that yarnit does not compute."""

    def __init__(self, metric: str, known: list[str]) -> None:
        super().__init__(f"Unknown metric {metric!r}; yarnit computes: {', '.join(sorted(known))}.")
        self.metric = metric


class GateConfigError(ConfigError):
    """A gate definition (gates are configured as data) is malformed."""


class EvaluationNotFound(NotFound):
    def __init__(self, evaluation_id: str, message: str | None = None) -> None:
        super().__init__(
            message or f"No evaluation has id {evaluation_id!r}. List evaluations with: yarnit eval show --model NAME"
        )
        self.evaluation_id = evaluation_id


__all__ = [
    "EvaluationNotFound",
    "GateConfigError",
    "MissingDistribution",
    "UndefinedMetric",
    "UnknownMetric",
    "UnknownSliceColumn",
]
