"""The world drives the data plane: live requests out, and a deployed model ranking over HTTP."""

from __future__ import annotations

from itertools import islice

from testsupport import register_ctr

from yarnit.api import create_app
from yarnit.api.server import BackgroundServer
from yarnit.storage import Workspace
from yarnit.world import HttpRanker, World, WorldConfig, serve_traffic

SMALL = WorldConfig(seed=3, sessions_per_day=40, n_users=200)


def test_serve_traffic_yields_json_ready_requests_per_page() -> None:
    requests = list(islice(serve_traffic(SMALL, 1), 5))
    assert len(requests) == 5
    first = requests[0]
    assert first.session_id.startswith("s") and len(first.instances) == SMALL.n_candidates
    assert all(i["position"] == 1 and isinstance(i["price_usd"], float) for i in first.instances)
    assert isinstance(first.instances[0]["day"], str)


def test_a_model_served_over_http_ranks_the_world(sqlite_ws: Workspace) -> None:
    register_ctr(sqlite_ws)
    with BackgroundServer(create_app(sqlite_ws)) as server:
        ranker = HttpRanker(server.url, "ctr")
        try:
            day = next(iter(World(SMALL, ranker=ranker).run(1)))
        finally:
            ranker.close()
    assert ranker.served_versions == {1}
    assert set(day.impressions["model_version"]) == {"ctr:v1"}  # the version that answered, not a label
    assert len(day.impressions) > 0


def test_http_ranker_names_each_request_and_the_world_keys_labels_by_it(sqlite_ws: Workspace) -> None:
    from yarnit.serving.predlog import read_prediction_log
    from yarnit.world import request_labels

    register_ctr(sqlite_ws)
    log_dir = sqlite_ws.home / "prediction_log"
    with BackgroundServer(create_app(sqlite_ws)) as server:
        ranker = HttpRanker(server.url, "ctr", chunk=300, id_prefix="t1")
        try:
            day = next(iter(World(SMALL, ranker=ranker).run(1)))
        finally:
            ranker.close()
    impressions = day.impressions
    assert impressions["request_id"].str.match(r"^t1-\d{8}$").all()
    assert (impressions["request_index"] >= 0).all() and (impressions["request_index"] < 300).all()
    logged = {r["request_id"]: r for r in read_prediction_log(log_dir) if r.get("role") == "primary"}
    assert set(impressions["request_id"]) <= set(logged)
    row = impressions.iloc[len(impressions) // 2]
    record = logged[row["request_id"]]
    # the instance at that index is the impression's product, and its score is the one the world logged
    assert record["instances"][row["request_index"]]["product_id"] == row["product_id"]
    assert record["predictions"][row["request_index"]] == row["score"]
    labels = request_labels(impressions, day.labels)
    clicks = labels[labels["kind"] == "click"]
    assert len(clicks) == len(impressions)  # one click label (0 or 1) per impression
    assert int(clicks["value"].sum()) == int(day.labels["kind"].eq("click").sum())
    assert list(labels.columns) == ["request_id", "index", "kind", "value", "event_time", "arrival_time"]
    assert "user_id" not in labels.columns and "impression_id" not in labels.columns


def test_request_labels_times_are_microsecond_utc_and_an_empty_day_is_typed_as_before() -> None:
    """The label times stay datetime arrays end to end (issue 18, h38: they went through object arrays of
    Timestamps); the column types are the ones that path gave, seconds for an empty result included."""
    import numpy as np
    import pandas as pd

    from yarnit.world import request_labels

    day = next(iter(World(SMALL).run(1)))
    impressions = day.impressions.assign(request_id=[f"r{i // 30}" for i in range(len(day.impressions))],
                                         request_index=np.arange(len(day.impressions)) % 30)
    unshown = pd.DataFrame({"request_id": pd.Series(["u1"], dtype=object), "request_index": np.array([4]),
                            "day": pd.Series([day.day], dtype=object)})
    labels = request_labels(impressions, day.labels, unshown=unshown)
    assert [str(labels[c].dtype) for c in ("event_time", "arrival_time")] == ["datetime64[us, UTC]"] * 2
    shown = labels[labels["kind"] == "shown"].iloc[0]
    assert shown["arrival_time"] == pd.Timestamp(day.day, tz="UTC") + pd.Timedelta(hours=30)
    empty = request_labels(impressions.iloc[:0], day.labels.iloc[:0])
    assert empty.empty and [str(empty[c].dtype) for c in ("event_time", "arrival_time")] == ["datetime64[s, UTC]"] * 2
