"""The rater page in headless Chromium: keyboard answers reach the store, answers given offline are kept
and sent when the network is back; with every host but 127.0.0.1 unreachable the page still works, and it
asks for nothing from anywhere else."""

from __future__ import annotations

from pathlib import Path

import pytest
from testsupport.chromium import Browser, chromium_path

from yarnit.api import create_app
from yarnit.api.server import BackgroundServer
from yarnit.core import Settings
from yarnit.data import Datasets
from yarnit.labels import Labels
from yarnit.storage import open_workspace
from yarnit.world import INTENTS, labeling_queries

pytestmark = pytest.mark.timeout(180)
TOKEN = "rater-page-token-0123456789abcdef"


def test_a_rater_labels_with_the_keyboard_and_offline_answers_are_sent_later(tmp_path: Path, clock) -> None:
    chromium_path()
    ws = open_workspace(Settings.for_home(tmp_path / "home", api_token=TOKEN), clock)
    frame = labeling_queries(seed=6, n=12)
    version = Datasets(ws).ingest_frame("queries", frame[["query_id", "query"]], source="world")
    labels = Labels(ws)
    labels.define_schema("intent", INTENTS, "brand: the query names a brand.")
    labels.create_task("t", dataset=version.ref, schema="intent", raters=["ana"], overlap=1,
                       key_column="query_id", text_column="query")
    browser = Browser(tmp_path / "profile", local_only=True)  # no host but 127.0.0.1 resolves
    try:
        with BackgroundServer(create_app(ws, refresh_s=0.0)) as server:
            browser.call("Network.enable")  # record every request the page makes
            browser.goto(f"{server.url}/labels/rate?task=t&rater=ana")
            browser.evaluate(f"document.getElementById('token').value = {TOKEN!r}; "
                             "document.getElementById('login').requestSubmit(); true")
            first = browser.wait_for(lambda: browser.evaluate("document.getElementById('text').dataset.key"),
                                     "the first item")
            assert browser.evaluate("document.getElementById('classes').children.length") == len(INTENTS)
            browser.press("3")  # the third class: brand
            browser.wait_for(lambda: len(labels.answers("t")) == 1, "the first answer to be stored")
            assert [(a.item_key, a.label) for a in labels.answers("t")] == [(first, "brand")]

            browser.offline(True)
            second = browser.wait_for(lambda: browser.evaluate("document.getElementById('text').dataset.key"),
                                      "the second item")
            assert second != first
            browser.press("4")  # how_to, while offline
            browser.wait_for(lambda: "1 answer(s) waiting" in browser.evaluate(
                "document.getElementById('status').textContent"), "the answer to wait in the outbox")
            assert len(labels.answers("t")) == 1  # nothing reached the server

            browser.offline(False)
            browser.wait_for(lambda: len(labels.answers("t")) == 2, "the offline answer to be sent", 60)
            assert {(a.item_key, a.label) for a in labels.answers("t")} == {(first, "brand"), (second, "how_to")}
            requested = browser.requested_urls()
            assert any(u.endswith("/answers") for u in requested)  # the recording saw the page's own calls
            assert [u for u in requested if not u.startswith(f"{server.url}/")] == []
            assert browser.evaluate("navigator.serviceWorker.ready.then(() => true)")  # it keeps the page
            page = f"{server.url}/labels/rate?task=t&rater=ana"
        # The server is gone: the page still opens (from its service worker) and shows the next queued item.
        browser.goto(page)
        third = browser.wait_for(lambda: browser.evaluate(
            "document.getElementById('text') && document.getElementById('text').dataset.key"), "a queued item")
        assert third not in (first, second) and browser.evaluate("document.getElementById('task').textContent") == "t"
    finally:
        browser.close()
        ws.close()


def test_the_rater_page_carries_every_asset_and_may_reach_only_its_own_server(tmp_path: Path, clock) -> None:
    import re

    from fastapi.testclient import TestClient

    ws = open_workspace(Settings.for_home(tmp_path / "home", api_token=TOKEN), clock)
    try:
        with TestClient(create_app(ws, refresh_s=0.0)) as http:
            page = http.get("/labels/rate?task=t&rater=ana")
    finally:
        ws.close()
    assert page.status_code == 200
    assert re.findall(r"(?i)(?:https?:|wss?:)?//[a-z0-9.-]+\.[a-z]", page.text) == []  # no URL of another host
    assert re.findall(r"(?i)<(?:script|link|img|iframe)[^>]*(?:src|href)=", page.text) == []  # no separate asset
    policy = dict(p.strip().split(" ", 1) for p in page.headers["content-security-policy"].split(";"))
    assert policy["default-src"] == "'none'" and policy["connect-src"] == "'self'"
