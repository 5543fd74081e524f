"""PII: vectorized HMAC equals the reference, drop/hash/keep, key handling."""

from __future__ import annotations

import os
import stat

import pyarrow as pa
import pytest

from yarnit.core.errors import ConfigError
from yarnit.data import apply_pii_policy, hmac_column, hmac_hex, workspace_key
from yarnit.storage import Workspace


def test_vectorized_hmac_equals_the_standard_library() -> None:
    values = ["u1", "ü-ñ", "", "u1", None, "x" * 300]
    for key in (b"k" * 16, b"k" * 64, b"long-key" * 20):
        hashed = hmac_column(pa.array(values), key).to_pylist()
        assert hashed == [None if v is None else hmac_hex(key, v) for v in values]
    assert hmac_column(pa.array([42, 7]), b"k" * 32).to_pylist() == [hmac_hex(b"k" * 32, "42"),
                                                                       hmac_hex(b"k" * 32, "7")]


def test_pii_policy_drops_hashes_and_keeps() -> None:
    table = pa.table({"user_id": ["a", "b"], "email": ["a@x", "b@x"], "ip": ["1", "2"], "price": [1.0, 2.0]})
    out = apply_pii_policy(table, {"user_id": "hash", "email": "drop", "ip": "keep"}, key=b"k" * 32)
    assert out.column_names == ["user_id", "ip", "price"]
    assert out.column("user_id").to_pylist() == [hmac_hex(b"k" * 32, "a"), hmac_hex(b"k" * 32, "b")]
    assert out.column("ip").to_pylist() == ["1", "2"]


def test_hashing_without_a_key_says_which_setting_to_set() -> None:
    with pytest.raises(ConfigError, match="'user_id'.*YARNIT_HMAC_KEY"):
        apply_pii_policy(pa.table({"user_id": ["a"]}), {"user_id": "hash"}, key=None)


def test_workspace_key_is_created_once_and_private(sqlite_ws: Workspace) -> None:
    key = workspace_key(sqlite_ws)
    path = sqlite_ws.home / "hmac.key"
    assert len(key) == 64 and workspace_key(sqlite_ws) == key
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
