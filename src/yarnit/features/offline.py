"""The offline store: feature rows as Parquet (one file per view version and UTC day), queried with DuckDB.

* :meth:`OfflineStore.write` replaces whole days atomically, so re-running a
  backfill for a day is idempotent and a reader sees the old day or the new one.
  (entity, event time) is unique within a view version: a later row in the
  same write wins, so the offline and online paths can never pick different
  duplicates.
* :meth:`OfflineStore.point_in_time_join` builds training sets with DuckDB
  ``ASOF LEFT JOIN``: for every entity row, the newest value stamped at or
  before the row's timestamp, and null when there is none or it is older than
  the view's TTL. Every entity row comes back, in the order given.
* :meth:`OfflineStore.latest` streams the newest row per entity in a time
  window, the input of materialization.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from yarnit.core.atomic import atomic_write_bytes
from yarnit.core.errors import InvalidInput

from .definitions import (
    EVENT_TIME_TYPE,
    FeatureView,
    SourceData,
    cast_event_time,
    cast_key_column,
    conform,
)
from .errors import EntityKeyError, NaiveTimestamp
from .online import EPOCH, ONE_US, to_us

_DUCK_TYPES = {"int64": "BIGINT", "float64": "DOUBLE", "bool": "BOOLEAN", "string": "VARCHAR"}
_ROW = "__yarnit_row"
_TS = "__yarnit_ts"


def _q(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _lit(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def duckdb_connection(*, memory_limit: str = "1GB", threads: int | None = None, temp_dir: Path | None = None) -> Any:
    """A fresh in-memory DuckDB connection with UTC time and bounded memory."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    con.execute("SET enable_progress_bar=false")
    con.execute(f"SET memory_limit='{memory_limit}'")
    if threads is not None:
        con.execute(f"SET threads={int(threads)}")
    if temp_dir is not None:
        temp_dir.mkdir(parents=True, exist_ok=True)
        con.execute(f"SET temp_directory={_lit(temp_dir)}")
    return con


@dataclass(frozen=True)
class OfflineWrite:
    """What one offline write did: the days replaced (or removed) and the rows written."""

    view: str
    version: str
    days: tuple[date, ...]
    rows: int
    removed_days: tuple[date, ...] = ()


@dataclass(frozen=True)
class OfflineStats:
    view: str
    version: str
    rows: int
    days: int
    first_event_time: datetime | None
    newest_event_time: datetime | None


def _utc_day(us: int) -> date:
    return (EPOCH + timedelta(microseconds=us)).date()


def _day_start_us(day: date) -> int:
    return to_us(datetime(day.year, day.month, day.day, tzinfo=timezone.utc))


class OfflineStore:
    """Feature rows in Parquet under ``root/<view>/<version>/date=YYYY-MM-DD.parquet``."""

    def __init__(self, root: str | Path, *, memory_limit: str = "512MB", threads: int | None = None) -> None:
        self.root = Path(root)
        self.memory_limit = memory_limit
        self.threads = threads

    def connect(self) -> Any:
        return duckdb_connection(memory_limit=self.memory_limit, threads=self.threads, temp_dir=self.root / ".duckdb")

    def directory(self, view: FeatureView) -> Path:
        return self.root / view.name / view.version

    def _file(self, view: FeatureView, day: date) -> Path:
        return self.directory(view) / f"date={day.isoformat()}.parquet"

    # --- the write sequence ----------------------------------------------------------------------
    # Every write bumps a per-view-version sequence number and records it for the days it touched
    # (``_manifest.json``). Incremental materialization re-reads the days changed since the
    # sequence it last saw, so late rows and backfills of past days reach the online store too.
    def _manifest_path(self, view: FeatureView) -> Path:
        return self.directory(view) / "_manifest.json"

    def _read_manifest(self, view: FeatureView) -> dict[str, Any]:
        path = self._manifest_path(view)
        if not path.exists():
            return {"seq": 0, "days": {}}
        return dict(json.loads(path.read_text()))

    @contextlib.contextmanager
    def _locked(self, view: FeatureView) -> Iterator[None]:
        directory = self.directory(view)
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / ".lock", "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def sequence(self, view: FeatureView) -> int:
        """The number of writes made to ``view`` so far (0 before the first)."""
        return int(self._read_manifest(view)["seq"])

    def changed_since(self, view: FeatureView, seq: int | None) -> tuple[list[Path], int]:
        """Day files written after write number ``seq`` (all when None), and the current number."""
        manifest = self._read_manifest(view)
        days = sorted(d for d, n in manifest["days"].items() if seq is None or n > seq)
        files = [self._file(view, date.fromisoformat(d)) for d in days]
        return [f for f in files if f.exists()], int(manifest["seq"])

    # --- writing -------------------------------------------------------------------------------
    def write(self, view: FeatureView, data: SourceData | pa.Table, *,
              replace_range: tuple[datetime, datetime] | None = None) -> OfflineWrite:
        """Store rows of ``view``, replacing every UTC day they touch.

        With ``replace_range=(start, end)`` the rows must lie in ``[start, end)``
        and every whole day of that range is replaced — a day without rows is
        removed, so the range ends up holding exactly ``data``.
        """
        table = conform(view, data)
        ts_name = view.timestamp
        if replace_range is not None:
            start, end = (_aware(t, "replace_range") for t in replace_range)
            if not start < end:
                raise InvalidInput(f"replace_range start {start.isoformat()} must be before end {end.isoformat()}.")
            ts = table.column(ts_name)
            outside = pc.sum(pc.or_(pc.less(ts, pa.scalar(start, EVENT_TIME_TYPE)),
                                    pc.greater_equal(ts, pa.scalar(end, EVENT_TIME_TYPE)))).as_py() or 0
            if outside:
                raise InvalidInput(
                    f"{outside} rows of view {view.name!r} lie outside replace_range "
                    f"[{start.isoformat()}, {end.isoformat()}); filter them or widen the range."
                )
        table = _dedupe(table, [*view.entity_names, ts_name])
        with self._locked(view):
            return self._write_days(view, table, replace_range)

    def _write_days(self, view: FeatureView, table: pa.Table,
                    replace_range: tuple[datetime, datetime] | None) -> OfflineWrite:
        ts_name = view.timestamp
        us = table.column(ts_name).cast(pa.int64()).to_numpy(zero_copy_only=False)
        day_index = us // 86_400_000_000
        order = np.argsort(day_index, kind="stable")
        sorted_days = day_index[order]
        bounds = np.flatnonzero(np.diff(sorted_days)) + 1
        directory = self.directory(view)
        directory.mkdir(parents=True, exist_ok=True)
        written: list[date] = []
        for part in np.split(np.arange(len(order)), bounds) if len(order) else []:
            indices = order[part]
            day = _utc_day(int(sorted_days[part[0]]) * 86_400_000_000)
            _write_parquet(self._file(view, day), table.take(pa.array(indices)))
            written.append(day)
        removed: list[date] = []
        if replace_range is not None:
            start, end = replace_range
            day = start.astimezone(timezone.utc).date()
            last = (end - ONE_US).astimezone(timezone.utc).date()
            while day <= last:
                whole = _day_start_us(day) >= to_us(start) and _day_start_us(day + timedelta(days=1)) <= to_us(end)
                path = self._file(view, day)
                if whole and day not in written and path.exists():
                    path.unlink()
                    removed.append(day)
                day += timedelta(days=1)
        manifest = self._read_manifest(view)
        manifest["seq"] = int(manifest["seq"]) + 1
        for d in (*written, *removed):
            manifest["days"][d.isoformat()] = manifest["seq"]
        atomic_write_bytes(self._manifest_path(view), json.dumps(manifest, sort_keys=True).encode())
        return OfflineWrite(view.name, view.version, tuple(written), table.num_rows, tuple(removed))

    def erase(self, view: FeatureView, column: str, value: Any) -> int:
        """Rewrite every day file of ``view`` without the rows whose ``column`` equals ``value``.

        Used by deletion requests (``yarnit data forget``). Each rewritten day is atomic and recorded
        in the write sequence. Returns the number of rows removed.
        """
        import pyarrow.compute as pc

        removed = 0
        changed: list[str] = []
        with self._locked(view):
            for path in self.files(view):
                table = pq.read_table(path)
                if column not in table.column_names:
                    continue
                keep = pc.invert(pc.fill_null(pc.equal(table.column(column), pa.scalar(value)), False))
                kept = table.filter(keep)
                if kept.num_rows == table.num_rows:
                    continue
                removed += table.num_rows - kept.num_rows
                if kept.num_rows:
                    _write_parquet(path, kept)
                else:
                    path.unlink()
                changed.append(path.name[5:15])
            if changed:
                manifest = self._read_manifest(view)
                manifest["seq"] = int(manifest["seq"]) + 1
                for day in changed:
                    manifest["days"][day] = manifest["seq"]
                atomic_write_bytes(self._manifest_path(view), json.dumps(manifest, sort_keys=True).encode())
        return removed

    # --- reading -------------------------------------------------------------------------------
    def files(self, view: FeatureView, *, after_us: int | None = None, until_us: int | None = None) -> list[Path]:
        """The day files of ``view`` that can hold event times in ``(after_us, until_us]``."""
        directory = self.directory(view)
        if not directory.is_dir():
            return []
        first = None if after_us is None else _utc_day(after_us)
        last = None if until_us is None else _utc_day(until_us)
        out = []
        for path in sorted(directory.glob("date=*.parquet")):
            day = date.fromisoformat(path.name[5:15])
            if (first is None or day >= first) and (last is None or day <= last):
                out.append(path)
        return out

    def _scan(self, view: FeatureView, files: Sequence[Path]) -> str:
        if not files:
            cols = [f"CAST(NULL AS {_DUCK_TYPES[f.dtype]}) AS {_q(f.name)}" for f in view.entities]
            cols.append(f"CAST(NULL AS TIMESTAMPTZ) AS {_q(view.timestamp)}")
            cols += [f"CAST(NULL AS {_DUCK_TYPES[f.dtype]}) AS {_q(f.name)}" for f in view.features]
            return f"(SELECT {', '.join(cols)} WHERE false)"
        return f"read_parquet([{', '.join(_lit(p) for p in files)}])"

    def read(self, view: FeatureView, *, start: datetime | None = None, end: datetime | None = None) -> pa.Table:
        """Rows of ``view`` with event time in ``[start, end)`` (all rows by default), ordered by time."""
        after = None if start is None else to_us(_aware(start, "start")) - 1
        until = None if end is None else to_us(_aware(end, "end")) - 1
        where = []
        if after is not None:
            where.append(f"epoch_us({_q(view.timestamp)}) > {after}")
        if until is not None:
            where.append(f"epoch_us({_q(view.timestamp)}) <= {until}")
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        con = self.connect()
        try:
            sql = (f"SELECT * FROM {self._scan(view, self.files(view, after_us=after, until_us=until))} {clause} "
                   f"ORDER BY {_q(view.timestamp)}, {', '.join(_q(n) for n in view.entity_names)}")
            return conform(view, con.sql(sql).to_arrow_table())
        finally:
            con.close()

    def stats(self, view: FeatureView) -> OfflineStats:
        files = self.files(view)
        if not files:
            return OfflineStats(view.name, view.version, 0, 0, None, None)
        con = self.connect()
        try:
            rows, first, newest = con.execute(
                f"SELECT count(*), min({_q(view.timestamp)}), max({_q(view.timestamp)}) FROM {self._scan(view, files)}"
            ).fetchone()
        finally:
            con.close()
        return OfflineStats(view.name, view.version, int(rows), len(files), first, newest)

    def _latest_source(self, view: FeatureView, after_us: int | None, until_us: int,
                       changed: Sequence[Path] | None) -> str:
        """Rows with event time in ``(after_us, until_us]``, plus every row up to ``until_us`` of ``changed`` files."""
        ts = _q(view.timestamp)
        columns = ", ".join(_q(c) for c in [*view.entity_names, view.timestamp, *view.feature_names])
        upto = f"epoch_us({ts}) <= {int(until_us)}"
        window = upto if after_us is None else f"{upto} AND epoch_us({ts}) > {int(after_us)}"
        parts = [f"SELECT {columns} FROM {self._scan(view, self.files(view, after_us=after_us, until_us=until_us))} "
                 f"WHERE {window}"]
        if after_us is not None and changed:
            parts.append(f"SELECT {columns} FROM {self._scan(view, changed)} WHERE {upto}")
        return " UNION ALL ".join(parts)

    @contextlib.contextmanager
    def latest(self, view: FeatureView, *, after_us: int | None, until_us: int, batch_rows: int = 100_000,
               changed: Sequence[Path] | None = None) -> Iterator[pa.RecordBatchReader]:
        """Stream the newest row per entity, ordered by key.

        Rows considered: event time in ``(after_us, until_us]``, plus every row
        up to ``until_us`` in the ``changed`` day files (late or backfilled rows).
        """
        keys = ", ".join(_q(n) for n in view.entity_names)
        ts = _q(view.timestamp)
        sql = (f"SELECT * FROM ({self._latest_source(view, after_us, until_us, changed)}) "
               f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY {ts} DESC) = 1 ORDER BY {keys}")
        con = self.connect()
        try:
            yield con.sql(sql).to_arrow_reader(batch_rows)
        finally:
            con.close()

    def count_latest(self, view: FeatureView, *, after_us: int | None, until_us: int,
                     changed: Sequence[Path] | None = None) -> int:
        """How many entities :meth:`latest` will yield (for progress bars)."""
        keys = ", ".join(_q(n) for n in view.entity_names)
        con = self.connect()
        try:
            sql = (f"SELECT count(*) FROM (SELECT DISTINCT {keys} FROM "
                   f"({self._latest_source(view, after_us, until_us, changed)}))")
            return int(con.execute(sql).fetchone()[0])
        finally:
            con.close()

    # --- point-in-time joins -------------------------------------------------------------------
    def point_in_time_join(
        self,
        entity_rows: pd.DataFrame | pa.Table,
        requests: Sequence[tuple[FeatureView, Sequence[str]]],
        *,
        timestamp_column: str = "event_time",
        full_names: bool = False,
    ) -> pa.Table:
        """Every entity row with, per requested feature, the newest value stamped at or before its timestamp.

        A value stamped after the row's timestamp is never joined; a value older
        than the view's TTL (relative to the row's timestamp) is null. The
        result has the entity rows' columns followed by the features (named
        ``feature``, or ``view__feature`` with ``full_names=True``), one row per
        entity row in the order given.
        """
        table = _entity_table(entity_rows)
        if timestamp_column not in table.column_names:
            raise InvalidInput(
                f"Entity rows have no timestamp column {timestamp_column!r}; their columns are "
                f"{table.column_names}. Pass timestamp_column=... naming the column with each row's time."
            )
        ts = cast_event_time(table.column(timestamp_column), f"Entity timestamp column {timestamp_column!r}")
        if ts.null_count:
            raise InvalidInput(
                f"Entity timestamp column {timestamp_column!r} has {ts.null_count} null values; every entity row "
                "needs the time at which its features are wanted."
            )
        columns: dict[str, Any] = {name: table.column(name) for name in table.column_names}
        for view, _ in requests:
            for f in view.entities:
                if f.name not in columns:
                    raise EntityKeyError(
                        f"Entity rows lack key column {f.name!r} needed by feature view {view.name!r} "
                        f"(keys: {list(view.entity_names)}); their columns are {table.column_names}."
                    )
                columns[f.name] = cast_key_column(
                    table.column(f.name), f.dtype, f"Entity key column {f.name!r} (for view {view.name!r})")
        out_names = set(table.column_names)
        selects: list[str] = []
        joins: list[str] = []
        for i, (view, names) in enumerate(requests):
            for name in names:
                view.feature(name)
            alias = f"f{i}"
            files = self.files(view)
            if not files:
                for name in names:
                    out = _out_name(view, name, full_names, out_names)
                    dtype = _DUCK_TYPES[view.feature(name).dtype]
                    selects.append(f"CAST(NULL AS {dtype}) AS {_q(out)}")
                continue
            t_col = f"__t{i}"
            keys = [f"{_q(k)}" for k in view.entity_names]
            inner = ", ".join([*keys, f"epoch_us({_q(view.timestamp)}) AS {t_col}", *(_q(n) for n in names)])
            on = " AND ".join([f"e.{k} = {alias}.{k}" for k in keys] + [f"e.{_TS} >= {alias}.{t_col}"])
            joins.append(f"ASOF LEFT JOIN (SELECT {inner} FROM {self._scan(view, files)}) {alias} ON {on}")
            ttl = view.ttl_us
            for name in names:
                out = _out_name(view, name, full_names, out_names)
                value = f"{alias}.{_q(name)}"
                if ttl is not None:
                    value = f"CASE WHEN e.{_TS} - {alias}.{t_col} <= {ttl} THEN {value} END"
                selects.append(f"{value} AS {_q(out)}")
        n = table.num_rows
        # DuckDB returns only the row number and the features: the entity rows' own columns (keys,
        # timestamps, labels …) are already in order in ``table`` and are put back beside them.
        key_columns = {f.name for view, _ in requests for f in view.entities}
        entity = pa.table({_ROW: pa.array(np.arange(n, dtype=np.int64)), _TS: ts.cast(pa.int64()),
                           **{name: columns[name] for name in key_columns}})
        sql = f"SELECT {', '.join([f'e.{_ROW}', *selects])} FROM entity_rows e {' '.join(joins)}"
        con = self.connect()
        try:
            con.register("entity_rows", entity)
            found = con.sql(sql).to_arrow_table()
        finally:
            con.close()
        # Put the rows back in the order given: an O(n) scatter of row numbers and one Arrow take of
        # the feature columns, cheaper than an ORDER BY over every output column.
        rows = found.column(_ROW).to_numpy()
        if len(rows) != n:  # pragma: no cover - an ASOF LEFT JOIN yields exactly one row per entity row
            raise AssertionError(f"point-in-time join returned {len(rows)} rows for {n} entity rows")
        found = found.drop_columns([_ROW])
        if n >= 2 and not bool(np.all(rows[1:] > rows[:-1])):
            order = np.empty(n, dtype=np.int64)
            order[rows] = np.arange(n, dtype=np.int64)
            found = found.take(pa.array(order))
        result = table
        for name in found.column_names:
            result = result.append_column(name, found.column(name))
        return result


def _out_name(view: FeatureView, name: str, full_names: bool, taken: set[str]) -> str:
    out = f"{view.name}__{name}" if full_names else name
    if out in taken:
        raise InvalidInput(
            f"Output column {out!r} (feature {name!r} of view {view.name!r}) clashes with another column of the "
            "result. Pass full_names=True to name features 'view__feature', or rename the entity column."
        )
    taken.add(out)
    return out


def _entity_table(rows: pd.DataFrame | pa.Table) -> pa.Table:
    if isinstance(rows, pa.Table):
        return rows
    if isinstance(rows, pd.DataFrame):
        for name in rows.columns:
            if pd.api.types.is_datetime64_dtype(rows[name].dtype):
                raise NaiveTimestamp(f"Entity column {name!r}")
        return pa.Table.from_pandas(rows, preserve_index=False)
    raise InvalidInput(f"Entity rows must be a pandas DataFrame or a pyarrow Table, got {type(rows).__name__}.")


def _aware(when: datetime, what: str) -> datetime:
    if not isinstance(when, datetime):
        raise InvalidInput(f"{what} must be a datetime, got {type(when).__name__}.")
    if when.tzinfo is None:
        raise NaiveTimestamp(f"{what} {when.isoformat()!r}")
    return when


def _dedupe(table: pa.Table, keys: list[str]) -> pa.Table:
    """Keep the last row of each (entity, event time) group."""
    if table.num_rows < 2:
        return table
    indexed = table.select(keys).append_column("__i", pa.array(np.arange(table.num_rows, dtype=np.int64)))
    last = indexed.group_by(keys, use_threads=False).aggregate([("__i", "max")]).column("__i_max")
    if len(last) == table.num_rows:
        return table
    return table.take(pa.array(np.sort(last.to_numpy())))


def _write_parquet(path: Path, table: pa.Table) -> None:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd", write_statistics=True)
    atomic_write_bytes(path, sink.getvalue())


def backfill(
    view: FeatureView,
    sources: Mapping[str, SourceData],
    store: OfflineStore,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    progress: Callable[[int, int | None], None] | None = None,
) -> OfflineWrite:
    """Compute ``view`` over ``sources`` and store the rows with event time in ``[start, end)``.

    The whole range is replaced, day by day, so a backfill can be re-run; a
    new feature is backfilled over past data the same way (book CH7-R11).
    """
    table = view.compute(sources)
    ts = table.column(view.timestamp)
    if start is not None:
        table = table.filter(pc.greater_equal(ts, pa.scalar(_aware(start, "start"), EVENT_TIME_TYPE)))
        ts = table.column(view.timestamp)
    if end is not None:
        table = table.filter(pc.less(ts, pa.scalar(_aware(end, "end"), EVENT_TIME_TYPE)))
    if progress is not None:
        progress(0, table.num_rows)
    replace = None
    if start is not None and end is not None:
        replace = (start, end)
    result = store.write(view, table, replace_range=replace)
    if progress is not None:
        progress(table.num_rows, table.num_rows)
    return result


__all__ = ["OfflineStats", "OfflineStore", "OfflineWrite", "backfill", "duckdb_connection"]
