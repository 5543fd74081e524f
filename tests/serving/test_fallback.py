"""The fallback chain: routed version → previous version → fallback alias → heuristic; breakers; deadlines."""

from __future__ import annotations

import pytest
from serving.helpers import Faults, expected_scores

from yarnit.core import InvalidInput
from yarnit.registry import ModelRegistry
from yarnit.serving import HeuristicFallback
from yarnit.storage import Workspace

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
    assert HeuristicFallback.for_version({}, {}).predict([{}]) == [0.0]
