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
