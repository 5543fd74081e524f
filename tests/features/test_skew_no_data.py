"""``yarnit features skew`` with nothing logged says "no data", never "ok"."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from yarnit.cli.features import app as features_app
from yarnit.core import Settings, SimulatedClock, utc
from yarnit.features import FeatureStore, feature_view
from yarnit.storage import open_workspace


@feature_view(entities={"user_id": "string"}, features={"clicks": "int64"}, ttl=timedelta(days=30),
              sources=("activity",))
def quiet_clicks(activity: pd.DataFrame) -> pd.DataFrame:
    """Clicks per shopper."""
    return activity


def test_skew_with_no_logged_rows_is_no_data_and_fails_the_check(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ws = open_workspace(Settings.for_home(home), SimulatedClock(utc(2026, 1, 5)))
    with FeatureStore(ws) as store:
        store.write_offline(quiet_clicks, pd.DataFrame({"user_id": ["u1"], "clicks": [3],
                                                        "event_time": [pd.Timestamp("2026-01-04", tz="UTC")]}))
    ws.close()
    runner = CliRunner()
    result = runner.invoke(features_app, ["skew", "quiet_clicks", "--json"], env={"YARNIT_HOME": str(home)})
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["status"] == "no data" and report["rows"] == 0
    assert [f["status"] for f in report["features"]] == ["no data"]
    checked = runner.invoke(features_app, ["skew", "quiet_clicks", "--fail-on-skew", "--json"],
                            env={"YARNIT_HOME": str(home)})
    assert checked.exit_code == 3, "a skew check with nothing to compare must not pass"
