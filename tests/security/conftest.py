from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from testsupport import TOKEN, register_ctr

from yarnit.core import Settings, SimulatedClock
from yarnit.storage import Workspace, open_workspace


@pytest.fixture
def guarded_ws(tmp_path: Path, clock: SimulatedClock) -> Iterator[Workspace]:
    """A workspace with an API token and ctr v1 (production), v2 registered."""
    ws = open_workspace(Settings.for_home(tmp_path / "home", api_token=TOKEN), clock)
    register_ctr(ws)
    yield ws
    ws.close()


@pytest.fixture
def canary_secret(tmp_path: Path) -> tuple[Path, str]:
    """A file outside the workspace whose text must never come back from anything yarnit serves or prints."""
    outside = tmp_path / "outside"
    outside.mkdir()
    text = "CANARY-4f1c2b9e-never-served"
    secret = outside / "secret.json"
    secret.write_text('{"canary": "%s", "model": "ctr", "stages": []}' % text, encoding="utf-8")
    return secret, text
