"""Materialization: copy the newest offline value of each entity into the online store.

* **incremental** (default): rows with event time after the online table's
  watermark and up to ``end``; each entity's value is replaced only by a value
  that is not older.
* **full**: every row up to ``end``; the online table is replaced.

Rows stream from DuckDB in Arrow batches of ``chunk_rows`` and are packed
chunk by chunk, so memory stays bounded whatever the size of the view. The
online write is all-or-nothing: if anything fails (the query, an encoding, the
store) the previous online values and watermark are left exactly as they were.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa

from yarnit.core.clock import Clock

from ._codec import EncodedChunk, ViewCodec
from .definitions import FeatureView, conform
from .errors import NaiveTimestamp
from .offline import OfflineStore
from .online import OnlineStore, WriteSummary, from_us, table_name, to_us

Progress = Callable[[int, int | None], None]


@dataclass(frozen=True)
class MaterializationResult:
    """What one materialization did."""

    view: str
    version: str
    mode: str
    window_start: datetime | None
    window_end: datetime
    rows_offered: int
    rows_written: int
    rows_total: int
    newest_event_time: datetime | None
    duration_s: float

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("window_start", "window_end", "newest_event_time"):
            value = out[key]
            out[key] = None if value is None else value.isoformat()
        return out


def _encoded(codec: ViewCodec, batches: Iterable[pa.RecordBatch], progress: Progress | None,
             total: int | None) -> Iterator[EncodedChunk]:
    done = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        chunk = codec.encode(batch)
        yield chunk
        done += len(chunk)
        if progress is not None:
            progress(done, total)


def write_online(view: FeatureView, store: OnlineStore, tables: Iterable[Any], *, clock: Clock, full: bool,
                 watermark: datetime | None = None) -> WriteSummary:
    """Write rows of ``view`` (DataFrames / Arrow tables, conformed here) straight into ``store``.

    For tests, repairs and streaming sources; the usual path is :func:`materialize`.
    """
    codec = ViewCodec(view)
    now_us = to_us(clock.now())
    mark = now_us if watermark is None else to_us(watermark)
    chunks = (codec.encode(conform(view, t)) for t in tables)
    return store.write(table_name(view), chunks, full=full, watermark_us=mark, now_us=now_us)


def materialize(
    view: FeatureView,
    offline: OfflineStore,
    online: OnlineStore,
    *,
    clock: Clock,
    full: bool = False,
    end: datetime | None = None,
    chunk_rows: int = 100_000,
    progress: Progress | None = None,
) -> MaterializationResult:
    """Bring the online table of ``view`` up to ``end`` (default: now by ``clock``).

    ``progress(rows_done, rows_total)`` is called after each chunk (the total
    is counted first only when a progress callback is given).
    """
    started = time.perf_counter()
    if end is None:
        end = clock.now()
    elif end.tzinfo is None:
        raise NaiveTimestamp(f"Materialization end {end.isoformat()!r}")
    end_us = to_us(end)
    table = table_name(view)
    state = online.state(table)
    after_us = None if full or state is None else state.watermark_us
    mode = "full" if after_us is None else "incremental"
    codec = ViewCodec(view)
    # Days rewritten offline since the last run (late rows, backfills) are read again in full.
    changed, seq = offline.changed_since(view, None if state is None else state.source_seq)
    if after_us is not None and after_us >= end_us and not changed:
        summary = WriteSummary(0, 0, state.rows if state else 0, state.newest_event_us if state else None, after_us)
    else:
        window_after = None if after_us is None else min(after_us, end_us)
        total = (offline.count_latest(view, after_us=window_after, until_us=end_us, changed=changed)
                 if progress is not None else None)
        if progress is not None:
            progress(0, total)
        with offline.latest(view, after_us=window_after, until_us=end_us, batch_rows=chunk_rows,
                            changed=changed) as reader:
            summary = online.write(table, _encoded(codec, reader, progress, total), full=after_us is None,
                                   watermark_us=end_us, now_us=to_us(clock.now()), source_seq=seq)
    return MaterializationResult(
        view=view.name,
        version=view.version,
        mode=mode,
        window_start=None if after_us is None else from_us(after_us),
        window_end=end,
        rows_offered=summary.rows_offered,
        rows_written=summary.rows_written,
        rows_total=summary.rows_total,
        newest_event_time=None if summary.newest_event_us is None else from_us(summary.newest_event_us),
        duration_s=time.perf_counter() - started,
    )


__all__ = ["MaterializationResult", "materialize", "write_online"]
