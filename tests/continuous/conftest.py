"""Fixtures of the rollout tests: a simulated clock and a copy of a workspace with ctr v1 (production) and v2."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from testsupport import register_ctr

from yarnit.core import Settings, SimulatedClock, utc
from yarnit.storage import Workspace, open_workspace


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(utc(2026, 3, 2, 9))


@pytest.fixture(scope="module")
def template_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A closed workspace with ctr v1 (production) and v2 to roll out, built once and copied for each test."""
    home = tmp_path_factory.mktemp("template") / "home"
    with open_workspace(Settings.for_home(home), SimulatedClock(utc(2026, 3, 2, 9))) as workspace:
        register_ctr(workspace)
    return home


@pytest.fixture
def ws(tmp_path: Path, clock: SimulatedClock, template_home: Path) -> Iterator[Workspace]:
    shutil.copytree(template_home, tmp_path / "home")
    workspace = open_workspace(Settings.for_home(tmp_path / "home"), clock)
    yield workspace
    workspace.close()
