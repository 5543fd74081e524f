"""The runtime: load by alias, validate on golden requests, swap atomically, keep the previous version."""

from __future__ import annotations

import pytest
from serving.helpers import SIGNATURE, Faults, expected_scores, fit_ctr

from yarnit.core import NotFound
from yarnit.registry import ArtifactFormat, ModelRegistry, dump_sklearn
from yarnit.serving import ModelRuntime
from yarnit.storage import Workspace

ONE = [{"fiber": "merino", "price": 12.0}]


def test_a_moved_alias_is_validated_and_swapped_in(ctr_ws: Workspace, service_factory) -> None:
    service = service_factory(refresh_s=60.0)
    assert service.predict("ctr", ONE).model_version == 1
    ModelRegistry(ctr_ws).promote("ctr", 2)
    assert service.predict("ctr", ONE).model_version == 1  # not yet refreshed
    events = service.runtime.refresh("ctr")
    assert [(e.alias, e.from_version, e.to_version, e.outcome) for e in events] == [("production", 1, 2, "swapped")]
    prediction = service.predict("ctr", ONE)
    assert prediction.model_version == 2
    assert prediction.values == pytest.approx(expected_scores(2, ONE), abs=1e-9)
    assert service.runtime.state("ctr").previous.version.version == 1


def test_a_version_failing_its_golden_requests_is_refused_and_the_old_keeps_serving(
        ctr_ws: Workspace, service_factory) -> None:
    registry = ModelRegistry(ctr_ws)
    bad = registry.register("ctr", dump_sklearn(fit_ctr(1.0)), ArtifactFormat.SKOPS, signature=SIGNATURE | {
        "golden": [{"instance": {"fiber": "merino", "price": 12.0}, "prediction": 0.5}]})
    alerts: list[str] = []
    service = service_factory(refresh_s=60.0)
    service.runtime.on_alert = alerts.append
    service.predict("ctr", ONE)
    registry.promote("ctr", bad.version)
    events = service.runtime.refresh("ctr")
    assert [(e.to_version, e.outcome) for e in events] == [(bad.version, "rejected")]
    assert "expected 0.500000000" in events[0].reason
    assert service.predict("ctr", ONE).model_version == 1
    assert len(alerts) == 1 and f"ctr v{bad.version} was not swapped in" in alerts[0]
    assert service.runtime.refresh("ctr") == []  # not retried until the alias moves again


def test_golden_requests_with_the_right_answers_pass(ctr_ws: Workspace, service_factory) -> None:
    registry = ModelRegistry(ctr_ws)
    want = expected_scores(1, ONE)[0]
    good = registry.register("ctr", dump_sklearn(fit_ctr(1.0)), ArtifactFormat.SKOPS,
                             signature=SIGNATURE | {"golden": [{"instance": ONE[0], "prediction": want}]})
    registry.promote("ctr", good.version)
    assert service_factory().predict("ctr", ONE).model_version == good.version


def test_rolling_back_to_the_previous_version_loads_nothing(ctr_ws: Workspace, faults: Faults,
                                                             service_factory) -> None:
    registry = ModelRegistry(ctr_ws)
    service = service_factory(faults, refresh_s=60.0)
    service.predict("ctr", ONE)
    registry.promote("ctr", 2)
    service.runtime.refresh("ctr")
    loads = list(faults.loads)
    registry.roll_back("ctr")
    service.runtime.refresh("ctr")
    assert faults.loads == loads  # v1 was still in memory as the previous version
    assert service.predict("ctr", ONE).model_version == 1


def test_the_previous_version_comes_from_the_alias_history_at_start(ctr_ws: Workspace, service_factory) -> None:
    registry = ModelRegistry(ctr_ws)
    registry.promote("ctr", 2)
    registry.promote("ctr", 3)
    service = service_factory()
    state = service.runtime.state("ctr")
    assert (state.production.version.version, state.previous.version.version) == (3, 2)
    assert service.runtime.ready() == {"ctr@production": 3, "ctr@previous": 2}


def test_the_registered_click_model_serves_on_the_compiled_path(ctr_ws: Workspace, service_factory) -> None:
    loaded = service_factory().runtime.state("ctr").production
    assert loaded.path == "linear-onnx" and loaded.compile.max_abs_diff <= 1e-6


def test_unknown_models_and_models_without_production_are_not_found(ctr_ws: Workspace, service_factory) -> None:
    service = service_factory()
    with pytest.raises(NotFound, match="no model named 'nope'"):
        service.predict("nope", ONE)
    registry = ModelRegistry(ctr_ws)
    registry.register("idle", dump_sklearn(fit_ctr(1.0)), ArtifactFormat.SKOPS, signature=SIGNATURE)
    with pytest.raises(NotFound, match="no alias 'production'"):
        service.predict("idle", ONE)


def test_preload_loads_every_production_model_before_traffic_and_skips_the_rest(ctr_ws: Workspace) -> None:
    ModelRegistry(ctr_ws).register("idle", dump_sklearn(fit_ctr(1.0)), ArtifactFormat.SKOPS, signature=SIGNATURE)
    runtime = ModelRuntime(ModelRegistry(ctr_ws), ctr_ws.clock, refresh_s=60)
    try:
        assert runtime.states() == {}
        assert runtime.preload() == {"ctr": "v1 (linear-onnx)"}
        assert set(runtime.states()) == {"ctr"}  # "idle" has no production version: nothing to load
    finally:
        runtime.close()


def test_the_watcher_picks_up_an_alias_move(ctr_ws: Workspace) -> None:
    runtime = ModelRuntime(ModelRegistry(ctr_ws), ctr_ws.clock, refresh_s=0.02)
    try:
        assert runtime.state("ctr").production.version.version == 1
        ModelRegistry(ctr_ws).promote("ctr", 2)
        import time

        deadline = time.monotonic() + 10
        while runtime.state("ctr").production.version.version != 2:
            assert time.monotonic() < deadline, "the watcher never swapped v2 in"
            time.sleep(0.01)
    finally:
        runtime.close()
