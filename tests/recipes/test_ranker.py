"""yarnit-ranker: one pinned bundle, the business rules, exploration, served by name, and the world's ranker.

Real parts throughout: a SQLite workspace, the yarnit-recs and yarnit-ranker
pipelines through the runner, and the HTTP server on a loopback port.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from yarnit.api import create_app
from yarnit.api.server import BackgroundServer
from yarnit.core import IntegrityError, Settings
from yarnit.features.request_time_frame import FRAME_TRANSFORMS
from yarnit.recipes.ctr import RAW_INPUTS
from yarnit.recipes.pipelines import builtin_pipeline
from yarnit.recipes.ranker import RankingModel, diversity_holds
from yarnit.registry import ArtifactFormat, ModelRegistry, load_predictor
from yarnit.storage import ArtifactCorrupted, Workspace, open_workspace
from yarnit.training import PipelineRunner
from yarnit.training.trainers import make_trainer
from yarnit.world import World, WorldConfig
from yarnit.world.traffic import RankerServiceRanker

RANKER = "yarnit-ranker"
SMALL = {"days": 3, "sessions_per_day": 300, "n_users": 600, "min_eval_users": 5}


def _register_click_model(ws: Workspace) -> None:
    """A logistic click model on one small world day (the yarnit-ctr pipeline's output, without its evaluation)."""
    day = next(iter(World(WorldConfig(seed=2, sessions_per_day=300, n_users=600)).run(1)))
    log = day.impressions
    model = make_trainer("logistic").fit(FRAME_TRANSFORMS["ctr_features_v1"](log), log["clicked"].to_numpy(), seed=0)
    registry = ModelRegistry(ws)
    version = registry.register("ctr", model.artifact, model.artifact_format, signature={
        "inputs": RAW_INPUTS, "output": "click probability", "transform": "ctr_features_v1"})
    registry.promote("ctr", version.version)


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    workspace = open_workspace(Settings.for_home(tmp_path_factory.mktemp("ranker") / "home"))
    _register_click_model(workspace)
    runner = PipelineRunner(workspace)
    runner.run(builtin_pipeline("yarnit-recs"), config=SMALL)
    runner.run(builtin_pipeline(RANKER), config={"loop_sessions": 150})
    yield workspace
    workspace.close()


@pytest.fixture(scope="module")
def ranker(ws: Workspace) -> RankingModel:
    registry = ModelRegistry(ws)
    model = registry.load(registry.resolve(RANKER, "production"))
    assert isinstance(model, RankingModel)
    return model


def _pages(model: RankingModel, n: int, *, seed: int = 0, out_of_stock: float = 0.3) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    records = model.catalog_records
    pages = []
    for i in range(n):
        picked = rng.choice(len(records), size=30, replace=False)
        pages.append({"user_id": f"u{i:07d}", "query": "", "country": "DE", "device": "mobile", "k": 10,
                      "candidates": [{"product_id": records[j]["product_id"], "fiber": records[j]["fiber"],
                                      "price_usd": records[j]["price_usd"],
                                      "in_stock": bool(rng.random() > out_of_stock)} for j in picked]})
    return pages


def test_the_pipeline_registers_a_ranker_that_pins_its_parts(ws: Workspace) -> None:
    registry = ModelRegistry(ws)
    version = registry.resolve(RANKER, "production")
    click, recs = registry.resolve("ctr", "production"), registry.resolve("yarnit-recs", "production")
    assert version.artifact_format is ArtifactFormat.RANKER and version.signature["output"] == "ranking"
    lineage = version.signature["lineage"]
    assert lineage["click_model"] == {"name": "ctr", "version": click.version, "sha256": click.artifact_sha256}
    assert lineage["recs"]["sha256"] == recs.artifact_sha256 and "popular" in lineage["recs"]["serving"]
    assert set(recs.dataset_version_ids) <= set(version.dataset_version_ids)  # dataset → ranker lineage edges
    assert version.metrics["blessed"] is True and version.metrics["closed_loop_ctr"]["ranker"] > 0
    # an unchanged rerun registers nothing new: the bundle's bytes are stable
    PipelineRunner(ws).run(builtin_pipeline(RANKER), config={"loop_sessions": 150})
    assert [v.version for v in registry.versions(RANKER)] == [version.version]


def test_a_reproduction_packages_the_same_pinned_parts_into_the_same_bytes(ws: Workspace) -> None:
    from yarnit.training import RunStore
    from yarnit.training.reproduce import reproduce

    original = next(r for r in RunStore(ws).list(RANKER, 10) if r.state == "succeeded")
    result = reproduce(PipelineRunner(ws), original.id, builtin_pipeline(RANKER))
    assert result.reproduced and [m.output for m in result.models] == ["package.model"]
    assert result.models[0].identical_bytes


def test_the_bundle_round_trips_and_refuses_tampering(ws: Workspace, ranker: RankingModel) -> None:
    registry = ModelRegistry(ws)
    version = registry.resolve(RANKER, "production")
    data = ws.artifacts.get_bytes(version.artifact_sha256)
    again = load_predictor(data, ArtifactFormat.RANKER)
    pages = _pages(ranker, 5)
    assert again.rank(pages, explore=False) == ranker.rank(pages, explore=False)
    # a bundle whose embedded click model was swapped no longer matches the sha256 its manifest pins
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members["click_model.bin"] = members["click_model.bin"].replace(b"schema.json", b"schema.jsoN", 1)
    forged = io.BytesIO()
    with zipfile.ZipFile(forged, "w") as archive:
        for name, payload in members.items():
            archive.writestr(name, payload)
    with pytest.raises(IntegrityError, match="member 'click_model.bin' has sha256 .* but its manifest pins"):
        load_predictor(forged.getvalue(), ArtifactFormat.RANKER)
    # and bytes altered in the artifact store are never loaded
    path = ws.artifacts.path_for(version.artifact_sha256)
    os.chmod(path, 0o644)
    try:
        path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
        with pytest.raises(ArtifactCorrupted):
            registry.load(version)
    finally:
        path.write_bytes(data)
        os.chmod(path, 0o444)


def test_out_of_stock_is_never_shown_and_diversity_holds(ranker: RankingModel) -> None:
    pages = _pages(ranker, 80, seed=1)
    limit = ranker.rules["max_per_value"]
    for page, slate in zip(pages, ranker.rank(pages), strict=True):
        by_id = {c["product_id"]: c for c in page["candidates"]}
        assert all(by_id[item]["in_stock"] for item in slate["items"])
        assert slate["eligible"] == sum(c["in_stock"] for c in page["candidates"])
        if not slate["explored"]:
            fibers = [by_id[item]["fiber"] for item in slate["items"]]
            if max(fibers.count(f) for f in fibers) > limit:  # only when no other fiber could take the place
                rest = [c for c in page["candidates"] if c["in_stock"] and c["product_id"] not in slate["items"]]
                assert all(fibers.count(c["fiber"]) >= limit for c in rest)
            assert diversity_holds(page["candidates"], slate["items"], "fiber", limit)
            assert slate["scores"][0] == max(slate["scores"])  # the best eligible product leads


def test_a_search_for_one_fiber_still_fills_the_page(ranker: RankingModel) -> None:
    merino = [r for r in ranker.catalog_records if r["fiber"] == "merino" and r["in_stock"]][:20]
    other = next(r for r in ranker.catalog_records if r["fiber"] == "cotton" and r["in_stock"])
    page = {"query": "merino yarn", "k": 10, "candidates": [r["product_id"] for r in [*merino, other]]}
    slate = ranker.rank([page], explore=False)[0]
    fibers = [ranker.catalog_records[ranker.row_of[i]]["fiber"] for i in slate["items"]]
    assert len(slate["items"]) == 10 and fibers.count("cotton") == 1 and fibers.count("merino") == 9


def test_explored_slates_carry_their_propensities(ranker: RankingModel) -> None:
    rate = ranker.exploration_rate
    assert 0 < rate < 1
    pages = _pages(ranker, 400, seed=2, out_of_stock=0.0)
    slates = ranker.rank(pages)
    explored = [s for s in slates if s["explored"]]
    assert 0 < len(explored) < len(slates) * 3 * rate  # a small slice, not every slate
    top = ranker.explore_below
    assert top == 3
    greedy_of = {id(page): s["items"] for page, s in zip(pages, ranker.rank(pages, explore=False), strict=True)}
    for page, slate in zip(pages, slates, strict=True):
        n = slate["eligible"]
        greedy_p = (1 - rate) + rate / (n - top)
        props = slate["propensities"]
        # the top places always show the greedy items: shown with certainty
        assert slate["items"][:top] == greedy_of[id(page)][:top] and props[:top] == [1.0] * top
        assert all(0 < p < 1 for p in props[top:])
        if not slate["explored"]:
            assert props[top:] == pytest.approx([greedy_p] * (len(props) - top))
        else:  # below the top, an item is either where greedy would put it, or there by exploration alone
            assert all(p == pytest.approx(rate / (n - top)) or p == pytest.approx(greedy_p) for p in props[top:])
            assert slate["items"][top:] != greedy_of[id(page)][top:]
    greedy = ranker.rank(pages[:50], explore=False)  # golden checks rank without exploring: deterministic
    assert greedy == ranker.rank(pages[:50], explore=False) and not any(s["explored"] for s in greedy)


def test_without_candidates_it_generates_them_from_the_recommenders(ranker: RankingModel) -> None:
    known = str(ranker.recs.models["popular"].users[0])
    slates = ranker.rank([{"user_id": known, "k": 10}, {"k": 5}], explore=False)
    assert [len(s["items"]) for s in slates] == [10, 5]
    stock = dict(zip(ranker.catalog["product_id"], ranker.catalog["in_stock"], strict=True))
    assert all(stock[item] for s in slates for item in s["items"])


def test_a_page_scores_like_a_batch(ranker: RankingModel) -> None:
    pages = _pages(ranker, 40, seed=5)  # 40 pages x 30 candidates: the vectorized click-model path
    batch = ranker.rank(pages, explore=False)
    one_by_one = [ranker.rank([page], explore=False)[0] for page in pages]  # the per-record path
    for a, b in zip(batch, one_by_one, strict=True):
        assert a["items"] == b["items"] and np.allclose(a["scores"], b["scores"], atol=1e-9)


class _BrokenClickModel:
    """The click model part failing on every use (a fault injected into the loaded ranker)."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError("click model part failed")


@pytest.fixture(scope="module")
def server(ws: Workspace) -> Iterator[tuple[BackgroundServer, Any]]:
    app = create_app(ws, refresh_s=0.0)
    with BackgroundServer(app) as running:
        yield running, app


def test_serving_by_name_answers_slates_with_the_version(ws: Workspace, server: tuple[BackgroundServer, Any],
                                                         ranker: RankingModel) -> None:
    running, _app = server
    version = ModelRegistry(ws).resolve(RANKER, "production").version
    page = _pages(ranker, 1, seed=3)[0]
    instances = [page, {"user_id": "u0000001", "query": "", "country": "US", "device": "desktop", "k": 4}]
    response = httpx.post(f"{running.url}/v1/models/{RANKER}:predict", json={"instances": instances}, timeout=30)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["model_name"], body["model_version"], body["served_by"]) == (RANKER, version, "model")
    assert response.headers["x-yarnit-model-version"] == str(version)
    first, second = body["predictions"]
    assert len(first["items"]) <= 10 and len(second["items"]) == 4
    for slate in (first, second):
        assert len(slate["items"]) == len(set(slate["items"])) == len(slate["scores"]) == len(slate["propensities"])
        assert isinstance(slate["explored"], bool) and all(0 < p <= 1 for p in slate["propensities"])
    # OIP v2: item ids as BYTES [N, K], scores and propensities FP64 (no candidates over v2: generated)
    v2 = httpx.post(f"{running.url}/v2/models/{RANKER}/infer", timeout=30, json={"inputs": [
        {"name": "user_id", "shape": [2], "datatype": "BYTES", "data": ["u0000001", "u0000002"]},
        {"name": "k", "shape": [2], "datatype": "INT64", "data": [3, 3]}]})
    assert v2.status_code == 200, v2.text
    outputs = {o["name"]: o for o in v2.json()["outputs"]}
    assert outputs["items"]["shape"] == [2, 3] and outputs["items"]["datatype"] == "BYTES"
    assert outputs["propensities"]["datatype"] == "FP64" and outputs["length"]["data"] == [3, 3]
    assert v2.json()["model_version"] == str(version)
    metadata = httpx.get(f"{running.url}/v2/models/{RANKER}", timeout=30).json()  # declares what infer answers
    assert {o["name"]: o["datatype"] for o in metadata["outputs"]} == {o["name"]: o["datatype"] for o in outputs.values()}
    # a probability model ignores candidates, like any field it does not use (the v1 schema is shared)
    plain = httpx.post(f"{running.url}/v1/models/ctr:predict", timeout=30,
                       json={"instances": [{"country": "US", "candidates": ["p000001"]}, {"country": "US"}]})
    assert plain.status_code == 200 and len(set(plain.json()["predictions"])) == 1


def test_the_served_ranker_scores_a_page_with_its_click_model_compiled_and_ranks_as_the_bundle_does(
        server: tuple[BackgroundServer, Any], ranker: RankingModel) -> None:
    running, app = server
    page = _pages(ranker, 1, seed=6)[0]
    assert httpx.post(f"{running.url}/v1/models/{RANKER}:predict", timeout=30,
                      json={"instances": [page]}).status_code == 200  # loaded
    loaded = app.state.runtime.current(RANKER)
    assert loaded.predictor.fast_click is not None and ranker.fast_click is None
    assert loaded.compile.reason == "ranking models are not compiled; click model: linear-onnx"
    assert loaded.compile.compiled is None  # the bundle is never scored inline by a compiled row cost
    for page in _pages(ranker, 20, seed=7):
        served, native = loaded.predictor.rank([page], explore=False)[0], ranker.rank([page], explore=False)[0]
        assert served["items"] == native["items"]
        assert np.allclose(served["scores"], native["scores"], rtol=0, atol=1e-6)


def test_when_the_click_model_part_fails_popular_items_answer(ws: Workspace, server: tuple[BackgroundServer, Any],
                                                                ranker: RankingModel) -> None:
    running, app = server
    model = app.state.runtime.current(RANKER).predictor
    click, fast = model.click, model.fast_click
    model.click = model.fast_click = _BrokenClickModel()  # the part and its compiled twin
    try:
        page = _pages(ranker, 1, seed=4)[0]
        body = httpx.post(f"{running.url}/v1/models/{RANKER}:predict", timeout=30,
                          json={"instances": [page, {"k": 5}]}).json()
    finally:
        model.click, model.fast_click = click, fast
    assert (body["served_by"], body["model_version"], body["reason"]) == ("fallback", 0, "error")
    popular = ModelRegistry(ws).resolve(RANKER, "production").signature["fallback"]["popular"]
    rank = {item: i for i, item in enumerate(popular)}
    shown = body["predictions"][0]["items"]
    in_stock = {c["product_id"] for c in page["candidates"] if c["in_stock"]}
    assert shown and set(shown) <= in_stock
    assert [rank.get(i, len(rank)) for i in shown] == sorted(rank.get(i, len(rank)) for i in shown)
    assert body["predictions"][1]["items"] == popular[:5]


def test_a_version_whose_golden_slates_are_wrong_is_not_swapped_in(ws: Workspace,
                                                                   server: tuple[BackgroundServer, Any]) -> None:
    running, app = server
    registry = ModelRegistry(ws)
    good = registry.resolve(RANKER, "production")
    golden = [dict(g, items=list(reversed(g["items"]))) for g in good.signature["golden"]]
    bad = registry.register(RANKER, ws.artifacts.get_bytes(good.artifact_sha256), ArtifactFormat.RANKER,
                            signature=good.signature | {"golden": golden})
    registry.promote(RANKER, bad.version)
    try:
        body = httpx.post(f"{running.url}/v1/models/{RANKER}:predict", timeout=30,
                          json={"instances": [{"k": 3}]}).json()
        assert body["model_version"] == good.version
        assert any(f"{RANKER} v{bad.version} was not swapped in" in a for a in app.state.runtime.alerts)
    finally:
        registry.roll_back(RANKER)


def test_two_days_of_the_world_ranked_over_http_log_the_rankers_version(ws: Workspace,
                                                                       server: tuple[BackgroundServer, Any]) -> None:
    running, _app = server
    version = ModelRegistry(ws).resolve(RANKER, "production").version
    ranker = RankerServiceRanker(running.url, RANKER)
    ranker.wait_ready()
    days = []
    try:
        for day in World(WorldConfig(seed=7, sessions_per_day=120, n_users=400), ranker=ranker).run(2):
            days.append(ranker.annotate(day))
    finally:
        ranker.close()
    assert ranker.served_versions == {f"{RANKER}:v{version}"} and set(ranker.served_by) == {"model"}
    for day in days:
        log = day.impressions
        assert len(log) > 0 and set(log["model_version"]) == {f"{RANKER}:v{version}"}
        assert set(day.clicks["model_version"]) <= {f"{RANKER}:v{version}"}
        assert log["propensity"].between(0, 1, inclusive="right").all()
        # certain only in the top places, which exploration never touches
        assert (log.loc[log["position"] > 3, "propensity"] < 1).all()
        shown_out = log[~log["in_stock"].astype(bool)]
        assert len(shown_out) <= len(log) * 0.01  # only where a page had fewer than 10 products in stock
    assert ranker.explored > 0 and ranker.pages == sum(len(d.sessions) for d in days)


def test_the_bundle_manifest_is_plain_json_and_holds_no_pickles(ws: Workspace) -> None:
    version = ModelRegistry(ws).resolve(RANKER, "production")
    with zipfile.ZipFile(io.BytesIO(ws.artifacts.get_bytes(version.artifact_sha256))) as archive:
        names = sorted(archive.namelist())
        manifest = json.loads(archive.read("manifest.json"))
    assert names == ["click_model.bin", "manifest.json", "recs.bin"]
    assert manifest["rules"]["drop_out_of_stock"] is True and manifest["click_model"]["name"] == "ctr"


# -- what loading and checking a ranker costs (issue 18, h47) ---------------------------------------------------------
def test_bundles_of_the_same_bytes_share_their_parsed_parts_and_other_bytes_parse_anew(ws: Workspace) -> None:
    from yarnit.recipes.ranker import _PARTS

    registry = ModelRegistry(ws)
    data = ws.artifacts.get_bytes(registry.resolve(RANKER, "production").artifact_sha256)
    _PARTS.clear()
    loads = _PARTS.loads
    first, second = RankingModel.from_bytes(data), RankingModel.from_bytes(data)
    assert _PARTS.loads - loads == 2  # one click model and one recommender set, parsed once for both bundles
    assert first is not second and first._rng is not second._rng  # each load keeps its own exploration and state
    assert first.click is second.click and first.recs is second.recs

    # another click model in the same bundle: its recommenders are shared, its click model is parsed anew
    day = next(iter(World(WorldConfig(seed=5, sessions_per_day=200, n_users=600)).run(1)))
    fitted = make_trainer("logistic").fit(FRAME_TRANSFORMS["ctr_features_v1"](day.impressions),
                                          day.impressions["clicked"].to_numpy(), seed=0)
    other = registry.register("ctr", fitted.artifact, fitted.artifact_format, signature={
        "inputs": RAW_INPUTS, "output": "click probability", "transform": "ctr_features_v1"})
    repinned = RankingModel.from_bytes(RankingModel.with_upstream(data, other, fitted.artifact))
    assert _PARTS.loads - loads == 3 and repinned.recs is first.recs and repinned.click is not first.click
    assert repinned.upstream["version"] == other.version and first.upstream["version"] != other.version

    # what a hit returns ranks as a fresh parse of the same bytes does
    _PARTS.clear()
    fresh = RankingModel.from_bytes(data)
    assert fresh.click is not first.click and fresh.recs is not first.recs
    pages = _pages(fresh, 5, seed=3)
    assert first.rank(pages, explore=False) == fresh.rank(pages, explore=False)


def test_the_parts_memo_is_bounded_and_keeps_the_most_recently_used() -> None:
    from yarnit.recipes.ranker import PartsCache

    memo = PartsCache(2)
    made: list[str] = []

    def load(name: str) -> Any:
        return lambda: made.append(name) or {"part": name}

    one = memo.get(("a",), load("a"))
    assert memo.get(("a",), load("a again")) is one and made == ["a"]
    memo.get(("b",), load("b"))
    memo.get(("a",), load("a again"))  # a used last: b is the one to go
    memo.get(("c",), load("c"))
    assert made == ["a", "b", "c"]
    assert memo.get(("a",), load("a again")) is one
    memo.get(("b",), load("b again"))
    assert made == ["a", "b", "c", "b again"]
    memo.get(("d", None), load("unpinned"))  # no sha256 to key it by: loaded every time, never kept
    memo.get(("d", None), load("unpinned"))
    assert made[-2:] == ["unpinned", "unpinned"] and memo.loads == 6


def test_the_checks_popularity_loop_is_simulated_once_for_the_same_world(ws: Workspace,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Two checks of the ranker on the same loop world: the ranker's own loop runs each time, popularity's once
    (a fixed rule on a seeded world), and both verdicts carry the same closed-loop figures."""
    from yarnit.recipes import ranker as ranker_module
    from yarnit.world.rankers import PopularityRanker

    ranked: list[int] = []
    real = PopularityRanker.rank_batch
    monkeypatch.setattr(PopularityRanker, "rank_batch", lambda self, batch: ranked.append(1) or real(self, batch))
    monkeypatch.setattr(ranker_module, "_POPULARITY_CTR", {}, raising=False)  # a memo of an earlier test: gone
    runner = PipelineRunner(ws)
    config = {"loop_sessions": 150, "loop_seed": 7, "promote": False}
    verdicts = []
    for _ in range(2):
        result = runner.run(builtin_pipeline(RANKER), config=config, force=True)
        verdicts.append(result.value("check", "verdict"))
        if len(verdicts) == 1:
            once = len(ranked)
    assert once > 0 and len(ranked) == once, "popularity's loop world was simulated again"
    assert verdicts[0]["closed_loop_ctr"] == verdicts[1]["closed_loop_ctr"]
    assert verdicts[0]["ctr_ratio_vs_popularity"] == verdicts[1]["ctr_ratio_vs_popularity"]
