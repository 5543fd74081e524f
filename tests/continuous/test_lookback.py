"""The day runs' kept lookback days give what reading and profiling the lookback from scratch gives."""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
from testsupport.loop_world import add_duplicate_flood, write_small_world

from yarnit.continuous import lookback as lookback_module
from yarnit.continuous.data_checks import run_checks
from yarnit.continuous.lookback import Lookback
from yarnit.continuous.loop_steps import (
    DAY_DEFAULTS,
    HISTORY_COLUMNS,
    closes_at,
    day_checks,
    label_join,
    quarantine_reasons,
    world_days,
)

CFG = {**DAY_DEFAULTS, "min_lookback_days": 2}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five days; the fourth carries the app re-query flood (ch. 15 case 2), the fifth a duplicate flood."""
    out = write_small_world(tmp_path_factory.mktemp("world") / "w", 5, faults=("app_requery@3",))
    add_duplicate_flood(out, "2026-01-09", rows=300)
    return out


def _from_scratch(world: Path, day: date) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, pd.DataFrame]]:
    """The day joined as of its close, and its lookback read and split as the day runs did before the cache."""
    from yarnit.world.writer import read_table

    frame = label_join(read_table(str(world), "impressions", [day]), read_table(str(world), "labels", [day]),
                       closes_at(day))
    days = [d for d in world_days(str(world)) if day - timedelta(days=int(CFG["lookback_days"])) <= d < day]
    past = read_table(str(world), "impressions", days) if days else pd.DataFrame()
    history = past[HISTORY_COLUMNS] if not past.empty else pd.DataFrame()
    split = {str(k): part for k, part in past.groupby("day")} if not past.empty else {}
    return frame, history, split


def _lookback(world: Path, day: date) -> Lookback:
    return Lookback(str(world), [day - timedelta(days=k) for k in range(int(CFG["lookback_days"]), 0, -1)])


def test_quarantine_and_checks_from_kept_days_equal_the_from_scratch_ones(world: Path) -> None:
    lookback_module.clear()
    flooded = 0
    for _round in range(2):  # the second round reads every summary from the kept days
        for day in world_days(str(world)):
            frame, history, split = _from_scratch(world, day)
            kept = _lookback(world, day)
            expected = quarantine_reasons(frame, history, CFG)
            assert quarantine_reasons(frame, kept, CFG).equals(expected), day
            flooded += int((expected == "query_flood").sum())
            assert day_checks(frame, kept, day, CFG) == run_checks(frame, split, day, CFG), day
    assert flooded > 0  # the flood rule (and its earlier queries) was exercised


def test_a_rewritten_day_is_read_again(world: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(world, tmp_path / "w"))
    day = date(2026, 1, 6)
    before = len(Lookback(str(copy), [day]).frame())
    add_duplicate_flood(copy, day.isoformat(), rows=100)
    assert len(Lookback(str(copy), [day]).frame()) == before + 100


def test_days_with_different_columns_are_judged_as_their_concatenation(world: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(world, tmp_path / "w"))
    path = copy / "impressions" / "day=2026-01-06" / "part-0.parquet"
    table = pq.read_table(path)
    pq.write_table(table.drop_columns(["country"]).replace_schema_metadata(None), path)
    day = date(2026, 1, 8)
    kept = _lookback(copy, day)
    assert not kept.uniform
    frame, history, split = _from_scratch(copy, day)
    assert day_checks(frame, kept, day, CFG) == run_checks(frame, split, day, CFG)
    assert quarantine_reasons(frame, kept, CFG).equals(quarantine_reasons(frame, history, CFG))


def test_a_day_joined_again_with_the_same_clicks_reuses_its_versions_and_new_clicks_make_new_ones(
        world: Path, tmp_path: Path) -> None:
    from yarnit.continuous.loop_steps import day_pipeline
    from yarnit.core.clock import SimulatedClock
    from yarnit.core.settings import Settings
    from yarnit.data import Datasets
    from yarnit.storage import open_workspace
    from yarnit.training import PipelineRunner

    day = date(2026, 1, 9)  # the duplicate flood: a quarantine version too
    ws = open_workspace(Settings.for_home(tmp_path / "home"), SimulatedClock(closes_at(day)))
    runner = PipelineRunner(ws)

    def join(as_of: Any) -> Any:
        result = runner.run(day_pipeline(), config={"world": str(world), "day": day.isoformat(),
                                                    "as_of": as_of.isoformat()})
        return result.value("quarantine", "clean"), result.value("quarantine", "quarantine"), result

    def from_scratch_checks(clean: dict[str, Any]) -> dict[str, Any]:
        _frame, _history, split = _from_scratch(world, day)
        frame = Datasets(ws).read(Datasets(ws).get_by_id(clean["id"]))
        return run_checks(frame, split, day, {**DAY_DEFAULTS, "world": str(world), "day": day.isoformat()})

    from yarnit.world.writer import read_table

    evening = closes_at(day) - timedelta(hours=6, minutes=30)  # 23:30, after the golden records' clicks
    arrivals = read_table(str(world), "labels", [day])["arrival_time"]
    late = int(((arrivals > pd.Timestamp(evening)) & (arrivals <= pd.Timestamp(closes_at(day)))).sum())
    early, _early_held, _ = join(evening)
    first, first_held, _ = join(closes_at(day))
    again, again_held, result = join(closes_at(day) + timedelta(hours=1))  # no click arrives after the close
    assert late > 0 and early["id"] != first["id"] and early["rows"] == first["rows"]  # more clicks: a new version
    assert again == first and again_held == first_held and first_held["rows"] == 300
    assert any("not ingested again" in line for line in next(s for s in result.steps if s.step == "quarantine").logs)
    assert len(Datasets(ws).list("yarnit-impressions-daily")) == 2
    assert result.value("checks", "report") == from_scratch_checks(again)  # the kept report is the same
