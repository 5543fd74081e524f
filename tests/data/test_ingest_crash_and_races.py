"""Faults: a SIGKILL mid-ingest leaves no half version; writers racing for one name never collide."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from yarnit.core import Settings
from yarnit.data import Datasets
from yarnit.storage import Workspace, open_workspace

CHILD = textwrap.dedent("""
    import sys, time
    from yarnit.core import load_settings
    from yarnit.data import Datasets, read_batches
    from yarnit.storage import open_workspace

    ws = open_workspace(load_settings())
    def tick(progress):
        print("chunk", progress.rows, flush=True)
        time.sleep(0.05)
    batches = read_batches(sys.argv[1], block_bytes=16_384, progress=tick)
    Datasets(ws).ingest_batches("clicks", batches, source=sys.argv[1], chunk_rows=2_000, subject="user_id")
    print("done", flush=True)
""")


def test_sigkill_mid_ingest_leaves_no_version_and_no_temp_files(
        ws: Workspace, tmp_path: Path, make_clicks: Callable[..., pd.DataFrame]) -> None:
    path = tmp_path / "clicks.csv"
    make_clicks(20_000).to_csv(path, index=False)
    env = dict(os.environ, YARNIT_HOME=str(ws.home), YARNIT_DB_URL=ws.settings.db_url)
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, text=True, env=env)
    assert child.stdout is not None
    chunks = 0
    for line in child.stdout:
        chunks += line.startswith("chunk")
        if chunks == 8:  # several chunks are already in the staging Parquet file
            break
    staging = ws.artifacts.root / "staging"
    assert list(staging.glob("ingest-*")), "the child should be writing its staging file"
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL

    reopened = open_workspace(ws.settings, ws.clock)  # the recovery pass runs on open
    try:
        assert any(p.name.startswith("ingest-") for p in reopened.recovered)
        assert not list(staging.glob("ingest-*"))
        datasets = Datasets(reopened)
        assert datasets.list() == []
        version = datasets.ingest_file("clicks", path, subject="user_id")
        assert version.ref == "clicks:v1" and version.row_count == 20_000
        assert reopened.artifacts.verify(version.artifact_sha256)
    finally:
        reopened.close()


def _race(settings: Settings, clock: object, jobs: list[Callable[[Datasets], str]]) -> list[str]:
    barrier = threading.Barrier(len(jobs))
    results: list[str] = [""] * len(jobs)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        workspace = open_workspace(settings, clock)  # type: ignore[arg-type]
        try:
            barrier.wait()
            results[i] = jobs[i](Datasets(workspace))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            workspace.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    return results


def test_racing_ingests_of_different_data_get_distinct_consecutive_versions(
        ws: Workspace, make_clicks: Callable[..., pd.DataFrame]) -> None:
    frames = [make_clicks(200, seed=s) for s in range(4)]
    jobs = [lambda d, f=f: d.ingest_frame("clicks", f, source="race", subject="user_id").ref for f in frames]
    refs = _race(ws.settings, ws.clock, jobs)
    assert sorted(refs) == ["clicks:v1", "clicks:v2", "clicks:v3", "clicks:v4"]
    versions = Datasets(ws).list("clicks")
    assert len({v.content_sha256 for v in versions}) == 4


def test_racing_ingests_of_identical_data_share_one_version(
        ws: Workspace, make_clicks: Callable[..., pd.DataFrame]) -> None:
    frame = make_clicks(300)
    refs = _race(ws.settings, ws.clock, [lambda d: d.ingest_frame("clicks", frame, source="race", subject="user_id").ref] * 4)
    assert refs == ["clicks:v1"] * 4
    assert [v.ref for v in Datasets(ws).list()] == ["clicks:v1"]
