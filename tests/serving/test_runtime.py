"""The runtime: load by alias, validate on golden requests, swap atomically, keep the previous version."""

from __future__ import annotations

import pytest
from serving.helpers import SIGNATURE, Faults, expected_scores, fit_ctr

from yarnit.core import NotFound
from yarnit.registry import ArtifactFormat, ModelRegistry, Predictor, dump_sklearn
from yarnit.serving import ModelRuntime
from yarnit.serving.runtime import WarmUp
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


def test_a_version_takes_traffic_only_after_a_warm_up_inference_on_its_probe_rows(ctr_ws: Workspace,
                                                                                  service_factory) -> None:
    registry = ModelRegistry(ctr_ws)
    probe = [{"fiber": "silk", "price": 7.5}, {"fiber": "merino", "price": 30.0, "note": None}]
    new = registry.register("ctr", dump_sklearn(fit_ctr(1.0)), ArtifactFormat.SKOPS,
                            signature=SIGNATURE | {"probe": probe})
    service = service_factory(refresh_s=60.0, compile=False)
    runtime = service.runtime
    calls: list[tuple[list[dict[str, object]], int | None, int | None]] = []  # rows, production, canary

    class Watching:
        def __init__(self, native: Predictor) -> None:
            self.native = native

        def predict_proba(self, rows: list[dict[str, object]]) -> object:
            state = runtime.loaded_state("ctr")
            serving = [getattr(getattr(state, a, None), "version", None) for a in ("production", "canary")]
            calls.append(([dict(r) for r in rows], *[v.version if v is not None else None for v in serving]))
            return self.native.predict_proba(rows)

    runtime.wrap_predictor = lambda version, native: Watching(native) if version.version == new.version else native
    assert service.predict("ctr", ONE).model_version == 1
    for alias in ("canary", "production"):  # the canary path, then a hot swap of production
        calls.clear()
        registry.set_alias("ctr", alias, new.version) if alias == "canary" else registry.promote("ctr", new.version)
        runtime.refresh("ctr")
        loaded = runtime.state("ctr").loaded(alias)
        assert loaded.version.version == new.version and loaded.warm_up == WarmUp(rows=2, seconds=0.0)
        if alias == "canary":  # loaded here: its warm-up ran on the probe rows (nulls dropped) before it served
            warm = [c for c in calls if c[0] == [probe[0], {"fiber": "merino", "price": 30.0}]]
            assert warm and warm[0][2] is None, "the canary scored its probe rows before it took traffic"
        else:  # already in memory as the canary: warmed then, nothing loads again
            assert calls == []


def test_a_rejected_version_is_retried_with_backoff_and_at_once_when_the_aliases_move(
        ctr_ws: Workspace, clock, service_factory) -> None:
    registry = ModelRegistry(ctr_ws)
    registry.promote("ctr", 2)
    service = service_factory(refresh_s=60.0)
    runtime = service.runtime
    alerts: list[str] = []
    runtime.on_alert = alerts.append
    assert runtime.state("ctr").production.version.version == 2
    path = ctr_ws.artifacts.path_for(registry.get("ctr", 3).artifact_sha256)
    good = path.read_bytes()
    path.chmod(0o644)
    path.write_bytes(b"lost in a disk failure")
    registry.promote("ctr", 3)
    assert [e.outcome for e in runtime.refresh("ctr")] == ["rejected"]
    assert service.predict("ctr", ONE).model_version == 2  # the old version keeps serving
    assert [(u.alias, u.version, u.attempts) for u in runtime.unservable()] == [("production", 3, 1)]
    assert "ctr" in runtime.readiness() and "production v3 cannot be served (v2 serves instead)" in \
        runtime.readiness()["ctr"]
    clock.advance(0.5)
    assert runtime.refresh("ctr") == []  # backing off: 1 s after the first failure
    clock.advance(0.5)
    assert [e.outcome for e in runtime.refresh("ctr")] == ["rejected"]  # still broken: the next wait doubles
    assert runtime.unservable()[0].attempts == 2 and "attempt 2; next try in 2 s" in alerts[-1]
    path.write_bytes(good)  # the artifact is restored
    clock.advance(1.9)
    assert runtime.refresh("ctr") == []
    clock.advance(0.1)
    assert [(e.to_version, e.outcome) for e in runtime.refresh("ctr")] == [(3, "swapped")]
    assert service.predict("ctr", ONE).model_version == 3
    assert runtime.unservable() == [] and runtime.readiness() == {}


def test_an_alias_move_retries_a_rejected_version_without_waiting_for_the_backoff(ctr_ws: Workspace,
                                                                                 service_factory) -> None:
    registry = ModelRegistry(ctr_ws)
    service = service_factory(refresh_s=60.0)
    runtime = service.runtime
    service.predict("ctr", ONE)
    path = ctr_ws.artifacts.path_for(registry.get("ctr", 2).artifact_sha256)
    good = path.read_bytes()
    path.chmod(0o644)
    path.write_bytes(b"truncated")
    registry.promote("ctr", 2)
    assert [e.outcome for e in runtime.refresh("ctr")] == ["rejected"]
    path.write_bytes(good)
    registry.set_alias("ctr", "shadow", 1)  # any move of the model's aliases: try again now
    events = runtime.refresh("ctr")
    assert ("production", 2, "swapped") in [(e.alias, e.to_version, e.outcome) for e in events]
    assert runtime.state("ctr").production.version.version == 2
