"""Validation: every anomaly kind with severity, column, evidence and fix; the schema gate (target 17)."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import pyarrow as pa
import pytest

from yarnit.data import DatasetSchema, Severity, ValidationFailed, profile, validate


def kinds(report) -> list[tuple[str, str | None]]:  # type: ignore[no-untyped-def]
    return [(a.kind, a.column) for a in report.anomalies]


def test_clean_data_has_no_anomalies(schema: DatasetSchema, make_clicks: Callable[..., pd.DataFrame]) -> None:
    report = validate(make_clicks(500).drop(columns=["email"]), schema)
    assert report.ok and report.anomalies == ()


def test_schema_gate_rejects_every_breaking_row_with_a_named_reason(
        schema: DatasetSchema, make_clicks: Callable[..., pd.DataFrame]) -> None:
    frame = make_clicks(200)
    frame.loc[[3, 17], "price"] = [-1.0, 501.0]          # range
    frame.loc[[5], "country"] = ["XX"]                     # unknown category
    frame.loc[[8, 9, 10], "user_id"] = None                # missing required
    frame.loc[[12], "event_id"] = 11                       # duplicate of row 11
    frame["position"] = frame["position"].astype(str)      # wrong type
    report = validate(frame, schema)
    found = {a.kind: a for a in report.anomalies}
    assert found["out_of_range"].evidence["count"] == 2 and found["out_of_range"].evidence["example_rows"] == [4, 18]
    assert found["out_of_range"].evidence["examples"] == [-1.0, 501.0]
    assert found["unknown_value"].evidence["unknown_values"] == {"XX": 1}
    assert found["missing_values"].evidence["count"] == 3 and found["missing_values"].column == "user_id"
    assert found["duplicate_values"].evidence["count"] == 1
    assert found["type_mismatch"].evidence == {"declared": "int64", "found": "string"}
    assert all(a.severity is Severity.ERROR and a.suggested_fix for a in found.values())
    with pytest.raises(ValidationFailed, match="blocking anomalies.*yarnit data validate"):
        report.raise_for_blocking()


def test_examples_of_pii_and_subject_columns_are_row_numbers_only(make_clicks: Callable[..., pd.DataFrame]) -> None:
    schema = DatasetSchema.from_yaml(
        "subject: user_id\ncolumns:\n  user_id: {type: string, domain: [u001]}\n"
        "  email: {type: string, pii: keep, domain: [a@b.c]}\n", path="s.yaml")
    report = validate(make_clicks(50)[["user_id", "email"]], schema)
    assert {a.column for a in report.anomalies} == {"user_id", "email"}
    text = str(report.to_dict())
    assert "example.org" not in text and "u0" not in text
    assert all("example_rows" in a.evidence and "examples" not in a.evidence for a in report.anomalies)


def test_missing_and_unexpected_columns_and_serving_environment(
        schema: DatasetSchema, make_clicks: Callable[..., pd.DataFrame]) -> None:
    frame = make_clicks(100).drop(columns=["device"]).assign(extra=1)
    report = validate(frame, schema)
    assert ("missing_column", "device") in kinds(report)
    assert ("unexpected_column", None) in kinds(report)
    serving = make_clicks(100).drop(columns=["email"])
    report = validate(serving, schema, environment="serving")
    assert kinds(report) == [("unexpected_column", "clicked")]  # the label at serving time is a leak
    assert report.ok
    assert validate(serving.drop(columns=["clicked"]), schema, environment="serving").anomalies == ()


def test_label_rate_outside_the_band_blocks(schema: DatasetSchema, make_clicks: Callable[..., pd.DataFrame]) -> None:
    frame = make_clicks(400).drop(columns=["email"]).assign(clicked=False)
    report = validate(frame, schema, statistics=profile(pa.Table.from_pandas(frame, preserve_index=False)))
    label = [a for a in report.anomalies if a.kind == "label_rate"]
    assert label and label[0].evidence["positive_rate"] == 0.0 and label[0].blocking
    assert validate(frame, schema).blocking  # also without precomputed statistics


def test_slice_volume_drop_is_caught_even_when_total_volume_looks_fine(
        schema: DatasetSchema, make_clicks: Callable[..., pd.DataFrame]) -> None:
    before = make_clicks(2000, seed=1).drop(columns=["email"])
    after = make_clicks(2000, seed=2).drop(columns=["email"])
    after = after[(after["country"] != "JP") | (after.index % 10 == 0)]  # 90% of Japan's rows vanish
    previous = profile(pa.Table.from_pandas(before, preserve_index=False), slices=["country"])
    report = validate(after, schema, previous=previous, baseline="clicks:v1")
    slice_anomalies = [a for a in report.anomalies if a.kind == "slice_volume_change"]
    assert [a.evidence["slice"] for a in slice_anomalies] == ["JP"]
    assert slice_anomalies[0].evidence["change"] < -0.8 and slice_anomalies[0].blocking
    assert not [a for a in report.anomalies if a.kind == "volume_change"]  # total fell only ~22%


def test_volume_drop_and_distribution_change(schema: DatasetSchema, make_clicks: Callable[..., pd.DataFrame]) -> None:
    before = make_clicks(2000, seed=1).drop(columns=["email"])
    previous = profile(pa.Table.from_pandas(before, preserve_index=False), slices=["country"])
    small = make_clicks(500, seed=3).drop(columns=["email"])
    report = validate(small, schema, previous=previous)
    volume = [a for a in report.anomalies if a.kind == "volume_change"]
    assert volume and volume[0].evidence == {"rows": 500, "baseline_rows": 2000, "change": -0.75}
    shifted = make_clicks(2000, seed=5).drop(columns=["email"])
    shifted["price"] = shifted["price"] * 0.3
    shifted["device"] = "mobile"
    report = validate(shifted, schema, previous=previous)
    drift = {a.column: a for a in report.anomalies if a.kind == "distribution_change"}
    assert set(drift) == {"price", "device"}
    assert drift["price"].evidence["metric"] == "wasserstein_normed" and drift["price"].severity is Severity.WARNING
    assert drift["device"].evidence["metric"] == "l_infinity" and drift["device"].evidence["distance"] > 0.4


def test_empty_data_is_blocking(schema: DatasetSchema, make_clicks: Callable[..., pd.DataFrame]) -> None:
    report = validate(make_clicks(10).head(0), schema)
    assert ("empty_dataset", None) in kinds(report) and not report.ok
