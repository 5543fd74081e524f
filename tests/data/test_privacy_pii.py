"""PII: vectorized HMAC equals the reference, drop/hash/keep, key handling, subject columns, the prediction log."""

from __future__ import annotations

import os
import stat
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from yarnit.core.errors import ConfigError, InvalidInput
from yarnit.data import Datasets, Deletions, apply_pii_policy, hmac_column, hmac_hex, workspace_key
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


def test_personal_data_without_a_subject_column_is_refused_unless_a_reason_is_given(
        sqlite_ws: Workspace) -> None:
    datasets = Datasets(sqlite_ws)
    frame = pd.DataFrame({"user_id": ["u1", "u2"], "price": [1.0, 2.0]})
    with pytest.raises(InvalidInput, match=r"personal data \(columns \['user_id'\]\).*--subject.*--no-subject"):
        datasets.ingest_frame("prices", frame, source="t")
    with pytest.raises(InvalidInput, match="needs a reason"):
        datasets.ingest_frame("prices", frame, source="t", no_subject="  ")
    with pytest.raises(InvalidInput, match="one of --subject and --no-subject"):
        datasets.ingest_frame("prices", frame, source="t", subject="user_id", no_subject="why")
    v = datasets.ingest_frame("prices", frame, source="t", no_subject="synthetic test users")
    assert v.no_subject == "synthetic test users" and v.subject_column is None
    assert [u.ref for u in Deletions(sqlite_ws).unchecked()] == ["prices:v1"]
    # a declared PII column counts as personal data too; a dataset with none needs nothing
    with pytest.raises(InvalidInput, match="personal data"):
        datasets.ingest_frame("contacts", pd.DataFrame({"handle": ["a"]}), source="t", pii_columns=["handle"])
    assert datasets.ingest_frame("yarn", pd.DataFrame({"fiber": ["wool"]}), source="t").ref == "yarn:v1"
    # forget scans a version without a subject column in full and says what it finds there
    receipt = Deletions(sqlite_ws).forget("u1", grace=timedelta(0))
    assert receipt.status == "partial" and receipt.detail["no_personal_data"] == ["yarn:v1"]
    (left,) = receipt.detail["remaining"]
    assert left["where"] == "dataset prices:v1" and "synthetic test users" in left["why"]


def test_prediction_log_erasure_rewrites_idle_segments_and_names_live_ones(tmp_path: Path) -> None:
    from yarnit.core import SimulatedClock, utc
    from yarnit.serving.predlog import LogPolicy, PredictionLog, erase_from_prediction_log, read_prediction_log

    policy = LogPolicy(hmac_key=b"k" * 32)
    hashed = policy.pseudonymise("u1")
    assert hashed is not None
    done = PredictionLog(tmp_path, SimulatedClock(utc(2026, 1, 5)), policy=policy)
    done.append({"request_id": "a", "instances": [{"user_id": "u1"}]})
    done.append({"request_id": "b", "instances": [{"user_id": "u2"}]})
    done.close()
    live = PredictionLog(tmp_path, SimulatedClock(utc(2026, 1, 6)), policy=policy)
    live.append({"request_id": "c", "instances": [{"user_id": "u1"}]})
    assert live.flush()
    try:
        report = erase_from_prediction_log(tmp_path, ["u1", hashed])
        assert report.segments_searched == 2 and report.segments_rewritten == 1 and report.records_removed == 1
        assert len(report.live_segments_with_matches) == 1  # a running server still writes it
        assert [r["request_id"] for r in read_prediction_log(tmp_path)] == ["b", "c"]
    finally:
        live.close()
    assert erase_from_prediction_log(tmp_path, ["u1", hashed]).live_segments_with_matches == []
    assert [r["request_id"] for r in read_prediction_log(tmp_path)] == ["b"]
