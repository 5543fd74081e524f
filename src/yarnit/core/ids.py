"""Identifiers: short, sortable by creation time, readable in logs (``run_01j...``)."""

from __future__ import annotations

import os
import re

from .clock import Clock
from .errors import InvalidInput

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lowercase
_NAME = re.compile(r"^[a-z][a-z0-9_.-]{0,62}$")


def _b32(value: int, width: int) -> str:
    out = []
    for _ in range(width):
        out.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(out))


def new_id(prefix: str, clock: Clock, *, randomness: bytes | None = None) -> str:
    """A ULID-style id: ``prefix_`` + 10 chars of milliseconds + 16 random chars.

    Ids made later sort after ids made earlier (by the given clock).
    """
    millis = int(clock.now().timestamp() * 1000)
    rand = int.from_bytes(randomness if randomness is not None else os.urandom(10), "big")
    return f"{prefix}_{_b32(millis, 10)}{_b32(rand, 16)}"


def check_name(kind: str, name: str) -> str:
    """Validate a user-chosen name (model, dataset, pipeline) and return it.

    Names are lowercase, start with a letter, and use letters, digits, ``_ . -``
    (at most 63 characters), so they are safe in paths, URLs and metric labels.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInput(
            f"{kind} name {name!r} is not valid: use 1-63 lowercase letters, digits, '_', '.' or '-', "
            "starting with a letter (e.g. 'ctr' or 'yarn-click.v2')."
        )
    return name


__all__ = ["check_name", "new_id"]
