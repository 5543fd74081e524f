import json
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from typer.testing import CliRunner

from yarnit.cli.world import app
from yarnit.core import InvalidInput, NotFound, sha256_file
from yarnit.world import IMPRESSION_COLUMNS, Fault, WorldConfig, read_table, write_world

SMALL = {"seed": 4, "sessions_per_day": 120, "n_users": 400}
runner = CliRunner()


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): sha256_file(p) for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("world") / "out"
    config = WorldConfig(**SMALL, faults=(Fault("stockout", day=1, hours=12, params={"top_n": 3}),))
    write_world(out, config, 2)
    return out


def test_layout_is_parquet_partitioned_by_day_with_truth_and_fault_records(written):
    tables = ["catalog", "users", "sessions", "impressions", "clicks", "purchases", "labels", "truth"]
    for name in tables:
        assert sorted(p.name for p in (written / name).iterdir()) == ["day=2026-01-05", "day=2026-01-06"]
        assert (written / name / "day=2026-01-05" / "part-0.parquet").is_file()
    faults = json.loads((written / "faults.json").read_text())
    assert faults == [{"name": "stockout", "book": "ch. 11 story 3", "day": 1, "hours": 12.0,
                       "start": "2026-01-06T00:00:00+00:00", "end": "2026-01-06T12:00:00+00:00",
                       "params": {"top_n": 3}, "spec": "stockout@1:12,top_n=3"}]
    world = json.loads((written / "world.json").read_text())
    assert world["config"]["seed"] == 4 and world["days"] == 2 and world["ranker"] == "popularity"
    assert world["rows"]["impressions"] == len(read_table(written, "impressions"))
    assert not list(written.parent.glob(".out.tmp-*"))


def test_read_table_restores_the_day_and_other_readers_work_too(written):
    imp = read_table(written, "impressions")
    assert tuple(imp.columns) == IMPRESSION_COLUMNS
    assert set(imp["day"]) == {date(2026, 1, 5), date(2026, 1, 6)}
    assert str(imp["event_time"].dtype) == "datetime64[us, UTC]"
    assert len(read_table(written, "truth", days=[date(2026, 1, 6)])) == len(imp[imp["day"] == date(2026, 1, 6)])
    assert len(pd.read_parquet(written / "impressions")) == len(imp)
    count = duckdb.sql(f"select count(*), count(distinct day) from read_parquet('{written}/impressions/*/*.parquet',"
                       " hive_partitioning=true)").fetchall()[0]
    assert count == (len(imp), 2)
    with pytest.raises(InvalidInput, match="No table 'nope'"):
        read_table(written, "nope")
    with pytest.raises(NotFound, match="does not exist"):
        read_table(written.parent / "missing", "impressions")


def test_same_seed_and_config_give_byte_identical_files(written, tmp_path):
    again = tmp_path / "again"
    config = WorldConfig(**SMALL, faults=(Fault("stockout", day=1, hours=12, params={"top_n": 3}),))
    write_world(again, config, 2)
    assert _digests(again) == _digests(written)
    other = tmp_path / "other"
    write_world(other, WorldConfig(**{**SMALL, "seed": 5}), 2)
    assert _digests(other) != _digests(written)


def test_refuses_to_write_over_existing_data(written):
    before = _digests(written)
    with pytest.raises(InvalidInput, match="already exists and is not an empty directory"):
        write_world(written, WorldConfig(**SMALL), 1)
    assert _digests(written) == before


def test_an_error_midway_leaves_no_partial_output(tmp_path):
    def broken(request):
        raise InvalidInput("ranker exploded")

    out = tmp_path / "out"
    with pytest.raises(InvalidInput, match="ranker exploded"):
        write_world(out, WorldConfig(**SMALL), 2, ranker=broken)
    assert list(tmp_path.iterdir()) == []


def test_cli_generate_writes_the_world_and_prints_json(tmp_path):
    out = tmp_path / "w"
    result = runner.invoke(app, ["generate", "--days", "2", "--seed", "3", "--out", str(out),
                                 "--sessions-per-day", "80", "--fault", "click_log_outage@1:12",
                                 "--fault", "biased_loss@2026-01-06,country=NO", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["days"] == 2 and summary["rows"]["sessions"] > 0
    assert [f["spec"] for f in summary["faults"]] == ["click_log_outage@1:12", "biased_loss@1,country=NO"]
    assert (out / "impressions" / "day=2026-01-06" / "part-0.parquet").is_file()


def test_cli_generate_human_output_and_rankers(tmp_path):
    result = runner.invoke(app, ["generate", "--days", "1", "--out", str(tmp_path / "w"), "--sessions-per-day", "50",
                                 "--ranker", "oracle"])
    assert result.exit_code == 0, result.output
    assert "wrote 1 days" in result.output and "ranker oracle" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fault", "meteor@1"], "Unknown fault 'meteor' in 'meteor@1'. Valid faults: discount_format, partner_"),
        (["--fault", "stockout@9"], "starts on day 9, after the last simulated day 1"),
        (["--fault", "stockout@2026-02-30"], "'2026-02-30' is not a real date"),
        (["--fault", "traffic_spike@1,factor=100"], r"factor='100' is out of range. Use factor: float in (1, 50]"),
        (["--fault", "stockout@1,size=3"], "has no parameter 'size'. Valid parameters: top_n"),
        (["--days", "0"], "days must be an int in [1, 3660], got 0"),
        (["--sessions-per-day", "0"], "sessions_per_day must be an int in [1, 1000000], got 0"),
        (["--start", "2026-13-01"], "--start '2026-13-01' is not a date"),
        (["--ranker", "best"], "--ranker 'best' is not known; choose one of popularity, random, oracle"),
    ],
)
def test_cli_bad_input_is_one_clear_error_and_no_output_directory(tmp_path, args, message):
    out = tmp_path / "w"
    base = ["generate", "--days", "2", "--out", str(out), "--sessions-per-day", "20"]
    result = runner.invoke(app, base + args)
    assert result.exit_code == 1
    assert result.output.startswith("error: ") and message in result.output
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_cli_lists_the_fault_scenarios():
    result = runner.invoke(app, ["faults", "--json"])
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    assert len(rows) == 10 and rows[4]["name"] == "click_log_outage" and rows[4]["book"] == "ch. 15 case 5"
    human = runner.invoke(app, ["faults"])
    assert "stockout: the most popular products sell out (ch. 11 story 3)" in human.output


def test_an_existing_empty_directory_is_filled(tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    summary = write_world(out, WorldConfig(**SMALL), 1)
    assert summary["rows"]["impressions"] > 0 and (out / "world.json").is_file()
