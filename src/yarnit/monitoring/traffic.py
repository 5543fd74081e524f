"""Bounded, mergeable summaries of served traffic, read incrementally from the prediction log.

:func:`update` reads what the prediction log (:mod:`yarnit.serving.predlog`)
gained since the last run and folds it into one summary per (model, version,
role, window), the window being one hour by default (``bucket_s``). A summary
holds:

* request counts by status, and the rows (instances) of answered requests;
* per logged feature: rows holding it, nulls, and for numbers a KLL quantile
  sketch (Apache DataSketches, ``k = 200``: a quantile's normalized rank is
  within ± :data:`RANK_ERROR` (1.33 %) of the level asked, with 99 %
  confidence, however many rows; min and max are exact) plus count, sum,
  sum of squares, min and max; for strings, booleans and whole numbers,
  value counts capped at :data:`TOP_K` values with an ``other`` bucket and an
  HLL estimate of how many distinct values overflowed;
* the same summary of the predictions (prediction drift);
* rows per value of the declared slice columns (``country``, ``device`` …);
* per minute, the logged rows by which columns they held a value in, hence
  the rows lacking a column others held (``incomplete_rows``:
  :mod:`yarnit.monitoring.input_counts`, read by the ``input_completeness``
  SLI, :mod:`yarnit.monitoring.inputs`).

Every part merges exactly (counts, sums, min/max, sketches) or with a stated
loss (category counts past ``TOP_K`` move to ``other``; a value kept in one
part and folded into another's ``other`` is marked ``exact: false``), so
:func:`window_summary` answers any window ``[start, end)`` by merging its
hourly summaries. Memory is bounded by the number of features, not rows: a
segment is read in chunks of :data:`CHUNK_BYTES`.

Privacy: columns named as personal data (``user_id``, ``email`` … the log's
policy list), any column holding a keyed hash (``hmac-sha256:…``, how the
log writes pseudonymised ids) and any holding e-mail addresses are never
summarized; their names are listed
under ``private_columns`` so the skip is visible. Nested values (lists,
objects) are counted as ``unsupported``.

Which records: answered requests (status 200) give rows, features and
predictions; every request counts in ``requests`` by status (a ``rejected``
window record counts its ``count``). Each record lands in the window of its
own ``time``, so out-of-order records are fine; a record with no readable
time, more than ``max_future_s`` ahead of the clock, or older than
``max_age_s`` is counted in ``skipped`` (by reason), never an error; so is a
404 (no such model: a scanner's made-up names must not become summaries).

Crash safety: summaries live in one file per (model, hour) under
``monitoring/traffic/windows``, named with the *epoch* that wrote it; the
checkpoint (``state.json``: per-segment byte offset and inode, the epoch and
the index of current window files) is written last, atomically, and is the
commit point. A crash before it leaves new-epoch files the index does not
name (ignored and removed at the next run, which re-reads from the old
offsets: nothing counted twice); a crash after it starts from the new offsets
(nothing skipped). A backlog is committed every ``COMMIT_BYTES`` (256 MiB),
so a kill loses one round of work at most; a damaged checkpoint is an
error that says how to rebuild, never a silent reset (a reset would forget
windows whose segments retention has deleted). A torn last line is not
consumed until it is whole; a
segment rewritten by erasure (new inode, or shorter) keeps what was summarized
(the summaries hold no personal data) and goes on from its new end. One
update runs at a time (``flock`` on ``monitoring/traffic/lock``).

Drift of these summaries against training data or an earlier window is
:mod:`yarnit.monitoring.served_drift` (:func:`drift_report` here calls it).

With ``workspace.settings.dask_scheduler`` set, each segment's new bytes are
summarized on the Dask cluster (workers must see the log's path) and the
partial summaries merged here; the result equals the local one.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import math
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import orjson

from yarnit.core.atomic import atomic_write_text
from yarnit.core.clock import Clock
from yarnit.core.errors import IntegrityError, InvalidInput
from yarnit.serving.predlog import DEFAULT_PII_FIELDS, read_segment, segment_paths, segment_stat

from .input_counts import InputCounts
from .predlog_source import record_time

STATE_VERSION = 1
BUCKET_S = 3600
KLL_K = 200
TOP_K = 100
HLL_LG_K = 10
MAX_FEATURES = 256  # per summary; more feature names (a hostile client's) are counted, not summarized
MAX_NAME = 128
MAX_ROWS_PER_RECORD = 1000  # a refused request's rows counted for input completeness (the log caps rows too)
CHUNK_BYTES = 16 << 20
COMMIT_BYTES = 256 << 20
MAX_FUTURE_S = 300.0
MAX_AGE_S = 400 * 86400.0
DEFAULT_SLICES = ("country", "device")
HASH_PREFIX = "hmac-sha256:"
OTHER = "__other__"
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def _kll() -> Any:
    from datasketches import kll_doubles_sketch

    return kll_doubles_sketch(KLL_K)


def kll_rank_error(k: int = KLL_K) -> float:
    """KLL's normalized rank error for ``k`` (one quantile, 99 % confidence), as DataSketches states it."""
    from datasketches import kll_doubles_sketch

    return float(kll_doubles_sketch.get_normalized_rank_error(k, False))


#: The bound used in reports: KLL's stated single-quantile rank error for k = 200 (0.01329…), rounded up.
RANK_ERROR = 0.0133


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# -- summaries ----------------------------------------------------------------------------------
@dataclass
class NumericSummary:
    """Present numeric values of one column: count, sum, sum of squares, min, max and a KLL sketch."""

    count: int = 0
    total: float = 0.0
    sumsq: float = 0.0
    min: float | None = None
    max: float | None = None
    sketch: Any = None  # kll_doubles_sketch, created on first use

    def add(self, values: np.ndarray) -> None:
        if values.size == 0:
            return
        if self.sketch is None:
            self.sketch = _kll()
        self.sketch.update(values)
        self.count += int(values.size)
        self.total += float(values.sum())
        self.sumsq += float(np.dot(values, values))
        lo, hi = float(values.min()), float(values.max())
        self.min = lo if self.min is None else min(self.min, lo)
        self.max = hi if self.max is None else max(self.max, hi)

    def merge(self, other: NumericSummary) -> None:
        if other.count == 0:
            return
        if self.sketch is None:
            self.sketch = _kll()
        self.sketch.merge(other.sketch)
        self.count += other.count
        self.total += other.total
        self.sumsq += other.sumsq
        self.min = other.min if self.min is None else min(self.min, other.min)  # type: ignore[type-var]
        self.max = other.max if self.max is None else max(self.max, other.max)  # type: ignore[type-var]

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    @property
    def std(self) -> float | None:
        if not self.count:
            return None
        mean = self.total / self.count
        return math.sqrt(max(0.0, self.sumsq / self.count - mean * mean))

    def quantiles(self, levels: Sequence[float]) -> list[float] | None:
        """Values at ``levels`` (level 0 is the exact min, 1 the exact max)."""
        if not self.count or self.sketch is None:
            return None
        values = [float(v) for v in self.sketch.get_quantiles(list(levels))]
        for i, level in enumerate(levels):
            if level <= 0.0:
                values[i] = float(self.min)  # type: ignore[arg-type]
            elif level >= 1.0:
                values[i] = float(self.max)  # type: ignore[arg-type]
        return list(np.maximum.accumulate(values))

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "sum": self.total, "sumsq": self.sumsq, "min": self.min, "max": self.max,
                "kll": _b64(self.sketch.serialize()) if self.sketch is not None and self.count else None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NumericSummary:
        out = cls(int(data["count"]), float(data["sum"]), float(data["sumsq"]),
                  None if data["min"] is None else float(data["min"]),
                  None if data["max"] is None else float(data["max"]))
        if data.get("kll"):
            from datasketches import kll_doubles_sketch

            out.sketch = kll_doubles_sketch.deserialize(base64.b64decode(data["kll"]))
        return out


@dataclass
class CategoricalSummary:
    """Value counts capped at ``TOP_K`` values; the rest in ``other``, their distinct count in an HLL."""

    counts: dict[str, int] = field(default_factory=dict)
    other: int = 0
    exact: bool = True  # False once a kept value may also hide in another part's ``other``
    overflow: Any = None  # hll_sketch of the values folded into ``other``

    @property
    def count(self) -> int:
        return sum(self.counts.values()) + self.other

    def add(self, values: Iterable[str]) -> None:
        self._fold(Counter(values))

    def add_counts(self, counts: Mapping[str, int]) -> None:
        self._fold(counts)

    def _fold(self, new: Mapping[str, int], new_other: int = 0, other_hll: Any = None) -> None:
        if self.other and any(k not in self.counts for k in new):
            self.exact = False  # a value counted now may have been folded into ``other`` before
        merged = Counter(self.counts)
        merged.update(new)
        self.other += new_other
        if other_hll is not None:
            self._union(other_hll)
        if len(merged) > TOP_K:
            kept = dict(sorted(merged.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_K])
            for value, n in merged.items():
                if value not in kept:
                    self.other += n
                    self._hll_add(value)
            merged = Counter(kept)
        self.counts = dict(merged)

    def merge(self, other: CategoricalSummary) -> None:
        if other.other and any(v not in other.counts for v in self.counts):
            self.exact = False  # a value kept here may hide in the other part's ``other``
        self.exact = self.exact and other.exact
        self._fold(other.counts, other.other, other.overflow)

    def _hll_add(self, value: str) -> None:
        if self.overflow is None:
            from datasketches import hll_sketch

            self.overflow = hll_sketch(HLL_LG_K)
        self.overflow.update(value)

    def _union(self, sketch: Any) -> None:
        from datasketches import hll_union, tgt_hll_type

        union = hll_union(HLL_LG_K)
        if self.overflow is not None:
            union.update(self.overflow)
        union.update(sketch)
        self.overflow = union.get_result(tgt_hll_type.HLL_4)

    @property
    def overflow_distinct(self) -> int:
        return 0 if self.overflow is None else int(round(self.overflow.get_estimate()))

    def to_dict(self) -> dict[str, Any]:
        return {"counts": self.counts, "other": self.other, "exact": self.exact,
                "overflow_hll": None if self.overflow is None else _b64(self.overflow.serialize_compact())}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CategoricalSummary:
        out = cls({str(k): int(v) for k, v in data["counts"].items()}, int(data["other"]), bool(data["exact"]))
        if data.get("overflow_hll"):
            from datasketches import hll_sketch

            out.overflow = hll_sketch.deserialize(base64.b64decode(data["overflow_hll"]))
        return out


@dataclass
class ColumnSummary:
    """One column (feature or prediction): rows that held it, nulls, numbers and categories."""

    rows: int = 0
    nulls: int = 0
    unsupported: int = 0  # lists, objects: not summarized
    numeric: NumericSummary = field(default_factory=NumericSummary)
    categorical: CategoricalSummary = field(default_factory=CategoricalSummary)

    def add(self, values: list[Any]) -> None:
        self.rows += len(values)
        kinds = set(map(type, values))
        if kinds == {float}:  # the common cases in one vectorized pass each
            array = np.asarray(values, dtype=np.float64)
            finite = np.isfinite(array)
            self.nulls += int(array.size - finite.sum())
            self.numeric.add(array[finite] if not finite.all() else array)
            return
        if kinds == {int}:
            self.numeric.add(np.asarray(values, dtype=np.float64))
            self.categorical.add_counts({str(k): n for k, n in Counter(values).items()})
            return
        if kinds == {str}:
            self.categorical.add(values)
            return
        numbers: list[float] = []
        categories: list[str] = []
        for v in values:
            t = type(v)
            if t is float:
                if v != v or v in (math.inf, -math.inf):
                    self.nulls += 1
                else:
                    numbers.append(v)
            elif t is int:
                numbers.append(float(v))
                categories.append(str(v))
            elif t is str:
                categories.append(v)
            elif t is bool:
                categories.append("true" if v else "false")
            elif v is None:
                self.nulls += 1
            else:
                self.unsupported += 1
        if numbers:
            self.numeric.add(np.asarray(numbers, dtype=np.float64))
        if categories:
            self.categorical.add(categories)

    def merge(self, other: ColumnSummary) -> None:
        self.rows += other.rows
        self.nulls += other.nulls
        self.unsupported += other.unsupported
        self.numeric.merge(other.numeric)
        self.categorical.merge(other.categorical)

    @property
    def kind(self) -> str:
        """numeric when it holds numbers and no strings/booleans beyond whole numbers, else categorical."""
        if self.numeric.count and self.categorical.count <= self.numeric.count:
            return "numeric"
        return "categorical"

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "nulls": self.nulls, "unsupported": self.unsupported,
                "numeric": self.numeric.to_dict() if self.numeric.count else None,
                "categorical": self.categorical.to_dict() if self.categorical.count else None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnSummary:
        return cls(int(data["rows"]), int(data["nulls"]), int(data.get("unsupported", 0)),
                   NumericSummary.from_dict(data["numeric"]) if data.get("numeric") else NumericSummary(),
                   CategoricalSummary.from_dict(data["categorical"]) if data.get("categorical")
                   else CategoricalSummary())

    def describe(self) -> dict[str, Any]:
        """A readable view (no sketches): counts, moments, a few quantiles, top values."""
        n = self.numeric
        out: dict[str, Any] = {"rows": self.rows, "nulls": self.nulls, "kind": self.kind}
        if n.count:
            q = n.quantiles((0.0, 0.01, 0.25, 0.5, 0.75, 0.99, 1.0)) or []
            out["numeric"] = {"count": n.count, "mean": n.mean, "std": n.std, "min": n.min, "max": n.max,
                              "quantiles": dict(zip(("0", "0.01", "0.25", "0.5", "0.75", "0.99", "1"), q,
                                                    strict=True)), "rank_error": RANK_ERROR}
        c = self.categorical
        if c.count:
            top = sorted(c.counts.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
            out["categorical"] = {"count": c.count, "top": top, "other": c.other, "exact": c.exact,
                                  "overflow_distinct": c.overflow_distinct}
        return out


@dataclass
class TrafficSummary:
    """Everything kept about one (model, version, role) in one window: mergeable and bounded."""

    requests: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    rows: int = 0
    unlogged_rows: int = 0  # rows of requests whose instances were not logged (too many, or logging off)
    features: dict[str, ColumnSummary] = field(default_factory=dict)
    prediction: ColumnSummary = field(default_factory=ColumnSummary)
    slices: dict[str, CategoricalSummary] = field(default_factory=dict)
    features_overflow: int = 0  # values of feature names past MAX_FEATURES (or too long): not summarized
    private_columns: set[str] = field(default_factory=set)
    inputs: InputCounts = field(default_factory=InputCounts)  # per minute: logged rows, rows with an empty input

    @property
    def incomplete_rows(self) -> int:
        """Rows lacking a non-personal input column another row of the summary held (null or absent)."""
        return self.inputs.incomplete_rows

    def merge(self, other: TrafficSummary) -> None:
        self.requests += other.requests
        for status, n in other.statuses.items():
            self.statuses[status] = self.statuses.get(status, 0) + n
        self.rows += other.rows
        self.unlogged_rows += other.unlogged_rows
        self.features_overflow += other.features_overflow
        self.private_columns |= other.private_columns
        for name in self.private_columns & set(self.features):
            del self.features[name]
        self.inputs.merge(other.inputs)
        self.inputs.drop_columns(self.private_columns)
        for name, column in other.features.items():
            if name in self.private_columns:
                continue
            mine = self.features.get(name)
            if mine is None:
                if len(self.features) >= MAX_FEATURES:
                    self.features_overflow += column.rows
                    continue
                mine = self.features[name] = ColumnSummary()
            mine.merge(column)
        self.prediction.merge(other.prediction)
        for name, counts in other.slices.items():
            self.slices.setdefault(name, CategoricalSummary()).merge(counts)

    def to_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "statuses": self.statuses, "rows": self.rows,
                "unlogged_rows": self.unlogged_rows,
                "features": {k: v.to_dict() for k, v in sorted(self.features.items())},
                "prediction": self.prediction.to_dict(),
                "slices": {k: v.to_dict() for k, v in sorted(self.slices.items())},
                "features_overflow": self.features_overflow, "private_columns": sorted(self.private_columns),
                "incomplete_rows": self.incomplete_rows, "inputs": self.inputs.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrafficSummary:
        return cls(int(data["requests"]), {str(k): int(v) for k, v in data["statuses"].items()}, int(data["rows"]),
                   int(data["unlogged_rows"]),
                   {str(k): ColumnSummary.from_dict(v) for k, v in data["features"].items()},
                   ColumnSummary.from_dict(data["prediction"]),
                   {str(k): CategoricalSummary.from_dict(v) for k, v in data["slices"].items()},
                   int(data["features_overflow"]), set(data["private_columns"]),
                   InputCounts.from_dict(data.get("inputs")))  # older summaries have none: no input events

    def describe(self) -> dict[str, Any]:
        return {"requests": self.requests, "statuses": self.statuses, "rows": self.rows,
                "unlogged_rows": self.unlogged_rows,
                "features": {k: v.describe() for k, v in sorted(self.features.items())},
                "prediction": self.prediction.describe(),
                "slices": {k: dict(sorted(v.counts.items())) | ({OTHER: v.other} if v.other else {})
                           for k, v in sorted(self.slices.items())},
                "features_overflow": self.features_overflow, "private_columns": sorted(self.private_columns),
                "incomplete_rows": self.incomplete_rows}


# -- reading records ----------------------------------------------------------------------------
_PII = frozenset(DEFAULT_PII_FIELDS | {"email_address", "phone_number", "user", "customer_id", "account_id"})


def is_private_name(name: str) -> bool:
    """A column named as personal data (the log policy's list and a few aliases): never summarized."""
    return name.lower() in _PII


@dataclass
class _Group:
    """Rows of one (model, version, role, window) gathered from a chunk, before they are summarized."""

    requests: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    rows: int = 0
    unlogged_rows: int = 0
    columns: dict[str, list[Any]] = field(default_factory=dict)
    predictions: list[Any] = field(default_factory=list)
    logged_rows: int = 0  # rows that were dicts (their columns were gathered)
    overflow: int = 0
    inputs: dict[int, Counter[tuple[str, ...]]] = field(default_factory=dict)  # minute -> rows by key set
    refused_names: set[str] = field(default_factory=set)  # input names of refused (422) rows: no value summary

    def summarize(self, slice_columns: Sequence[str]) -> TrafficSummary:
        out = TrafficSummary(self.requests, dict(self.statuses), self.rows, self.unlogged_rows,
                             features_overflow=self.overflow)
        for name, values in self.columns.items():
            if is_private_name(name) or _looks_hashed(values[:64]):
                out.private_columns.add(name)
                continue
            column = ColumnSummary()
            column.add(values)
            if _looks_hashed(column.categorical.counts):  # hashed ids past the first rows: still never kept
                out.private_columns.add(name)
                continue
            out.features[name] = column
        kept = set(out.features)  # non-personal columns with a summary (not past MAX_FEATURES)
        kept |= {n for n in self.refused_names if not is_private_name(n) and n not in out.private_columns}
        for minute, keysets in self.inputs.items():
            out.inputs.add(minute, Counter({tuple(sorted(c for c in k if c in kept)): n for k, n in keysets.items()}))
        out.prediction.add(self.predictions)
        for name in slice_columns:
            if name in out.private_columns:
                continue
            values = self.columns.get(name, [])
            counts = Counter(v if type(v) is str else "(missing)" if v is None else str(v)[:200] for v in values)
            if self.logged_rows > len(values):
                counts["(missing)"] += self.logged_rows - len(values)
            if counts:
                summary = out.slices[name] = CategoricalSummary()
                summary.add_counts(counts)
        return out


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")


def _looks_hashed(values: Iterable[Any]) -> bool:
    """Values that are personal whatever the column's name: keyed hashes of ids, e-mail addresses."""
    return any(type(v) is str and (v.startswith(HASH_PREFIX) or ("@" in v and _EMAIL.match(v) is not None))
               for v in values)


@dataclass
class SegmentResult:
    """The summaries of one segment's new bytes: by (model, version, role, window start), and what was read."""

    path: str
    start: int
    end: int
    inode: int
    records: int = 0
    corrupt_lines: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    summaries: dict[tuple[str, str, str, int], TrafficSummary] = field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        """JSON-able form (what a Dask worker sends back: no pickled sketches)."""
        return {"path": self.path, "start": self.start, "end": self.end, "inode": self.inode,
                "records": self.records, "corrupt_lines": self.corrupt_lines, "skipped": self.skipped,
                "summaries": [[list(k), v.to_dict()] for k, v in self.summaries.items()]}

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> SegmentResult:
        out = cls(data["path"], int(data["start"]), int(data["end"]), int(data["inode"]), int(data["records"]),
                  int(data["corrupt_lines"]), dict(data["skipped"]))
        for (model, version, role, window), summary in data["summaries"]:
            out.summaries[(model, version, role, int(window))] = TrafficSummary.from_dict(summary)
        return out


def _version(record: Mapping[str, Any]) -> str:
    version = record.get("version")
    if version is None or version == "":
        return "none"
    return str(version)[:64]


def summarize_segment(path: str, start: int, *, now_s: float, bucket_s: int = BUCKET_S,
                      slices: Sequence[str] = DEFAULT_SLICES, max_future_s: float = MAX_FUTURE_S,
                      max_age_s: float = MAX_AGE_S, chunk_bytes: int = CHUNK_BYTES, wire: bool = False) -> Any:
    """Summaries of the complete lines of segment ``path`` from byte ``start`` (read in bounded chunks).

    Runs where the file is (here or on a Dask worker); ``wire`` returns the JSON-able form.
    """
    stat = segment_stat(path)  # on a Dask worker: no view, a plain stat
    inode, size = stat.st_ino, stat.st_size
    result = SegmentResult(path, start, start, inode)
    offset = start
    skipped: Counter[str] = Counter()
    while offset < size:
        read = read_segment(path, offset, chunk_bytes)
        if read.end == offset:
            if offset + chunk_bytes >= size:
                break  # only a torn or in-progress tail is left
            read = read_segment(path, offset)  # one line longer than a chunk
            if read.end == offset:
                break
        offset = read.end
        result.records += len(read.records)
        result.corrupt_lines += read.corrupt_lines
        groups: dict[tuple[str, str, str, int], _Group] = {}
        for record in read.records:
            _gather(record, groups, now_s=now_s, bucket_s=bucket_s, max_future_s=max_future_s,
                    max_age_s=max_age_s, skipped=skipped)
        del read
        for key, group in groups.items():
            summary = group.summarize(slices)
            mine = result.summaries.get(key)
            if mine is None:
                result.summaries[key] = summary
            else:
                mine.merge(summary)
    result.end = offset
    result.skipped = dict(skipped)
    return result.to_wire() if wire else result


def _gather(record: Mapping[str, Any], groups: dict[tuple[str, str, str, int], _Group], *, now_s: float,
            bucket_s: int, max_future_s: float, max_age_s: float,
            skipped: Counter[str]) -> None:
    role = record.get("role")
    model = record.get("model")
    if role not in ("primary", "shadow", "rejected") or not isinstance(model, str) or not model:
        skipped["not_a_request"] += 1
        return
    if record.get("status") == 404:  # no such model: a scanner's names must not become summaries
        count = record.get("count") if role == "rejected" else 1
        skipped["unknown_model"] += count if type(count) is int and 0 <= count <= 1 << 40 else 1
        return
    count = 1
    if role == "rejected":
        count = record.get("count")
        if type(count) is not int or not 0 <= count <= 1 << 40:
            skipped["bad_count"] += 1
            return
    at = record_time(record)
    if at is None:
        skipped["no_time"] += count
        return
    if at > now_s + max_future_s:
        skipped["future"] += count
        return
    if at < now_s - max_age_s:
        skipped["too_old"] += count
        return
    key = (model[:200], _version(record), role, int(at // bucket_s) * bucket_s)
    group = groups.get(key)
    if group is None:
        group = groups[key] = _Group()
    group.requests += count
    status = record.get("status")
    group.statuses[str(status) if type(status) is int else "unknown"] += count
    if status != 200:
        if status == 422 and role == "primary" and isinstance(record.get("instances"), list):
            # refused because an input was missing or malformed: its rows count for input completeness (a
            # feature lookup that empties a required column is refused here, not served on worse inputs)
            _count_inputs(group, at, record["instances"])
        return
    instances = record.get("instances")
    predictions = record.get("predictions")
    if isinstance(predictions, list):
        group.predictions.extend(predictions)
    if not isinstance(instances, list):
        if isinstance(instances, dict) and type(instances.get("rows")) is int:
            group.unlogged_rows += max(0, instances["rows"])
        elif isinstance(predictions, list):
            group.unlogged_rows += len(predictions)
        return
    group.rows += len(instances)
    columns = group.columns
    keysets = group.inputs.get(int(at // 60))
    if keysets is None:
        keysets = group.inputs[int(at // 60)] = Counter()
    for row in instances:
        if type(row) is not dict:
            continue
        group.logged_rows += 1
        empty = False
        for name, value in row.items():
            if value is None:
                empty = True
            try:
                columns[name].append(value)
            except KeyError:
                if len(columns) >= MAX_FEATURES or type(name) is not str or len(name) > MAX_NAME:
                    group.overflow += 1
                else:
                    columns[name] = [value]
        # the columns the row held a value in (the data plane drops nulls: an empty input is an absent column)
        keysets[tuple(k for k, v in row.items() if v is not None) if empty else tuple(row)] += 1


def _count_inputs(group: _Group, at: float, instances: list[Any]) -> None:
    """Count each row's held columns in the minute of ``at`` (input completeness only; no drift columns)."""
    keysets = group.inputs.get(int(at // 60))
    if keysets is None:
        keysets = group.inputs[int(at // 60)] = Counter()
    for row in instances[:MAX_ROWS_PER_RECORD]:
        if type(row) is dict and len(row) <= MAX_FEATURES:
            held = tuple(k for k, v in row.items() if v is not None and type(k) is str and len(k) <= MAX_NAME)
            keysets[held] += 1
            if len(group.refused_names) < MAX_FEATURES:
                group.refused_names.update(held)


# -- state: checkpoint + window files ----------------------------------------------------------
def traffic_dir(home: str | Path) -> Path:
    from .workspace import monitoring_dir

    return monitoring_dir(home) / "traffic"


def _safe(name: str) -> str:
    return _SAFE.sub("_", name)[:80] + "-" + format(abs(hash_name(name)), "x")[:8]


def hash_name(name: str) -> int:
    import zlib

    return zlib.crc32(name.encode("utf-8"))


def _window_file(base: Path, model: str, window: int, epoch: int) -> Path:
    return base / "windows" / _safe(model) / f"{window}-e{epoch}.json"


@dataclass
class _State:
    epoch: int = 0
    bucket_s: int = BUCKET_S
    offsets: dict[str, dict[str, int]] = field(default_factory=dict)  # segment -> {offset, inode}
    index: dict[str, dict[str, int]] = field(default_factory=dict)  # model -> {window start: epoch}
    skipped: dict[str, int] = field(default_factory=dict)
    records: int = 0
    bytes: int = 0
    updated_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, "epoch": self.epoch, "bucket_s": self.bucket_s, "offsets": self.offsets,
                "index": self.index, "skipped": self.skipped, "records": self.records, "bytes": self.bytes,
                "updated_at": self.updated_at}


def _damaged(path: Path, exc: Exception) -> IntegrityError:
    return IntegrityError(f"{path} is damaged ({type(exc).__name__}: {exc}); move {path.parent} away and run "
                          "'yarnit monitor summarize' to rebuild the traffic summaries from the log.")


def _load_state(base: Path) -> _State:
    path = base / "state.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return _State()
    except (OSError, ValueError) as exc:
        raise _damaged(path, exc) from None
    if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
        raise IntegrityError(f"{path} is not a traffic checkpoint of version {STATE_VERSION}; move {base} away "
                             "and run 'yarnit monitor summarize' to rebuild the summaries from the log.")
    try:
        return _State(int(data["epoch"]), int(data["bucket_s"]),
                      {str(k): {"offset": int(v["offset"]), "inode": int(v["inode"])}
                       for k, v in data["offsets"].items()},
                      {str(m): {str(w): int(e) for w, e in ws.items()} for m, ws in data["index"].items()},
                      {str(k): int(v) for k, v in data["skipped"].items()}, int(data["records"]), int(data["bytes"]),
                      data.get("updated_at"))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise _damaged(path, exc) from None


def _read_window(base: Path, model: str, window: int, epoch: int) -> dict[tuple[str, str], TrafficSummary]:
    path = _window_file(base, model, window, epoch)
    raw = path.read_bytes()  # FileNotFoundError: a concurrent update replaced it (retried)
    try:
        try:
            data = orjson.loads(raw)  # several times json's speed on these files (the same values)
        except orjson.JSONDecodeError:
            data = json.loads(raw)  # json wrote them: an Infinity (an overflowed sum) is legal
        return {(v, r): TrafficSummary.from_dict(s) for v, r, s in data["summaries"]}
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as exc:
        raise _damaged(path, exc) from None


def _write_window(base: Path, model: str, window: int, epoch: int,
                  summaries: Mapping[tuple[str, str], TrafficSummary]) -> None:
    path = _window_file(base, model, window, epoch)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"model": model, "window_start": window, "epoch": epoch,
            "summaries": [[v, r, s.to_dict()] for (v, r), s in sorted(summaries.items())]}
    atomic_write_text(path, json.dumps(body, separators=(",", ":")), mode=0o600)


def _collect_garbage(base: Path, state: _State) -> int:
    """Remove window files the committed index does not name (superseded, or written by a crashed run), and
    temporary files a killed write left (only ever called under the update lock)."""
    from yarnit.core.atomic import TEMP_PREFIX

    # names from directory listings, no stat per file: a monitor runs this every pass over every kept hour
    windows_dir = os.path.join(str(base), "windows")
    keep = {os.path.join(windows_dir, safe, f"{int(w)}-e{e}.json")  # _window_file's names, as plain strings
            for safe, ws in ((_safe(m), ws) for m, ws in state.index.items()) for w, e in ws.items()}
    stale = [e.path for e in _entries(base) if e.name.startswith(TEMP_PREFIX) and e.is_file()]
    for model_dir in _entries(base / "windows"):
        if model_dir.is_dir():
            stale += [e.path for e in _entries(Path(model_dir.path)) if e.is_file() and e.path not in keep]
    for path in stale:
        Path(path).unlink(missing_ok=True)
    return len(stale)


def _entries(directory: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as it:
            return list(it)
    except (FileNotFoundError, NotADirectoryError):
        return []


@contextlib.contextmanager
def _locked(base: Path) -> Iterator[None]:
    base.mkdir(parents=True, exist_ok=True)
    fd = os.open(base / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# -- public entry points ------------------------------------------------------------------------
def _slices_from_env() -> tuple[str, ...]:
    raw = os.environ.get("YARNIT_MONITOR_SLICES")
    if not raw:
        return DEFAULT_SLICES
    names = tuple(n.strip() for n in raw.split(",") if n.strip())
    bad = [n for n in names if is_private_name(n) or len(n) > MAX_NAME]
    if bad:
        raise InvalidInput(f"YARNIT_MONITOR_SLICES names personal or over-long columns {bad}; slice by "
                           "non-personal categorical columns such as country,device.")
    return names


def update(workspace: Any, *, clock: Clock | None = None, log_dir: str | Path | None = None,
           bucket_s: int | None = None, slices: Sequence[str] | None = None, chunk_bytes: int = CHUNK_BYTES,
           client: Any = None, progress: Any = None, fault: str | None = None,
           commit_bytes: int = COMMIT_BYTES) -> dict[str, Any]:
    """Read the log's new bytes, fold them into the window summaries, commit; a JSON-able report.

    A backlog is committed every ``commit_bytes`` read (and at the end), so a kill loses one round at most.

    ``client``: a ``distributed.Client`` (default: one to ``settings.dask_scheduler`` when set, else local).
    ``progress(done_segments, total_segments)`` is called after each segment. ``fault`` (tests):
    ``"after_windows"`` raises after the window files are written and before the checkpoint.
    """
    from .workspace import prediction_log_dir

    clock = clock or workspace.clock
    directory = Path(log_dir) if log_dir is not None else prediction_log_dir(workspace.home)
    base = traffic_dir(workspace.home)
    chosen_slices = tuple(slices) if slices is not None else _slices_from_env()
    with _locked(base):
        state = _load_state(base)
        if bucket_s is not None and state.epoch and bucket_s != state.bucket_s:
            raise InvalidInput(f"the traffic summaries use {state.bucket_s} s windows; to change to {bucket_s} s "
                               f"remove {base} (the summaries are rebuilt from the log it still holds).")
        if not state.epoch:
            state.bucket_s = bucket_s or BUCKET_S
        garbage = _collect_garbage(base, state)
        now_s = clock.now().timestamp()
        segments = segment_paths(directory)
        seen = {p.name for p in segments}
        dropped = [name for name in state.offsets if name not in seen]
        for name in dropped:
            del state.offsets[name]
        todo: list[tuple[Path, int]] = []
        rewritten = 0
        for path in segments:
            try:
                stat = segment_stat(path)
            except FileNotFoundError:
                continue
            cp = state.offsets.get(path.name)
            if cp is not None and (cp["inode"] != stat.st_ino or stat.st_size < cp["offset"]):
                # Rewritten by erasure: what it held is summarized already (no personal data in summaries).
                state.offsets[path.name] = {"offset": stat.st_size, "inode": stat.st_ino}
                rewritten += 1
                continue
            offset = cp["offset"] if cp is not None else 0
            if stat.st_size > offset:
                todo.append((path, offset))
        report: dict[str, Any] = {"segments": len(segments), "segments_read": 0, "bytes": 0, "records": 0,
                                  "corrupt_lines": 0, "skipped": {}, "windows_touched": 0, "rewritten_segments":
                                  rewritten, "removed_segments": len(dropped), "garbage_files": garbage,
                                  "dask": False}
        pending: dict[tuple[str, int], dict[tuple[str, str], TrafficSummary]] = {}
        touched: set[tuple[str, int]] = set()
        skipped: Counter[str] = Counter()
        round_skipped: Counter[str] = Counter()
        round_bytes = round_records = 0

        def commit() -> None:
            """Window files of this round under a new epoch, then the checkpoint naming them (the commit)."""
            nonlocal round_bytes, round_records
            epoch = state.epoch + 1
            for (model, window), summaries in pending.items():
                _write_window(base, model, window, epoch, summaries)
            if fault == "after_windows":
                raise RuntimeError("fault injected after the window files, before the checkpoint")
            superseded = []
            for model, window in pending:
                windows = state.index.setdefault(model, {})
                if (old := windows.get(str(window))) is not None:
                    superseded.append(_window_file(base, model, window, old))
                windows[str(window)] = epoch
            state.epoch = epoch
            for reason, n in round_skipped.items():
                state.skipped[reason] = state.skipped.get(reason, 0) + n
            state.records += round_records
            state.bytes += round_bytes
            state.updated_at = clock.now().isoformat()
            atomic_write_text(base / "state.json", json.dumps(state.to_dict(), separators=(",", ":")), mode=0o600)
            # The files this commit superseded, by name: under the lock, after the listing at the start of the
            # update removed anything else no index names, they are all the garbage a commit leaves. Listing every
            # kept hour of every model again cost O(hours × models) a pass, which grew with the month (h49).
            for path in superseded:
                path.unlink(missing_ok=True)
            touched.update(pending)
            pending.clear()
            round_skipped.clear()
            round_bytes = round_records = 0

        kwargs = {"now_s": now_s, "bucket_s": state.bucket_s, "slices": chosen_slices, "chunk_bytes": chunk_bytes}
        for done, result in enumerate(_run(todo, kwargs, client, workspace), start=1):
            if result.end > result.start:
                state.offsets[Path(result.path).name] = {"offset": result.end, "inode": result.inode}
                report["segments_read"] += 1
            report["bytes"] += result.end - result.start
            report["records"] += result.records
            report["corrupt_lines"] += result.corrupt_lines
            round_bytes += result.end - result.start
            round_records += result.records
            skipped.update(result.skipped)
            round_skipped.update(result.skipped)
            for (model, version, role, window), summary in result.summaries.items():
                slot = pending.get((model, window))
                if slot is None:
                    slot = pending[(model, window)] = {}
                    committed = state.index.get(model, {}).get(str(window))
                    if committed is not None:
                        slot.update(_read_window(base, model, window, committed))
                mine = slot.get((version, role))
                if mine is None:
                    slot[(version, role)] = summary
                else:
                    mine.merge(summary)
            if round_bytes >= commit_bytes:  # a long backlog keeps its progress: a kill loses one round at most
                commit()
            if progress is not None:
                progress(done, len(todo))
        report["dask"] = bool(todo) and _dask_used(client, workspace)
        if not todo and not rewritten and not dropped and state.epoch:
            report["skipped"] = dict(skipped)
            return report | {"epoch": state.epoch, "updated_at": state.updated_at}
        if pending or round_bytes or not touched:
            commit()
        report.update(skipped=dict(skipped), windows_touched=len(touched), epoch=state.epoch,
                      updated_at=state.updated_at)
        return report


def _dask_used(client: Any, workspace: Any) -> bool:
    return client is not None or bool(getattr(workspace.settings, "dask_scheduler", None))


def _run(todo: list[tuple[Path, int]], kwargs: dict[str, Any], client: Any, workspace: Any) -> Iterator[SegmentResult]:
    """Each segment's summary, here or on Dask (results come back as JSON-able dicts and are merged here)."""
    if not todo:
        return
    if client is None and getattr(workspace.settings, "dask_scheduler", None):
        from yarnit.training.dask import dask_client

        with dask_client(workspace.settings.dask_scheduler) as own:
            yield from _run(todo, kwargs, own, workspace)
        return
    if client is None:
        for path, offset in todo:
            yield summarize_segment(str(path), offset, **kwargs)
        return
    from distributed import as_completed

    futures = [client.submit(summarize_segment, str(path), offset, wire=True, pure=False, **kwargs)
               for path, offset in todo]
    for future in as_completed(futures):
        yield SegmentResult.from_wire(future.result())
        future.release()


# -- queries ------------------------------------------------------------------------------------
@dataclass
class WindowSummary:
    """The merged summary of a model's traffic over ``[start, end)`` (whole windows whose start lies in it)."""

    model: str
    start: float
    end: float
    windows: int
    summary: TrafficSummary
    versions: dict[str, int]  # version -> primary requests in the span
    covered: tuple[float, float] | None  # first window start, last window end

    def to_dict(self) -> dict[str, Any]:
        iso = iso_utc
        return {"model": self.model, "start": iso(self.start), "end": iso(self.end), "windows": self.windows,
                "covered": None if self.covered is None else [iso(self.covered[0]), iso(self.covered[1])],
                "versions": self.versions, "summary": self.summary.describe()}


def iso_utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def status(workspace: Any) -> dict[str, Any]:
    """What the committed summaries cover: epoch, last update, models and windows, skipped records."""
    base = traffic_dir(workspace.home)
    state = _load_state(base)
    return {"epoch": state.epoch, "updated_at": state.updated_at, "bucket_s": state.bucket_s,
            "records": state.records, "bytes": state.bytes, "skipped": state.skipped,
            "segments": len(state.offsets), "models": {m: len(ws) for m, ws in sorted(state.index.items())}}


def models(workspace: Any) -> list[str]:
    return sorted(_load_state(traffic_dir(workspace.home)).index)


def window_summary(workspace: Any, model: str, start: datetime | float, end: datetime | float, *,
                   version: str | int | None = None, role: str = "primary") -> WindowSummary:
    """Merge the committed hourly summaries of ``model`` (``role``, one ``version`` or all) in ``[start, end)``.

    Reads stored summaries only (never the log). An empty span gives a summary with zero requests.
    """
    s, e = _span(start, end)
    v = None if version is None else str(version)
    return _with_state(workspace, lambda base, state: _merge_span(base, state, model, s, e, v, role))


_T = TypeVar("_T")


def _span(start: datetime | float, end: datetime | float) -> tuple[float, float]:
    s, e = (x.timestamp() if isinstance(x, datetime) else float(x) for x in (start, end))
    if e <= s:
        raise InvalidInput(f"the window must end after it starts; got {iso_utc(s)} to {iso_utc(e)}.")
    return s, e


def _with_state(workspace: Any, read: Callable[[Path, _State], _T]) -> _T:
    """``read(base, state)`` on the current checkpoint; again (up to three times) when a concurrent update
    removed a window file between reading the index and the file."""
    base = traffic_dir(workspace.home)
    for attempt in range(3):
        try:
            return read(base, _load_state(base))
        except FileNotFoundError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _merge_span(base: Path, state: _State, model: str, s: float, e: float, version: str | None,
                role: str) -> WindowSummary:
    merged = TrafficSummary()
    versions: Counter[str] = Counter()
    picked = sorted(int(w) for w in state.index.get(model, {}) if s <= int(w) < e)
    for window in picked:
        for (v, r), summary in _read_window(base, model, window, state.index[model][str(window)]).items():
            if r == "primary":
                versions[v] += summary.requests
            if r == role and (version is None or v == version):
                merged.merge(summary)
    covered = (float(picked[0]), float(picked[-1] + state.bucket_s)) if picked else None
    return WindowSummary(model, s, e, len(picked), merged, dict(versions), covered)


def window_column(workspace: Any, model: str, start: datetime | float, end: datetime | float, column: str, *,
                  role: str = "primary") -> tuple[dict[str, ColumnSummary], dict[str, int]]:
    """One column (a feature, or ``"prediction"``) of ``model``'s summaries in ``[start, end)``, merged per version.

    Returns (version -> the column's merged summary in ``role``, version -> primary requests). What a view of
    one feature needs, at a fraction of :func:`window_summary`'s cost: the other columns, slices and input
    counts of each stored window are not rebuilt or merged. A column that any window marks private is empty.
    """
    s, e = _span(start, end)

    def read(base: Path, state: _State) -> tuple[dict[str, ColumnSummary], dict[str, int]]:
        columns: dict[str, ColumnSummary] = {}
        versions: Counter[str] = Counter()
        private = False
        for window in sorted(int(w) for w in state.index.get(model, {}) if s <= int(w) < e):
            path = _window_file(base, model, window, state.index[model][str(window)])
            try:
                for v, r, summary in _window_parts(path):
                    if r == "primary":
                        versions[v] += int(summary["requests"])
                    private = private or column in summary.get("private_columns", ())
                    found = summary["prediction"] if column == "prediction" else summary["features"].get(column)
                    if r == role and found is not None:
                        columns.setdefault(v, ColumnSummary()).merge(ColumnSummary.from_dict(found))
            except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as exc:
                raise _damaged(path, exc) from None
        return ({} if private else columns), dict(versions)

    return _with_state(workspace, read)


def window_prediction(workspace: Any, model: str, start: datetime | float, end: datetime | float, version: str,
                      *, role: str = "primary") -> ColumnSummary:
    """``window_summary(..., version=version, role=role).summary.prediction`` without building and merging the
    windows' other columns: the predictions are merged alone, in the same order, to the same summary (a
    :class:`TrafficSummary` merges its prediction column apart from the rest). The daily drift asks for it twice."""
    s, e = _span(start, end)

    def read(base: Path, state: _State) -> ColumnSummary:
        merged = ColumnSummary()
        for window in sorted(int(w) for w in state.index.get(model, {}) if s <= int(w) < e):
            path = _window_file(base, model, window, state.index[model][str(window)])
            try:
                for v, r, summary in _window_parts(path):
                    if r == role and v == version:
                        merged.merge(ColumnSummary.from_dict(summary["prediction"]))
            except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as exc:
                raise _damaged(path, exc) from None
        return merged

    return _with_state(workspace, read)


def _window_parts(path: Path) -> list[Any]:
    """The ``[version, role, summary dict]`` parts of a window file, parsed (not yet built into summaries)."""
    raw = path.read_bytes()  # FileNotFoundError: a concurrent update replaced it (retried)
    try:
        return list(orjson.loads(raw)["summaries"])  # several times json's speed on these files
    except orjson.JSONDecodeError:
        return list(json.loads(raw)["summaries"])  # json wrote them: an Infinity (an overflowed sum) is legal


def window_inputs(workspace: Any, model: str, start_s: float, end_s: float, *, role: str = "primary",
                  cache: dict[tuple[str, int, int], list[InputCounts]] | None = None) -> list[InputCounts]:
    """The input counts of ``model``'s ``role`` rows, one per (version, window), in the windows overlapping
    ``[start_s, end_s)``, read from the committed summaries without loading their sketches.

    ``cache`` (kept by the caller between calls) maps (model, window, epoch) to what a window file held: a
    committed file never changes, so a monitor that keeps it reads each hour's file once.
    """
    base = traffic_dir(workspace.home)
    for attempt in range(3):  # a concurrent update may remove a file between reading the index and the file
        state = _load_state(base)
        merged: list[InputCounts] = []
        try:
            for window, epoch in sorted((int(w), e) for w, e in state.index.get(model, {}).items()):
                if not (window + state.bucket_s > start_s and window < end_s):
                    continue
                key = (model, window, epoch)
                counts = cache.get(key) if cache is not None else None
                if counts is None:
                    counts = _read_window_inputs(base, model, window, epoch, role)
                    if cache is not None:
                        cache[key] = counts
                merged.extend(counts)
            if cache is not None:  # forget superseded epochs and windows retention removed
                live = state.index.get(model, {})
                for key in [k for k in cache if k[0] == model and live.get(str(k[1])) != k[2]]:
                    del cache[key]
            return merged
        except FileNotFoundError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _read_window_inputs(base: Path, model: str, window: int, epoch: int, role: str) -> list[InputCounts]:
    path = _window_file(base, model, window, epoch)
    text = path.read_text(encoding="utf-8")
    out: list[InputCounts] = []
    try:
        for _version, r, summary in json.loads(text)["summaries"]:
            if r == role:
                out.append(InputCounts.from_dict(summary.get("inputs")))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise _damaged(path, exc) from None
    return out


# -- drift ------------------------------------------------------------------------------------------
def drift_report(workspace: Any, model: str, **options: Any) -> dict[str, Any]:
    """Drift of ``model``'s served traffic from the stored summaries: see :mod:`yarnit.monitoring.served_drift`."""
    from .served_drift import drift_report as report

    return report(workspace, model, **options)


__all__ = ["BUCKET_S", "DEFAULT_SLICES", "RANK_ERROR", "TOP_K", "CategoricalSummary", "ColumnSummary",
           "NumericSummary", "TrafficSummary", "WindowSummary", "drift_report", "is_private_name", "iso_utc",
           "kll_rank_error", "models", "status", "summarize_segment", "traffic_dir", "update", "window_column",
           "window_inputs", "window_prediction",
           "window_summary"]
