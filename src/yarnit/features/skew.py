"""Training-serving skew: log what serving used, recompute it offline, compare feature by feature.

The data plane attaches a :class:`ServingLog` to the
:class:`~yarnit.features.OnlineFeatures` it reads through
(``serving/featurestore.py``); a sample of the rows it serves (entity,
request time, status, values) is appended to Parquet files, at the latest
``flush_interval_s`` after it was served and when the server stops.
:func:`skew_report` recomputes the same features offline — a point-in-time
join at each logged request time — and reports, per feature, how often the
served value differs from the offline one (floats within ``tolerance``) and
how far apart the two distributions are. A served value withheld as
``stale``/``missing`` counts as a mismatch when the offline path has a value:
the model did not get what training would have given it. With no logged rows
the report's status is ``no data``, never ``ok``: nothing was compared.

Example:
    >>> import numpy as np
    >>> served = np.array([1.0, 2.0, 3.0]); offline = np.array([1.0, 2.0, 3.5])
    >>> round(wasserstein_normed(served, offline), 4)
    0.1622
"""

from __future__ import annotations

import io
import random
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from yarnit.core.atomic import atomic_write_bytes
from yarnit.core.errors import InvalidInput
from yarnit.monitoring import distances

from ._codec import ViewCodec
from .definitions import ARROW_TYPES, EVENT_TIME_TYPE, FeatureView
from .errors import NaiveTimestamp
from .offline import OfflineStore
from .online import OnlineRow, to_us

REQUEST_TIME = "__request_time"
STATUS = "__status"
EVENT_TIME = "__event_time"


class ServingLog:
    """Samples served feature rows into Parquet files under ``root/<view>/<version>/``.

    Args:
        root: directory of the log.
        sample_rate: fraction of served rows kept (0 < rate ≤ 1).
        seed: seed of the sampler, so a run is reproducible.
        flush_rows: rows buffered per view before a file is written.
        flush_interval_s: a buffer is also written once its oldest row is this old (by the served
            rows' own clock), so a quiet server's sample reaches the disk too.
    """

    def __init__(self, root: str | Path, *, sample_rate: float = 0.01, seed: int = 0, flush_rows: int = 10_000,
                 flush_interval_s: float = 60.0) -> None:
        if not 0 < sample_rate <= 1:
            raise InvalidInput(f"sample_rate must be in (0, 1], got {sample_rate!r} (e.g. 0.01 logs 1% of rows).")
        self.root = Path(root)
        self.sample_rate = sample_rate
        self.flush_rows = flush_rows
        self.flush_interval_us = int(flush_interval_s * 1_000_000)
        self._oldest_us: int | None = None  # request time of the oldest buffered row
        self._random = random.Random(seed).random
        self._lock = threading.Lock()
        self._buffers: dict[str, tuple[FeatureView, list[tuple[OnlineRow, int]]]] = {}

    def directory(self, view: FeatureView) -> Path:
        return self.root / view.name / view.version

    def record(self, view: FeatureView, rows: Sequence[OnlineRow], now_us: int) -> None:
        """Keep a sample of ``rows``, served at ``now_us`` (called by the serving path)."""
        rate, rand = self.sample_rate, self._random
        with self._lock:
            kept = [(row, now_us) for row in rows if rate >= 1 or rand() < rate]
            if not kept:
                return
            entry = self._buffers.setdefault(view.ref, (view, []))
            entry[1].extend(kept)
            if self._oldest_us is None:
                self._oldest_us = now_us
            full = len(entry[1]) >= self.flush_rows or now_us - self._oldest_us >= self.flush_interval_us
        if full:
            self.flush()

    def flush(self) -> list[Path]:
        """Write buffered rows to new Parquet files; returns the files written."""
        with self._lock:
            pending = [(v, rows) for v, rows in self._buffers.values() if rows]
            self._buffers = {}
            self._oldest_us = None
        written = []
        for view, rows in pending:
            table = _log_table(view, rows)
            sink = io.BytesIO()
            pq.write_table(table, sink, compression="zstd")
            path = self.directory(view) / f"part-{rows[0][1]:020d}-{uuid.uuid4().hex[:12]}.parquet"
            atomic_write_bytes(path, sink.getvalue())
            written.append(path)
        return written

    def read(self, view: FeatureView, *, since: datetime | None = None, until: datetime | None = None) -> pa.Table:
        """Logged rows of ``view`` with request time in ``[since, until)``."""
        files = sorted(self.directory(view).glob("part-*.parquet"))
        schema = _log_schema(view)
        if not files:
            return schema.empty_table()
        table = pa.concat_tables([pq.read_table(f).cast(schema) for f in files])
        ts = table.column(REQUEST_TIME)
        for bound, op, name in ((since, pc.greater_equal, "since"), (until, pc.less, "until")):
            if bound is not None:
                if bound.tzinfo is None:
                    raise NaiveTimestamp(f"{name} {bound.isoformat()!r}")
                table = table.filter(op(ts, pa.scalar(bound, EVENT_TIME_TYPE)))
                ts = table.column(REQUEST_TIME)
        return table

    def close(self) -> None:
        self.flush()


def _log_schema(view: FeatureView) -> pa.Schema:
    return pa.schema(
        [pa.field(f.name, ARROW_TYPES[f.dtype]) for f in view.entities]
        + [pa.field(REQUEST_TIME, EVENT_TIME_TYPE), pa.field(STATUS, pa.string()),
           pa.field(EVENT_TIME, EVENT_TIME_TYPE)]
        + [pa.field(f.name, ARROW_TYPES[f.dtype]) for f in view.features]
    )


def _log_table(view: FeatureView, rows: list[tuple[OnlineRow, int]]) -> pa.Table:
    codec = ViewCodec(view)
    single = len(view.entities) == 1
    keys = [(r.key,) if single else tuple(r.key) for r, _ in rows]
    if not single:
        keys = [k if isinstance(k, tuple) else codec.key_values(k) for k in keys]
    columns: list[pa.Array] = []
    for i, f in enumerate(view.entities):
        columns.append(pa.array([k[i] for k in keys], ARROW_TYPES[f.dtype]))
    columns.append(pa.array([t for _, t in rows], pa.int64()).cast(EVENT_TIME_TYPE))
    columns.append(pa.array([r.status.value for r, _ in rows], pa.string()))
    columns.append(pa.array([r.event_us for r, _ in rows], pa.int64()).cast(EVENT_TIME_TYPE))
    for f in view.features:
        columns.append(pa.array([r.values.get(f.name) for r, _ in rows], ARROW_TYPES[f.dtype]))
    return pa.Table.from_arrays(columns, schema=_log_schema(view))


# --- the report -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureSkew:
    """How one feature's served values compare with the offline recomputation."""

    feature: str
    dtype: str
    compared: int
    mismatches: int
    served_unavailable: int
    distance: float | None
    distance_kind: str
    skewed: bool
    examples: tuple[dict[str, Any], ...] = field(default=())

    @property
    def mismatch_rate(self) -> float:
        return self.mismatches / self.compared if self.compared else 0.0

    @property
    def status(self) -> str:
        """``skewed``, ``ok``, or ``no data`` when no served value was compared (never an all-clear)."""
        return "no data" if self.compared == 0 else "skewed" if self.skewed else "ok"

    def to_dict(self) -> dict[str, Any]:
        return {"feature": self.feature, "status": self.status, "dtype": self.dtype, "compared": self.compared,
                "mismatches": self.mismatches, "mismatch_rate": self.mismatch_rate,
                "served_unavailable": self.served_unavailable, "distance": self.distance,
                "distance_kind": self.distance_kind, "skewed": self.skewed, "examples": list(self.examples)}


@dataclass(frozen=True)
class SkewReport:
    """Per-feature skew of one view between what serving used and what the offline path computes."""

    view: str
    version: str
    rows: int
    max_mismatch_rate: float
    tolerance: float
    features: tuple[FeatureSkew, ...]
    served_status: dict[str, int]

    @property
    def skewed_features(self) -> list[str]:
        return [f.feature for f in self.features if f.skewed]

    @property
    def skewed(self) -> bool:
        return any(f.skewed for f in self.features)

    @property
    def status(self) -> str:
        """``skewed``, ``ok``, or ``no data`` when serving logged no rows of the view in the window."""
        return "no data" if self.rows == 0 else "skewed" if self.skewed else "ok"

    def feature(self, name: str) -> FeatureSkew:
        for f in self.features:
            if f.feature == name:
                return f
        raise InvalidInput(f"The skew report of {self.view!r} has no feature {name!r}; it has "
                           f"{[f.feature for f in self.features]}.")

    def to_dict(self) -> dict[str, Any]:
        return {"view": self.view, "version": self.version, "status": self.status, "rows": self.rows,
                "max_mismatch_rate": self.max_mismatch_rate, "tolerance": self.tolerance,
                "skewed": self.skewed, "skewed_features": self.skewed_features,
                "served_status": self.served_status, "features": [f.to_dict() for f in self.features]}


def wasserstein_normed(a: np.ndarray, b: np.ndarray) -> float:
    """Exact W1 between served ``a`` and offline ``b``, over the std of ``b`` (the reference).

    The one statistics module computes it (:func:`yarnit.monitoring.distances.wasserstein_normed`).
    """
    return distances.wasserstein_normed(b, a)


def linf_shares(a: Sequence[Any], b: Sequence[Any]) -> float:
    """Largest difference in the share of any category (nulls are a category); nan when a side is empty."""
    return distances.l_infinity(distances.category_counts(b), distances.category_counts(a))[0]


def _same(served: np.ndarray, offline: np.ndarray, dtype: str, tolerance: float) -> np.ndarray:
    s_null = np.array([v is None for v in served]) if served.dtype == object else np.isnan(served)
    o_null = np.array([v is None for v in offline]) if offline.dtype == object else np.isnan(offline)
    both = s_null & o_null
    if dtype == "float64":
        s = np.where(s_null, 0.0, served).astype(float)
        o = np.where(o_null, 0.0, offline).astype(float)
        close = (np.abs(s - o) <= tolerance) | (np.isnan(s) & np.isnan(o))
    else:
        close = np.array([x == y for x, y in zip(served, offline, strict=True)], dtype=bool)
    return both | (~s_null & ~o_null & close)


def _values(column: pa.ChunkedArray, dtype: str) -> np.ndarray:
    if dtype == "float64":
        return np.array([np.nan if v is None else v for v in column.to_pylist()], dtype=float) if column.null_count \
            else column.to_numpy()
    return np.array(column.to_pylist(), dtype=object)


def skew_report(
    view: FeatureView,
    logged: pa.Table,
    offline: OfflineStore,
    *,
    features: Sequence[str] | None = None,
    max_mismatch_rate: float = 0.0,
    tolerance: float = 1e-9,
    examples: int = 5,
) -> SkewReport:
    """Compare logged serving rows of ``view`` with an offline point-in-time recomputation.

    A feature is ``skewed`` when its mismatch rate exceeds ``max_mismatch_rate``.
    """
    names = list(features) if features is not None else list(view.feature_names)
    for name in names:
        view.feature(name)
    if not 0 <= max_mismatch_rate < 1:
        raise InvalidInput(f"max_mismatch_rate must be in [0, 1), got {max_mismatch_rate!r}.")
    n = logged.num_rows
    status_counts = {s: int(c) for s, c in zip(*np.unique(np.array(logged.column(STATUS).to_pylist(), dtype=object),
                                                          return_counts=True), strict=True)} if n else {}
    if n == 0:
        empty = tuple(FeatureSkew(name, view.feature(name).dtype, 0, 0, 0, None, "", False) for name in names)
        return SkewReport(view.name, view.version, 0, max_mismatch_rate, tolerance, empty, {})
    entity = logged.select([*view.entity_names, REQUEST_TIME])
    joined = offline.point_in_time_join(entity, [(view, names)], timestamp_column=REQUEST_TIME, full_names=True)
    unavailable = np.array([s != "present" for s in logged.column(STATUS).to_pylist()])
    out = []
    for name in names:
        dtype = view.feature(name).dtype
        served = _values(logged.column(name), dtype)
        expected = _values(joined.column(f"{view.name}__{name}"), dtype)
        same = _same(served, expected, dtype, tolerance)
        mismatch = ~same
        o_present = np.array([v is not None for v in expected]) if expected.dtype == object else ~np.isnan(expected)
        s_present = np.array([v is not None for v in served]) if served.dtype == object else ~np.isnan(served)
        if dtype in ("float64", "int64"):
            a = served[s_present].astype(float)
            b = expected[o_present].astype(float)
            distance, kind = wasserstein_normed(a, b), "wasserstein_normed"
        else:
            distance, kind = linf_shares(list(served), list(expected)), "linf"
        bad = np.flatnonzero(mismatch)[:examples]
        shown = tuple(
            {"entity": [logged.column(k)[int(i)].as_py() for k in view.entity_names],
             "request_time": logged.column(REQUEST_TIME)[int(i)].as_py().isoformat(),
             "status": logged.column(STATUS)[int(i)].as_py(),
             "served": _plain(served[i]), "offline": _plain(expected[i])}
            for i in bad)
        count = int(mismatch.sum())
        out.append(FeatureSkew(
            feature=name, dtype=dtype, compared=n, mismatches=count,
            served_unavailable=int((unavailable & o_present).sum()),
            distance=None if distance != distance else float(distance), distance_kind=kind,
            skewed=count / n > max_mismatch_rate, examples=shown))
    return SkewReport(view.name, view.version, n, max_mismatch_rate, tolerance, tuple(out), status_counts)


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def log_rows_at(view: FeatureView, rows: Sequence[OnlineRow], when: datetime) -> pa.Table:
    """A serving-log table built directly from rows (for tests and offline replays)."""
    if when.tzinfo is None:
        raise NaiveTimestamp(f"Log time {when.isoformat()!r}")
    return _log_table(view, [(r, to_us(when)) for r in rows])


__all__ = [
    "EVENT_TIME",
    "REQUEST_TIME",
    "STATUS",
    "FeatureSkew",
    "ServingLog",
    "SkewReport",
    "linf_shares",
    "log_rows_at",
    "skew_report",
    "wasserstein_normed",
]
