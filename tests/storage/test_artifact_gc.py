"""Artifact GC: blobs no row references go after a clock-driven grace period, and never a referenced one."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from sklearn.linear_model import LogisticRegression

from yarnit.core import SimulatedClock
from yarnit.core.atomic import FileOps
from yarnit.core.errors import InvalidInput
from yarnit.registry import ArtifactFormat, ModelRegistry, dump_sklearn
from yarnit.storage import LocalArtifactStore, Workspace
from yarnit.storage.gc import ArtifactGC, referenced, unreferenced

GRACE = timedelta(hours=24)


def _model(c: float = 1.0) -> bytes:
    return dump_sklearn(LogisticRegression(C=c).fit([[0.0], [1.0]], [0, 1]))


def _orphan(ws: Workspace, data: bytes) -> str:
    """A blob a writer stored before it crashed (no row names it), with an old mtime."""
    sha = ws.artifacts.put_bytes(data).sha256
    os.utime(ws.artifacts.path_for(sha), ns=(10**18, 10**18))
    return sha


def test_an_unreferenced_blob_goes_only_after_the_grace_period(ws: Workspace, clock: SimulatedClock) -> None:
    kept = ModelRegistry(ws).register("ctr", _model(), ArtifactFormat.SKOPS).artifact_sha256
    orphan = _orphan(ws, b"half of an interrupted write")
    assert unreferenced(ws) == [orphan]
    gc = ArtifactGC(ws, grace=GRACE)
    first = gc.sweep()
    assert first.newly_marked == [orphan] and first.removed == [] and first.referenced == 1
    clock.advance(GRACE - timedelta(minutes=1))
    assert gc.sweep(dry_run=True).removed == [] and gc.sweep().waiting == [orphan]
    clock.advance(timedelta(minutes=1))
    assert gc.sweep(dry_run=True).removed == [orphan] and ws.artifacts.exists(orphan)  # a dry run deletes nothing
    done = gc.sweep()
    assert done.removed == [orphan] and done.bytes_removed == len(b"half of an interrupted write")
    assert not ws.artifacts.exists(orphan) and ws.artifacts.exists(kept)
    assert gc.sweep().to_dict() | {"scanned": 0} == {"scanned": 0, "referenced": 1, "newly_marked": [],
                                                     "waiting": [], "removed": [], "bytes_removed": 0,
                                                     "rescued": [], "dry_run": False}


def test_a_blob_that_gets_its_row_within_the_grace_period_is_kept(sqlite_ws: Workspace, clock: SimulatedClock) -> None:
    ws = sqlite_ws
    data = _model(0.5)
    orphan = _orphan(ws, data)  # the writer stored the blob ...
    gc = ArtifactGC(ws, grace=GRACE)
    assert gc.sweep().newly_marked == [orphan]
    ModelRegistry(ws).register("ctr", data, ArtifactFormat.SKOPS)  # ... and, slowly, its row
    clock.advance(GRACE * 2)
    report = gc.sweep()
    assert report.removed == [] and report.rescued == [orphan] and ws.artifacts.exists(orphan)
    with ws.metadata.begin() as conn:
        assert orphan in referenced(conn)


def test_storing_the_same_bytes_again_restarts_the_grace_period(sqlite_ws: Workspace, clock: SimulatedClock) -> None:
    ws = sqlite_ws
    orphan = _orphan(ws, b"bytes a new writer is about to reference")
    gc = ArtifactGC(ws, grace=GRACE)
    gc.sweep()
    clock.advance(GRACE)
    ws.artifacts.put_bytes(b"bytes a new writer is about to reference")  # deduplicated: touches the blob
    report = gc.sweep()
    assert report.removed == [] and report.newly_marked == [orphan]
    clock.advance(GRACE)
    assert gc.sweep().removed == [orphan]


def test_a_negative_grace_period_is_refused(sqlite_ws: Workspace) -> None:
    with pytest.raises(InvalidInput, match="grace period must be 0 or more"):
        ArtifactGC(sqlite_ws, grace=timedelta(hours=-1)).sweep()


class MovedAsideAfterLink(FileOps):
    """The GC moves the blob aside right after this writer's link() found its name taken (the worst moment)."""

    def __init__(self) -> None:
        self.armed = True

    def link(self, src: Path, dst: Path) -> None:
        try:
            super().link(src, dst)
        except FileExistsError:
            if self.armed and dst.parent.parent.name == "sha256":
                self.armed = False
                os.rename(dst, dst.parent.parent.parent / "staging" / "gc-aside")
            raise


def test_a_writer_whose_bytes_the_gc_moves_aside_puts_its_own_copy_back(tmp_path: Path) -> None:
    ops = MovedAsideAfterLink()
    store = LocalArtifactStore(tmp_path / "artifacts", ops=ops)
    first = store.put_bytes(b"bytes a crashed writer left and a new writer stores again")
    again = store.put_bytes(b"bytes a crashed writer left and a new writer stores again")
    assert not ops.armed and again == first  # the race happened ...
    assert store.get_bytes(first.sha256) == b"bytes a crashed writer left and a new writer stores again"  # ... safely
