"""Labels for the prediction log: files of ``(request_id, index, kind, value, event_time[, arrival_time])``.

:func:`ingest_labels` reads a JSON Lines, CSV or Parquet file row by row and
stores the labels of the models' kind for the next join, in one transaction
(a crash stores none of them; the file can simply be ingested again, and what
was stored already counts as ``duplicate``). A bad row never stops the file:
it is counted (``invalid``) and the first few reasons are kept for the
report. A ``shown`` row with value 0 marks a prediction that was never
shown, so no label is due for it. A label whose arrival or event time lies past the clock's now plus
``max_future_s`` is refused as clock-skewed (``future``).
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from yarnit.core.clock import Clock
from yarnit.core.errors import InvalidInput, NotFound

from .quality_store import (
    _REQUEST_ID,
    QualityConfig,
    QualityStore,
    config_for,
    quality_db_path,
)

_KIND = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
MAX_INDEX = 1_000_000
LABEL_FORMATS = ("jsonl", "ndjson", "csv", "parquet")
#: ``kind: shown, value: 0`` says a scored candidate was never shown (a ranker scores more than it shows): no
#: label will come, so the prediction leaves the completeness SLI and the estimates instead of waiting forever.
NOT_SHOWN_KIND = "shown"
NOT_SHOWN = -1  # its value in the labels table


@dataclass
class IngestReport:
    """What one :func:`ingest_labels` read."""

    file: str
    rows: int = 0
    stored: int = 0
    invalid: int = 0
    future: int = 0
    duplicate: int = 0
    ignored_kind: int = 0
    examples: list[str] = field(default_factory=list)  # the first few reasons a row was refused


def _epoch_s(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).timestamp()
    if hasattr(value, "to_pydatetime"):  # a pandas Timestamp
        return _epoch_s(value.to_pydatetime())
    if isinstance(value, date):
        return None
    if isinstance(value, str) and len(value) <= 40:
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()
    return None


def _label_row(row: Any, now_s: float) -> tuple[str, int, str, int, float, float] | str:
    """(request_id, index, kind, value, event_s, arrival_s), or why the row is refused."""
    if not isinstance(row, dict):
        return "a row is not an object"
    request_id = row.get("request_id")
    if not isinstance(request_id, str) or not _REQUEST_ID.match(request_id):
        return "request_id must be 1-64 characters of A-Z a-z 0-9 . _ : -"
    index = row.get("index")
    if isinstance(index, str) and index.isdigit() and len(index) <= 7:
        index = int(index)
    if isinstance(index, float) and index.is_integer():
        index = int(index)
    if not isinstance(index, (int, np.integer)) or isinstance(index, bool) or not 0 <= index < MAX_INDEX:
        return f"index must be an integer in [0, {MAX_INDEX})"
    kind = row.get("kind")
    if not isinstance(kind, str) or not _KIND.match(kind):
        return "kind must be a lowercase name such as click, purchase or fraud"
    value = row.get("value")
    if isinstance(value, str) and value in ("0", "1", "true", "false"):
        value = 1 if value in ("1", "true") else 0
    if isinstance(value, float) and value in (0.0, 1.0):
        value = int(value)
    if isinstance(value, (bool, np.bool_)):
        value = int(value)
    if not isinstance(value, (int, np.integer)) or value not in (0, 1):
        return "value must be 0 or 1"
    event_s = _epoch_s(row.get("event_time"))
    if event_s is None:
        return "event_time must be an ISO 8601 time"
    arrival = row.get("arrival_time")
    arrival_s = now_s if arrival is None or arrival == "" else _epoch_s(arrival)
    if arrival_s is None:
        return "arrival_time must be an ISO 8601 time (or absent: the time of ingestion)"
    return request_id, int(index), kind, int(value), event_s, arrival_s


def read_label_rows(path: str | Path) -> Iterator[Any]:
    """The rows of a label file (JSON Lines, CSV or Parquet), as dicts; a bad JSON line yields its error text.

    A Parquet timestamp column in UTC (or without a zone) comes as epoch seconds, the number :func:`_label_row`
    makes of its datetime (:func:`_epoch_column`); other columns as ``to_pylist`` gives them."""
    p = Path(path)
    suffix = p.suffix.lower().lstrip(".")
    if suffix not in LABEL_FORMATS:
        raise InvalidInput(f"Cannot read labels from {p.name!r}: the file name must end in one of "
                           f"{', '.join('.' + f for f in LABEL_FORMATS)} (columns request_id, index, kind, value, "
                           "event_time and optionally arrival_time).")
    if not p.is_file():
        raise NotFound(f"No label file {str(p)!r}.")
    if suffix == "parquet":
        import pyarrow.parquet as pq

        try:
            reader = pq.ParquetFile(p)
        except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
            raise InvalidInput(f"{p.name!r} is not a readable Parquet file: {str(exc)[:200]}") from None
        for batch in reader.iter_batches(batch_size=10_000):
            yield from _batch_rows(batch)
    elif suffix == "csv":
        with open(p, encoding="utf-8", errors="replace", newline="") as stream:
            try:
                yield from csv.DictReader(stream)
            except csv.Error as exc:  # e.g. a field over the csv module's limit: not a label file
                raise InvalidInput(f"{p.name!r} is not a readable CSV file of labels: {exc}.") from None
    else:
        with open(p, "rb") as stream:
            for line in stream:
                if not line.strip():
                    continue
                try:
                    yield orjson.loads(line)
                except orjson.JSONDecodeError:
                    yield "a line is not valid JSON"


#: microseconds per unit of the timestamp columns :func:`_epoch_column` converts
_US_PER_UNIT = {"s": 1_000_000, "ms": 1_000, "us": 1}
_EXACT_US = 1 << 53  # a float64 holds every whole number of microseconds below this (1685 to 2255)


def _epoch_column(column: Any) -> list[float | None] | None:
    """A UTC (or zone-less) timestamp column as the epoch seconds :func:`_epoch_s` makes of each value, or None
    when the column is anything else (its values then go through ``to_pylist`` and :func:`_epoch_s`).

    ``to_pylist`` makes a Python datetime per value and ``_epoch_s`` its ``timestamp()``: more than half of an
    hourly ingest. ``datetime.timestamp()`` is the whole microseconds since the epoch divided by 10**6 (CPython's
    ``timedelta.total_seconds``: an integer true division, correctly rounded), and below 2**53 microseconds
    numpy's float64 division of the same integer is the same correctly rounded number. Nanosecond columns are
    taken only when every value is whole microseconds (a datetime has none finer).
    """
    import pyarrow as pa

    kind = column.type
    if not pa.types.is_timestamp(kind) or kind.tz not in (None, "UTC") or len(column) == 0:
        return None
    raw = column.cast(pa.int64()).fill_null(0).to_numpy()
    if kind.unit == "ns":
        if (raw % 1_000).any():
            return None
        micros = raw // 1_000
    else:
        factor = _US_PER_UNIT[kind.unit]
        if (np.abs(raw) >= _EXACT_US // factor).any():
            return None
        micros = raw * factor
    if (np.abs(micros) >= _EXACT_US).any():
        return None
    seconds: list[float | None] = (micros / 1e6).tolist()
    if column.null_count:
        for i in np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False)):
            seconds[i] = None
    return seconds


def _batch_rows(batch: Any) -> Iterator[Any]:
    """The rows of a Parquet record batch as dicts, as ``batch.to_pylist()`` gives them, except that a timestamp
    column holds epoch seconds (:func:`_epoch_column`): :func:`_label_row` reads them as it reads the datetimes."""
    names = batch.schema.names
    if not names or len(set(names)) != len(names):
        yield from batch.to_pylist()
        return
    columns = []
    for column in batch.columns:
        seconds = _epoch_column(column)
        columns.append(seconds if seconds is not None else column.to_pylist())
    for values in zip(*columns, strict=True):
        yield dict(zip(names, values, strict=True))


def ingest_labels(workspace: Any, path: str | Path, *, clock: Clock | None = None,
                  config: QualityConfig | None = None) -> IngestReport:
    """Store the labels of ``path`` for the next :func:`update` to join (one transaction: all or nothing)."""
    from .workspace import load_workspace_slos

    clock = clock or workspace.clock
    config = config or config_for(load_workspace_slos(workspace.home))
    now_s = clock.now().timestamp()
    report = IngestReport(file=Path(path).name)
    store = QualityStore(quality_db_path(workspace.home), durable=True)
    try:
        with store.transaction() as conn:
            batch: list[tuple[Any, ...]] = []

            def flush() -> None:
                before = conn.total_changes
                conn.executemany("INSERT OR IGNORE INTO labels VALUES (?, ?, ?, ?, ?, ?)", batch)
                stored = conn.total_changes - before
                report.stored += stored
                report.duplicate += len(batch) - stored
                batch.clear()

            for row in read_label_rows(path):
                report.rows += 1
                parsed = _label_row(row, now_s) if not isinstance(row, str) else row
                if isinstance(parsed, str):
                    report.invalid += 1
                    if len(report.examples) < 5:
                        report.examples.append(f"row {report.rows}: {parsed}")
                    continue
                request_id, index, kind, value, event_s, arrival_s = parsed
                if kind == NOT_SHOWN_KIND and value == 0:
                    value = NOT_SHOWN  # the prediction was never shown: no label will come
                elif kind != config.kind:
                    report.ignored_kind += 1
                    continue
                if arrival_s > now_s + config.max_future_s or event_s > now_s + config.max_future_s:
                    report.future += 1
                else:
                    batch.append((request_id, index, value, event_s, arrival_s, now_s))
                    if len(batch) >= 10_000:
                        flush()
            flush()
            counters = store.counters()
            for name in ("invalid", "future", "duplicate", "ignored_kind"):
                counters[name] += getattr(report, name)
            store.set_meta("counters", counters)
    finally:
        store.close()
    return report


__all__ = ["LABEL_FORMATS", "NOT_SHOWN", "NOT_SHOWN_KIND", "IngestReport", "ingest_labels", "read_label_rows"]
