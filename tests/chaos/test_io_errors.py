"""Injected EIO/ENOSPC on artifact puts and prediction-log writes, and a corrupted artifact on disk
(RELIABILITY.md targets 2 and 3).

Target 3 itself (a flipped byte is detected in 1,000 of 1,000 random trials; identical bytes are stored
once) is proved by tests/storage/test_artifacts.py (``test_every_single_flipped_byte_is_detected``,
``test_identical_bytes_are_stored_once``); the atomic-write helpers' own fault cases are in
tests/core/test_atomic.py. Here the faults hit the whole path a caller takes: a registration while a
service serves the previous version, and the prediction log's writer thread.
"""

from __future__ import annotations

import errno
import os
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO

import pytest
from serving.helpers import expected_scores, fit_ctr, make_service, register_versions

from yarnit.core import SimulatedClock
from yarnit.core.atomic import FileOps
from yarnit.registry import ArtifactFormat, ModelRegistry, dump_sklearn
from yarnit.serving import PredictionLog
from yarnit.serving.predlog import scan_prediction_log
from yarnit.storage import Workspace, unreferenced
from yarnit.storage.artifacts import ArtifactWriteFailed

ONE = [{"fiber": "merino", "price": 12.0}]
OPS = ("write", "fsync", "link", "fsync_dir")


class FailNth(FileOps):
    """Raise ``code`` at the ``nth`` call (0-based) of ``op``; count every call."""

    def __init__(self, op: str | None = None, nth: int = 0, code: int = errno.EIO) -> None:
        self.op, self.nth, self.code = op, nth, code
        self.calls: dict[str, int] = {}
        self.failed_fsync_streams: list[int] = []
        self.fsyncs_after_failure = 0

    def _hit(self, op: str) -> None:
        seen = self.calls.get(op, 0)
        self.calls[op] = seen + 1
        if op == self.op and seen == self.nth:
            raise OSError(self.code, os.strerror(self.code))

    def write(self, stream: BinaryIO, data: bytes) -> None:
        self._hit("write")
        super().write(stream, data)

    def fsync(self, stream: BinaryIO) -> None:
        if id(stream) in self.failed_fsync_streams:
            self.fsyncs_after_failure += 1
        try:
            self._hit("fsync")
        except OSError:
            self.failed_fsync_streams.append(id(stream))
            raise
        super().fsync(stream)

    def link(self, src: Path, dst: Path) -> None:
        self._hit("link")
        super().link(src, dst)

    def fsync_dir(self, directory: Path) -> None:
        self._hit("fsync_dir")
        super().fsync_dir(directory)


def _files(ws: Workspace) -> set[Path]:
    return {p for p in ws.artifacts.root.rglob("*") if p.is_file()}


def _injection_points(ws: Workspace, artifact: bytes) -> list[tuple[str, int]]:
    """Every (operation, call index) an artifact put of new bytes makes, counted on a scratch store."""
    from yarnit.storage import LocalArtifactStore

    counting = FailNth()
    LocalArtifactStore(ws.home / "scratch-artifacts", ops=counting).put_bytes(artifact)
    points = [(op, n) for op in OPS for n in range(counting.calls.get(op, 0))]
    assert {op for op, _ in points} == set(OPS), counting.calls
    return points


@pytest.mark.parametrize("code", [errno.EIO, errno.ENOSPC])
def test_an_io_error_at_any_write_or_fsync_of_a_registration_leaves_the_previous_version_serving(
        sqlite_ws: Workspace, clock: SimulatedClock, code: int) -> None:
    register_versions(sqlite_ws, n=1)
    service = make_service(sqlite_ws, None, cache_entries=0)
    try:
        assert service.predict("ctr", ONE).model_version == 1
        registry = ModelRegistry(sqlite_ws)
        new = dump_sklearn(fit_ctr(0.01))
        points = _injection_points(sqlite_ws, new)
        before = _files(sqlite_ws)
        for op, nth in points:
            ops = FailNth(op, nth, code)
            sqlite_ws.artifacts.ops = ops
            with pytest.raises(ArtifactWriteFailed) as info:
                registry.register("ctr", new, ArtifactFormat.SKOPS)
            message = str(info.value)
            assert os.strerror(code) in message and "was not stored" in message, message
            assert info.value.errno == code  # still an OSError to callers that handle those
            assert ops.fsyncs_after_failure == 0, "a failed fsync was retried"
            # no partial artifact: no new file under a final name, nothing left in staging
            assert _files(sqlite_ws) == before, f"{op}#{nth} left {_files(sqlite_ws) - before}"
            assert [v.version for v in registry.versions("ctr")] == [1]
            assert unreferenced(sqlite_ws) == []
            prediction = service.predict("ctr", ONE)
            assert (prediction.served_by, prediction.model_version) == ("model", 1)
            assert prediction.values == pytest.approx(expected_scores(1, ONE))
        sqlite_ws.artifacts.ops = FileOps()
        assert registry.register("ctr", new, ArtifactFormat.SKOPS).version == 2  # the disk is back
    finally:
        service.close()


def test_the_cli_reports_a_full_disk_as_a_clear_error(sqlite_ws: Workspace, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """What an operator sees when the disk is full: exit 1 and the reason, not a traceback."""
    from typer.testing import CliRunner

    from yarnit.cli.app import app

    (version,) = register_versions(sqlite_ws, n=1)
    copy = tmp_path / "copy.skops"
    copy.write_bytes(sqlite_ws.artifacts.get_bytes(version.artifact_sha256))
    sqlite_ws.artifacts.path_for(version.artifact_sha256).unlink()  # lost: `models restore` puts it back

    def full(_self: FileOps, _stream: BinaryIO, _data: bytes) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(FileOps, "write", full)
    result = CliRunner().invoke(app, ["models", "restore", "ctr", "1", "--file", str(copy)],
                                env={"YARNIT_HOME": str(sqlite_ws.home)})
    assert result.exit_code == 1, result.output
    assert "No space left on device" in result.output and "was not stored" in result.output
    assert "Traceback" not in result.output
    monkeypatch.undo()
    result = CliRunner().invoke(app, ["models", "restore", "ctr", "1", "--file", str(copy)],
                                env={"YARNIT_HOME": str(sqlite_ws.home)})
    assert result.exit_code == 0, result.output
    sqlite_ws.artifacts.verify(version.artifact_sha256)


def test_an_io_error_at_any_point_of_a_dataset_ingest_records_nothing_and_leaves_no_partial_file(
        sqlite_ws: Workspace) -> None:
    """Ingest publishes its staged Parquet file itself (``data.versions._publish``): the same promises."""
    from chaos.forkserver import clicks_frame

    from yarnit.data import Datasets
    from yarnit.storage import ArtifactGC

    datasets = Datasets(sqlite_ws)
    first = datasets.ingest_frame("clicks", clicks_frame(0), source="chaos", subject="user_id")
    counting = FailNth()
    sqlite_ws.artifacts.ops = counting
    datasets.ingest_frame("clicks", clicks_frame(99), source="chaos", subject="user_id")  # counts the calls
    points = [(op, n) for op in OPS for n in range(counting.calls.get(op, 0))]
    assert {op for op, _ in points} >= {"link", "fsync_dir"}, counting.calls
    for trial, (op, nth) in enumerate(points, start=1):
        sqlite_ws.artifacts.ops = FailNth(op, nth, errno.ENOSPC)
        with pytest.raises(ArtifactWriteFailed, match="No space left on device"):
            datasets.ingest_frame("clicks", clicks_frame(trial), source="chaos", subject="user_id")
        sqlite_ws.artifacts.ops = FileOps()
        assert [v.version for v in datasets.list("clicks")] == [first.version, first.version + 1]
        assert list((sqlite_ws.artifacts.root / "staging").iterdir()) == [], f"{op}#{nth} left a staging file"
        for sha in sqlite_ws.artifacts.iter_shas():
            sqlite_ws.artifacts.verify(sha)  # whatever is under a final name is whole
    gc = ArtifactGC(sqlite_ws, grace=timedelta(0))
    gc.sweep()
    gc.sweep()  # blobs a failed ingest published before its error lack a row: the GC removes them
    assert unreferenced(sqlite_ws) == []


# --- the prediction log -----------------------------------------------------------------


class FailingLogIO:
    """Fails the ``nth`` ``os.write`` or ``os.fdatasync`` on the prediction log's segment files."""

    def __init__(self, directory: Path, op: str, nth: int, code: int) -> None:
        self.directory, self.op, self.nth, self.code = directory, op, nth, code
        self.calls = 0
        self.failed: set[int] = set()  # inodes whose fdatasync failed and that were not written since
        self.syncs_after_failure = 0
        self._write, self._sync = os.write, os.fdatasync

    def _ours(self, fd: int) -> bool:
        try:
            return Path(os.readlink(f"/proc/self/fd/{fd}")).parent == self.directory
        except OSError:
            return False

    def write(self, fd: int, data: Any) -> int:
        if self._ours(fd):
            if self.op == "write":
                self.calls += 1
                if self.calls - 1 == self.nth:
                    raise OSError(self.code, os.strerror(self.code))
            self.failed.discard(os.fstat(fd).st_ino)  # rewritten: a new fsync covers new writes
        return self._write(fd, data)

    def fdatasync(self, fd: int) -> None:
        if self._ours(fd):
            inode = os.fstat(fd).st_ino
            if inode in self.failed:
                self.syncs_after_failure += 1  # fsync again with nothing rewritten: trusting a failed fsync
            if self.op == "fdatasync":
                self.calls += 1
                if self.calls - 1 == self.nth:
                    self.failed.add(inode)
                    raise OSError(self.code, os.strerror(self.code))
        self._sync(fd)


def _wait(condition: Any, what: str, clock: SimulatedClock) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, what
        clock.advance(10)  # past any back-off of the writer
        time.sleep(0.01)


@pytest.mark.parametrize("op", ["write", "fdatasync"])
@pytest.mark.parametrize("nth", [0, 1, 2])
@pytest.mark.parametrize("code", [errno.EIO, errno.ENOSPC])
def test_an_io_error_in_the_prediction_log_loses_nothing_and_never_trusts_a_failed_fsync(
        tmp_path: Path, clock: SimulatedClock, monkeypatch: pytest.MonkeyPatch, op: str, nth: int,
        code: int) -> None:
    directory = tmp_path / "log"
    log = PredictionLog(directory, clock, flush_interval_s=0.005)
    fault = FailingLogIO(directory, op, nth, code)
    monkeypatch.setattr(os, "write", fault.write)
    monkeypatch.setattr(os, "fdatasync", fault.fdatasync)
    try:
        for i in range(4):  # one batch at a time, so the n-th call is the n-th batch's
            assert log.append({"request_id": f"r{i}"})
            _wait(lambda i=i: log.stats().flushed_records == i + 1, f"r{i} was never written", clock)
    finally:
        log.close()
    stats = log.stats()
    assert stats.write_failures == 1 and stats.lost == 0 and stats.dropped == 0
    assert fault.syncs_after_failure == 0, "a segment whose fsync failed was fsynced again"
    records = scan_prediction_log(directory).records
    assert [r["request_id"] for r in records] == [f"r{i}" for i in range(4)]  # once each, in order


# --- a corrupted artifact on disk ---------------------------------------------------------------


def _corrupt(ws: Workspace, sha: str) -> None:
    path = ws.artifacts.path_for(sha)
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_corrupted_artifact_is_refused_at_load_and_the_serving_version_keeps_serving(
        sqlite_ws: Workspace, clock: SimulatedClock) -> None:
    versions = register_versions(sqlite_ws, n=2)
    registry = ModelRegistry(sqlite_ws)
    service = make_service(sqlite_ws, None, cache_entries=0)
    try:
        assert service.predict("ctr", ONE).model_version == 1
        registry.promote("ctr", 2)  # v2 verified and loads at promotion; then its file goes bad on disk
        _corrupt(sqlite_ws, versions[1].artifact_sha256)
        events = service.runtime.refresh("ctr")
        assert [(e.to_version, e.outcome) for e in events if e.alias == "production"] == [(2, "rejected")]
        assert "is corrupted" in next(e.reason for e in events if e.alias == "production")
        prediction = service.predict("ctr", ONE)  # production (v2) is not loaded: v1 answers as "previous"
        assert (prediction.served_by, prediction.model_version) == ("previous", 1)
        assert prediction.values == pytest.approx(expected_scores(1, ONE))
    finally:
        service.close()
    # a restart: production (v2) does not load, the version before it answers
    restarted = make_service(sqlite_ws, None, cache_entries=0)
    try:
        prediction = restarted.predict("ctr", ONE)
        assert (prediction.served_by, prediction.model_version) == ("previous", 1)
        assert prediction.values == pytest.approx(expected_scores(1, ONE))
    finally:
        restarted.close()
