"""A short operate demo's workspace served by a real server, and headless Chromium driven by Playwright.

The workspace is what ``yarnit demo`` builds, shortened to four clean days at a small shop
(:func:`yarnit.demo.operate.simulate`: the real HTTP data plane, the continuous loop, the monitor and
the incident store on a simulated clock), built once per module. The browser is Debian's
``chromium`` (``/usr/bin/chromium``, installed by ``.ci/run``); Playwright never downloads its own. Both
missing: the browser tests skip and say why.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from testsupport import TOKEN

from yarnit.api import create_app
from yarnit.api.server import BackgroundServer
from yarnit.core import Settings, SimulatedClock
from yarnit.demo.operate import OperateConfig, simulate
from yarnit.storage import Workspace, open_workspace

CHROMIUM = "/usr/bin/chromium"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PIPELINE = {"bootstrap_resamples": 10, "golden_rows": 200, "slices": ["device"], "fairness_groups": []}


@dataclass(frozen=True)
class ShortMonth(OperateConfig):
    """The operate demo's config without its ten-day minimum: a test needs four days, not a month."""

    def __post_init__(self) -> None:
        pass


@dataclass(frozen=True)
class Demo:
    home: Path
    end: datetime
    record: dict[str, Any]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    root = tmp_path_factory.mktemp("operate")
    reuse = os.environ.get("YARNIT_TEST_DEMO_HOME")  # a previous run's workspace, copied (faster local runs)
    if reuse:
        shutil.copytree(reuse, root / "home")
        return Demo(home=root / "home", end=last_monitor_run(root / "home"), record={})
    config = ShortMonth(days=4, sessions_per_day=100, faults=(), pipeline=PIPELINE)  # 4 days: one rollout
    record = simulate(str(root), config, False)
    assert not record["hook_errors"], record["hook_errors"]
    return Demo(home=root / "home", end=datetime.fromisoformat(record["end"]), record=record)


def last_monitor_run(home: Path) -> datetime:
    from yarnit.monitoring.runner import read_state

    state = read_state(home)
    assert state is not None, f"{home} is not a workspace the monitor ran on"
    return datetime.fromisoformat(state["at"])


@pytest.fixture(scope="module")
def workspace(demo: Demo) -> Iterator[Workspace]:
    ws = open_workspace(Settings.for_home(demo.home, api_token=TOKEN), SimulatedClock(demo.end))
    yield ws
    ws.close()


@pytest.fixture(scope="module")
def server(workspace: Workspace) -> Iterator[BackgroundServer]:
    app = create_app(workspace, refresh_s=0.25)
    with BackgroundServer(app) as background:
        yield background
    app.state.serving.close()


@pytest.fixture(scope="module")
def http(server: BackgroundServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).is_file() or shutil.which(CHROMIUM) is None:
        pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's chromium package (.ci/run does)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install 'yarnit[test]' (playwright)")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            yield chromium
        finally:
            chromium.close()
