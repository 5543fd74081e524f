"""Artifact store: content addressing, corruption, traversal, crash leftovers (targets 3, 21)."""

from __future__ import annotations

import os
import random
import stat
from pathlib import Path

import pytest

from yarnit.core import InvalidInput, PathEscape
from yarnit.storage import ArtifactCorrupted, ArtifactNotFound, LocalArtifactStore


@pytest.fixture
def store(tmp_path: Path) -> LocalArtifactStore:
    return LocalArtifactStore(tmp_path / "artifacts")


def test_identical_bytes_are_stored_once(store: LocalArtifactStore) -> None:
    a = store.put_bytes(b"model bytes")
    b = store.put_chunks([b"model ", b"bytes"])
    assert a == b
    assert list(store.iter_shas()) == [a.sha256]
    assert store.get_bytes(a.sha256) == b"model bytes"


def test_artifacts_are_read_only_files(store: LocalArtifactStore) -> None:
    ref = store.put_bytes(b"x")
    mode = store.path_for(ref.sha256).stat().st_mode
    assert not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    assert not list((store.root / "staging").iterdir())


def test_every_single_flipped_byte_is_detected(store: LocalArtifactStore) -> None:
    rng = random.Random(0)
    payload = bytes(rng.getrandbits(8) for _ in range(4096))
    ref = store.put_bytes(payload)
    path = store.path_for(ref.sha256)
    os.chmod(path, 0o644)
    detected = 0
    for _ in range(1000):
        offset, bit = rng.randrange(len(payload)), 1 << rng.randrange(8)
        corrupted = bytearray(payload)
        corrupted[offset] ^= bit
        path.write_bytes(bytes(corrupted))
        try:
            store.get_bytes(ref.sha256)
        except ArtifactCorrupted:
            detected += 1
    assert detected == 1000
    path.write_bytes(payload)
    assert store.get_bytes(ref.sha256) == payload


def test_corrupted_artifact_error_says_what_to_do(store: LocalArtifactStore) -> None:
    ref = store.put_bytes(b"good")
    path = store.path_for(ref.sha256)
    os.chmod(path, 0o644)
    path.write_bytes(b"bad!")
    with pytest.raises(ArtifactCorrupted, match="is corrupted.*will not use bad bytes"):
        store.verify(ref.sha256)
    with pytest.raises(ArtifactCorrupted):
        store.open_verified(ref.sha256)


def test_missing_artifact_is_a_clear_not_found(store: LocalArtifactStore) -> None:
    with pytest.raises(ArtifactNotFound, match="is not in the artifact store"):
        store.get_bytes("a" * 64)


TRAVERSAL = [
    "../../etc/passwd", "..\\..\\windows\\win.ini", "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "%252e%252e%252fetc",
    "/etc/passwd", "file:///etc/passwd", "sha256/../../x", "A" * 64, "a" * 63, "a" * 65, "", "g" * 64,
    "aa/" + "b" * 61, "\x00" * 64,
]


@pytest.mark.parametrize("payload", TRAVERSAL)
def test_names_from_outside_can_never_leave_the_root(store: LocalArtifactStore, payload: str) -> None:
    with pytest.raises(PathEscape, match="is not an artifact id"):
        store.get_bytes(payload)
    with pytest.raises(PathEscape):
        store.path_for(payload)


def test_symlink_planted_under_an_artifact_name_is_not_followed_outside(store: LocalArtifactStore,
                                                                         tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"top secret")
    fake = "c" * 64
    target = store.path_for(fake)
    target.parent.mkdir(parents=True)
    target.symlink_to(secret)
    with pytest.raises(ArtifactCorrupted):  # content does not match its name: nothing is returned
        store.get_bytes(fake)


def test_recover_removes_staging_leftovers_of_dead_writers(store: LocalArtifactStore) -> None:
    (store.root / "staging").mkdir(parents=True)
    dead = store.root / "staging" / "incoming-999999-abcdef"
    dead.write_bytes(b"partial")
    mine = store.root / "staging" / f"incoming-{os.getpid()}-abcdef"
    mine.write_bytes(b"in progress")
    removed = store.recover()
    assert dead in removed and not dead.exists()
    assert mine.exists()


def test_group_writable_root_is_refused(store: LocalArtifactStore) -> None:
    store.put_bytes(b"x")
    os.chmod(store.root, 0o777)
    try:
        with pytest.raises(InvalidInput, match="group- or world-writable.*chmod go-w"):
            store.check_permissions()
    finally:
        os.chmod(store.root, 0o755)
