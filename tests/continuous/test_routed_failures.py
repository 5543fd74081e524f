"""A canary whose requests fail with no answer at all (a 5xx) is judged as the canary, not as production.

The data plane logs ``routed`` (the alias the router chose) on every primary record, failed ones included, so
the rollout's metric reader puts a 503 on the side the request was routed to: without it a request that got
no answer carried no alias and counted against production, and the canary looked clean.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from testsupport import TOKEN, register_ctr

from yarnit.api import create_app
from yarnit.api.server import BackgroundServer
from yarnit.continuous.rollout import RolloutConfig, RolloutController, gather
from yarnit.core import Settings, SimulatedClock, utc
from yarnit.monitoring.workspace import prediction_log_dir
from yarnit.registry import ModelRegistry, ModelVersion, Predictor
from yarnit.serving import ServingOptions
from yarnit.serving.router import BUCKETS, bucket
from yarnit.storage import Workspace, open_workspace

GOOD = [{"fiber": "merino", "price": 12.0}]
BAD = [{"fiber": "boucle", "price": 9.0}]  # production v1 fails on it too (below)


N = 120  # requests: fewer than 100 503s, which the log keeps one by one (past that it counts them per window)


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    # register_ctr declares no fallback prior (no 'fallback' in the signature, no base rate): when every
    # version fails the client gets a 503 NoAnswer, not a heuristic's 200
    workspace = open_workspace(Settings.for_home(tmp_path / "home", api_token=TOKEN), SimulatedClock(utc(2026, 3, 2)))
    register_ctr(workspace)
    yield workspace
    workspace.close()


class _Broken:
    """Once armed, v2 raises on every request; v1 (production, the canary's stand-in) raises on BAD rows only.

    (Armed after v2 is swapped in: a version that fails its golden requests is never loaded.)
    """

    armed = threading.Event()

    def __init__(self, version: ModelVersion, native: Predictor) -> None:
        self.version, self.native = version.version, native

    def predict_proba(self, instances: list[dict[str, Any]]) -> np.ndarray:
        if (self.version == 2 and self.armed.is_set()) or any(row.get("fiber") == "boucle" for row in instances):
            raise RuntimeError(f"injected failure in v{self.version}")
        return np.asarray(self.native.predict_proba(instances), dtype=float)


def wait_for(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def test_a_canary_answering_only_5xx_is_counted_against_the_canary_and_rolled_back(ws: Workspace) -> None:
    # (no circuit breaker: the failures on BAD rows must not pause v1 for production's GOOD requests)
    app = create_app(ws, refresh_s=0.02, serving=ServingOptions(cache_entries=0, log_fsync=False, compile=False,
                                                                breaker_failures=10**6))
    service = app.state.serving
    service.runtime.wrap_predictor = lambda version, native: _Broken(version, native)
    config = RolloutConfig(stages=(50, 100), bake_s=3600, min_requests=20, latency_tolerance=100.0,
                           prediction_tolerance=1.0)
    controller = RolloutController(ws, "ctr", config=config)
    statuses: dict[str, list[int]] = {"canary": [], "production": []}
    try:
        with BackgroundServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as http:
            assert http.post("/v1/models/ctr:predict", json={"instances": GOOD}).status_code == 200  # loaded
            controller.start(2, "alice")

            def canary_served() -> bool:
                state = service.runtime.loaded_state("ctr")
                return (state is not None and state.canary is not None
                        and service.router.policy("ctr").canary_percent == 50)

            wait_for(canary_served)
            _Broken.armed.set()
            start_s = ws.clock.now().timestamp()
            for i in range(N):
                key = f"shopper-{i}"
                side = "canary" if bucket("ctr", key) < 50 * BUCKETS / 100 else "production"
                # a canary request fails on v2 and on the production stand-in: no answer at all
                response = http.post("/v1/models/ctr:predict",
                                     json={"instances": BAD if side == "canary" else GOOD, "key": key})
                statuses[side].append(response.status_code)
            log_dir = prediction_log_dir(ws.home)

            def logged() -> bool:
                canary, baseline = gather(log_dir, "ctr", start_s=start_s, end_s=start_s)
                return canary.requests + baseline.requests >= N + 1  # and the first request

            wait_for(logged)
            canary, baseline = gather(log_dir, "ctr", start_s=start_s, end_s=start_s)
            result = controller.step()
    finally:
        _Broken.armed.clear()
        service.close()
    assert len(statuses["canary"]) >= 40 and set(statuses["canary"]) == {503}, statuses["canary"]
    assert len(statuses["production"]) >= 40 and set(statuses["production"]) == {200}
    # each 503 is on the canary's side of the judgement, none on production's
    assert (canary.requests, canary.errors, canary.answered) == (len(statuses["canary"]),) * 2 + (0,)
    assert (baseline.requests, baseline.errors) == (len(statuses["production"]) + 1, 0)  # + the first request
    assert result["action"] == "rollback", result["reason"]
    assert {m["name"]: m["verdict"] for m in result["analysis"]["metrics"]}["error_rate"] == "High"
    assert ModelRegistry(ws).aliases("ctr") == {"production": 1, "canary": 1}  # the canary points back at v1
