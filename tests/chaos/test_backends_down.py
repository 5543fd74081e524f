"""PostgreSQL stopped mid-run and Redis down, on throwaway servers of the test's own (issue 22, chaos).

* PostgreSQL: a served model keeps answering from memory; every control-plane call while the database is
  down is a 503 that names the metadata store (never a 500), the CLI exits 1 with the same message; once
  the database is back the same server answers again without a restart, every move acknowledged before
  the stop is in the history and every move refused while it was down is not.
* Redis (the online feature store): requests are answered with the features' declared defaults, each
  replacement counted in ``yarnit_serving_online_feature_defaults_total`` (reason ``error``); when Redis
  returns, the stored values are served again.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from chaos.services import ThrowawayPostgres, ThrowawayRedis
from serving.helpers import expected_scores, register_versions
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from testsupport import TOKEN

from yarnit.api import create_app
from yarnit.api.server import BackgroundServer
from yarnit.core import Settings
from yarnit.features import FeatureStore, feature_view
from yarnit.registry import ArtifactFormat, ModelRegistry, dump_sklearn
from yarnit.serving import ServingOptions
from yarnit.storage import open_workspace

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(1800)]
ONE = [{"fiber": "merino", "price": 12.0}]
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _until(condition: Callable[[], bool], what: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_postgres_stopped_mid_run_gives_clear_errors_then_recovers_with_nothing_lost(tmp_path: Path) -> None:
    pg = ThrowawayPostgres()
    pg.start()
    try:
        settings = Settings.for_home(tmp_path / "ws", db_url=pg.url, api_token=TOKEN)
        ws = open_workspace(settings)
        register_versions(ws, n=3)
        app = create_app(ws, serving=ServingOptions(log_fsync=False, cache_entries=0, compile=False))
        statuses: dict[str, int] = {}

        def move(http: httpx.Client, i: int) -> httpx.Response:
            response = http.post("/api/models/ctr/aliases/shadow", headers=AUTH,
                                 json={"version": 2 + i % 2, "reason": f"move-{i}"})
            statuses[f"move-{i}"] = response.status_code
            return response

        with BackgroundServer(app) as server, httpx.Client(base_url=server.url, timeout=60) as http:
            for i in range(3):
                assert move(http, i).status_code == 200
            pg.stop()
            # the data plane answers from the model in memory
            served = http.post("/v1/models/ctr:predict", json={"instances": ONE})
            assert served.status_code == 200, served.text
            assert served.json()["predictions"] == pytest.approx(expected_scores(1, ONE))
            # the control plane: 503 naming the metadata store and what to do, never a 500
            for response in (http.get("/api/models/ctr"), move(http, 3), move(http, 4)):
                assert response.status_code == 503, response.text
                body = response.json()
                assert body["error"] == "Unavailable" and "metadata store" in body["detail"], body
                assert response.headers["retry-after"] == "1"
            metrics = http.get("/metrics")  # the scrape goes on: monitoring must see the outage
            assert metrics.status_code == 200 and "yarnit_feature_freshness_up 0.0" in metrics.text
            cli = subprocess.run([sys.executable, "-m", "yarnit", "models", "list"], capture_output=True, text=True,
                                 timeout=300, env=_cli_env(settings))
            assert cli.returncode == 1 and "metadata store" in cli.stderr and "Traceback" not in cli.stderr, \
                cli.stderr
            pg.start()
            # the same server recovers by itself (its pool reconnects)
            _until(lambda: http.get("/api/models/ctr").status_code == 200, "the control plane never recovered")
            for i in range(5, 7):
                assert move(http, i).status_code == 200
            served = http.post("/v1/models/ctr:predict", json={"instances": ONE})
            assert served.status_code == 200
        assert set(statuses.values()) <= {200, 503}
        history = [e.reason for e in ModelRegistry(ws).history("ctr", "shadow")]
        assert history == [r for r, status in statuses.items() if status == 200]  # nothing lost, nothing extra
        assert ModelRegistry(ws).resolve("ctr", "shadow").version == 2 + 6 % 2
        cli = subprocess.run([sys.executable, "-m", "yarnit", "models", "list", "--json"], capture_output=True,
                             text=True, timeout=300, env=_cli_env(settings))
        assert cli.returncode == 0, cli.stderr
        ws.close()
    finally:
        pg.close()


def _cli_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YARNIT_")}
    return env | {"YARNIT_HOME": str(settings.home), "YARNIT_DB_URL": settings.db_url,
                  "YARNIT_ONLINE_STORE": settings.online_store_url}


@feature_view(entities={"user_id": "string"}, features={"clicks": "int64"}, ttl=timedelta(days=30),
              sources=("activity",))
def shopper_clicks(activity: pd.DataFrame) -> pd.DataFrame:
    """Clicks per shopper."""
    return activity


def _defaults_counted(http: httpx.Client) -> float:
    text = http.get("/metrics").text
    found = re.search(r'^yarnit_serving_online_feature_defaults_total\{(?=[^}]*model="clicky")'
                      r'(?=[^}]*feature="clicks")(?=[^}]*reason="error")[^}]*\} ([0-9.e+]+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def test_redis_down_serves_declared_defaults_counted_and_recovers_when_it_returns(tmp_path: Path) -> None:
    redis_server = ThrowawayRedis(tmp_path / "redis")
    redis_server.start()
    try:
        settings = Settings.for_home(tmp_path / "ws", online_store=redis_server.url)
        ws = open_workspace(settings)
        users = [f"u{i}" for i in range(5)]
        with FeatureStore(ws) as store:
            store.write_offline(shopper_clicks, pd.DataFrame({
                "user_id": users, "clicks": [10, 20, 30, 40, 50], "event_time": ws.clock.now() - timedelta(days=1)}))
            store.materialize(shopper_clicks)
        rows = [{"fiber": "merino", "clicks": 40}, {"fiber": "acrylic", "clicks": 0}] * 10
        model = Pipeline([("vec", DictVectorizer()), ("lr", LogisticRegression())]).fit(rows, [1, 0] * 10)
        registry = ModelRegistry(ws)
        registry.register("clicky", dump_sklearn(model), ArtifactFormat.SKOPS, signature={
            "inputs": {"fiber": "string", "user_id": "string"}, "fallback": {"default": 0.1},
            "online_features": [{"name": "clicks", "entity": "user_id", "default": 0}]})
        registry.promote("clicky", 1)
        instances = [{"fiber": "merino", "user_id": u} for u in users]
        with_values = [float(p) for p in model.predict_proba(
            [{"fiber": "merino", "clicks": c} for c in (10, 20, 30, 40, 50)])[:, 1]]
        with_defaults = [float(model.predict_proba([{"fiber": "merino", "clicks": 0}])[0, 1])] * len(users)
        app = create_app(ws, serving=ServingOptions(log_fsync=False, cache_entries=0))

        def predict(http: httpx.Client) -> dict[str, Any]:
            response = http.post("/v1/models/clicky:predict", json={"instances": instances})
            assert response.status_code == 200, response.text
            return response.json()

        with BackgroundServer(app) as server, httpx.Client(base_url=server.url, timeout=60) as http:
            up = predict(http)
            assert up["served_by"] == "model" and up["predictions"] == pytest.approx(with_values)
            assert _defaults_counted(http) == 0
            redis_server.stop()
            down = predict(http)
            assert down["served_by"] == "model" and down["predictions"] == pytest.approx(with_defaults)
            assert _defaults_counted(http) >= len(users)
            assert "yarnit_feature_freshness_up 0.0" in http.get("/metrics").text
            before = _defaults_counted(http)
            predict(http)
            assert _defaults_counted(http) == before + len(users)  # every defaulted value is counted
            redis_server.start()
            _until(lambda: predict(http)["predictions"] == pytest.approx(with_values),
                   "the stored feature values never came back after Redis returned")
        ws.close()
    finally:
        redis_server.close()
