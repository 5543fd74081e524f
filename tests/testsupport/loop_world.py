"""Small worlds and settings shared by the loop tests (fast: a few hundred sessions a day, cheap evaluation)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from yarnit.continuous.loop_steps import closes_at

SESSIONS = 300
# The click model's pipeline, with evaluation trimmed to what a test needs (the gates still judge every run).
FAST: dict[str, Any] = {"bootstrap_resamples": 10, "slices": ["device"], "fairness_groups": [], "golden_rows": 300,
                        "gates": []}
DUPLICATES = 1500  # rows of day 1 replayed as a duplicate flood


def write_small_world(out: Path, days: int, faults: tuple[str, ...] = ()) -> Path:
    from yarnit.world import WorldConfig, parse_fault
    from yarnit.world.writer import write_world

    base = WorldConfig(seed=0, sessions_per_day=SESSIONS)
    write_world(out, WorldConfig(seed=0, sessions_per_day=SESSIONS,
                                 faults=tuple(parse_fault(f, start=base.start) for f in faults)), days)
    return out


def add_duplicate_flood(world: Path, day: str, rows: int = DUPLICATES) -> int:
    """Replay ``rows`` impressions of ``day`` again (CH7-R10: a flood of duplicate transactions)."""
    path = world / "impressions" / f"day={day}" / "part-0.parquet"
    table = pq.read_table(path)
    flooded = pa.concat_tables([table, table.slice(0, rows)])
    pq.write_table(flooded.replace_schema_metadata(table.schema.metadata), path)
    return rows


def first_close(world: Path) -> Any:
    from yarnit.continuous.loop_steps import world_days

    return closes_at(world_days(str(world))[0])


def until_after(world: Path, days: int) -> Any:
    return first_close(world) + timedelta(days=days)


def cli_settings() -> list[str]:
    out: list[str] = []
    for key, value in FAST.items():
        out += ["--set", f"{key}={json.dumps(value)}"]
    return out
