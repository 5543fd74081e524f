"""Hot swap and rollback under concurrent load (RELIABILITY.md target 11), and load shedding, over real HTTP."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from yarnit.api import create_app
from yarnit.api.server import BackgroundServer
from yarnit.registry import ModelRegistry
from yarnit.serving import ServingOptions
from yarnit.storage import Workspace

ROWS = [{"fiber": "merino", "price": 12.0}, {"fiber": "acrylic", "price": 3.0}]


def _expected(ws: Workspace) -> dict[int, list[float]]:
    """The exact scores each registered version gives ROWS (what register_ctr trained)."""
    train = [{"fiber": "merino", "price": 12.0}, {"fiber": "acrylic", "price": 3.0}] * 10
    out = {}
    for version in (1, 2):
        model = Pipeline([("vec", DictVectorizer()), ("lr", LogisticRegression(C=10.0 ** -(version - 1)))])
        out[version] = [float(p) for p in model.fit(train, [1, 0] * 10).predict_proba(ROWS)[:, 1]]
    return out


def test_swap_and_rollback_under_load_fail_no_request_and_never_mix_versions(token_ws: Workspace) -> None:
    expected = _expected(token_ws)
    app = create_app(token_ws, refresh_s=0.02, serving=ServingOptions(cache_entries=0, log_fsync=False))
    registry = ModelRegistry(token_ws)
    failures: list[str] = []
    seen: list[int] = []
    started_at: list[float] = []  # when each answered request was sent (same order as seen)
    stop = threading.Event()

    def client(url: str) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            while not stop.is_set():
                sent = time.monotonic()
                response = http.post("/v1/models/ctr:predict", json={"instances": ROWS})
                if response.status_code != 200:
                    failures.append(f"{response.status_code}: {response.text[:200]}")
                    continue
                body = response.json()
                version = body["model_version"]
                # no mix: both scores come from the one version the response names
                if body["served_by"] != "model" or body["predictions"] != pytest.approx(expected[version],
                                                                                         abs=1e-9):
                    failures.append(f"mixed or wrong answer: {body}")
                started_at.append(sent)
                seen.append(version)

    try:
        with BackgroundServer(app) as server:
            threads = [threading.Thread(target=client, args=(server.url,)) for _ in range(4)]
            for t in threads:
                t.start()
            _wait_for(lambda: len(seen) >= 20)
            registry.promote("ctr", 2)
            _wait_for(lambda: seen[-1] == 2 and seen[-4:] == [2] * 4)
            started = time.monotonic()
            registry.roll_back("ctr", reason="canary regressed")
            _wait_for(lambda: app.state.runtime.current("ctr").version.version == 1)
            switched = time.monotonic()
            rollback_s = switched - started
            marker = len(seen)
            _wait_for(lambda: len(seen) > marker + 8)
            stop.set()
            for t in threads:
                t.join(timeout=30)
    finally:
        stop.set()
        app.state.serving.close()
    assert failures == []
    assert 2 in seen and seen[-1] == 1
    # requests sent after the runtime switched back are all answered by v1 (in-flight ones may finish on v2)
    after = [v for v, t in zip(seen, started_at, strict=True) if t > switched]
    assert after and set(after) == {1}, "a request sent after the rollback was answered by v2"
    assert rollback_s < 1.0, f"rollback took {rollback_s:.3f} s"


def _wait_for(condition, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the servers' answers"
        time.sleep(0.005)


def test_over_the_limit_requests_get_a_fast_503_with_retry_after(token_ws: Workspace) -> None:
    app = create_app(token_ws, refresh_s=0.0, serving=ServingOptions(max_in_flight=2, retry_after_s=2,
                                                                      cache_entries=0, log_fsync=False))

    class Slow:
        def __init__(self, native):
            self.native = native

        def predict_proba(self, instances):
            time.sleep(0.02)  # a 20 ms model: requests pile up behind it
            return self.native.predict_proba(instances)

    app.state.serving.runtime.wrap_predictor = lambda version, native: Slow(native)
    statuses: list[int] = []
    retry_after: set[str] = set()
    errors: list[str] = []  # of the 503s: Overloaded (shed), or NoAnswer (a request the loaded machine ran late)
    lock = threading.Lock()

    def client(url: str) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            for _ in range(6):
                response = http.post("/v1/models/ctr:predict", json={"instances": [{"fiber": "merino"}]})
                with lock:
                    statuses.append(response.status_code)
                    if response.status_code == 503:
                        retry_after.add(response.headers.get("retry-after", ""))
                        errors.append(response.json()["error"])

    try:
        with BackgroundServer(app) as server:
            httpx.post(f"{server.url}/v1/models/ctr:predict", json={"instances": [{"fiber": "x"}]}, timeout=30)
            threads = [threading.Thread(target=client, args=(server.url,)) for _ in range(24)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
            metrics = httpx.get(f"{server.url}/metrics").text
    finally:
        app.state.serving.close()
    assert set(statuses) <= {200, 503}, statuses
    assert statuses.count(503) >= 1 and statuses.count(200) >= 2
    assert retry_after == {"2"} and set(errors) <= {"Overloaded", "NoAnswer"}
    shed = errors.count("Overloaded")
    assert f'yarnit_serving_shed_total{{model="ctr",reason="concurrency"}} {float(shed)}' in metrics
