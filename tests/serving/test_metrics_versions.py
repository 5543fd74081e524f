"""/metrics keeps a bounded number of series per model however many versions a process hot-swaps."""

from __future__ import annotations

import re

import httpx
from serving.helpers import fit_ctr

from yarnit.api import create_app
from yarnit.api.server import BackgroundServer
from yarnit.registry import ArtifactFormat, ModelRegistry, dump_sklearn
from yarnit.serving import ServingOptions
from yarnit.storage import Workspace

ONE = [{"fiber": "merino", "price": 12.0}]
SIGNATURE = {"inputs": {"fiber": "string", "price": "double"}}


def _exported_versions(text: str) -> set[str]:
    return set(re.findall(r'^yarnit_serving_request_duration_seconds_count\{model="flat",version="(\d+)"\}', text,
                          re.M))


def test_a_process_that_swaps_versions_exports_the_loaded_the_active_and_the_three_newest(sqlite_ws: Workspace) -> None:
    registry = ModelRegistry(sqlite_ws)
    app = create_app(sqlite_ws, serving=ServingOptions(log_fsync=False, cache_entries=0))
    serving = app.state.serving
    with BackgroundServer(app) as server, httpx.Client(base_url=server.url, timeout=60) as http:
        for i in range(1, 7):  # six hot swaps, each version answering one request before the next scrape
            registry.register("flat", dump_sklearn(fit_ctr(1.0 + i)), ArtifactFormat.SKOPS, signature=SIGNATURE)
            registry.promote("flat", i)
            serving.runtime.refresh()
            answer = http.post("/v1/models/flat:predict", json={"instances": ONE})
            assert answer.status_code == 200 and answer.json()["model_version"] == i, answer.text
            exported = _exported_versions(http.get("/metrics").text)
            # v(i) serves and answered, v(i-1) is the loaded previous; v(i-2) is among the three newest
            assert exported == {str(v) for v in range(max(1, i - 2), i + 1)}, (i, exported)
        # a rollback to v1 (no longer exported): it answers again and is exported again, counting from zero
        registry.promote("flat", 1)
        serving.runtime.refresh()
        assert http.post("/v1/models/flat:predict", json={"instances": ONE}).json()["model_version"] == 1
        text = http.get("/metrics").text
        assert "1" in _exported_versions(text)
        assert re.search(r'^yarnit_serving_request_duration_seconds_count\{model="flat",version="1"\} 1\.0$', text,
                         re.M), text


def test_a_version_that_answered_since_the_last_scrape_is_kept_even_when_old_and_not_loaded() -> None:
    from yarnit.serving.service import ServingStats

    stats = ServingStats()
    for version in ("1", "2", "3", "4", "5", "10"):
        ServingStats.bump(stats.requests, ("m", version, "production", "model", "200"))
        stats.observe_latency("m", version, 0.001)
    assert stats.prune_versions({"m": {"10"}}) == []  # all answered since the (absent) last prune
    ServingStats.bump(stats.requests, ("m", "1", "", "model", "200"))  # a policy still routes some to v1
    assert stats.prune_versions({"m": {"10"}}) == ["m:v2", "m:v3"]  # 4, 5 and 10: the newest (by number); v1: active
    assert {k[1] for k in stats.latency} == {"1", "4", "5", "10"}
    assert stats.prune_versions({"m": {"10"}}) == ["m:v1"]  # v1 answered nothing since


def _prediction_versions(text: str) -> set[str]:
    return set(re.findall(r'^yarnit_predictions_total\{model="flat",served_by="model",version="(\d+)"\}', text, re.M))


def test_predictions_total_forgets_retired_versions_like_the_serving_series(sqlite_ws: Workspace) -> None:
    """``yarnit_predictions_total`` (the data plane's own counter) kept a series and a Prometheus child for every
    version a process ever served: 56 → 414 series over 150 hot swaps (issue 22's soak, h48)."""
    registry = ModelRegistry(sqlite_ws)
    app = create_app(sqlite_ws, serving=ServingOptions(log_fsync=False, cache_entries=0))
    serving = app.state.serving
    with BackgroundServer(app) as server, httpx.Client(base_url=server.url, timeout=60) as http:
        for i in range(1, 9):
            registry.register("flat", dump_sklearn(fit_ctr(1.0 + i)), ArtifactFormat.SKOPS, signature=SIGNATURE)
            registry.promote("flat", i)
            serving.runtime.refresh()
            answer = http.post("/v1/models/flat:predict", json={"instances": ONE})
            assert answer.status_code == 200 and answer.json()["model_version"] == i, answer.text
            text = http.get("/metrics").text
            assert _prediction_versions(text) == _exported_versions(text) == \
                {str(v) for v in range(max(1, i - 2), i + 1)}, (i, text)
        # a version that answers again is counted again, from zero (a counter reset, as for the serving series)
        registry.promote("flat", 1)
        serving.runtime.refresh()
        assert http.post("/v1/models/flat:predict", json={"instances": ONE}).json()["model_version"] == 1
        assert re.search(r'^yarnit_predictions_total\{model="flat",served_by="model",version="1"\} 1\.0$',
                         http.get("/metrics").text, re.M)


def test_no_retired_version_stays_reachable_after_hot_swaps(sqlite_ws: Workspace) -> None:
    """After hot swaps under traffic and scrapes, only production and the previous version are alive."""
    import gc
    import weakref

    registry = ModelRegistry(sqlite_ws)
    app = create_app(sqlite_ws, serving=ServingOptions(log_fsync=False))  # prediction cache on
    serving = app.state.serving
    refs = []
    with BackgroundServer(app) as server, httpx.Client(base_url=server.url, timeout=60) as http:
        for i in range(1, 9):
            registry.register("flat", dump_sklearn(fit_ctr(1.0 + i)), ArtifactFormat.SKOPS, signature=SIGNATURE)
            registry.promote("flat", i)
            serving.runtime.refresh()
            for _ in range(3):
                assert http.post("/v1/models/flat:predict", json={"instances": ONE}).status_code == 200
            http.get("/metrics")
            refs.append(weakref.ref(serving.runtime.current("flat")))
        gc.collect()
        alive = [i + 1 for i, ref in enumerate(refs) if ref() is not None]
        assert alive == [7, 8], alive
