"""The rater page in headless Chromium: keyboard answers reach the store, answers given offline are kept
and sent when the network is back."""

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
    browser = Browser(tmp_path / "profile")
    try:
        with BackgroundServer(create_app(ws, refresh_s=0.0)) as server:
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
    finally:
        browser.close()
        ws.close()
