"""Regression tests for defects the chaos suite found in the recovery pass and the artifact store."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from yarnit.core import Settings
from yarnit.core.atomic import FileOps
from yarnit.storage import ArtifactWriteFailed, LocalArtifactStore, open_workspace


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_the_recovery_pass_removes_dead_writers_temp_files_anywhere_in_the_home(tmp_path: Path) -> None:
    """A writer killed mid-write of the offline feature store (or an SLO file, loop state …) leaves a temp
    file outside artifacts/; opening the workspace used to leave it there forever."""
    home = tmp_path / "ws"
    open_workspace(Settings.for_home(home)).close()
    dead, alive = _dead_pid(), os.getpid()
    offline = home / "features" / "offline" / "user_activity"
    offline.mkdir(parents=True)
    leftovers = [offline / f".tmp-day=2026-01-05.parquet.{dead}.abcd", home / f".tmp-slo.yaml.{dead}.ef01"]
    live = offline / f".tmp-manifest.json.{alive}.1234"
    for path in [*leftovers, live]:
        path.write_bytes(b"partial")
    ws = open_workspace(Settings.for_home(home))
    ws.close()
    assert not any(p.exists() for p in leftovers)
    assert set(leftovers) <= set(ws.recovered)
    assert live.exists(), "a live writer's temp file was removed"


class FailingDirSync(FileOps):
    def __init__(self, nth: int) -> None:
        self.nth, self.calls = nth, 0

    def fsync_dir(self, directory: Path) -> None:
        self.calls += 1
        if self.calls - 1 == self.nth:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        super().fsync_dir(directory)


def test_a_failed_fsync_of_the_final_directory_leaves_no_name_a_later_writer_would_trust(tmp_path: Path) -> None:
    """The blob's name used to stay after its directory's fsync failed; storing the same bytes again then
    found it, only touched it and reported success: a failed fsync counted as a success (fsyncgate)."""
    store = LocalArtifactStore(tmp_path / "artifacts", ops=FailingDirSync(nth=1))  # 0: staging, 1: final dir
    with pytest.raises(ArtifactWriteFailed, match="was not stored"):
        store.put_bytes(b"model bytes")
    assert list(store.iter_shas()) == []
    assert list((store.root / "staging").iterdir()) == []
    store.ops = FileOps()
    ref = store.put_bytes(b"model bytes")
    assert store.get_bytes(ref.sha256) == b"model bytes"


def test_a_failed_fsync_of_the_staging_directory_leaves_no_staging_file(tmp_path: Path) -> None:
    """A staging file used to stay behind (named with a live pid, so the recovery pass kept it) when the
    fsync after linking it into staging/ failed."""
    store = LocalArtifactStore(tmp_path / "artifacts", ops=FailingDirSync(nth=0))
    with pytest.raises(ArtifactWriteFailed) as info:
        store.put_bytes(b"model bytes")
    assert info.value.errno == errno.EIO and isinstance(info.value, OSError)
    assert list((store.root / "staging").iterdir()) == []
    assert list(store.iter_shas()) == []


def test_metrics_are_still_scraped_when_the_online_store_does_not_answer() -> None:
    """The feature freshness collector used to raise Unavailable when Redis was down, so /metrics answered
    503 and every other metric (the online feature defaults served meanwhile among them) was lost with it."""
    from prometheus_client import CollectorRegistry, generate_latest

    from yarnit.api.server import free_port
    from yarnit.core import SimulatedClock, utc
    from yarnit.features import FreshnessCollector, feature_view, open_online_store

    @feature_view(entities={"user_id": "string"}, features={"clicks": "int64"}, ttl=None,
                  sources=("activity",))
    def clicks(activity):  # type: ignore[no-untyped-def]
        """Clicks per shopper."""
        return activity

    online = open_online_store(f"redis://127.0.0.1:{free_port()}/0", socket_timeout_s=2.0)  # nothing listens
    registry = CollectorRegistry()
    registry.register(FreshnessCollector(lambda: [clicks], online, SimulatedClock(utc(2026, 1, 5))))
    text = generate_latest(registry).decode()
    assert "yarnit_feature_freshness_up 0.0" in text
    online.close()


def test_metrics_are_still_scraped_when_the_metadata_store_does_not_answer() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from yarnit.core import SimulatedClock, Unavailable, utc
    from yarnit.features import FreshnessCollector

    def views() -> list:  # type: ignore[type-arg]
        raise Unavailable("The metadata store at postgresql://… did not answer (connection refused).")

    registry = CollectorRegistry()
    registry.register(FreshnessCollector(views, None, SimulatedClock(utc(2026, 1, 5))))  # type: ignore[arg-type]
    assert "yarnit_feature_freshness_up 0.0" in generate_latest(registry).decode()


def test_a_day_file_published_just_before_the_writer_died_is_still_materialized(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The offline store published a day file, then recorded it as changed: a writer killed in between left
    a day that incremental materialization never read (found by the random kills of
    test_kill_boundaries.py::test_twenty_random_kills[features]). Days are now marked before and after."""
    from chaos.forkserver import FEATURE_NOW, USER_VIEW, activity_rows

    from yarnit.core import SimulatedClock
    from yarnit.features import OfflineStore, OnlineFeatures, materialize, offline, open_online_store

    store = OfflineStore(tmp_path / "offline")
    online = open_online_store(f"sqlite:///{tmp_path}/online.db")
    clock = SimulatedClock(FEATURE_NOW)
    store.write(USER_VIEW, activity_rows(0))
    materialize(USER_VIEW, store, online, clock=clock)
    real = offline._write_parquet

    def dies_after_publishing(path: Path, table: object) -> None:
        real(path, table)  # type: ignore[arg-type]
        raise SystemExit("killed right after the day file was renamed into place")

    monkeypatch.setattr(offline, "_write_parquet", dies_after_publishing)
    with pytest.raises(SystemExit):
        store.write(USER_VIEW, activity_rows(1))
    monkeypatch.undo()
    materialize(USER_VIEW, store, online, clock=clock)  # the next run (incremental)
    rows = pd.concat([activity_rows(0), activity_rows(1)]).sort_values("event_time")
    newest = rows.groupby("user_id").tail(1).set_index("user_id")["clicks_7d"]
    users = sorted(newest.index)
    got = OnlineFeatures(online, [USER_VIEW], clock).read(USER_VIEW.name, users)
    assert {u: r.values["clicks_7d"] for u, r in zip(users, got, strict=True)} == {u: int(newest[u]) for u in users}
    online.close()
