"""Writing a simulated world to disk: Parquet partitioned by day, plus world.json and faults.json.

Layout of ``OUT``::

    world.json                                   config, ranker, days, row counts
    faults.json                                  every injected fault: name, start, end, params
    catalog/day=2026-01-05/part-0.parquet        (also users, sessions, impressions,
    ...                                           clicks, purchases, labels)
    truth/day=2026-01-05/part-0.parquet          ground truth per impression

The ``day`` column lives in the directory name (Hive partitioning), not in the
files, so ``pandas.read_parquet(OUT / "impressions")`` and DuckDB's
``read_parquet(..., hive_partitioning=true)`` both work; :func:`read_table`
returns it as dates. Each file declares in its Parquet metadata the column
that identifies the data subject (``yarnit.subject``: ``user_id``), or why
it has none (``yarnit.no_subject``), so ``yarnit data ingest`` of a world
file records a dataset that ``yarnit data forget`` can search. The same seed and config give byte-identical files: the
writer options are fixed and nothing records the real clock. The world is
written into a temporary directory beside ``OUT`` and renamed at the end, so an
error never leaves a partial ``OUT``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from yarnit import __version__
from yarnit.core.errors import InvalidInput, NotFound

from .config import WorldConfig
from .partition import DayPartition
from .world import World

FORMAT = "yarnit-world/1"
COLUMNS_KEY = b"yarnit.world.columns"
# Read by yarnit.data.versions.declared_subject (the keys are spelled out so the world imports no platform code).
SUBJECT_KEY, NO_SUBJECT_KEY = b"yarnit.subject", b"yarnit.no_subject"
NO_SUBJECT = {
    "catalog": "product catalog: no personal data",
    "labels": "keyed by impression_id and purchase_id; the shopper is in the impressions and purchases tables",
}
PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 3,
    "use_dictionary": True,
    "write_statistics": True,
    "version": "2.6",
}


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True) + "\n"


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InvalidInput(
            f"--out {str(out)!r} already exists and is not an empty directory. Choose a new path, or remove it "
            "first: the world never writes over existing data."
        )


def write_partition(root: Path, partition: DayPartition) -> dict[str, int]:
    """Write one day's eight tables under ``root``; return their row counts."""
    counts = {}
    for name, frame in partition.tables().items():
        directory = root / name / f"day={partition.day.isoformat()}"
        directory.mkdir(parents=True)
        table = pa.Table.from_pandas(frame.drop(columns=["day"], errors="ignore"), preserve_index=False)
        # the day lives in the path; the metadata keeps the frame's column order to restore it
        metadata = {COLUMNS_KEY: json.dumps(list(frame.columns)).encode()}
        if "user_id" in frame.columns:
            metadata[SUBJECT_KEY] = b"user_id"
        else:
            metadata[NO_SUBJECT_KEY] = NO_SUBJECT.get(name, "no column identifies a shopper").encode()
        pq.write_table(table.replace_schema_metadata(metadata), directory / "part-0.parquet", **PARQUET_OPTIONS)
        counts[name] = len(frame)
    return counts


def write_world(out: str | Path, config: WorldConfig, days: int, *, ranker: object | None = None,
                on_day: Callable[[DayPartition], None] | None = None) -> dict[str, Any]:
    """Simulate ``days`` days and write them to ``out`` (which must not exist, or be empty).

    Returns a summary: output path, days, ranker, row counts per table, faults.
    """
    target = Path(out).absolute()
    config.check_horizon(days)
    _check_out(target)
    world = World(config, ranker=ranker)
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir()
    totals: dict[str, int] = dict.fromkeys(DayPartition.TABLES, 0)

    def written(partition: DayPartition, pending: Future[dict[str, int]]) -> None:
        for name, count in pending.result().items():
            totals[name] += count
        if on_day is not None:
            on_day(partition)

    try:
        # Parquet encoding releases the GIL: write day d in a thread while day d+1 is simulated.
        # At most one day waits to be written, so memory stays bounded by two days.
        with ThreadPoolExecutor(max_workers=1) as pool:
            previous: tuple[DayPartition, Future[dict[str, int]]] | None = None
            for partition in world.run(days):
                if previous is not None:
                    written(*previous)
                previous = (partition, pool.submit(write_partition, temp, partition))
            if previous is not None:
                written(*previous)
        faults = [fault.to_dict(config.start) for fault in config.faults]
        summary = {
            "format": FORMAT,
            "yarnit_version": __version__,
            "config": config.to_dict(),
            "days": days,
            "ranker": world.model_version,
            "rows": totals,
            "layout": "TABLE/day=YYYY-MM-DD/part-0.parquet; ground truth under truth/",
        }
        (temp / "faults.json").write_text(_json(faults), encoding="utf-8")
        (temp / "world.json").write_text(_json(summary), encoding="utf-8")
        _check_out(target)  # someone may have created it meanwhile
        os.replace(temp, target)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return {"out": str(target), "days": days, "ranker": summary["ranker"], "rows": totals, "faults": faults}


def read_table(out: str | Path, name: str, days: Sequence[date] | None = None) -> pd.DataFrame:
    """Read one table of a written world (all days, or ``days``), with its ``day`` column restored."""
    root = Path(out) / name
    if name not in DayPartition.TABLES:
        raise InvalidInput(f"No table {name!r} in a world. Tables: {', '.join(DayPartition.TABLES)}.")
    if not root.is_dir():
        raise NotFound(f"{str(root)!r} does not exist. Write a world first: yarnit world generate --out {out}")
    wanted = None if days is None else {d.isoformat() for d in days}
    parts = []
    for directory in sorted(root.glob("day=*")):
        stamp = directory.name.split("=", 1)[1]
        if wanted is not None and stamp not in wanted:
            continue
        table = pq.read_table(directory / "part-0.parquet")
        frame = table.to_pandas()
        frame["day"] = pd.Series([date.fromisoformat(stamp)] * len(frame), dtype=object)
        order = json.loads((table.schema.metadata or {}).get(COLUMNS_KEY, b"[]")) or list(frame.columns)
        parts.append(frame[order])
    if not parts:
        raise NotFound(f"No partitions of {name!r} under {str(root)!r} for the days asked.")
    return pd.concat(parts, ignore_index=True)


__all__ = ["FORMAT", "PARQUET_OPTIONS", "read_table", "write_partition", "write_world"]
