"""The pages added for issue 19's remaining pieces, without a browser: error pages, the model card page, the slice
picker, the pipeline graph and the drift histograms' binning.

Errors on a page are pages (HTML in the layout, with the status and what to do), while the same mistake on the
JSON API stays JSON; the graph's edges come from the declared step inputs or, for a pipeline the dashboard cannot
import, from the values the run recorded.
"""

from __future__ import annotations

from fastapi.testclient import TestClient
from testsupport import register_ctr

from yarnit.api import create_app
from yarnit.api.dashboard.records_pages import step_graph
from yarnit.charts import dag_layers
from yarnit.monitoring.served_drift import ProfileColumn, _category_bins, _numeric_bins
from yarnit.training import Pipeline, PipelineRunner, Step, ValueKind


def test_page_errors_are_pages_and_api_errors_stay_json(sqlite_ws) -> None:
    register_ctr(sqlite_ws, versions=2)
    with TestClient(create_app(sqlite_ws)) as client:
        for path, status, says in [("/ui/models/nosuch", 404, "nosuch"), ("/ui/nosuch", 404, "/ui/nosuch"),
                                   ("/ui/runs/run_nosuch", 422, "run_id"), ("/ui/models/ctr?window=2d", 422, "window"),
                                   ("/ui/models/ctr?by=email", 422, "Cannot slice quality by &#x27;email"),
                                   ("/ui/models/nosuch/card", 404, "nosuch"),
                                   ("/ui/incidents/inc_nosuch", 404, "inc_nosuch")]:
            response = client.get(path)
            assert response.status_code == status, (path, response.text[:300])
            assert response.headers["content-type"].startswith("text/html"), path
            text = response.text
            assert text.count("<h1>") == 1 and f"(HTTP {status})</h1>" in text and says in text, (path, text[-600:])
            assert 'aria-label="Dashboard"' in text and "Back to the overview" in text
        api = client.get("/api/models/nosuch")
        assert api.status_code == 404 and api.json()["error"] == "ModelNotFound"
        assert client.get("/api/nosuch").json() == {"detail": "Not Found"}
        assert client.get("/api/models/ctr/versions?limit=-5").headers["content-type"].startswith(
            "application/json")


def test_the_card_page_and_the_slice_picker(sqlite_ws) -> None:
    register_ctr(sqlite_ws, versions=2)
    with TestClient(create_app(sqlite_ws)) as client:
        model = client.get("/ui/models/ctr?window=7d&by=device").text
        assert 'name="by"' in model and '<option value="device" selected>' in model
        assert '<option value="7d" selected>' in model and "with a device recorded" in model
        assert 'href="/ui/models/ctr/card?version=1"' in model
        card = client.get("/ui/models/ctr/card?version=2")
        assert card.status_code == 200, card.text[-500:]
        assert card.text.count("<h1>") == 1 and "Model card: ctr v2" in card.text
        assert "Metrics by distribution" in card.text and "Responsible-AI checklist" in card.text
        assert '<a href="/ui/models/ctr/card?version=1">v1</a>' in card.text and "<strong>v2</strong>" in card.text


def _pipeline(name: str) -> Pipeline:
    return Pipeline(name, [
        Step("load", lambda ctx: {"rows": {"n": 3}}, outputs={"rows": ValueKind.REF}),
        Step("split", lambda ctx, rows: {"train": {"n": rows["n"] - 1}, "test": {"n": 1}}, inputs={"rows": "load.rows"},
             outputs={"train": ValueKind.REF, "test": ValueKind.REF}),
        Step("fit", lambda ctx, train: {"model": {"w": train["n"]}}, inputs={"train": "split.train"},
             outputs={"model": ValueKind.REF}),
        Step("score", lambda ctx, model, test: {"auc": {"v": 0.7}}, inputs={"model": "fit.model", "test": "split.test"},
             outputs={"auc": ValueKind.REF}),
    ])


def test_the_run_page_draws_the_graph_from_the_recorded_inputs(sqlite_ws) -> None:
    run = PipelineRunner(sqlite_ws).run(_pipeline("diamond")).run
    again = PipelineRunner(sqlite_ws).run(_pipeline("diamond")).run  # every step answered from the cache
    with TestClient(create_app(sqlite_ws)) as client:
        page = client.get(f"/ui/runs/{run.id}").text
        assert page.count('class="dag-edge"') == 4 and page.count('class="dag-node"') == 4
        assert "load.rows → split.rows" in page and "split.test → score.test" in page
        assert 'class="dag-ok"' in page and "succeeded · " in page
        cached = client.get(f"/ui/runs/{again.id}").text
        assert cached.count('class="dag-cached"') == 4 and "cache hit" in cached


def test_the_graph_of_a_builtin_pipeline_uses_its_declared_inputs_and_shows_steps_not_run() -> None:
    nodes, edges = step_graph("yarnit-ctr", [])
    assert len(nodes) >= 4 and all(n.detail == "not run" for n in nodes)
    names = {n.id for n in nodes}
    assert edges and all(a in names and b in names for a, b, _ in edges)
    layer = dag_layers([n.id for n in nodes], [(a, b) for a, b, _ in edges])
    assert all(layer[a] < layer[b] for a, b, _ in edges)  # every arrow points down
    assert dag_layers(["a", "b"], [("a", "b"), ("b", "a")])  # a cycle ends, it does not loop


def test_histogram_bins_come_from_the_quantiles_and_sum_to_one() -> None:
    levels = [i / 100 for i in range(101)]
    uniform = ProfileColumn("float64", [10 * q for q in levels], None, None, 1000)
    shifted = ProfileColumn("float64", [5 + 10 * q for q in levels], None, None, 1000)
    bins = _numeric_bins(uniform, shifted, 10)
    assert abs(sum(bins["reference"]) - 1) < 1e-9 and abs(sum(bins["current"]) - 1) < 1e-9
    assert len(bins["labels"]) == 10 and bins["edges"][0] < 0.2 and bins["edges"][-1] > 14.8
    assert sum(bins["reference"][:3]) > 0.25 and sum(bins["current"][:3]) < 0.02  # shifted right by half
    a = ProfileColumn("string", None, None, {"x": 6, "y": 3, "z": 1}, 10)
    b = ProfileColumn("string", None, None, {"x": 1, "y": 1, "w": 8}, 10)
    cats = _category_bins(a, b, 2)
    assert cats["labels"] == ["w", "x", "other"] and cats["current"] == [0.8, 0.1, 0.1]
    assert abs(sum(cats["reference"]) - 1) < 1e-9


# --- readiness on the model page (issue 22) ---------------------------------------------------------------------
def test_the_model_page_shows_the_readiness_the_api_json_gives(sqlite_ws) -> None:
    import time
    from html import escape

    from yarnit.readiness import SECTION_TITLES

    register_ctr(sqlite_ws, versions=2)
    with TestClient(create_app(sqlite_ws)) as client:
        api = client.get("/api/readiness/ctr").json()
        assert api["model"] == "ctr" and api["mode"] == "workspace"
        assert set(api["sections"]) == {"data", "model", "infrastructure", "monitoring"}
        assert api["final"] == min(api["sections"].values()) and len(api["tests"]) == 28
        for test in api["tests"]:
            assert test["points"] in (0, 0.5, 1) and set(test) >= {"id", "section", "title", "level", "evidence",
                                                                  "to_earn"}
            assert (test["points"] < 1) == bool(test["to_earn"]), test  # a missing point names its command
        first = client.get("/ui/models/ctr").text  # never scored inline: the first view starts it in the background
        assert '<h2 id="readiness">Readiness: ML Test Score</h2>' in first and "Being scored" in first
        heading = f'<h2 id="readiness">Readiness: ML Test Score {api["final"]:g}</h2>'
        deadline = time.monotonic() + 60
        while heading not in (page := client.get("/ui/models/ctr", headers={"Cache-Control": "no-cache"}).text):
            assert time.monotonic() < deadline, "the model page never showed the score the API gives"
            time.sleep(0.05)
        for section, points in api["sections"].items():
            assert f"{SECTION_TITLES[section]}</a></td><td class=num>{points:g}</td>" in page
        missing = [t for t in api["tests"] if t["points"] < 1]
        assert f"Missing points ({len(missing)} of 28 tests below 1 point)" in page
        assert missing and all(escape(t["to_earn"]) in page for t in missing)
        assert page.count("<summary>All 28 tests with their evidence</summary>") == 1
        assert client.get("/ui/models/nosuch").status_code == 404  # no scoring of an unknown model


def _rescored(cache, ws, old, deadline_s=60.0):
    """The cache's assessment once a background rescore replaced ``old`` (waits for it, bounded)."""
    import time

    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        result, _ = cache.get(ws, "ctr")
        if result is not old:
            return result
        time.sleep(0.05)
    raise AssertionError("the assessment was never rescored")


def test_readiness_is_kept_for_the_model_page_and_rescored_in_the_background_after_a_new_record(
        sqlite_ws, tmp_path) -> None:
    from yarnit.api.dashboard.readiness_pages import ReadinessCache, records_fingerprint
    from yarnit.readiness import attest

    register_ctr(sqlite_ws, versions=1)
    kept = ReadinessCache(ttl_s=3600)
    first, age = kept.get(sqlite_ws, "ctr")
    assert age == 0.0 and records_fingerprint(sqlite_ws) == records_fingerprint(sqlite_ws)
    again, age = kept.get(sqlite_ws, "ctr")
    assert again is first and age > 0  # nothing recorded since: the kept assessment, with its age
    doc = tmp_path / "tuning.md"
    doc.write_text("grid over C: C=1 best on the holdout\n")
    attest(sqlite_ws, "ctr", "model.3", doc, reason="grid search by hand", actor="user:test")  # a new record
    shown, _ = kept.get(sqlite_ws, "ctr")
    assert shown is first  # shown at once; a background thread rescores it
    result = _rescored(kept, sqlite_ws, first)
    assert result.score.sections["model"] == first.score.sections["model"] + 0.5
    tuned = next(f for f in result.score.findings if f.test_id == "model.3")
    assert tuned.level == "manual" and tuned.evidence[0].ref == str(doc.resolve())
    stale = ReadinessCache(ttl_s=0.0)  # and past its ttl, even with no new record
    old, _ = stale.get(sqlite_ws, "ctr")
    assert _rescored(stale, sqlite_ws, old).score.final == old.score.final
