"""sha256 of bytes, files and JSON-able values: the names of artifacts and cache keys."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, BinaryIO

_CHUNK = 1 << 20


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_stream(stream: BinaryIO) -> str:
    """Hex sha256 of everything left in ``stream``, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    while chunk := stream.read(_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    with open(path, "rb") as stream:
        return sha256_stream(stream)


def canonical_json(value: Any) -> bytes:
    """JSON with sorted keys and no whitespace: equal values give equal bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()


def sha256_json(value: Any) -> str:
    """Hex sha256 of the canonical JSON of ``value`` (config hashes, cache keys)."""
    return sha256_bytes(canonical_json(value))


def is_sha256(text: str) -> bool:
    """True when ``text`` is 64 lowercase hex digits."""
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


__all__ = ["canonical_json", "is_sha256", "sha256_bytes", "sha256_file", "sha256_json", "sha256_stream"]
