"""Validation: check data against its schema and against the previous version.

Each violation is an :class:`Anomaly` with a severity, the column, the evidence
(counts, fractions, example rows) and a suggested fix. Errors are *blocking*:
:meth:`ValidationReport.raise_for_blocking` stops a pipeline, and
``yarnit data validate`` exits non-zero.

Against the schema (every row, vectorized with Arrow kernels): missing or
unexpected columns, wrong types, missing values, values out of range or outside
the domain, duplicates in unique columns, label present where the environment
says it must be absent. Against the previous version (from statistics
profiles): overall volume change, **per-slice** volume change (one country's
rows vanishing while the total barely moves: the biased data loss of ch. 2 and
7), distribution change (L-infinity distance of category frequencies, and the
std-normalized Wasserstein distance estimated from the profiles' quantiles,
both from the one statistics module :mod:`yarnit.monitoring.distances`), and
label sanity (positive rate outside the expected band, ch. 15).

Examples of offending values are never shown for PII columns or the subject
column: the evidence gives row numbers only.

Example:
    >>> import pyarrow as pa
    >>> from yarnit.data.schema import DatasetSchema
    >>> schema = DatasetSchema.from_yaml("columns:\\n  price: {type: float64, min: 0, max: 500}\\n")
    >>> report = validate(pa.table({"price": [10.0, 900.0, 20.0]}), schema)
    >>> [(a.kind, a.column, a.evidence["count"]) for a in report.anomalies]
    [('out_of_range', 'price', 1)]
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from yarnit.monitoring import distances

from .errors import ValidationFailed
from .schema import NUMERIC_TYPES, ColumnSchema, DatasetSchema, compatible, yarnit_type
from .statistics import QUANTILE_POINTS, ColumnStatistics, DatasetStatistics, profile

MAX_EXAMPLES = 5


class Severity(str, Enum):
    """ERROR blocks a pipeline; WARNING is reported and does not."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Anomaly:
    """One violation found by validation."""

    kind: str
    severity: Severity
    column: str | None
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    suggested_fix: str = ""

    @property
    def blocking(self) -> bool:
        return self.severity is Severity.ERROR

    def summary(self) -> str:
        where = f" in column {self.column!r}" if self.column else ""
        return f"{self.kind}{where}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "severity": self.severity.value, "column": self.column, "message": self.message,
                "evidence": self.evidence, "suggested_fix": self.suggested_fix, "blocking": self.blocking}


@dataclass(frozen=True)
class ValidationReport:
    """All anomalies found in one validation."""

    target: str
    row_count: int
    environment: str
    anomalies: tuple[Anomaly, ...]
    baseline: str | None = None

    @property
    def blocking(self) -> list[Anomaly]:
        return [a for a in self.anomalies if a.blocking]

    @property
    def ok(self) -> bool:
        return not self.blocking

    def by_column(self) -> dict[str | None, list[Anomaly]]:
        out: dict[str | None, list[Anomaly]] = {}
        for a in self.anomalies:
            out.setdefault(a.column, []).append(a)
        return out

    def raise_for_blocking(self) -> ValidationReport:
        """Raise :class:`ValidationFailed` when any anomaly is blocking; else return self."""
        if self.blocking:
            raise ValidationFailed(self)
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "row_count": self.row_count, "environment": self.environment,
                "baseline": self.baseline, "ok": self.ok, "blocking": len(self.blocking),
                "warnings": len(self.anomalies) - len(self.blocking),
                "anomalies": [a.to_dict() for a in self.anomalies]}


# -- row-level checks -----------------------------------------------------------
def _count(mask: pa.ChunkedArray | pa.Array) -> int:
    return int(pc.sum(mask).as_py() or 0)


def _examples(values: pa.ChunkedArray, mask: pa.ChunkedArray | pa.Array, private: bool,
              limit: int = MAX_EXAMPLES) -> dict[str, Any]:
    mask = pc.fill_null(mask, False)
    if isinstance(mask, pa.ChunkedArray):
        mask = mask.combine_chunks() if mask.num_chunks != 1 else mask.chunk(0)
    rows = pc.indices_nonzero(mask).slice(0, limit)
    out: dict[str, Any] = {"example_rows": [int(r) + 1 for r in rows.to_pylist()]}
    if not private:
        out["examples"] = [_plain(v) for v in values.take(rows).to_pylist()]
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    return str(value)


def _is_unique(values: pa.ChunkedArray) -> tuple[bool, int]:
    """(unique?, number of duplicate values) over the non-null values."""
    present = pc.drop_null(values)
    n = len(present)
    if n < 2:
        return True, 0
    if pa.types.is_integer(present.type):
        arr = present.combine_chunks().to_numpy() if isinstance(present, pa.ChunkedArray) else present.to_numpy()
        if bool(np.all(arr[1:] > arr[:-1])):  # strictly increasing ids: unique without hashing
            return True, 0
        duplicated = pd.Series(arr).duplicated()
        dupes = int(duplicated.sum())
        return dupes == 0, dupes
    distinct = int(pc.count_distinct(present).as_py())
    return distinct == n, n - distinct


def _check_column(name: str, col: ColumnSchema, values: pa.ChunkedArray, n: int, private: bool) -> list[Anomaly]:
    anomalies: list[Anomaly] = []
    actual = yarnit_type(values.type)
    if not compatible(col.type, actual):
        anomalies.append(Anomaly(
            "type_mismatch", Severity.ERROR, name, f"declared {col.type}, found {actual}",
            {"declared": col.type, "found": actual},
            f"Convert {name!r} to {col.type} upstream, or change its type in the schema if the new type is intended."))
        return anomalies
    missing = values.null_count
    if pa.types.is_floating(values.type):
        missing += _count(pc.is_nan(values))
    if missing and (not col.nullable or (col.max_missing is not None and missing / max(n, 1) > col.max_missing)):
        limit = "no missing values" if not col.nullable else f"at most {col.max_missing:.2%} missing"
        mask = pc.is_null(values, nan_is_null=True)
        anomalies.append(Anomaly(
            "missing_values", Severity.ERROR, name, f"{missing} of {n} values are missing; the schema allows {limit}",
            {"count": missing, "fraction": missing / max(n, 1), **_examples(values, mask, True)},
            f"Find why {name!r} is empty in those rows (a broken join or upstream field), or declare "
            "'nullable: true' / raise 'max_missing' if missing values are expected."))
    if col.type in NUMERIC_TYPES and (col.min is not None or col.max is not None):
        mask = None
        if col.min is not None:
            mask = pc.less(values, col.min)
        if col.max is not None:
            above = pc.greater(values, col.max)
            mask = above if mask is None else pc.or_(mask, above)
        assert mask is not None
        bad = _count(mask)
        if bad:
            observed = pc.min_max(values)
            anomalies.append(Anomaly(
                "out_of_range", Severity.ERROR, name,
                f"{bad} values are outside [{_fmt(col.min)}, {_fmt(col.max)}]",
                {"count": bad, "fraction": bad / max(n, 1), "min": _fmt(col.min), "max": _fmt(col.max),
                 "observed_min": observed["min"].as_py(), "observed_max": observed["max"].as_py(),
                 **_examples(values, mask, private)},
                f"Check the producer of {name!r} for a unit or scaling change; if the new values are valid, widen "
                "'min'/'max' in the schema."))
    if col.domain is not None and col.pii != "hash":  # hashed values cannot match a plain-text domain
        try:
            allowed = pa.array(list(col.domain)).cast(values.type)
            candidates = values
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            allowed = pa.array([str(v) for v in col.domain])
            candidates = pc.cast(values, pa.string())
        inside = pc.is_in(candidates, value_set=allowed)
        mask = pc.and_(pc.invert(inside), pc.is_valid(candidates))
        bad = _count(mask)
        if bad:
            evidence: dict[str, Any] = {"count": bad, "fraction": bad / max(n, 1), **_examples(values, mask, private)}
            if not private:
                unknown = pc.value_counts(pc.filter(candidates, mask))
                pairs = sorted(zip(unknown.field("values").to_pylist(), unknown.field("counts").to_pylist(),
                                   strict=True), key=lambda x: -x[1])
                evidence["unknown_values"] = {str(v): int(c) for v, c in pairs[:10]}
            anomalies.append(Anomaly(
                "unknown_value", Severity.ERROR, name, f"{bad} values are not in the declared domain "
                f"({len(col.domain)} allowed values)", evidence,
                f"If these are new valid categories, add them to the 'domain' of {name!r}; otherwise fix or map them "
                "upstream (typos, case, new codes)."))
    if col.unique:
        unique, dupes = _is_unique(values)
        if not unique:
            anomalies.append(Anomaly(
                "duplicate_values", Severity.ERROR, name, f"{dupes} values repeat in a column declared unique",
                {"count": dupes, "fraction": dupes / max(n, 1)},
                f"Deduplicate on {name!r} (a retried write or a fan-out join), or drop 'unique: true' if repeats are "
                "valid."))
    return anomalies


def _fmt(x: float | None) -> float | int | None:
    if x is None:
        return None
    return int(x) if float(x).is_integer() else x


# -- checks against the previous version ---------------------------------------
def _positive_rate(stats: ColumnStatistics) -> float | None:
    if stats.value_counts is not None and stats.type == "bool":
        total = sum(stats.value_counts.values())
        return stats.value_counts.get("true", 0) / total if total else None
    return stats.mean


def _compare(schema: DatasetSchema, current: DatasetStatistics, previous: DatasetStatistics,
             baseline: str) -> list[Anomaly]:
    anomalies: list[Anomaly] = []
    n_cur, n_prev = current.row_count, previous.row_count
    ratio = n_cur / n_prev if n_prev else None
    if ratio is not None and ratio < 1 - schema.volume_max_drop:
        anomalies.append(Anomaly(
            "volume_change", Severity.ERROR, None,
            f"{n_cur} rows vs {n_prev} in {baseline} ({ratio - 1:+.1%}); the schema allows a drop of at most "
            f"{schema.volume_max_drop:.0%}",
            {"rows": n_cur, "baseline_rows": n_prev, "change": ratio - 1},
            "Look for a failed upstream partition or a filter change; re-run the extract, or raise volume.max_drop "
            "if the drop is real."))
    if ratio is not None and schema.volume_max_growth is not None and ratio > schema.volume_max_growth:
        anomalies.append(Anomaly(
            "volume_change", Severity.ERROR, None,
            f"{n_cur} rows vs {n_prev} in {baseline} (x{ratio:.2f}); the schema allows at most "
            f"x{schema.volume_max_growth}",
            {"rows": n_cur, "baseline_rows": n_prev, "change": ratio - 1},
            "Look for duplicated partitions or a fan-out join; raise volume.max_growth if the growth is real."))
    for s in schema.slices:
        cur, prev = current.slices.get(s), previous.slices.get(s)
        if cur is None or prev is None or not n_prev:
            continue
        overall = n_cur / n_prev
        for value, before in sorted(prev.items()):
            if before < schema.slice_min_rows:
                continue
            after = cur.get(value, 0)
            slice_ratio = after / before
            if slice_ratio < overall * (1 - schema.slice_max_drop):
                anomalies.append(Anomaly(
                    "slice_volume_change", Severity.ERROR, s,
                    f"rows with {s}={value} fell from {before} to {after} ({slice_ratio - 1:+.1%}) while the whole "
                    f"dataset changed {overall - 1:+.1%}",
                    {"slice": value, "rows": after, "baseline_rows": before, "change": slice_ratio - 1,
                     "overall_change": overall - 1},
                    f"Data for {s}={value} is being lost upstream (a region's pipeline, a consent filter, a join "
                    "key change). A model trained on it will underserve that slice: fix the source before training."))
    for name, col in schema.columns.items():
        c, p = current.columns.get(name), previous.columns.get(name)
        if c is None or p is None:
            continue
        threshold = col.drift_threshold if col.drift_threshold is not None else schema.drift_threshold
        severity = Severity.ERROR if col.drift_threshold is not None else Severity.WARNING
        if c.value_counts is not None and p.value_counts is not None and col.type not in ("float32", "float64"):
            distance, value = distances.l_infinity(p.value_counts, c.value_counts)
            if distance != distance:  # one side has no values: every share on the other side moved
                side = p.value_counts or c.value_counts
                value = max(side, key=side.__getitem__) if side else None
                distance = side[value] / sum(side.values()) if value is not None else 0.0
            if distance > threshold:
                private = col.pii is not None or name == schema.subject
                anomalies.append(Anomaly(
                    "distribution_change", severity, name,
                    f"category frequencies moved by L-infinity {distance:.3f} (threshold {threshold})",
                    {"metric": "l_infinity", "distance": distance, "threshold": threshold,
                     **({} if private else {"most_changed_value": value})},
                    f"Compare {name!r} between {baseline} and this data; if the shift is expected, set "
                    f"drift_threshold for {name!r} or accept it."))
        elif c.quantiles and p.quantiles:
            estimate = distances.wasserstein_normed_from_quantiles(p.quantiles, c.quantiles, p.std,
                                                                   levels=QUANTILE_POINTS)
            if estimate is not None and estimate.value > threshold:
                distance_w = estimate.value
                anomalies.append(Anomaly(
                    "distribution_change", severity, name,
                    f"distribution moved by normalized Wasserstein {distance_w:.3f} (threshold {threshold})",
                    {"metric": "wasserstein_normed", "distance": distance_w, "threshold": threshold,
                     "distance_interval": [estimate.lower, estimate.upper],
                     "mean": c.mean, "baseline_mean": p.mean},
                    f"Compare {name!r} between {baseline} and this data; if the shift is expected, set "
                    f"drift_threshold for {name!r} or accept it."))
    return anomalies


def _label_checks(schema: DatasetSchema, current: DatasetStatistics | None, table: pa.Table) -> list[Anomaly]:
    label = schema.label
    if label is None or label.positive_rate is None or label.column not in table.column_names:
        return []
    values = table.column(label.column)
    if current is not None and label.column in current.columns:
        rate = _positive_rate(current.columns[label.column])
    elif pa.types.is_boolean(values.type):
        rate = pc.mean(values).as_py()
    else:
        rate = pc.mean(pc.greater(values, 0)).as_py()
    if rate is None:
        return []
    low, high = label.positive_rate
    if low <= rate <= high:
        return []
    return [Anomaly(
        "label_rate", Severity.ERROR, label.column,
        f"positive rate {rate:.4f} is outside the expected band [{low}, {high}]",
        {"positive_rate": rate, "expected": [low, high]},
        "Check the label join (delayed or missing feedback, a logging change) before training; widen "
        "label.positive_rate only if the business really changed.")]


def validate(
    data: pa.Table | pd.DataFrame,
    schema: DatasetSchema,
    *,
    environment: str = "training",
    previous: DatasetStatistics | None = None,
    statistics: DatasetStatistics | None = None,
    target: str = "data",
    baseline: str | None = None,
    workers: int = 2,
) -> ValidationReport:
    """Check ``data`` against ``schema`` (and against ``previous`` statistics when given)."""
    table = data if isinstance(data, pa.Table) else pa.Table.from_pandas(data, preserve_index=False)
    n = table.num_rows
    names = table.column_names
    anomalies: list[Anomaly] = []
    if n == 0:
        anomalies.append(Anomaly("empty_dataset", Severity.ERROR, None, "there are no rows", {"rows": 0},
                                 "Check the extract that produced this data; an empty input must not train a model."))
    checked: list[str] = []
    for name, col in schema.columns.items():
        present_here = col.present_in(environment)
        if name not in names:
            if present_here and col.pii != "drop":  # a dropped PII column is absent once ingested
                anomalies.append(Anomaly(
                    "missing_column", Severity.ERROR, name, f"declared column is absent in {environment!r} data",
                    {"columns_present": names[:50]},
                    f"Restore {name!r} upstream, or list the environments it exists in ('environments:')."))
            continue
        if not present_here:
            anomalies.append(Anomaly(
                "unexpected_column", Severity.WARNING, name,
                f"column is declared absent in {environment!r} but is present (e.g. a label at serving time)",
                {"environments": list(col.environments or ())},
                f"Drop {name!r} from {environment!r} inputs: a label available at serving time is a leak."))
            continue
        checked.append(name)
    anomalies += _check_columns(table, schema, checked, workers)
    if not schema.allow_extra_columns:
        extra = [c for c in names if c not in schema.columns]
        if extra:
            anomalies.append(Anomaly(
                "unexpected_column", Severity.WARNING, None, f"{len(extra)} columns are not in the schema",
                {"columns": extra[:50]},
                "Declare them in the schema (with types and PII tags) or drop them before ingest."))
    needs_stats = previous is not None or (schema.label is not None and schema.label.positive_rate is not None)
    if needs_stats and statistics is None and n and previous is not None:
        statistics = profile(table, slices=schema.slices)
    anomalies += _label_checks(schema, statistics, table) if n else []
    if previous is not None and statistics is not None:
        anomalies += _compare(schema, statistics, previous, baseline or "the previous version")
    order = {Severity.ERROR: 0, Severity.WARNING: 1}
    anomalies.sort(key=lambda a: (order[a.severity], a.column or "", a.kind))
    return ValidationReport(target=target, row_count=n, environment=environment, anomalies=tuple(anomalies),
                            baseline=baseline)


def _check_columns(table: pa.Table, schema: DatasetSchema, columns: Sequence[str], workers: int) -> list[Anomaly]:
    def one(name: str) -> list[Anomaly]:
        col = schema.columns[name]
        return _check_column(name, col, table.column(name), table.num_rows,
                             col.pii is not None or name == schema.subject)

    if workers > 1 and table.num_rows >= 100_000 and len(columns) > 1:
        # Arrow kernels release the GIL: columns are checked on both cores.
        with ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(one, columns))
    else:
        results = [one(name) for name in columns]
    return [a for result in results for a in result]


def validate_columns(table: pa.Table, schema: DatasetSchema, columns: Sequence[str]) -> list[Anomaly]:
    """Row-level checks of a subset of columns (for callers that validate incrementally)."""
    return [a for name in columns if name in schema.columns and name in table.column_names
            for a in _check_column(name, schema.columns[name], table.column(name), table.num_rows,
                                   schema.columns[name].pii is not None or name == schema.subject)]


__all__ = ["Anomaly", "Severity", "ValidationReport", "validate", "validate_columns"]
