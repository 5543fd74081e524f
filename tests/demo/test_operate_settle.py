"""The operate demo never moves its simulated clock while a request is in flight (h29).

The data plane finishes a request after its answer is sent and stamps its log record then, on the injected
clock (the latency is taken when the answer is handed to the transport). On a starved CPU the shop's thread ran first and moved the clock to the next page,
so records got later times and a "latency" of simulated minutes; the latency SLO burned and halted releases.
Here the server's completion is delayed on purpose (the starved case, made certain).
"""

from __future__ import annotations

import time
from datetime import timedelta
from itertools import islice
from types import SimpleNamespace

import pytest
from testsupport import register_ctr

from yarnit.api import create_app
from yarnit.api.dataplane import DataPlaneMiddleware
from yarnit.api.server import BackgroundServer
from yarnit.demo.operate import _Month
from yarnit.serving.predlog import read_prediction_log
from yarnit.storage import Workspace
from yarnit.world import HttpRanker, WorldConfig, serve_traffic


@pytest.fixture
def slow_completion(monkeypatch):
    real = DataPlaneMiddleware.complete

    def late(self, ex):  # the answer is out; the server's thread is descheduled before it logs the request
        time.sleep(0.3)
        real(self, ex)

    monkeypatch.setattr(DataPlaneMiddleware, "complete", late)


def test_the_clock_waits_for_the_server_to_finish_each_request(sqlite_ws: Workspace, clock, slow_completion) -> None:
    register_ctr(sqlite_ws)
    page = next(iter(serve_traffic(WorldConfig(seed=3, sessions_per_day=40, n_users=200), 1))).instances
    app = create_app(sqlite_ws)
    with BackgroundServer(app) as server:
        ranker = HttpRanker(server.url, "ctr", id_prefix="settle")
        month = SimpleNamespace(server=server, ranker=ranker, app=app, _settle_offset=0)
        sent = {}
        try:
            for i in range(3):
                _Month._settle(month)  # what the demo does before it moves the clock to the next page
                clock.advance(600)
                ranker.requests += 1
                sent[f"settle-{i}"] = clock.now()
                status, _body = ranker.client.post_json(f"{server.url}/v1/models/ctr:predict",
                                                        {"instances": list(islice(page, 3))},
                                                        {"x-request-id": f"settle-{i}"})
                assert status == 200
            _Month._settle(month)
            # the race the wait prevents: the clock moved as soon as the answer came back
            ranker.requests += 1
            status, _body = ranker.client.post_json(f"{server.url}/v1/models/ctr:predict",
                                                    {"instances": list(islice(page, 3))}, {"x-request-id": "raced"})
            sent["raced"] = clock.now()
            clock.advance(600)
            _Month._settle(month)
        finally:
            ranker.close()
        app.state.serving.log.flush()
    records = {r["request_id"]: r for r in read_prediction_log(sqlite_ws.home / "prediction_log")
               if r.get("role") == "primary"}
    for request_id in ("settle-0", "settle-1", "settle-2"):
        assert records[request_id]["latency_ms"] == 0.0
        assert records[request_id]["time"] == sent[request_id].isoformat()
    # the race without the wait: the latency ends when the answer was handed to the transport (the data plane
    # stamps it then), but the record's time is still taken once the server finishes: ten simulated minutes late
    assert records["raced"]["latency_ms"] == 0.0
    assert records["raced"]["time"] == (sent["raced"] + timedelta(seconds=600)).isoformat()
