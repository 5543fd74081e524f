"""Content-addressed artifact store: files named by the sha256 of their bytes.

Layout: ``<root>/sha256/ab/cdef…`` (two-hex fan-out, like git and DVC).
Artifacts are written once (atomically, read-only mode 0444) and verified on
every read, so a flipped byte is detected and bad bytes are never returned.
Names come only from :func:`~yarnit.core.is_sha256` digests, so a name from
outside can never point outside the root (no ``../``, no absolute paths).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from yarnit.core.atomic import (
    DEFAULT_OPS,
    FileOps,
    atomic_create_chunks,
    make_dirs,
    pid_alive,
    remove_temp_files,
)
from yarnit.core.errors import IntegrityError, InvalidInput, NotFound, PathEscape, Unavailable
from yarnit.core.hashing import is_sha256

_CHUNK = 1 << 20


@dataclass(frozen=True)
class ArtifactRef:
    """Where an artifact lives: its sha256 and size in bytes."""

    sha256: str
    size: int


class ArtifactNotFound(NotFound):
    def __init__(self, sha256: str) -> None:
        super().__init__(
            f"Artifact sha256:{sha256} is not in the artifact store. It was never stored here, or it was "
            "purged; check the workspace (YARNIT_HOME) and `yarnit models show` / `yarnit data show`."
        )
        self.sha256 = sha256


class ArtifactCorrupted(IntegrityError):
    def __init__(self, sha256: str, actual: str, path: Path) -> None:
        super().__init__(
            f"Artifact sha256:{sha256} is corrupted: its bytes hash to {actual}. The file at {path} was "
            "changed after it was written. Restore it from a backup or re-create the artifact "
            "(retrain the model / re-ingest the data); yarnit will not use bad bytes."
        )
        self.sha256, self.actual = sha256, actual


class ArtifactWriteFailed(Unavailable, OSError):
    """Storing an artifact failed in the file system (EIO, ENOSPC, EACCES …): nothing was stored.

    An :class:`OSError` too (``errno`` is the system's), so callers that handle I/O errors keep doing so; as
    an ``Unavailable`` the HTTP layer answers 503 and the CLI prints the message.
    """

    def __init__(self, root: Path, exc: OSError) -> None:
        reason = exc.strerror or str(exc)
        super().__init__(exc.errno, (
            f"Could not store an artifact in the artifact store at {root}: {reason} (errno {exc.errno}). "
            "The artifact was not stored, no row names it, and nothing served before changed. Free space or "
            "repair the disk, then run the command again."))

    def __str__(self) -> str:
        return str(self.strerror)


def touch_existing(path: Path, staged: Path | None = None, *, ops: FileOps = DEFAULT_OPS) -> None:
    """Mark a blob that a writer found already stored as used just now (its mtime).

    The artifact GC deletes an unreferenced blob only if its mtime has not changed since it was marked, and it
    moves the blob aside before it looks a last time (``storage.gc``). So a writer about to record a row for
    bytes that a crashed writer left behind either changes the mtime in time, or finds the name gone and
    links its own ``staged`` copy in: either way its row never points at missing bytes.
    """
    try:
        os.utime(path)
    except FileNotFoundError:
        if staged is not None:
            try:
                ops.link(staged, path)
                ops.fsync_dir(path.parent)
            except FileExistsError:
                pass  # another writer put the same bytes back first
    except OSError:
        pass  # not ours to touch (another user's store): the GC's grace period still protects the write


def _check_digest(sha256: str) -> str:
    if not isinstance(sha256, str) or not is_sha256(sha256):
        shown = sha256 if isinstance(sha256, str) else type(sha256).__name__
        raise PathEscape(
            f"{shown[:80]!r} is not an artifact id. Artifact ids are 64 lowercase hex digits (a sha256); "
            "paths, URIs and '..' are never accepted."
        )
    return sha256


class LocalArtifactStore:
    """Artifacts as read-only files under ``root`` (default: ``$YARNIT_HOME/artifacts``)."""

    def __init__(self, root: str | Path, *, ops: FileOps = DEFAULT_OPS) -> None:
        self.root = Path(root)
        self.ops = ops

    # -- writing ---------------------------------------------------------
    def put_bytes(self, data: bytes) -> ArtifactRef:
        """Store ``data`` (once) and return its ref."""
        return self.put_chunks([data])

    def put_chunks(self, chunks: Iterable[bytes]) -> ArtifactRef:
        """Store the concatenation of ``chunks``, hashing while writing."""
        digest = hashlib.sha256()
        size = 0
        staging = self.root / "staging"
        make_dirs(staging)
        name = staging / f"incoming-{os.getpid()}-{os.urandom(6).hex()}"

        def counted() -> Iterator[bytes]:
            nonlocal size
            for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                yield chunk

        # Write to a staging name first (its hash is unknown until the end), then
        # publish it under the final name with link(), which never overwrites.
        try:
            atomic_create_chunks(name, counted(), mode=0o444, ops=self.ops)
            sha = digest.hexdigest()
            final = self.path_for(sha)
            make_dirs(final.parent)
            try:
                self.ops.link(name, final)
            except FileExistsError:
                touch_existing(final, name, ops=self.ops)  # identical bytes are stored once
            else:
                self.sync_new_name(final)
        except OSError as exc:
            raise ArtifactWriteFailed(self.root, exc) from exc
        finally:
            name.unlink(missing_ok=True)
        return ArtifactRef(sha256=sha, size=size)

    def sync_new_name(self, final: Path) -> None:
        """fsync the directory of a name just linked; if that fails, take the name back and raise.

        After a failed fsync nothing says the new name would survive a crash, and a later writer of the
        same bytes finds the name and trusts it (it only touches it): so a failed fsync must not leave the
        name behind to be counted as a success later (fsyncgate, RELIABILITY.md 5.2). The name is moved
        aside into staging first and removed only if no writer touched it meanwhile (as the GC does).
        """
        try:
            mtime_ns = final.stat().st_mtime_ns
            self.ops.fsync_dir(final.parent)
        except OSError:
            aside = self.root / "staging" / f"incoming-{os.getpid()}-{os.urandom(6).hex()}-unsynced"
            try:
                os.rename(final, aside)
                if aside.stat().st_mtime_ns != mtime_ns:  # another writer found it and is about to use it
                    with contextlib.suppress(FileExistsError):
                        os.link(aside, final)
                aside.unlink()
            except OSError:
                pass  # best effort: the GC removes an unreferenced blob later
            raise

    def put_file(self, path: str | Path) -> ArtifactRef:
        """Store a file's bytes, streamed in 1 MiB chunks."""
        with open(path, "rb") as stream:
            return self.put_chunks(iter(lambda: stream.read(_CHUNK), b""))

    # -- reading ---------------------------------------------------------
    def path_for(self, sha256: str) -> Path:
        """The file path of an artifact id (which is validated, so it cannot escape the root)."""
        digest = _check_digest(sha256)
        return self.root / "sha256" / digest[:2] / digest[2:]

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()

    def verify(self, sha256: str) -> Path:
        """Check the stored bytes against their name and return the verified path."""
        path = self.path_for(sha256)
        digest = hashlib.sha256()
        try:
            with open(path, "rb") as stream:
                while chunk := stream.read(_CHUNK):
                    digest.update(chunk)
        except FileNotFoundError:
            raise ArtifactNotFound(sha256) from None
        actual = digest.hexdigest()
        if actual != sha256:
            raise ArtifactCorrupted(sha256, actual, path)
        return path

    def get_bytes(self, sha256: str) -> bytes:
        """The artifact's bytes, verified; raises rather than return bad bytes."""
        path = self.path_for(sha256)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ArtifactNotFound(sha256) from None
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256:
            raise ArtifactCorrupted(sha256, actual, path)
        return data

    def open_verified(self, sha256: str) -> BinaryIO:
        """An open read-only stream over the verified artifact."""
        return open(self.verify(sha256), "rb")

    def iter_shas(self) -> Iterator[str]:
        """Every artifact id stored (by file name; not verified)."""
        base = self.root / "sha256"
        if not base.is_dir():
            return
        for fan in sorted(base.iterdir()):
            for item in sorted(fan.iterdir()):
                sha = fan.name + item.name
                if is_sha256(sha):
                    yield sha

    # -- maintenance -----------------------------------------------------
    def delete(self, sha256: str) -> bool:
        """Remove an artifact (purge after deletion requests); True if it existed."""
        path = self.path_for(sha256)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        self.ops.fsync_dir(path.parent)
        return True

    def recover(self) -> list[Path]:
        """Remove temp and staging files that a crashed writer left behind."""
        removed = remove_temp_files(self.root)
        staging = self.root / "staging"
        if staging.is_dir():
            for item in staging.iterdir():
                pid = item.name.split("-")[1] if item.name.count("-") >= 2 else ""
                if pid.isdigit() and pid_alive(int(pid)):
                    continue
                item.unlink(missing_ok=True)
                removed.append(item)
        return removed

    def check_permissions(self) -> None:
        """Refuse a root that other users could write into (tampering → code on load)."""
        for directory in [self.root, *[p for p in self.root.rglob("*") if p.is_dir()]]:
            if directory.exists() and directory.stat().st_mode & 0o022:
                raise InvalidInput(
                    f"Artifact directory {directory} is group- or world-writable "
                    f"(mode {oct(directory.stat().st_mode & 0o777)}); anyone could replace artifacts. "
                    f"Fix it with: chmod go-w {directory}"
                )


__all__ = ["ArtifactCorrupted", "ArtifactNotFound", "ArtifactRef", "ArtifactWriteFailed", "LocalArtifactStore", "touch_existing"]
