"""The lookback days of a written world, read and summarised once per process instead of once per day run.

Every ``yarnit-loop-day`` run compares its day with the ``lookback_days``
days before it: the quarantine's flood rule with their search sessions per
device, the data checks with their profiles. A day with late clicks is
re-joined every tick until its labels arrive, so the same seven days were
read from Parquet and profiled again dozens of times a month (in a 10-day
faulted demo month, 63 day runs spent ~30 of the loop's ~58 CPU-s on it).

A written day never changes once its log has closed; when it is rewritten
(``yarnit world generate`` over the same directory) its file gets a new inode,
size or mtime. So this module keeps, per process, each day's frame and the
summaries of it keyed by the partition file's ``(path, inode, size,
mtime_ns)``: a rewritten day is a new key and is read again. The summaries
are exactly what the old whole-lookback computation gave
(``tests/continuous/test_lookback.py`` compares them with it). When the
lookback days do not all have the same columns (a renamed column upstream),
:meth:`Lookback.frame` returns their concatenation as before and the callers
compute from it, unchanged.

Bounded: at most :data:`MAX_DAYS` days' frames and their summaries are kept
(least recently used first out).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

#: Day partitions (frames and summaries) kept per process: the lookback of 7 days, the day itself and its labels,
#: for the newest and a backfilled day.
MAX_DAYS = 24
_Key = tuple[str, int, int, int]
_DAYS: OrderedDict[_Key, dict[str, Any]] = OrderedDict()
_LOCK = threading.Lock()


def _key(world: str, table: str, day: date) -> _Key | None:
    path = Path(world) / table / f"day={day.isoformat()}" / "part-0.parquet"
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return (str(path.resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns)


def _entry(world: str, table: str, day: date) -> dict[str, Any] | None:
    from yarnit.world.writer import read_table

    key = _key(world, table, day)
    if key is None:
        return None
    with _LOCK:
        entry = _DAYS.get(key)
        if entry is not None:
            _DAYS.move_to_end(key)
            return entry
    entry = {"frame": read_table(world, table, [day]), "key": key}
    with _LOCK:
        _DAYS[key] = entry
        while len(_DAYS) > MAX_DAYS:
            _DAYS.popitem(last=False)
    return entry


def _memo(entry: dict[str, Any], name: Any, compute: Callable[[pd.DataFrame], Any]) -> Any:
    if name not in entry:
        entry[name] = compute(entry["frame"])
    return entry[name]


class Lookback:
    """The impressions of ``days`` of a written world (the days it holds), with per-day summaries kept."""

    def __init__(self, world: str, days: Sequence[date], table: str = "impressions") -> None:
        self.world, self.table = world, table
        self._entries = [(d, e) for d in sorted(days) if (e := _entry(world, table, d)) is not None]

    @property
    def keys(self) -> tuple[_Key, ...]:
        """What identifies the days read: each partition file's (path, inode, size, mtime_ns)."""
        return tuple(e["key"] for _d, e in self._entries)

    @property
    def empty(self) -> bool:
        return not any(len(e["frame"]) for _d, e in self._entries)

    @property
    def uniform(self) -> bool:
        """Every day has the same columns, in the same order, of the same types: then each day's frame is its part
        of the concatenation, value for value, and a summary of each day is that of its part."""
        shapes = {tuple(zip(e["frame"].columns, map(str, e["frame"].dtypes), strict=True)) for _d, e in self._entries}
        return len(shapes) <= 1

    @property
    def frame_columns(self) -> list[str]:
        """The columns of the first day (of every day when :attr:`uniform`)."""
        return list(self._entries[0][1]["frame"].columns) if self._entries else []

    def frame(self, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """The days concatenated, as ``read_table(world, table, days)`` gives them (optionally some columns)."""
        if not self._entries:
            return pd.DataFrame()
        whole = pd.concat([e["frame"] for _d, e in self._entries], ignore_index=True)
        return whole[list(columns)] if columns is not None else whole

    def per_day(self, name: Any, compute: Callable[[pd.DataFrame], Any]) -> list[tuple[date, Any]]:
        """``compute(frame)`` of each day, computed once per day and process under ``name``."""
        return [(d, _memo(e, name, compute)) for d, e in self._entries]


def clear() -> None:
    """Forget every kept day (tests; a process that rewrites worlds in place may call it too)."""
    with _LOCK:
        _DAYS.clear()


__all__ = ["MAX_DAYS", "Lookback", "clear"]
