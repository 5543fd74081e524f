"""Identifiers: short, sortable by creation time, readable in logs (``run_01j...``)."""

from __future__ import annotations

import os
import re
from typing import NoReturn

from .clock import Clock
from .errors import InvalidInput

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lowercase
_NAME = re.compile(r"^[a-z][a-z0-9_.-]{0,62}$")
_VERSIONED_REF = re.compile(r"^(?P<name>[a-z][a-z0-9_.-]{0,62})(?::v?(?P<version>[0-9]+))?$")

#: The largest version number yarnit stores: versions are 32-bit INTEGER columns on PostgreSQL.
MAX_VERSION = 2_147_483_647


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


def check_version(kind: str, name: str, number: int) -> int:
    """Validate a version number (1 to :data:`MAX_VERSION`) of ``kind`` ``name`` and return it.

    A number past the range can never name a stored version; checking it here
    gives a clear error instead of a database overflow (SQLite refuses integers
    over 2**63 with OverflowError).
    """
    if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= MAX_VERSION:
        _out_of_range(kind, name, number)
    return number


def _out_of_range(kind: str, name: str, number: object) -> NoReturn:
    text = str(number)
    shown = text if len(text) <= 24 else f"{text[:20]}... ({len(text)} digits)"
    noun = "data" if kind == "Dataset" else "models"
    raise InvalidInput(f"{kind} version {shown} of {name!r} is not valid: versions are whole numbers from 1 to "
                       f"{MAX_VERSION}. See the versions with: yarnit {noun} show {name}")


def parse_versioned_ref(kind: str, ref: str, *, usage: str = "use NAME or NAME:vN with a lowercase name "
                        "(e.g. 'ctr:v3').") -> tuple[str, int | None]:
    """Split ``NAME``, ``NAME:vN`` or ``NAME:N`` into the name and the version number (None when absent).

    The one parser of ``name:vN`` references (datasets, models, lineage), so a
    reference with a 20-digit version is a clear error everywhere.

    Example:
        >>> parse_versioned_ref("Model", "ctr:v3")
        ('ctr', 3)
        >>> parse_versioned_ref("Dataset", "clicks")
        ('clicks', None)
    """
    match = _VERSIONED_REF.match(ref.strip())
    if match is None:
        shown = ref if len(ref) <= 80 else f"{ref[:77]}..."
        raise InvalidInput(f"{shown!r} is not a {kind.lower()} reference; {usage}")
    name, version = match.group("name"), match.group("version")
    if version is None:
        return name, None
    # int() of thousands of digits is refused by Python itself: anything past 10 digits is out of range anyway.
    number = int(version) if len(version) <= 10 else MAX_VERSION + 1
    if number > MAX_VERSION:
        _out_of_range(kind, name, version)
    return name, check_version(kind, name, number)


__all__ = ["MAX_VERSION", "check_name", "check_version", "new_id", "parse_versioned_ref"]
