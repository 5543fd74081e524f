"""kill -9 at every fsync/rename/link boundary, and at random moments, of registration, dataset ingest,
feature materialization and pipeline steps (RELIABILITY.md target 1).

Each trial runs in a child forked from ``forkserver.py`` (yarnit imported once), which SIGKILLs
itself just before or just after its k-th ``os.fsync``/``os.replace``/``os.rename``/``os.link``
call. The sweep starts every trial from the same copy of a prepared workspace and raises k until the
operation finishes before reaching it, so every boundary of the operation is hit once. After each
kill, ``check_after_crash`` opens the workspace (the recovery pass) and checks target 1; then the
operation is run again to the end, which must succeed and leave the workspace as sound.

The sweep of a registration of new bytes is fast and runs in ``make test``; the other sweeps and the
runs with 20 kills at random moments are marked ``chaos`` (``make chaos``).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from chaos.support import ForkServer, check_after_crash, copy_home, sqlite_integrity

from yarnit.core import Settings
from yarnit.data import Datasets
from yarnit.registry import ModelRegistry
from yarnit.storage import open_workspace
from yarnit.training import RunStore


@pytest.fixture(scope="module")
def server() -> Iterator[ForkServer]:
    fork = ForkServer()
    yield fork
    fork.close()


# How many blobs a kill can leave without their row: registration and ingest store one blob before the
# row; a pipeline step stores up to two (a model and its metadata) before the step's row.
MAX_ORPHANS = {"register": 1, "ingest": 1, "features": 0, "pipeline": 2, "monitor": 0}


def _check(scenario: str, home: Path) -> None:
    check_after_crash(home, max_orphans=MAX_ORPHANS[scenario])
    if scenario == "features":
        _check_features(home)


def _check_features(home: Path) -> None:
    online = home / "online.db"
    if online.exists():
        assert sqlite_integrity(online) == "ok"


def sweep(server: ForkServer, scenario: str, base: Path, work: Path, *, check_state: Callable[[Path, bool], None],
          trial: int = 1) -> int:
    """Kill ``scenario`` at every boundary, starting each time from ``base``; return the boundary count."""
    k = 0
    while True:
        home = copy_home(base, work)
        answer = server.run(scenario, home, trial, at=k)
        if not answer["killed"]:
            assert answer["boundaries"] == k, answer
            check_after_crash(home, max_orphans=0)
            check_state(home, True)
            return k
        _check(scenario, home)
        check_state(home, False)
        again = server.run(scenario, home, trial)  # restart: the operation runs to the end
        assert not again["killed"]
        _check(scenario, home)
        check_state(home, True)
        k += 1


def random_kills(server: ForkServer, scenario: str, home: Path, *, check_state: Callable[[Path, bool], None],
                 kills: int = 20, seed: int = 0, trial_of: Callable[[int], int] = lambda i: i) -> list[dict[str, Any]]:
    """Successive runs of ``scenario`` on one workspace, each SIGKILLed at a random moment, until ``kills``
    of them died before finishing (a run that finished first is checked too, and does not count)."""
    rng = random.Random(seed)
    timed = server.run(scenario, copy_home(home, home.parent / "timing"), trial_of(0))  # one run's duration here
    answers: list[dict[str, Any]] = []
    i = 0
    while sum(a["killed"] for a in answers) < kills:
        assert i < 4 * kills, f"only {sum(a['killed'] for a in answers)} of {i} runs were killed in time"
        answer = server.run(scenario, home, trial_of(i), after=rng.uniform(0.0, timed["seconds"]))
        answers.append(answer)
        _check(scenario, home)
        check_state(home, not answer["killed"])
        i += 1
    return answers


# --- registration ------------------------------------------------------------


def _registry_state(home: Path, finished: bool) -> None:
    with open_workspace(Settings.for_home(home)) as ws:
        registry = ModelRegistry(ws)
        versions = registry.versions("ctr")
        assert [v.version for v in versions] == list(range(1, len(versions) + 1))
        production = registry.resolve("ctr", "production")
        assert production.version <= versions[-1].version
        registry.load(production)  # the version in production loads (its bytes verify)
        if finished:
            assert production.version == versions[-1].version


# --- dataset ingest ------------------------------------------------------------


def _datasets_state(home: Path, finished: bool) -> None:
    with open_workspace(Settings.for_home(home)) as ws:
        versions = sorted(Datasets(ws).list("clicks"), key=lambda v: v.version)
        assert [v.version for v in versions] == list(range(1, len(versions) + 1))
        for v in versions:
            ws.artifacts.verify(v.artifact_sha256)
        if finished:
            assert versions


# --- feature backfill (offline) and materialization (online) -------------------


def _features_state(home: Path, finished: bool) -> None:
    """Every offline day file reads; once a run finished, the online table holds the newest value of each user."""
    from yarnit.core import SimulatedClock
    from yarnit.features import OfflineStore, OnlineFeatures, open_online_store
    from yarnit.features.online import to_us

    from chaos.forkserver import FEATURE_NOW, USER_VIEW

    offline = OfflineStore(home / "features" / "offline")
    if not (home / "features" / "offline").exists():
        return
    with offline.latest(USER_VIEW, after_us=None, until_us=to_us(FEATURE_NOW),
                        batch_rows=10_000, changed=[]) as reader:
        latest = reader.read_all().to_pandas()
    if not finished or latest.empty:
        return
    online = open_online_store(f"sqlite:///{home}/online.db")
    try:
        users = sorted(latest["user_id"].unique())
        rows = OnlineFeatures(online, [USER_VIEW], SimulatedClock(FEATURE_NOW)).read(USER_VIEW.name, users)
        got = {u: r.values["clicks_7d"] for u, r in zip(users, rows, strict=True)}
        expected = {u: int(c) for u, c in zip(latest["user_id"], latest["clicks_7d"], strict=True)}
        assert got == expected
    finally:
        online.close()


# --- pipeline steps ---------------------------------------------------------------


def _pipeline_state(home: Path, finished: bool) -> None:
    with open_workspace(Settings.for_home(home)) as ws:
        runs = RunStore(ws).list("toy")
        if finished:
            assert runs and runs[0].state == "succeeded"
        registry = ModelRegistry(ws)
        if registry.exists("toy"):
            versions = registry.versions("toy")
            shas = [v.artifact_sha256 for v in versions]
            assert len(shas) == len(set(shas)), "a resumed or repeated run registered the same bytes twice"
            for v in versions:
                registry.load(v)


# --- the sweeps and the random kills of the four operations ----------------------------------

STATES: dict[str, Callable[[Path, bool], None]] = {
    "register": _registry_state, "ingest": _datasets_state, "features": _features_state, "pipeline": _pipeline_state,
}
# The fewest boundaries each operation must pass (fewer: the wrapper no longer sees its writes).
MIN_BOUNDARIES = {"register": 8, "ingest": 4, "features": 6, "pipeline": 10}


@pytest.mark.parametrize("scenario", [
    "register",  # in `make test`: RELIABILITY.md target 1 is about registration
    pytest.param("ingest", marks=pytest.mark.chaos),
    pytest.param("features", marks=pytest.mark.chaos),
    pytest.param("pipeline", marks=pytest.mark.chaos),
])
@pytest.mark.timeout(1800)
def test_kill_at_every_boundary(server: ForkServer, tmp_path: Path, scenario: str) -> None:
    base = tmp_path / "base"
    server.run(scenario, base, 0)
    n = sweep(server, scenario, base, tmp_path / "trial", check_state=STATES[scenario], trial=1)
    assert n >= MIN_BOUNDARIES[scenario], f"{scenario} passed only {n} boundaries"


@pytest.mark.chaos
@pytest.mark.timeout(1800)
def test_kill_at_every_boundary_of_registering_bytes_already_stored(server: ForkServer, tmp_path: Path) -> None:
    base = tmp_path / "base"
    server.run("register", base, 0)
    server.run("register", base, 1)  # trial 1's bytes are stored: registering them again takes the touch path
    sweep(server, "register", base, tmp_path / "trial", check_state=_registry_state, trial=1)


# Registration is killed at 20 random moments by test_kill_registration.py (real processes).
@pytest.mark.chaos
@pytest.mark.parametrize("scenario", ["ingest", "features", "pipeline"])
@pytest.mark.timeout(1800)
def test_twenty_random_kills(server: ForkServer, tmp_path: Path, scenario: str) -> None:
    home = tmp_path / "ws"
    server.run(scenario, home, 0)
    random_kills(server, scenario, home, check_state=STATES[scenario])


# --- the monitor (`yarnit monitor run`) ----------------------------------------------------


def _hourly_requests(home: Path) -> list[int]:
    from datetime import timedelta

    from yarnit.core import SimulatedClock
    from yarnit.monitoring import traffic

    from chaos.forkserver import MONITOR_START

    with open_workspace(Settings.for_home(home), SimulatedClock(MONITOR_START)) as ws:
        return [traffic.window_summary(ws, "ctr", MONITOR_START + timedelta(hours=h),
                                       MONITOR_START + timedelta(hours=h + 1)).summary.requests for h in range(3)]


def _write_traffic(home: Path, start_hour: int, plan: list[str]) -> None:
    """One minute of requests per entry of ``plan`` (who answered it), from ``start_hour`` after MONITOR_START."""
    from datetime import timedelta

    from testsupport.monitoring import Traffic

    from yarnit.core import SimulatedClock

    from chaos.forkserver import MONITOR_START

    clock = SimulatedClock(MONITOR_START + timedelta(hours=start_hour))
    with open_workspace(Settings.for_home(home), clock) as ws:
        writer = Traffic(ws, clock)
        for served_by in plan:
            writer.minute(served_by, flush=False)
        writer.close()


def _monitor_base(base: Path) -> list[int]:
    """Hour 0 of traffic counted by a first run; hours 1 and 2 written since. Returns the requests per hour."""
    from testsupport.monitoring import PER_MINUTE, write_slos

    open_workspace(Settings.for_home(base)).close()
    write_slos(base, sinks=[])
    _write_traffic(base, 0, ["model"] * 60)
    return [60 * PER_MINUTE] * 3


def _counted(expected: list[int], server: ForkServer, base: Path) -> Callable[[Path, bool], None]:
    server.run("monitor", base, 1)  # hour 0 is counted; the next run finds two new hours
    _write_traffic(base, 1, ["fallback"] * 20 + ["model"] * 100)

    def counted(home: Path, finished: bool) -> None:
        hours = _hourly_requests(home)
        assert all(got <= want for got, want in zip(hours, expected, strict=True)), f"counted twice: {hours}"
        assert hours[0] == expected[0], f"a committed window was lost: {hours}"
        if finished:
            assert hours == expected, f"a window was lost: {hours}"

    return counted


@pytest.mark.chaos
@pytest.mark.timeout(1800)
def test_kill_at_every_boundary_of_a_monitor_run_counts_every_window_once(server: ForkServer, tmp_path: Path) -> None:
    base = tmp_path / "base"
    counted = _counted(_monitor_base(base), server, base)
    n = sweep(server, "monitor", base, tmp_path / "trial", check_state=counted, trial=3)
    assert n >= 6, f"the monitor run passed only {n} boundaries"


@pytest.mark.chaos
@pytest.mark.timeout(1800)
def test_twenty_random_kills_of_monitor_runs_count_every_window_once(server: ForkServer, tmp_path: Path) -> None:
    home = tmp_path / "ws"
    counted = _counted(_monitor_base(home), server, home)
    random_kills(server, "monitor", home, check_state=counted, trial_of=lambda _: 3)
    server.run("monitor", home, 3)
    counted(home, True)
