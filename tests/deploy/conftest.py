"""Fixtures of the load-test tests: a copy of a workspace with ctr v1 (production), v2, and logged traffic."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from testsupport import register_ctr
from testsupport.loadtest import log_traffic

from yarnit.core import Settings
from yarnit.loadtest import generator
from yarnit.storage import Workspace, open_workspace


@pytest.fixture(scope="module")
def loadtest_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built once per module, copied per test; the generator is compiled into it once."""
    home = tmp_path_factory.mktemp("loadtest") / "home"
    with open_workspace(Settings.for_home(home)) as ws:
        register_ctr(ws)
        log_traffic(ws)
        generator.build(ws.home / "loadtest" / "bin")
    return home


@pytest.fixture
def loadtest_home(tmp_path: Path, loadtest_template: Path) -> Path:
    shutil.copytree(loadtest_template, tmp_path / "home")
    return tmp_path / "home"


@pytest.fixture
def loadtest_ws(loadtest_home: Path) -> Iterator[Workspace]:
    with open_workspace(Settings.for_home(loadtest_home)) as workspace:
        yield workspace
