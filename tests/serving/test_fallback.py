"""The fallback chain: routed version → previous version → fallback alias → heuristic; breakers; deadlines."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import numpy as np
import pyarrow.parquet as pq
import pytest
from serving.helpers import Faults, expected_scores, fit_ctr, make_service

from yarnit.api import create_app
from yarnit.api.server import BackgroundServer
from yarnit.core import InvalidInput
from yarnit.data import Datasets
from yarnit.recipes import ctr_pipeline
from yarnit.registry import ArtifactFormat, ModelRegistry, ModelVersion, Predictor, dump_sklearn
from yarnit.serving import HeuristicFallback, ServingOptions
from yarnit.serving.errors import NoAnswer
from yarnit.storage import Workspace
from yarnit.training import PipelineRunner

ONE = [{"fiber": "merino", "price": 12.0}]


def test_a_failing_production_version_is_answered_by_the_previous_version(ctr_ws: Workspace, faults: Faults,
                                                                           service_factory) -> None:
    ModelRegistry(ctr_ws).promote("ctr", 2)
    service = service_factory(faults, cache_entries=0)
    assert service.predict("ctr", ONE).model_version == 2
    faults.raising.add(2)
    prediction = service.predict("ctr", ONE)
    assert (prediction.served_by, prediction.model_version, prediction.alias) == ("previous", 1, "previous")
    assert prediction.reason == "error"
    assert prediction.values == pytest.approx(expected_scores(1, ONE), abs=1e-9)


def test_a_production_version_that_fails_validation_leaves_the_previous_version_answering(
        ctr_ws: Workspace, faults: Faults, service_factory) -> None:
    ModelRegistry(ctr_ws).promote("ctr", 2)
    faults.raising.add(2)
    service = service_factory(faults)
    prediction = service.predict("ctr", ONE)
    assert (prediction.served_by, prediction.model_version, prediction.reason) == ("previous", 1, "not_loaded")
    assert "ctr v2 was not swapped in as 'production' (no version of it is loaded)" in service.runtime.alerts[0]


def test_when_every_model_fails_the_heuristic_table_answers(ctr_ws: Workspace, faults: Faults,
                                                            service_factory) -> None:
    ModelRegistry(ctr_ws).promote("ctr", 2)
    faults.raising.update({1, 2})
    service = service_factory(faults)
    prediction = service.predict("ctr", [{"fiber": "merino"}, {"fiber": "acrylic"}, {"fiber": "silk"}])
    assert (prediction.served_by, prediction.model_version, prediction.alias) == ("fallback", 0, "heuristic")
    assert prediction.values == [0.3, 0.1, 0.05]  # the table in the version's signature


def test_the_fallback_alias_answers_before_the_heuristic(ctr_ws: Workspace, faults: Faults,
                                                          service_factory) -> None:
    registry = ModelRegistry(ctr_ws)
    registry.promote("ctr", 2)
    registry.set_alias("ctr", "fallback", 3)
    faults.raising.update({1, 2})
    prediction = service_factory(faults).predict("ctr", ONE)
    assert (prediction.served_by, prediction.model_version, prediction.alias) == ("fallback", 3, "fallback")


def test_non_finite_scores_count_as_a_model_failure(ctr_ws: Workspace, faults: Faults, service_factory) -> None:
    ModelRegistry(ctr_ws).promote("ctr", 2)
    service = service_factory(faults, compile=False)
    service.predict("ctr", ONE)  # load both versions healthy
    faults.nan.add(2)
    prediction = service.predict("ctr", [{"fiber": "silk", "price": 1.0}])
    assert (prediction.served_by, prediction.model_version) == ("previous", 1)


def test_the_breaker_opens_after_consecutive_failures_and_closes_after_the_cooldown(
        ctr_ws: Workspace, faults: Faults, clock, service_factory) -> None:
    ModelRegistry(ctr_ws).promote("ctr", 2)
    service = service_factory(faults, breaker_failures=2, breaker_cooldown_s=10.0, cache_entries=0)
    service.predict("ctr", ONE)
    faults.raising.add(2)
    for _ in range(2):
        assert service.predict("ctr", ONE).reason == "error"
    calls_before = len(faults.seen[2])
    assert service.predict("ctr", ONE).reason == "circuit_open"  # v2 is not even tried
    assert len(faults.seen[2]) == calls_before
    faults.raising.clear()
    clock.advance(10.0)
    prediction = service.predict("ctr", ONE)  # half-open: one trial, which succeeds
    assert (prediction.served_by, prediction.model_version) == ("model", 2)


def test_a_model_slower_than_the_deadline_gives_the_heuristic_then_the_previous_version(
        ctr_ws: Workspace, faults: Faults, clock, service_factory) -> None:
    ModelRegistry(ctr_ws).promote("ctr", 2)
    service = service_factory(faults, breaker_failures=1, cache_entries=0, compile=False)
    service.predict("ctr", ONE)
    faults.slow_s[2] = 0.2
    deadline = clock.monotonic() + 0.1
    late = service.predict("ctr", ONE, deadline_at_s=deadline)
    assert (late.served_by, late.alias, late.reason) == ("fallback", "heuristic", "timeout")
    assert late.values == [0.3]
    following = service.predict("ctr", ONE, deadline_at_s=clock.monotonic() + 0.1)
    assert (following.served_by, following.model_version, following.reason) == ("previous", 1, "circuit_open")


def test_instances_the_model_rejects_are_the_clients_error_not_a_fallback(ctr_ws: Workspace, faults: Faults,
                                                                           service_factory) -> None:
    service = service_factory(faults, compile=False)
    service.predict("ctr", ONE)
    faults.invalid_input.add(1)
    with pytest.raises(InvalidInput, match="injected"):
        service.predict("ctr", [{"fiber": "merino"}, {"fiber": "x"}])


def test_a_version_that_cannot_load_leaves_the_heuristic_answering(ctr_ws: Workspace, service_factory) -> None:
    version = ModelRegistry(ctr_ws).get("ctr", 1)
    path = ctr_ws.artifacts.path_for(version.artifact_sha256)
    path.chmod(0o644)
    path.write_bytes(b"corrupted")
    service = service_factory()
    prediction = service.predict("ctr", [{"fiber": "acrylic"}])
    assert (prediction.served_by, prediction.alias, prediction.reason) == ("fallback", "heuristic", "not_loaded")
    assert service.runtime.alerts and "ctr v1 was not swapped in" in service.runtime.alerts[0]


def test_heuristic_falls_back_to_the_holdout_base_rate_without_a_table() -> None:
    heuristic = HeuristicFallback.for_version({}, {"ctr_holdout": 0.042})
    assert heuristic.predict([{}, {"a": 1}]) == [0.042, 0.042]
    # what the yarnit-ctr pipeline records on versions without a fallback in their signature
    assert HeuristicFallback.for_version({}, {"ctr": 0.031, "auc": 0.7}).predict([{}]) == [0.031]


def test_a_version_without_any_prior_has_no_heuristic_and_gets_a_503_not_zeros(
        sqlite_ws: Workspace, faults: Faults) -> None:
    assert not HeuristicFallback.for_version({}, {}).available
    assert not HeuristicFallback.for_version({"fallback": {"default": "high"}}, {"ctr": 7.0}).available
    registry = ModelRegistry(sqlite_ws)
    registry.register("bare", dump_sklearn(fit_ctr(1.0)), ArtifactFormat.SKOPS,
                      signature={"inputs": {"fiber": "string", "price": "double"}}, metrics={"auc": 0.8})
    registry.promote("bare", 1)
    service = make_service(sqlite_ws, faults, cache_entries=0)
    try:
        assert service.predict("bare", ONE).served_by == "model"
        faults.raising.add(1)
        with pytest.raises(NoAnswer, match="'bare' could not answer: every loaded version failed.*declares no "
                                           "fallback prior") as caught:
            service.predict("bare", ONE)
        assert caught.value.reason == "error"
    finally:
        service.close()


def test_a_batch_past_its_deadline_with_a_constant_fallback_gets_503_not_a_column_of_constants(
        sqlite_ws: Workspace, faults: Faults, clock) -> None:
    registry = ModelRegistry(sqlite_ws)
    registry.register("flat", dump_sklearn(fit_ctr(1.0)), ArtifactFormat.SKOPS,
                      signature={"inputs": {"fiber": "string", "price": "double"}}, metrics={"ctr": 0.04})
    registry.promote("flat", 1)
    service = make_service(sqlite_ws, faults, compile=False, cache_entries=0)
    try:
        service.predict("flat", ONE)
        faults.slow_s[1] = 0.2
        with pytest.raises(NoAnswer, match="no version scored the request within its deadline.*one constant") as caught:
            service.predict("flat", ONE * 10_000, deadline_at_s=clock.monotonic() + 0.1)
        assert caught.value.reason == "timeout"
        # the same constant still answers a version that fails outright (a declared prior, not a timeout)
        faults.slow_s.clear()
        faults.raising.add(1)
        assert service.predict("flat", ONE).values == [0.04]
    finally:
        service.close()


def test_a_deadline_miss_over_http_is_a_503_with_retry_after(sqlite_ws: Workspace) -> None:
    registry = ModelRegistry(sqlite_ws)
    registry.register("flat", dump_sklearn(fit_ctr(1.0)), ArtifactFormat.SKOPS,
                      signature={"inputs": {"fiber": "string", "price": "double"}}, metrics={"ctr": 0.04})
    registry.promote("flat", 1)
    stuck = _Stuck()
    app = create_app(sqlite_ws, serving=ServingOptions(log_fsync=False, cache_entries=0, compile=False))
    app.state.serving.runtime.wrap_predictor = stuck.wrap  # before the server loads and warms the model
    try:
        with BackgroundServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as http:
            stuck.armed.set()  # from now on scoring blocks (30 s): this batch cannot be scored in time on any machine
            # A deadline generous enough for reading and admitting the body on a loaded machine: a short one
            # (50 ms) passed before admission there, and the answer was a shed ("Overloaded"), not a miss.
            response = http.post("/v1/models/flat:predict", json={"instances": ONE * 100},
                                 headers={"x-yarnit-deadline-ms": "5000"})
            stuck.release.set()
    finally:
        stuck.release.set()
    assert response.status_code == 503 and response.headers["retry-after"] == "1", response.text
    assert response.json()["error"] == "NoAnswer" and "within its deadline" in response.json()["detail"]


class _Stuck:
    """Blocks scoring once armed, until released (wrap_predictor seam)."""

    def __init__(self) -> None:
        self.armed, self.release = threading.Event(), threading.Event()

    def wrap(self, version: ModelVersion, native: Predictor) -> Predictor:
        return _StuckPredictor(self, native)


class _StuckPredictor:
    def __init__(self, stuck: _Stuck, native: Predictor) -> None:
        self.stuck, self.native = stuck, native

    def predict_proba(self, instances: list[dict[str, Any]]) -> np.ndarray:
        if self.stuck.armed.is_set():
            self.stuck.release.wait(30)
        return np.asarray(self.native.predict_proba(instances), dtype=float)


def test_the_pipeline_models_fallback_answers_its_training_base_rate_per_product_type(sqlite_ws: Workspace,
                                                                                       faults: Faults) -> None:
    result = PipelineRunner(sqlite_ws).run(ctr_pipeline(), config={"days": 2, "sessions_per_day": 300})
    registered = result.value("register", "model_version")["version"]
    # The training base rate, recomputed from the dataset version the pipeline trained on (its train days).
    split = result.value("split", "split")
    version = next(v for v in Datasets(sqlite_ws).list() if v.id == result.value("select", "dataset")["id"])
    frame = pq.read_table(sqlite_ws.artifacts.verify(version.artifact_sha256),
                          columns=["day", "product_type", "clicked"]).to_pandas()
    train = frame[frame["day"].astype(str).isin(split["train_days"])]
    assert 0 < len(train) < len(frame)
    rates = train.groupby(train["product_type"].astype(str), observed=True)["clicked"].agg(["mean", "size"])
    big = rates[rates["size"] >= 100]
    small_or_unknown = "no-such-type"
    assert len(big) >= 2
    instances = [{"product_type": t} for t in big.index] + [{"product_type": small_or_unknown}]
    want = [float(r) for r in big["mean"]] + [float(train["clicked"].mean())]
    faults.raising.add(registered)  # the version fails: only its heuristic can answer
    service = make_service(sqlite_ws, faults)
    try:
        prediction = service.predict("ctr", instances)
    finally:
        service.close()
    assert (prediction.served_by, prediction.alias, prediction.reason) == ("fallback", "heuristic", "not_loaded")
    assert prediction.values == pytest.approx(want, abs=1e-12)
    assert len(set(prediction.values)) > 1  # per product type, not one constant
