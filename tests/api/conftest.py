from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from testsupport import TOKEN, register_ctr

from yarnit.core import Settings, SimulatedClock
from yarnit.storage import Workspace, open_workspace


@pytest.fixture
def token_ws(tmp_path: Path, clock: SimulatedClock) -> Iterator[Workspace]:
    ws = open_workspace(Settings.for_home(tmp_path / "home", api_token=TOKEN), clock)
    register_ctr(ws)
    yield ws
    ws.close()
