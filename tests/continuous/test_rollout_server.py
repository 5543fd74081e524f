"""A rollout against a real server on 127.0.0.1 under concurrent load: the controller judges the server's own
prediction log, and taking the canary's traffic away fails no request and mixes no versions (targets 10, 11)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from testsupport import TOKEN, register_ctr

from yarnit.api import create_app
from yarnit.api.server import BackgroundServer
from yarnit.continuous.rollout import RolloutConfig, RolloutController, gather
from yarnit.core import Settings, SimulatedClock, utc
from yarnit.monitoring.workspace import prediction_log_dir
from yarnit.registry import ModelRegistry
from yarnit.serving import ServingOptions
from yarnit.storage import Workspace, open_workspace

ROWS = [{"fiber": "merino", "price": 12.0}, {"fiber": "acrylic", "price": 3.0}]


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    workspace = open_workspace(Settings.for_home(tmp_path / "home", api_token=TOKEN), SimulatedClock(utc(2026, 3, 2)))
    register_ctr(workspace)
    yield workspace
    workspace.close()


def expected_scores() -> dict[int, list[float]]:
    """What each version of register_ctr answers for ROWS."""
    train = [{"fiber": "merino", "price": 12.0}, {"fiber": "acrylic", "price": 3.0}] * 10
    out = {}
    for version in (1, 2):
        model = Pipeline([("vec", DictVectorizer()), ("lr", LogisticRegression(C=10.0 ** -(version - 1)))])
        out[version] = [float(p) for p in model.fit(train, [1, 0] * 10).predict_proba(ROWS)[:, 1]]
    return out


def wait_for(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def test_rollout_judges_the_servers_log_and_aborts_under_load_without_a_failed_request(ws: Workspace) -> None:
    expected = expected_scores()
    app = create_app(ws, refresh_s=0.02, serving=ServingOptions(cache_entries=0, log_fsync=False))
    # latency and prediction shape are not the point here (the two versions score differently by design)
    config = RolloutConfig(stages=(50, 100), bake_s=3600, min_requests=10, latency_tolerance=100.0,
                           prediction_tolerance=1.0)
    controller = RolloutController(ws, "ctr", config=config)
    failures: list[str] = []
    answers: list[tuple[float, int]] = []  # (sent at, version)
    stop = threading.Event()

    def client(url: str, n: int) -> None:
        i = 0
        with httpx.Client(base_url=url, timeout=30) as http:
            while not stop.is_set():
                i += 1
                sent = time.monotonic()
                response = http.post("/v1/models/ctr:predict", json={"instances": ROWS, "key": f"s{n}-{i}"})
                if response.status_code != 200:
                    failures.append(f"{response.status_code}: {response.text[:200]}")
                    continue
                body = response.json()
                version = body["model_version"]
                if body["served_by"] != "model" or body["predictions"] != pytest.approx(expected[version], abs=1e-9):
                    failures.append(f"mixed or wrong answer: {body}")
                answers.append((sent, version))

    try:
        with BackgroundServer(app) as server:
            threads = [threading.Thread(target=client, args=(server.url, n)) for n in range(4)]
            for t in threads:
                t.start()
            wait_for(lambda: len(answers) >= 20)
            controller.start(2, "alice")
            wait_for(lambda: sum(v == 2 for _t, v in answers) >= 60 and answers[-1][1] in (1, 2))
            log_dir = prediction_log_dir(ws.home)
            start_s = ws.clock.now().timestamp()

            def judged_enough() -> bool:
                canary, baseline = gather(log_dir, "ctr", start_s=start_s, end_s=start_s)
                return canary.requests >= 60 and baseline.requests >= 60

            wait_for(judged_enough)
            result = controller.step()  # the simulated clock stands still: the stage is baking
            assert result["action"] == "hold" and result["reason"].startswith("baking"), result["reason"]
            metrics = {m["name"]: m for m in result["analysis"]["metrics"]}
            assert metrics["error_rate"]["verdict"] == "Pass" and metrics["error_rate"]["canary_n"] >= 60
            assert metrics["latency_ms"]["verdict"] == "Pass" and metrics["latency_ms"]["baseline_n"] >= 60
            router = app.state.serving.router
            started = time.monotonic()
            aborted = controller.abort(actor="alice", reason="enough")
            assert aborted["canary_percent"] == 0
            wait_for(lambda: router.policy("ctr").canary_percent == 0)
            switched = time.monotonic()
            marker = len(answers)
            wait_for(lambda: len(answers) > marker + 40)
            stop.set()
            for t in threads:
                t.join(timeout=30)
    finally:
        stop.set()
        app.state.serving.close()
    assert failures == []
    assert {v for _t, v in answers} == {1, 2}
    after = [v for t, v in answers if t > switched]
    assert after and set(after) == {1}, "a request sent after the canary's traffic was taken away reached v2"
    assert switched - started < 1.0, f"taking the canary's traffic away took {switched - started:.3f} s"
    assert ModelRegistry(ws).aliases("ctr") == {"production": 1, "canary": 1}
