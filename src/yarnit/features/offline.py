"""The offline store: feature rows as Parquet (one file per view version and UTC day), queried with DuckDB.

* :meth:`OfflineStore.write` replaces whole days atomically, so re-running a
  backfill for a day is idempotent and a reader sees the old day or the new one.
  (entity, event time) is unique within a view version: a later row in the
  same write wins, so the offline and online paths can never pick different
  duplicates.
* :meth:`OfflineStore.point_in_time_join` builds training sets: for every
  entity row, the newest value stamped at or before the row's timestamp, and
  null when there is none or it is older than the view's TTL. Every entity row
  comes back, in the order given. A view that fits the memory budget is joined
  in memory (a sort and a vectorised binary search per entity, in numpy); a
  larger one by a DuckDB ``ASOF LEFT JOIN``, which can spill to disk.
* :meth:`OfflineStore.latest` streams the newest row per entity in a time
  window, the input of materialization.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import re
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
    ARROW_TYPES,
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
    """Feature rows in Parquet under ``root/<view>/<version>/date=YYYY-MM-DD.parquet``.

    Args:
        root: the directory of the day files.
        memory_limit: DuckDB's memory limit (it spills to ``root/.duckdb`` beyond it).
        threads: DuckDB's threads (default: one per core).
        in_memory_join_limit: the largest estimated footprint of a point-in-time join done in memory
            with numpy (default: ``memory_limit``); a join over more data is left to DuckDB.
    """

    def __init__(self, root: str | Path, *, memory_limit: str = "512MB", threads: int | None = None,
                 in_memory_join_limit: str | None = None) -> None:
        self.root = Path(root)
        self.memory_limit = memory_limit
        self.threads = threads
        self.in_memory_join_limit = in_memory_join_limit

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
        """A number that grows with every write to ``view`` (0 before the first; each write counts twice)."""
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
        parts = [(_utc_day(int(sorted_days[part[0]]) * 86_400_000_000), order[part])
                 for part in (np.split(np.arange(len(order)), bounds) if len(order) else [])]
        written = [day for day, _ in parts]
        doomed: list[date] = []
        if replace_range is not None:
            start, end = replace_range
            day = start.astimezone(timezone.utc).date()
            last = (end - ONE_US).astimezone(timezone.utc).date()
            while day <= last:
                whole = _day_start_us(day) >= to_us(start) and _day_start_us(day + timedelta(days=1)) <= to_us(end)
                if whole and day not in written and self._file(view, day).exists():
                    doomed.append(day)
                day += timedelta(days=1)
        # Mark the days changed before touching them, and again after: a writer killed in between leaves its
        # days marked, so an incremental materialization still reads what it managed to publish (with one
        # mark after the files only, a day file published just before a kill was never materialized).
        self._mark_changed(view, [*written, *doomed])
        for day, indices in parts:
            _write_parquet(self._file(view, day), table.take(pa.array(indices)))
        removed: list[date] = []
        for day in doomed:
            self._file(view, day).unlink(missing_ok=True)
            removed.append(day)
        self._mark_changed(view, [*written, *removed])
        return OfflineWrite(view.name, view.version, tuple(written), table.num_rows, tuple(removed))

    def _mark_changed(self, view: FeatureView, days: Sequence[date]) -> None:
        """Record one more write to ``view`` that changed ``days`` (the manifest's sequence number)."""
        manifest = self._read_manifest(view)
        manifest["seq"] = int(manifest["seq"]) + 1
        for d in days:
            manifest["days"][d.isoformat()] = manifest["seq"]
        atomic_write_bytes(self._manifest_path(view), json.dumps(manifest, sort_keys=True).encode())

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
        # Name every output column before reading any data, so that a clash fails fast.
        out_names = set(table.column_names)
        plan: list[tuple[FeatureView, list[str], list[str]]] = []
        for view, names in requests:
            for name in names:
                view.feature(name)
            plan.append((view, list(names), [_out_name(view, name, full_names, out_names) for name in names]))
        ts_us = ts.cast(pa.int64()).to_numpy()
        result = table
        for view, names, outs in plan:
            if not names:
                continue
            found = self._join_view(view, names, [columns[k] for k in view.entity_names], ts_us)
            for out, column in zip(outs, found.columns, strict=True):
                result = result.append_column(out, column)
        return result

    def _join_view(self, view: FeatureView, names: list[str], keys: list[Any], ts_us: np.ndarray) -> pa.Table:
        """The features ``names`` of ``view`` as of each entity row, in entity-row order (null where none).

        A view whose rows fit in the store's memory budget is joined in memory
        (:func:`_asof_in_memory`); a larger one by DuckDB, which can spill to disk.
        """
        paths = self.files(view)
        columns = [*view.entity_names, view.timestamp, *names]
        with contextlib.ExitStack() as stack:
            files = [stack.enter_context(pq.ParquetFile(path)) for path in paths]
            view_rows = sum(f.metadata.num_rows for f in files)
            if not view_rows:
                return pa.table({name: pa.nulls(len(ts_us), ARROW_TYPES[view.feature(name).dtype]) for name in names})
            view_bytes = sum(_column_bytes(f.metadata, columns) for f in files)
            if self.in_memory_join_limit is None:
                limit = _parse_bytes(self.memory_limit, "memory_limit")
            else:
                limit = _parse_bytes(self.in_memory_join_limit, "in_memory_join_limit")
            if _in_memory_bytes(view_bytes, view_rows, len(ts_us)) <= limit:
                data = pa.concat_tables([f.read(columns=columns) for f in files])
                return _asof_in_memory(view, names, data, keys, ts_us)
        return self._asof_duckdb(view, names, paths, keys, ts_us)

    def _asof_duckdb(self, view: FeatureView, names: list[str], paths: Sequence[Path], keys: list[Any],
                     ts_us: np.ndarray) -> pa.Table:
        """:meth:`_join_view` with a DuckDB ``ASOF LEFT JOIN`` (bounded memory, spills to ``root/.duckdb``)."""
        quoted = [_q(k) for k in view.entity_names]
        inner = ", ".join([*quoted, f"epoch_us({_q(view.timestamp)}) AS {_TS}", *(_q(n) for n in names)])
        on = " AND ".join([f"e.{k} = f.{k}" for k in quoted] + [f"e.{_TS} >= f.{_TS}"])
        selects = []
        for name in names:
            value = f"f.{_q(name)}"
            if view.ttl_us is not None:
                value = f"CASE WHEN e.{_TS} - f.{_TS} <= {view.ttl_us} THEN {value} END"
            selects.append(f"{value} AS {_q(name)}")
        n = len(ts_us)
        # DuckDB returns only the row number and the features; the caller puts them beside the entity rows.
        entity = pa.table({_ROW: pa.array(np.arange(n, dtype=np.int64)), _TS: pa.array(ts_us),
                           **dict(zip(view.entity_names, keys, strict=True))})
        sql = (f"SELECT e.{_ROW}, {', '.join(selects)} FROM entity_rows e "
               f"ASOF LEFT JOIN (SELECT {inner} FROM {self._scan(view, paths)}) f ON {on}")
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
        return found


def _out_name(view: FeatureView, name: str, full_names: bool, taken: set[str]) -> str:
    out = f"{view.name}__{name}" if full_names else name
    if out in taken:
        raise InvalidInput(
            f"Output column {out!r} (feature {name!r} of view {view.name!r}) clashes with another column of the "
            "result. Pass full_names=True to name features 'view__feature', or rename the entity column."
        )
    taken.add(out)
    return out


def _asof_in_memory(view: FeatureView, names: list[str], data: pa.Table, keys: list[Any],
                    ts_us: np.ndarray) -> pa.Table:
    """The as-of join of :meth:`OfflineStore._join_view` over the view's rows held in memory.

    The feature rows are sorted by (entity, event time), so each entity's rows
    form one contiguous group whose times ascend. Each entity row then finds
    its group by the entity's dense code and binary-searches the group for the
    last time at or before its own: all entity rows at once, in numpy, with as
    many passes as the largest group needs (log2 of its size). Probing one small
    group instead of the whole sorted table stays within a few cache lines, about
    twice as fast as ``np.searchsorted`` over a combined (entity, time) key.
    The passes reuse their work arrays: in a VM, touching fresh memory for the
    first time costs more than the arithmetic.
    """
    view_codes, entity_codes, n_codes = _key_codes([data.column(k) for k in view.entity_names], keys)
    times = data.column(view.timestamp).cast(pa.int64()).to_numpy()
    first = int(times.min())
    span = int(times.max()) - first + 1
    if n_codes * span < 2**62:  # (code, time) packed into one int64: a single sort, fast on presorted runs
        packed = view_codes.astype(np.int64)
        packed *= span
        packed += times
        packed -= first
        order = np.argsort(packed, kind="stable")
        del packed
    else:
        order = np.lexsort((times, view_codes))
    n_rows = len(order)
    # The sorted times, plus a sentinel so that probing the empty group at the end stays in bounds.
    sorted_times = np.empty(n_rows + 1, dtype=np.int64)
    np.take(times, order, out=sorted_times[:n_rows])
    sorted_times[n_rows] = np.iinfo(np.int64).max
    # Group c holds sorted rows [starts[c], starts[c + 1]); entities without feature rows get the
    # extra, empty group n_codes.
    starts = np.zeros(n_codes + 2, dtype=np.int64)
    np.cumsum(np.bincount(view_codes, minlength=n_codes + 1), out=starts[1:])
    code = entity_codes
    code[code < 0] = n_codes
    group_start = starts[code]
    code += 1
    length = starts[code]
    length -= group_start
    base = group_start.copy()
    # Branch-free binary search for the first row stamped after the entity row: it stays within
    # [base, base + length]. A row whose length is already 0 or 1 keeps its base (half is 0), so
    # every row can run every pass.
    half, probe, probed = code, np.empty_like(base), np.empty_like(base)
    at_or_before = np.empty(len(base), dtype=bool)
    for _ in range(max(int(length.max(initial=0)) - 1, 0).bit_length()):
        np.right_shift(length, 1, out=half)
        np.add(base, half, out=probe)
        np.take(sorted_times, probe, out=probed)
        np.less_equal(probed, ts_us, out=at_or_before)
        np.copyto(base, probe, where=at_or_before)
        length -= half
    np.take(sorted_times, base, out=probed)
    np.less_equal(probed, ts_us, out=at_or_before)
    at_or_before &= length > 0
    base += at_or_before  # now the first position stamped after the row; the match is just before it
    matched = base > group_start
    base -= 1
    if view.ttl_us is not None:
        np.take(sorted_times, base, out=probed)
        np.subtract(ts_us, probed, out=probed)
        matched &= probed <= view.ttl_us
    base[~matched] = 0
    rows = pa.array(np.take(order, base, out=probe))
    # Gather with plain indices (an Arrow take with null indices is several times slower), then mark
    # the unmatched rows null through the validity bitmap.
    found = pa.array(matched).buffers()[1]
    return pa.table({name: _mask(data.column(name).take(rows), found) for name in names})


def _mask(column: pa.ChunkedArray, valid: pa.Buffer) -> pa.Array:
    """``column`` as one flat array with the rows whose bit is clear in ``valid`` made null."""
    array = column.combine_chunks()
    own = array.buffers()[0]
    if own is not None:
        size = (len(array) + 7) // 8
        valid = pa.py_buffer(np.frombuffer(own, np.uint8, size) & np.frombuffer(valid, np.uint8, size))
    return pa.Array.from_buffers(array.type, len(array), [valid, *array.buffers()[1:]])


def _key_codes(view_keys: Sequence[pa.ChunkedArray], entity_keys: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, int]:
    """Dense codes of the feature rows' entities, the same codes for the entity rows, and the number of codes.

    An entity row whose key has no feature rows (or is null) gets -1.

    A composite key is coded one column at a time: the pair (codes so far,
    codes of the next column) is coded again, so the numbers stay below the row count.
    """
    view_codes, entity_codes, count = _column_codes(view_keys[0], entity_keys[0])
    for view_column, entity_column in zip(view_keys[1:], entity_keys[1:], strict=True):
        column_codes, column_entity, width = _column_codes(view_column, entity_column)
        view_pairs = view_codes * width + column_codes
        entity_pairs = np.where((entity_codes >= 0) & (column_entity >= 0), entity_codes * width + column_entity, -1)
        view_codes, entity_codes, count = _column_codes(pa.array(view_pairs), pa.array(entity_pairs))
    return view_codes, entity_codes, count


def _column_codes(view_column: Any, entity_column: Any) -> tuple[np.ndarray, np.ndarray, int]:
    """:func:`_key_codes` of one key column (never null in the view; nulls among entity rows get -1)."""
    if pa.types.is_integer(view_column.type):
        values = np.asarray(view_column.to_numpy(), dtype=np.int64)
        low, high = int(values.min()), int(values.max())
        if high - low < 2 * len(values):
            # Dense integers, as ids usually are: the offset from the smallest is the code, no hashing.
            raw = np.asarray(entity_column.fill_null(low).to_numpy(), dtype=np.int64)
            entity = raw - low
            entity[(raw < low) | (raw > high)] = -1
            if entity_column.null_count:
                entity[np.asarray(entity_column.is_null().to_numpy(), dtype=bool)] = -1
            return values - low, entity, high - low + 1
    encoded = pc.dictionary_encode(view_column.combine_chunks() if isinstance(view_column, pa.ChunkedArray)
                                   else view_column)
    found = pc.index_in(entity_column, value_set=encoded.dictionary).fill_null(-1)
    return (encoded.indices.to_numpy().astype(np.int64), found.to_numpy().astype(np.int64),
            len(encoded.dictionary))


def _column_bytes(metadata: pq.FileMetaData, columns: Sequence[str]) -> int:
    """The uncompressed size of ``columns`` in a Parquet file (about their size in memory)."""
    wanted = set(columns)
    total = 0
    for g in range(metadata.num_row_groups):
        group = metadata.row_group(g)
        for c in range(group.num_columns):
            chunk = group.column(c)
            if chunk.path_in_schema in wanted:
                total += chunk.total_uncompressed_size
    return total


def _in_memory_bytes(view_bytes: int, view_rows: int, entity_rows: int) -> int:
    """Peak memory of an in-memory join, roughly: the view's columns, the gathered output and the work arrays."""
    return view_bytes + view_bytes * entity_rows // view_rows + 48 * (view_rows + entity_rows)


_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
          "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}


def _parse_bytes(size: str, what: str) -> int:
    """Bytes in a DuckDB-style size such as ``'512MB'`` or ``'1GiB'``."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(size))
    if match is None or match.group(2).lower() not in _UNITS:
        raise InvalidInput(f"{what} {size!r} is not a size; use a number and a unit such as '512MB' or '2GiB'.")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


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
    # LZ4 with plain-encoded numbers and times: a point-in-time join reads every row of a view, and
    # these files read about 4x faster than zstd with dictionaries (1M rows x 12 columns: ~70 ms
    # against ~300 ms), write ~4x faster, and were even smaller on random floats (89 MB against
    # 104 MB; dictionaries of unique floats only cost space). Strings keep dictionaries: their
    # values repeat.
    strings = [f.name for f in table.schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="lz4", use_dictionary=strings, write_statistics=True)
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
