"""PII handling: drop a column, replace it by a keyed hash (HMAC-SHA256), or keep it.

The keyed hash is computed for a whole column at once inside DuckDB, using
HMAC's definition ``H((K ^ opad) || H((K ^ ipad) || m))`` over its SHA-256, so
no Python code loops over rows; :func:`hmac_hex` is the one-value reference
that tests compare it with. The same key pseudonymises data subjects in
deletion receipts, so a receipt proves *which* subject was erased to whoever
holds the key, and to nobody else.

The key comes from ``Settings.hmac_key`` (``YARNIT_HMAC_KEY``). When it is not
set, a random key is created once per workspace in ``$YARNIT_HOME/hmac.key``
(mode 0600) so hashes stay stable across runs of that workspace.

The suppression list holds the keyed hash of every forgotten subject (never
the id): :func:`suppression_mask` finds their rows in a new batch so ingest
can drop them, whether the batch stores the subject raw or already hashed.

Example:
    >>> import pyarrow as pa
    >>> t = pa.table({"user_id": ["u1", "u2"], "price": [1.0, 2.0]})
    >>> out = apply_pii_policy(t, {"user_id": "hash"}, key=b"k" * 32)
    >>> out.column("user_id")[0].as_py() == hmac_hex(b"k" * 32, "u1")
    True
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from sqlalchemy import Connection, insert, select

from yarnit.core.atomic import atomic_create_chunks
from yarnit.core.errors import ConfigError
from yarnit.storage import Workspace
from yarnit.storage.schema import subject_suppressions

from .errors import SchemaError

_BLOCK = 64  # SHA-256 block size in bytes
KEY_FILE = "hmac.key"


def hmac_hex(key: bytes, value: str) -> str:
    """HMAC-SHA256 of one value, as 64 hex digits (the reference for the vectorized version)."""
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()


def _pads(key: bytes) -> tuple[bytes, bytes]:
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def hmac_column(values: pa.Array | pa.ChunkedArray, key: bytes) -> pa.ChunkedArray:
    """HMAC-SHA256 hex of every value (cast to text); nulls stay null."""
    inner, outer = _pads(key)
    combined = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    # Hash each distinct value once (subject ids repeat a lot), then expand by index.
    encoded = pc.dictionary_encode(combined)
    table = pa.table({"v": encoded.dictionary})
    con = duckdb.connect()
    try:
        con.register("t", table)
        hashed = con.sql(
            "SELECT sha256($outer || unhex(sha256($inner || encode(CAST(v AS VARCHAR))))) AS h FROM t",
            params={"inner": inner, "outer": outer},
        ).to_arrow_table().column("h").combine_chunks().cast(pa.string())
    finally:
        con.close()
    return pa.chunked_array([pc.take(hashed, encoded.indices)], type=pa.string())


def apply_pii_policy(table: pa.Table, policy: Mapping[str, str], *, key: bytes | None) -> pa.Table:
    """Drop, hash or keep each PII column named in ``policy`` (column → drop|hash|keep)."""
    out = table
    for column, action in policy.items():
        if column not in out.column_names:
            continue
        if action == "drop":
            out = out.drop_columns([column])
        elif action == "hash":
            if key is None:
                raise ConfigError(f"Column {column!r} is declared 'pii: hash' but no HMAC key is available. "
                                  "Set YARNIT_HMAC_KEY (at least 32 random characters).")
            index = out.column_names.index(column)
            out = out.set_column(index, pa.field(column, pa.string()), hmac_column(out.column(column), key))
        elif action != "keep":
            raise SchemaError(f"PII action {action!r} for column {column!r} is not valid; use drop, hash or keep.")
    return out


def workspace_key(ws: Workspace) -> bytes:
    """The workspace's HMAC key: ``Settings.hmac_key``, else a per-workspace random key file."""
    if ws.settings.hmac_key:
        return ws.settings.hmac_key.encode("utf-8")
    path = Path(ws.home) / KEY_FILE
    if not path.exists():
        atomic_create_chunks(path, [os.urandom(32).hex().encode()], mode=0o600)
    key = path.read_bytes().strip()
    if len(key) < 32:
        raise ConfigError(f"The workspace key file {path} is too short ({len(key)} bytes). Delete it to let "
                          "yarnit create a new one (hashes made with the old key will no longer match), or "
                          "set YARNIT_HMAC_KEY.")
    return key


def subject_hash(ws: Workspace, subject_id: str) -> str:
    """The keyed hash that stands for a data subject in receipts and logs (never the raw id)."""
    return hmac_hex(workspace_key(ws), f"subject:{subject_id}")


def subject_mask(values: pa.ChunkedArray | pa.Array, subject_id: str, encoding: str, key: bytes) -> pa.ChunkedArray:
    """True where a stored subject column holds ``subject_id`` (raw, or HMAC-hashed at ingest)."""
    stored = hmac_hex(key, subject_id) if encoding == "hmac" else subject_id
    text = values if pa.types.is_string(values.type) else pc.cast(values, pa.string())
    mask = pc.equal(text, stored)
    return pc.fill_null(mask, False)


def suppress(conn: Connection, ws: Workspace, subject_id: str, *, receipt_id: str) -> None:
    """Add a forgotten subject to the suppression list (its keyed hash), inside the caller's transaction."""
    hashed = hmac_hex(workspace_key(ws), subject_id)
    exists = conn.execute(select(subject_suppressions.c.subject_hmac)
                          .where(subject_suppressions.c.subject_hmac == hashed)).first()
    if exists is None:
        conn.execute(insert(subject_suppressions).values(subject_hmac=hashed, receipt_id=receipt_id,
                                                         added_at=ws.clock.now()))


def suppressed_hashes(ws: Workspace) -> pa.Array:
    """The keyed hashes of every forgotten subject (empty when nobody was forgotten)."""
    with ws.metadata.begin() as conn:
        rows = conn.execute(select(subject_suppressions.c.subject_hmac)).all()
    return pa.array(sorted(r[0] for r in rows), pa.string())


def suppression_mask(values: pa.ChunkedArray | pa.Array, hashes: pa.Array, encoding: str,
                     key: bytes) -> pa.ChunkedArray | pa.Array:
    """True where a subject column holds a suppressed subject (``encoding``: raw, or hmac when hashed at ingest)."""
    if len(values) == 0 or len(hashes) == 0:
        return pa.array([False] * len(values), pa.bool_())
    hashed = values if encoding == "hmac" else hmac_column(values, key)
    text = hashed if pa.types.is_string(hashed.type) else pc.cast(hashed, pa.string())
    return pc.fill_null(pc.is_in(text, value_set=hashes), False)


__all__ = [
    "apply_pii_policy",
    "hmac_column",
    "hmac_hex",
    "subject_hash",
    "subject_mask",
    "suppress",
    "suppressed_hashes",
    "suppression_mask",
    "workspace_key",
]
