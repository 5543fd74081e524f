"""Group fairness of a thresholded model, by Fairlearn's definitions, with bootstrap intervals.

For each value ``a`` of a sensitive column (language, country …), with
``selected = prediction >= threshold``:

* selection rate ``P(selected | A=a)``;
* true positive rate ``P(selected | A=a, Y=1)``;
* false positive rate ``P(selected | A=a, Y=0)``;

and across groups (Fairlearn's ``method="between_groups"``):

* demographic-parity difference = largest minus smallest selection rate
  (``fairlearn.metrics.demographic_parity_difference``);
* equalized-odds difference = the larger of the TPR difference and the FPR
  difference (``equalized_odds_difference``, ``agg="worst_case"``).

One deliberate difference: a group with no positive label has no TPR (and one
with no negative label no FPR). Fairlearn's confusion matrix reports 0 there,
which would inflate the difference; yarnit reports the rate as undefined, says
so in ``notes`` and leaves the group out of that difference.

Everything is computed from a (group, selected, label) count table, so the
bootstrap of these metrics is exact (Poisson bootstrap of the table).

Example:
    >>> import numpy as np
    >>> r = group_fairness(np.array([1, 0, 1, 0]), np.array([.9, .8, .2, .1]), np.array(["es", "es", "en", "en"]),
    ...                    threshold=0.5, column="language", distribution="holdout")
    >>> r.demographic_parity_difference.value, r.equalized_odds_difference.value
    (1.0, 1.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from yarnit.core.errors import InvalidInput
from yarnit.storage import Workspace

from .bootstrap import Bootstrap, percentile_interval, poisson_counts
from .metrics import check_binary
from .report import MetricValue

if TYPE_CHECKING:
    from yarnit.access import Principal
    from yarnit.data import DatasetVersion


@dataclass(frozen=True)
class GroupRates:
    """One group's counts and rates at the threshold (None: undefined, see the report's notes)."""

    group: str
    n: int
    positives: int
    selected: int
    selection_rate: float
    true_positive_rate: float | None
    false_positive_rate: float | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class FairnessResult:
    """Per-group rates and the between-group differences of one sensitive column."""

    column: str
    threshold: float
    distribution: str
    subject: str
    groups: tuple[GroupRates, ...]
    demographic_parity_difference: MetricValue
    equalized_odds_difference: MetricValue
    true_positive_rate_difference: MetricValue
    false_positive_rate_difference: MetricValue
    group_metrics: tuple[MetricValue, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    def metrics(self) -> list[MetricValue]:
        return [self.demographic_parity_difference, self.equalized_odds_difference, *self.group_metrics]

    def to_dict(self) -> dict[str, Any]:
        def short(m: MetricValue) -> dict[str, Any]:
            return {"value": m.value, "ci": list(m.ci) if m.ci else None, "undefined": m.undefined}

        return {"column": self.column, "threshold": self.threshold, "distribution": self.distribution,
                "subject": self.subject, "groups": [g.to_dict() for g in self.groups],
                "demographic_parity_difference": short(self.demographic_parity_difference),
                "equalized_odds_difference": short(self.equalized_odds_difference),
                "true_positive_rate_difference": short(self.true_positive_rate_difference),
                "false_positive_rate_difference": short(self.false_positive_rate_difference),
                "notes": list(self.notes),
                "definitions": "Fairlearn between_groups: max - min over groups; equalized odds = worst case of "
                               "the TPR and FPR differences"}


def _rates(table: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Selection rate, TPR and FPR per group from tables shaped (..., groups, selected, label); NaN if undefined."""
    n = table.sum(axis=(-2, -1))
    selected = table[..., 1, :].sum(axis=-1)
    pos = table[..., :, 1].sum(axis=-1)
    neg = table[..., :, 0].sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        selection = np.where(n > 0, selected / np.where(n > 0, n, 1), np.nan)
        tpr = np.where(pos > 0, table[..., 1, 1] / np.where(pos > 0, pos, 1), np.nan)
        fpr = np.where(neg > 0, table[..., 1, 0] / np.where(neg > 0, neg, 1), np.nan)
    return selection, tpr, fpr


def _spread(rates: np.ndarray) -> np.ndarray:
    """max - min over the last axis, ignoring NaN; NaN when fewer than two groups have a value."""
    defined = np.isfinite(rates)
    enough = defined.sum(axis=-1) >= 2
    high = np.where(defined, rates, -np.inf).max(axis=-1)
    low = np.where(defined, rates, np.inf).min(axis=-1)
    return np.where(enough, high - low, np.nan)


def group_fairness(y_true: Any, y_prob: Any, sensitive: Any, *, threshold: float, column: str, distribution: str,
                   subject: str = "candidate", bootstrap: Bootstrap | None = None,
                   min_group_rows: int = 1) -> FairnessResult:
    """Per-group selection rate, TPR and FPR, and the demographic-parity and equalized-odds differences.

    Groups with fewer than ``min_group_rows`` rows are reported but left out of
    the differences (default 1: every group counts, as in Fairlearn).
    """
    if not isinstance(threshold, float | int) or not 0.0 <= float(threshold) <= 1.0:
        raise InvalidInput(f"The fairness threshold must be a probability in [0, 1], got {threshold!r}.")
    y, p = check_binary(y_true, y_prob, probabilities=True, what=f"{subject} predictions")
    groups = pd.Series(np.asarray(sensitive, dtype=object)).fillna("(missing)").astype(str).to_numpy()
    if len(groups) != len(y):
        raise InvalidInput(f"Got {len(y)} labels but {len(groups)} values of sensitive column {column!r}.")
    codes, names = pd.factorize(groups, sort=True)
    selected = (p >= threshold).astype(np.int64)
    table = np.bincount(codes * 4 + selected * 2 + y, minlength=len(names) * 4).reshape(len(names), 2, 2)
    table = table.astype(np.float64)
    n_per_group = table.sum(axis=(1, 2))
    counted = n_per_group >= max(int(min_group_rows), 1)
    selection, tpr, fpr = _rates(table)
    notes: list[str] = []
    for i, name in enumerate(names):
        if not counted[i]:
            notes.append(f"group {column}={name} has {int(n_per_group[i])} rows (< {min_group_rows}); it is reported "
                         "but left out of the differences")
        elif np.isnan(tpr[i]):
            notes.append(f"group {column}={name} has no positive label: its TPR is undefined (Fairlearn would "
                         "report 0) and it is left out of the TPR difference")
        elif np.isnan(fpr[i]):
            notes.append(f"group {column}={name} has no negative label: its FPR is undefined and it is left out "
                         "of the FPR difference")
    mask = np.where(counted, 1.0, np.nan)

    def differences(sel: np.ndarray, tp: np.ndarray, fp: np.ndarray) -> tuple[np.ndarray, ...]:
        dp, tpr_d, fpr_d = _spread(sel * mask), _spread(tp * mask), _spread(fp * mask)
        eo = np.where(np.isnan(tpr_d), fpr_d, np.where(np.isnan(fpr_d), tpr_d, np.maximum(tpr_d, fpr_d)))
        return dp, eo, tpr_d, fpr_d

    point = [float(v) for v in differences(selection, tpr, fpr)]
    samples = None
    group_samples = None
    if bootstrap is not None:
        resampled = poisson_counts(bootstrap, f"{distribution}|fairness:{column}|{subject}", table)
        group_samples = _rates(resampled)
        samples = differences(*group_samples)
    names_out = ("demographic_parity_difference", "equalized_odds_difference", "true_positive_rate_difference",
                 "false_positive_rate_difference")
    diffs: list[MetricValue] = []
    slice_name = f"{column}=*"
    for i, metric in enumerate(names_out):
        value = point[i]
        low, high = (None, None)
        if samples is not None:
            low, high = percentile_interval(samples[i], value, value, bootstrap.confidence)  # type: ignore[union-attr]
        undefined = None if np.isfinite(value) else f"fewer than two groups of {column} have this rate defined"
        diffs.append(MetricValue(metric, distribution, value if np.isfinite(value) else None, subject=subject,
                                 slice=slice_name, ci_low=low, ci_high=high, n=len(y), positives=int(y.sum()),
                                 undefined=undefined))
    rates_out = []
    group_metrics: list[MetricValue] = []
    for i, name in enumerate(names):
        rates = GroupRates(str(name), int(n_per_group[i]), int(table[i, :, 1].sum()), int(table[i, 1, :].sum()),
                           float(selection[i]), None if np.isnan(tpr[i]) else float(tpr[i]),
                           None if np.isnan(fpr[i]) else float(fpr[i]))
        rates_out.append(rates)
        for j, (metric, value) in enumerate((("selection_rate", rates.selection_rate),
                                             ("true_positive_rate", rates.true_positive_rate),
                                             ("false_positive_rate", rates.false_positive_rate))):
            low, high = (None, None)
            if group_samples is not None and value is not None:
                low, high = percentile_interval(group_samples[j][:, i], value, value,
                                                bootstrap.confidence)  # type: ignore[union-attr]
            group_metrics.append(MetricValue(
                metric, distribution, value, subject=subject, slice=f"{column}={name}", ci_low=low, ci_high=high,
                n=rates.n, positives=rates.positives,
                undefined=None if value is not None else f"group {column}={name} has no "
                                                         f"{'positive' if j == 1 else 'negative'} label"))
    return FairnessResult(column, float(threshold), distribution, subject, tuple(rates_out), diffs[0], diffs[1],
                          diffs[2], diffs[3], tuple(group_metrics), tuple(notes))


def fairness_metrics(results: Sequence[FairnessResult]) -> list[MetricValue]:
    return [m for r in results for m in r.metrics()]


def read_evaluation_frame(ws: Workspace, dataset: DatasetVersion, columns: Sequence[str], *,
                          fairness: Sequence[str] = (), principal: Principal | None = None,
                          purpose: str = "") -> pd.DataFrame:
    """The evaluation's rows of ``dataset``: restricted columns through their compliant transform, except
    restricted fairness columns, which are read raw through the audited path (book CH4-R3).

    A raw fairness read needs ``principal``: a named token with the ``read-restricted`` role; the read is
    recorded (who, columns, dataset version, ``purpose``, when) before any value is read. Without it, name the
    compliant column instead (``--fairness age_band``).
    """
    from yarnit.access import RestrictedReads
    from yarnit.data.restricted import read_compliant, restrictions_of

    restricted = set(restrictions_of(ws, dataset))
    raw = [c for c in dict.fromkeys(fairness) if c in restricted]
    if raw and principal is not None:
        return RestrictedReads(ws).read_dataset(dataset, columns=columns, raw=raw, principal=principal,
                                                purpose=purpose or "fairness evaluation").to_pandas()
    return read_compliant(ws, dataset, columns=columns).to_pandas()


__all__ = ["FairnessResult", "GroupRates", "fairness_metrics", "group_fairness", "read_evaluation_frame"]
