"""``yarnit features …`` and ``GET /api/features…`` over a real workspace."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from yarnit.cli.features import app as features_app
from yarnit.core import Settings, SimulatedClock, utc
from yarnit.data import Datasets
from yarnit.storage import Workspace, open_workspace

runner = CliRunner()

DEFINITIONS = textwrap.dedent('''
    from datetime import timedelta
    from yarnit.features import feature_view

    @feature_view(entities={"user_id": "string"}, features={"clicks": "int64", "ctr": "float64"},
                  ttl=timedelta(days=3650), sources=("activity",), owner="ranking")
    def user_clicks(activity):
        """Clicks and CTR per shopper."""
        return activity

    @feature_view(entities={"country": "string", "product_id": "int64"}, features={"views": "int64"},
                  ttl=None, sources=("views",))
    def country_views():
        return "SELECT country, product_id, event_time, views FROM views"
''')


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    """A workspace with two datasets and a definitions file."""
    home = tmp_path / "home"
    ws = open_workspace(Settings.for_home(home), SimulatedClock(utc(2026, 1, 5)))
    datasets = Datasets(ws)
    datasets.ingest_frame("activity", pd.DataFrame({
        "user_id": ["u1", "u2", "u1"], "clicks": [1, 2, 3], "ctr": [0.1, 0.2, 0.3],
        "event_time": pd.to_datetime(["2026-01-01", "2026-01-02", "2026-01-03"], utc=True)}), source="test",
        subject="user_id")
    datasets.ingest_frame("views", pd.DataFrame({
        "country": ["ES", "NO"], "product_id": [7, 7], "views": [10, 20],
        "event_time": pd.to_datetime(["2026-01-01", "2026-01-02"], utc=True)}), source="test")
    ws.close()
    (tmp_path / "defs.py").write_text(DEFINITIONS)
    yield home


def _run(home: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(features_app, list(args), env={"YARNIT_HOME": str(home)})
    return result.exit_code, result.stdout, result.stderr


def test_cli_backfills_materializes_lists_shows_and_reads(home: Path) -> None:
    defs = str(home.parent / "defs.py")
    code, out, err = _run(home, "backfill", "--definitions", defs, "--json")
    assert code == 0, err
    assert [(r["view"], r["rows"]) for r in json.loads(out)] == [("user_clicks", 3), ("country_views", 2)]
    code, out, err = _run(home, "materialize", "--json")
    assert code == 0, err
    assert {r["view"]: r["rows_written"] for r in json.loads(out)} == {"country_views": 2, "user_clicks": 2}
    code, out, _ = _run(home, "list", "--json")
    listed = json.loads(out)
    assert [v["name"] for v in listed] == ["country_views", "user_clicks"]
    assert listed[1]["features"] == ["clicks", "ctr"] and listed[1]["owner"] == "ranking"
    code, out, _ = _run(home, "show", "user_clicks", "--json")
    shown = json.loads(out)
    assert shown["view"]["number"] == 1 and shown["freshness"]["rows"] == 2
    assert shown["materializations"][0]["state"] == "succeeded"
    code, out, _ = _run(home, "get", "user_clicks", "u1", "u9", "--json")
    rows = json.loads(out)
    assert [r["status"] for r in rows] == ["present", "missing"]
    assert rows[0]["features"]["clicks"]["value"] == 3 and rows[0]["event_time"] == "2026-01-03T00:00:00+00:00"
    code, out, _ = _run(home, "get", "country_views", '["NO", 7]', "--json")
    assert json.loads(out)[0]["features"]["views"]["value"] == 20
    code, out, _ = _run(home, "list")  # the human renderings run too
    assert code == 0
    assert _run(home, "show", "user_clicks")[0] == 0 and _run(home, "get", "user_clicks", "u1")[0] == 0
    code, out, err = _run(home, "skew", "user_clicks", "--json")
    assert code == 0, err
    assert json.loads(out)["rows"] == 0  # nothing was served through a logging reader yet


def test_definitions_the_cli_records_are_audited_as_the_os_user(home: Path) -> None:
    """Like every other CLI write (alias moves, forget, retention), not as the literal 'cli'."""
    from yarnit.access import cli_actor
    from yarnit.storage.schema import audit_log

    assert _run(home, "backfill", "--definitions", str(home.parent / "defs.py"))[0] == 0
    with open_workspace(Settings.for_home(home)) as ws, ws.metadata.begin() as conn:
        rows = conn.execute(audit_log.select().where(audit_log.c.action == "feature_view.register")).mappings().all()
    assert sorted((r["subject"], r["actor"]) for r in rows) == [
        ("country_views:v1", cli_actor()), ("user_clicks:v1", cli_actor())]


def test_cli_errors_are_one_line_with_the_valid_choices(home: Path) -> None:
    defs = str(home.parent / "defs.py")
    code, _, err = _run(home, "show", "nope")
    assert code == 1 and "error: There is no feature view 'nope'" in err and "Traceback" not in err
    code, _, err = _run(home, "backfill", "--definitions", defs, "nope")
    assert code == 1 and "Unknown feature view 'nope'" in err and "country_views, user_clicks" in err
    _run(home, "backfill", "--definitions", defs)
    code, _, err = _run(home, "get", "country_views", "ES")
    assert code == 1 and "composite key ['country', 'product_id']" in err
    code, _, err = _run(home, "materialize", "--end", "2026-01-05T00:00")
    assert code == 1 and "has no time zone" in err
    code, _, err = _run(home, "backfill", "--definitions", defs, "--start", "yesterday")
    assert code == 1 and "not an ISO 8601 time" in err


def _client(ws: Workspace) -> TestClient:
    from yarnit.api import create_app

    return TestClient(create_app(ws))


def test_api_lists_shows_and_reads_online_values_with_status_and_age(home: Path) -> None:
    _run(home, "backfill", "--definitions", str(home.parent / "defs.py"))
    _run(home, "materialize")
    ws = open_workspace(Settings.for_home(home), SimulatedClock(utc(2026, 1, 5)))
    try:
        with _client(ws) as client:
            listed = client.get("/api/features").json()
            assert [v["name"] for v in listed] == ["country_views", "user_clicks"]
            shown = client.get("/api/features/user_clicks").json()
            assert shown["view"]["features"] == [["clicks", "int64"], ["ctr", "float64"]]
            assert client.get("/api/features/user_clicks/freshness").json()["rows"] == 2
            online = client.get("/api/features/user_clicks/online", params=[("key", "u1"), ("key", "u7")]).json()
            assert [r["status"] for r in online["rows"]] == ["present", "missing"]
            assert online["rows"][0]["age_s"] == 2 * 86400.0  # by the workspace's clock
            composite = client.get("/api/features/country_views/online", params={"key": '["ES", 7]'}).json()
            assert composite["rows"][0]["features"]["views"]["value"] == 10
            missing = client.get("/api/features/nope")
            assert missing.status_code == 404 and "Registered views: country_views, user_clicks" in missing.text
            bad = client.get("/api/features/country_views/online", params={"key": "ES"})
            assert bad.status_code == 422 and "composite key" in bad.json()["detail"]
            assert client.get("/api/features/user_clicks/online").status_code == 422
    finally:
        ws.close()


def test_the_features_router_is_read_only() -> None:
    from yarnit.api.features import router

    methods = {m for route in router.routes for m in getattr(route, "methods", set())}
    assert methods <= {"GET", "HEAD"} and len(router.routes) == 4



def test_forget_erases_the_subject_from_the_feature_store_offline_and_online(home: Path) -> None:
    import pyarrow.parquet as pq

    from yarnit.cli.data import app as data_app
    from yarnit.features import FeatureStore

    _run(home, "backfill", "--definitions", str(home.parent / "defs.py"))
    _run(home, "materialize")
    result = runner.invoke(data_app, ["forget", "--subject", "u1", "--json"], env={"YARNIT_HOME": str(home)})
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["erased"]["feature-store"] == 3  # 2 offline rows + 1 online row
    offline_files = list((home / "features" / "offline").rglob("*.parquet"))
    assert offline_files, "the scan found no offline files: it would prove nothing"
    for path in offline_files:
        table = pq.read_table(path)
        if "user_id" in table.column_names:
            assert "u1" not in table.column("user_id").to_pylist(), path
    ws = open_workspace(Settings.for_home(home), SimulatedClock(utc(2026, 1, 5)))
    try:
        with FeatureStore(ws) as store:
            rows = store.read_online("user_clicks", ["u1", "u2"])
            assert [r.status.value for r in rows] == ["missing", "present"]
    finally:
        ws.close()
