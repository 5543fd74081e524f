"""The dashboard in headless Chromium against a running server with a short operate demo's workspace.

Each page loads with no console error and shows its key content; the overview reads at phone width
and is keyboard navigable; a rollback clicked in the UI (token, reason, confirmation) is audited with
its actor and the next prediction names the previous version; the same action without the token is
refused and changes nothing. Screenshots go to ``$YARNIT_SCREENSHOTS`` (``docs/screenshots`` when
regenerating the committed ones), else to the test's temporary directory; each page's first
contentful paint is recorded there too (``render-ms.json``), never asserted (speed is not a test).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from testsupport import TOKEN

from yarnit.incidents import IncidentStore
from yarnit.registry import ModelRegistry
from yarnit.training import RunStore
from yarnit.world import WorldConfig
from yarnit.world.traffic import serve_traffic

from .conftest import AUTH

# a four-day operate demo (about a minute on a loaded machine) and one Chromium
pytestmark = pytest.mark.timeout(600)
# first contentful paint and the navigation's response end, in ms since the navigation started
RENDER = """() => new Promise(resolve => {
  const nav = performance.getEntriesByType('navigation')[0];
  const done = fcp => resolve({fcp: fcp, response_end: nav ? nav.responseEnd : null});
  const seen = performance.getEntriesByName('first-contentful-paint')[0];
  if (seen) { done(seen.startTime); return; }
  new PerformanceObserver(list => {
    const p = list.getEntriesByName('first-contentful-paint')[0];
    if (p) { done(p.startTime); }
  }).observe({type: 'paint', buffered: true});
  setTimeout(() => done(null), 10000);
})"""
RENDER_MS: dict[str, dict[str, float | None]] = {}


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    out = Path(os.environ.get("YARNIT_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    out.mkdir(parents=True, exist_ok=True)
    yield out
    (out / "render-ms.json").write_text(json.dumps(RENDER_MS, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def pages(workspace: Any) -> list[tuple[str, str, list[str]]]:
    """(screenshot name, path, texts the page must show)."""
    runs = RunStore(workspace).list(None, 30)
    run = next((r for r in runs if r.pipeline == "yarnit-ctr"), runs[0])  # the training pipeline: a real graph
    incident = IncidentStore.open(workspace.home, workspace.clock).list("all", limit=1)[0]
    return [
        ("overview", "/", ["Overview", "production", "Error budgets left", "Alerts of the last day", "ctr-availability"]),
        ("model", "/ui/models/ctr?window=7d", ["Alias history", "CTR 95 % CI", "Roll back production", "Lineage of v", "Model card",
                                               "slice by", "The whole model card"]),
        ("card", "/ui/models/ctr/card", ["Model card: ctr v", "Metrics by distribution", "Responsible-AI checklist"]),
        ("rollout", "/ui/rollouts/ctr", ["Canary analysis per metric", "error_rate", "Decisions"]),
        ("slos", "/ui/slos", ["ctr-availability", "Burn rate per window", "Error budget left over time"]),
        ("drift", "/ui/drift/ctr", ["Distance per feature", "Distance per day", "Per feature", "One feature",
                                    "Reference against current", "distance per day, as the monitor recorded it"]),
        ("data", "/ui/data", ["yarnit-impressions-daily", "daily data checks", "Deletion receipts"]),
        ("incidents", "/ui/incidents", [incident.title]),
        ("incident", f"/ui/incidents/{incident.id}", ["Timeline", "Triage", "Postmortem draft"]),
        ("runs", "/ui/runs", ["Pipeline runs", run.pipeline]),
        ("run", f"/ui/runs/{run.id}", ["Steps", "Wall time per step", "Pipeline graph"]),
    ]


# page -> (a CSS selector of a part further down, its screenshot's name)
PARTS = {"drift": ("section[aria-labelledby=one-feature]", "drift-feature"), "run": ("figure:has(svg#dag)", "run-graph")}


def open_page(browser: Any, url: str, *, width: int = 1280, height: int = 800) -> tuple[Any, Any, list[str]]:
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    response = page.goto(url, wait_until="load")
    assert response is not None and response.status == 200, url
    return context, page, errors


def test_each_page_loads_without_console_errors_and_shows_its_key_content(browser, server, workspace, shots) -> None:
    for name, path, texts in pages(workspace):
        context, page, errors = open_page(browser, server.url + path)
        try:
            RENDER_MS[name] = page.evaluate(RENDER)
            text = page.inner_text("main")
            missing = [t for t in texts if t not in text]
            assert not missing, f"{path} lacks {missing}"
            assert page.locator("h1").count() == 1 and page.locator("nav a").count() >= 4, path
            for svg in page.locator("svg[role=img]").all():  # every chart is named for screen readers
                assert svg.get_attribute("aria-labelledby"), path
            page.screenshot(path=str(shots / f"{name}.png"))
            if name in PARTS:  # a piece below the first screen, shot on its own
                part, shot = PARTS[name]
                page.locator(part).screenshot(path=str(shots / f"{shot}.png"))
            assert errors == [], f"{path}: {errors}"
        finally:
            context.close()


def test_the_overview_reads_at_phone_width_and_is_keyboard_navigable(browser, server, shots) -> None:
    context, page, errors = open_page(browser, server.url + "/", width=390, height=844)
    try:
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"the page scrolls sideways by {overflow} px at phone width"
        page.screenshot(path=str(shots / "overview-phone.png"))
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "Skip to content"
        page.keyboard.press("Enter")
        assert page.evaluate("document.activeElement.id") == "main"
        page.keyboard.press("Tab")  # on from the main region: the first link in it
        assert page.evaluate("document.activeElement.tagName") in ("A", "INPUT", "BUTTON", "SUMMARY")
        assert errors == []
    finally:
        context.close()


def a_page_request() -> dict[str, Any]:
    """One page of the shop's candidates, as the world's ranker sends it (same seed as the demo)."""
    request = next(serve_traffic(WorldConfig(seed=0, sessions_per_day=5, n_users=50), 1))
    return {"instances": request.instances}


def predict(http: httpx.Client, body: dict[str, Any]) -> int:
    response = http.post("/v1/models/ctr:predict", json=body)
    assert response.status_code == 200, response.text
    return int(response.json()["model_version"])


def click_action(page: Any, endpoint_suffix: str, reason: str, *, accept: bool = True) -> str:
    form = page.locator(f"form.action[data-endpoint$='{endpoint_suffix}']")
    form.locator("input[name=reason]").fill(reason)
    page.once("dialog", lambda d: d.accept() if accept else d.dismiss())
    form.locator("button").click()
    status = page.locator("#action-status")
    status.filter(has_text="").wait_for()
    page.wait_for_function("document.getElementById('action-status').textContent.length > 0", timeout=30_000)
    return status.inner_text()


def test_an_action_without_the_token_is_refused_and_a_cancelled_one_changes_nothing(browser, server, http) -> None:
    context, page, errors = open_page(browser, server.url + "/ui/models/ctr")
    try:
        cancelled = click_action(page, "/actions/stop-training", "dashboard test: cancelled", accept=False)
        assert cancelled.startswith("Cancelled")
        refused = click_action(page, "/actions/stop-training", "dashboard test: no token")
        assert refused.startswith("Refused (HTTP 401)") and "Authorization" in refused
        assert http.get("/api/models/ctr/switches").json()["training_frozen"] is None
        # the browser logs the refused fetch's 401 itself; nothing else may be an error
        assert [e for e in errors if "401" not in e] == []
    finally:
        context.close()


def test_a_rollback_clicked_in_the_ui_is_audited_and_the_next_prediction_names_the_previous_version(
        browser, server, http, workspace, shots) -> None:
    registry = ModelRegistry(workspace)
    before = registry.aliases("ctr")["production"]
    newer = max(v.version for v in registry.versions("ctr") if v.metrics.get("blessed") and v.version != before)
    moved = http.post("/api/models/ctr/aliases/production", headers=AUTH,
                      json={"version": newer, "reason": "dashboard test: a release to roll back",
                            # a workspace whose budget is spent (YARNIT_TEST_DEMO_HOME: a faulted month) halts
                            # releases; this setup step is not what the test is about, so it overrides (audited)
                            "override_reason": "dashboard test setup"})
    assert moved.status_code == 200, moved.text
    body = a_page_request()
    assert predict(http, body) == newer

    context, page, errors = open_page(browser, server.url + "/ui/models/ctr")
    try:
        page.fill("#token", TOKEN)
        done = click_action(page, "/actions/roll-back", "dashboard test: the new release misranks")
        assert done.startswith("Done"), done
        history = http.get("/api/models/ctr/switches").json()["history"]
        assert history[0]["action"] == "roll_back" and history[0]["actor"].startswith("token:")
        assert history[0]["detail"]["reason"] == "dashboard test: the new release misranks"
        assert predict(http, body) == before  # this server took the rollback at once
        page.reload(wait_until="load")
        audited = page.inner_text("main")
        assert "roll_back" in audited and "dashboard test: the new release misranks" in audited
        page.screenshot(path=str(shots / "model-after-rollback.png"))
        assert errors == []
    finally:
        context.close()


def test_the_drift_picker_is_reachable_and_usable_from_the_keyboard(browser, server, shots) -> None:
    context, page, errors = open_page(browser, server.url + "/ui/drift/ctr")
    try:
        picker = page.locator("form.picker select[name=feature]")
        before = picker.input_value()
        for _ in range(80):  # Tab from the top of the page until the feature picker has the focus
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.name") == "feature":
                break
        assert page.evaluate("document.activeElement.name") == "feature", "the feature picker is not reachable"
        page.keyboard.press("ArrowDown")  # the next feature (or prediction, the last option)
        chosen = picker.input_value()
        assert chosen != before
        for _ in range(4):  # window, end, reference, then the button
            page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.tagName") == "BUTTON"
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert f"feature={chosen}" in page.url
        assert f"One feature: {chosen}" in page.inner_text("main")
        assert page.locator("svg#drift-hist, section[aria-labelledby=one-feature] p.muted").count() >= 1
        page.select_option("form.picker select[name=window]", "7d")
        page.select_option("form.picker select[name=reference]", "previous")
        with page.expect_navigation():
            page.click("form.picker button")
        assert "the window before" in page.inner_text("main")
        assert errors == []
    finally:
        context.close()


def test_the_slice_picker_shows_quality_by_slice(browser, server, shots) -> None:
    context, page, errors = open_page(browser, server.url + "/ui/models/ctr")
    try:
        page.select_option("form.picker select[name=window]", "7d")  # labels arrive late: the last day may have none
        page.select_option("form.picker select[name=by]", "device")
        with page.expect_navigation():
            page.click("form.picker button")
        assert "by=device" in page.url and ", by device" in page.inner_text("main")
        slices = {c.strip() for c in page.locator("table:below(form.picker) tbody tr td:nth-child(2)").all_inner_texts()}
        assert slices & {"app", "desktop", "mobile"}, slices  # the demo's devices, one row each
        heading = page.locator("h2", has_text="Quality of the last")
        heading.scroll_into_view_if_needed()
        page.evaluate("window.scrollBy(0, document.querySelector('form.picker').getBoundingClientRect().top - 60)")
        page.screenshot(path=str(shots / "model-slices.png"))
        assert errors == []
    finally:
        context.close()


def test_an_unknown_model_is_a_404_page_in_the_layout(browser, server, shots) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        response = page.goto(server.url + "/ui/models/nosuch", wait_until="load")
        assert response is not None and response.status == 404
        assert page.locator("h1").inner_text() == "Not found (HTTP 404)"
        assert "nosuch" in page.inner_text("main") and page.locator("nav a").count() >= 4
        page.screenshot(path=str(shots / "error-404.png"))
        assert [e for e in errors if "404" not in e] == []  # the browser logs the 404 itself
    finally:
        context.close()


def test_the_readiness_json_scores_the_demo_workspace_from_its_own_records(http) -> None:
    api = http.get("/api/readiness/ctr").json()
    assert api["mode"] == "workspace" and len(api["tests"]) == 28
    assert api["final"] == min(api["sections"].values())
    by_id = {t["id"]: t for t in api["tests"]}
    # what the short operate demo did, it earns from its own records: the validate step, an end-to-end run that
    # registered, the loop's daily data checks, SLOs the monitor evaluated
    for test in ("data.1", "infrastructure.3", "monitoring.1"):
        assert by_id[test]["points"] == 1 and by_id[test]["evidence"] and not by_id[test]["to_earn"], by_id[test]
    # tuning: the tune step of the run that trained production, a point only when it found those values tuned;
    # else 0 with the command that trains with the search's best value
    tuning = by_id["model.3"]
    assert tuning["evidence"] and tuning["evidence"][0]["ref"].endswith("/tune"), tuning
    assert (tuning["points"] == 1) == tuning["evidence"][0]["detail"].startswith("tuned:"), tuning
    assert tuning["points"] == 1 or tuning["to_earn"].startswith("yarnit pipeline run yarnit-ctr"), tuning


def test_the_model_page_shows_the_ml_test_score_its_sections_and_the_commands_to_earn_points(
        browser, server, http, shots) -> None:
    import time

    api = http.get("/api/readiness/ctr").json()
    heading = f'<h2 id="readiness">Readiness: ML Test Score {api["final"]:g}</h2>'
    deadline = time.monotonic() + 120  # earlier tests (a rollback) made records: a view starts the rescore
    while heading not in http.get("/ui/models/ctr", headers={"Cache-Control": "no-cache"}).text:
        assert time.monotonic() < deadline, "the model page never showed the score the API gives"
        time.sleep(0.2)
    context, page, errors = open_page(browser, server.url + "/ui/models/ctr")
    try:
        assert page.locator("h2#readiness").inner_text() == f"Readiness: ML Test Score {api['final']:g}"
        text = page.inner_text("main")
        for title in ("Features and data", "Model development", "ML infrastructure", "Monitoring"):
            assert title in text
        missing = [t for t in api["tests"] if t["points"] < 1]
        assert f"Missing points ({len(missing)} of 28 tests below 1 point)" in text
        flat = " ".join(text.split())  # the browser collapses runs of spaces inside a command
        assert [t["to_earn"] for t in missing if " ".join(t["to_earn"].split()) not in flat] == []
        section = page.locator("#readiness-monitoring")
        assert not section.is_visible()  # the 28 tests are folded until asked for
        page.get_by_text("All 28 tests with their evidence").click()
        assert section.is_visible() and f"Monitoring: {api['sections']['monitoring']:g} / 7" in section.inner_text()
        page.locator("h2#readiness").screenshot(path=str(shots / "model-readiness.png"))
        assert errors == []
    finally:
        context.close()
