"""The data plane samples the online feature rows it serves into the skew log that ``yarnit features skew`` reads."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pandas as pd
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from yarnit.api import create_app
from yarnit.api.server import BackgroundServer
from yarnit.features import FeatureStore, feature_view
from yarnit.registry import ArtifactFormat, ModelRegistry, dump_sklearn
from yarnit.serving import ServingOptions
from yarnit.storage import Workspace


@feature_view(entities={"user_id": "string"}, features={"clicks": "int64"}, ttl=timedelta(days=30),
              sources=("activity",))
def shopper_clicks(activity: pd.DataFrame) -> pd.DataFrame:
    """Clicks per shopper."""
    return activity


def test_served_feature_rows_reach_the_skew_log_and_match_the_offline_values(sqlite_ws: Workspace) -> None:
    users = [f"u{i}" for i in range(20)]
    with FeatureStore(sqlite_ws) as store:
        store.write_offline(shopper_clicks, pd.DataFrame({
            "user_id": users, "clicks": range(20),
            "event_time": sqlite_ws.clock.now() - timedelta(days=1)}))
        store.materialize(shopper_clicks)
        assert store.skew("shopper_clicks").status == "no data"  # nothing served yet: not an all-clear
    rows = [{"fiber": "merino", "clicks": 5}, {"fiber": "acrylic", "clicks": 0}] * 10
    model = Pipeline([("vec", DictVectorizer()), ("lr", LogisticRegression())]).fit(rows, [1, 0] * 10)
    registry = ModelRegistry(sqlite_ws)
    registry.register("clicky", dump_sklearn(model), ArtifactFormat.SKOPS, signature={
        "inputs": {"fiber": "string", "user_id": "string"}, "fallback": {"default": 0.1},
        "online_features": [{"name": "clicks", "entity": "user_id", "default": 0}]})
    registry.promote("clicky", 1)
    app = create_app(sqlite_ws, serving=ServingOptions(feature_log_sample_rate=1.0, log_fsync=False))
    with BackgroundServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        response = http.post("/v1/models/clicky:predict",
                             json={"instances": [{"fiber": "merino", "user_id": u} for u in [*users, "u-new"]]})
        assert response.status_code == 200 and response.json()["served_by"] == "model", response.text
    # the server stopped: what it sampled is on disk
    with FeatureStore(sqlite_ws) as store:
        report = store.skew("shopper_clicks")
    assert report.rows == 21 and report.served_status == {"present": 20, "missing": 1}
    assert report.status == "ok" and report.feature("clicks").status == "ok"
    assert report.feature("clicks").compared == 21 and report.feature("clicks").mismatches == 0
