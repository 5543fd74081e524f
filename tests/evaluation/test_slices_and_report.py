"""Slices, per-slice values, paired comparisons, and reports that refuse to exist without a distribution."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from yarnit.core.errors import InvalidInput
from yarnit.evaluation import (
    Bootstrap,
    Distribution,
    EvaluationReport,
    MetricValue,
    MissingDistribution,
    Slices,
    UnknownSliceColumn,
    delong,
    evaluate_binary,
    paired_deltas,
    time_ordered_holdout,
)


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 4000
    f = pd.DataFrame({"country": rng.choice(["ES", "US", "NO"], n, p=[0.3, 0.6, 0.1]),
                      "price": rng.uniform(0, 30, n), "is_partner": rng.random(n) < 0.4})
    f["y"] = (rng.random(n) < 0.1 + 0.05 * (f["country"] == "ES")).astype(int)
    f["p"] = np.clip(rng.normal(0.1 + 0.1 * f["y"], 0.08), 0, 1)
    f["q"] = np.clip(f["p"] + rng.normal(0, 0.05, n), 0, 1)
    return f


def test_every_slice_value_equals_scikit_learn_on_the_subset(frame: pd.DataFrame) -> None:
    slices = Slices.from_frame(frame, ["country", "is_partner", "price"], bins={"price": [5, 10, 20]})
    result = evaluate_binary(frame["y"], {"candidate": frame["p"]}, distribution="holdout", slices=slices)
    got = {(m.slice, m.metric): m for m in result.metrics}
    for s in slices:
        mask = slices.mask(s)
        y, p = frame["y"][mask], frame["p"][mask]
        assert got[(s.name, "auc")].value == pytest.approx(skm.roc_auc_score(y, p), abs=1e-12)
        assert got[(s.name, "pr_auc")].value == pytest.approx(skm.average_precision_score(y, p), abs=1e-12)
        assert got[(s.name, "brier")].value == pytest.approx(skm.brier_score_loss(y, p), abs=1e-12)
        assert got[(s.name, "auc")].n == int(mask.sum())
    assert {s.name for s in slices} >= {"country=ES", "is_partner=True", "price=[10, 20)", "price=[20, inf)"}


def test_an_unknown_slice_column_names_the_columns_that_exist(frame: pd.DataFrame) -> None:
    with pytest.raises(UnknownSliceColumn, match=r"Cannot slice by 'contry'.*Available columns: .*country"):
        Slices.from_frame(frame, ["contry"])


def test_an_empty_slice_is_undefined_with_the_reason(frame: pd.DataFrame) -> None:
    slices = Slices.from_frame(frame, ["country=IS"])
    result = evaluate_binary(frame["y"], {"candidate": frame["p"]}, distribution="holdout", slices=slices)
    auc = next(m for m in result.metrics if m.slice == "country=IS" and m.metric == "auc")
    assert auc.value is None and auc.n == 0 and "slice country=IS of 'holdout' has no rows" in auc.undefined


def test_a_slice_with_one_label_class_is_undefined_not_a_crash(frame: pd.DataFrame) -> None:
    frame.loc[frame["country"] == "NO", "y"] = 0
    slices = Slices.from_frame(frame, ["country"])
    result = evaluate_binary(frame["y"], {"candidate": frame["p"]}, distribution="holdout", slices=slices,
                             bootstrap=Bootstrap(resamples=100))
    no = {m.metric: m for m in result.metrics if m.slice == "country=NO"}
    assert no["auc"].value is None and "AUC needs both positive and negative labels" in no["auc"].undefined
    assert no["log_loss"].value is not None and no["positive_rate"].value == 0.0


def test_too_many_distinct_values_need_bucket_edges() -> None:
    with pytest.raises(InvalidInput, match="has 500 distinct values.*give bucket edges"):
        Slices.from_frame(pd.DataFrame({"price": np.arange(500.0)}), ["price"])


def test_paired_auc_difference_uses_delong(frame: pd.DataFrame) -> None:
    y, p, q = frame["y"].to_numpy(), frame["p"].to_numpy(), frame["q"].to_numpy()
    auc_p, auc_q, se = delong(y, p, q)
    assert auc_p == pytest.approx(skm.roc_auc_score(y, p)) and auc_q == pytest.approx(skm.roc_auc_score(y, q))
    deltas = {m.metric: m for m in paired_deltas(y, p, q, distribution="holdout", reference_name="production")}
    assert deltas["auc"].value == pytest.approx(auc_p - auc_q)
    assert deltas["auc"].ci == pytest.approx((auc_p - auc_q - 1.959964 * se, auc_p - auc_q + 1.959964 * se))
    assert deltas["auc"].subject == "delta:production"
    # paired: much tighter than the two models' own intervals would suggest
    assert deltas["auc"].ci[1] - deltas["auc"].ci[0] < 0.05
    ll = deltas["log_loss"]
    assert ll.value == pytest.approx(skm.log_loss(y, np.clip(p, 1e-7, 1 - 1e-7)) - skm.log_loss(y, np.clip(q, 1e-7,
                                                                                                            1 - 1e-7)))


def test_a_report_without_a_distribution_is_refused() -> None:
    with pytest.raises(MissingDistribution, match="names no distribution.*CH5-R6"):
        EvaluationReport(model="ctr", candidate={}, distributions=())
    with pytest.raises(MissingDistribution, match="Metric 'auc' .*names no distribution"):
        MetricValue("auc", "", 0.7)
    with pytest.raises(MissingDistribution, match="names distribution 'golden', which the report does not declare"):
        EvaluationReport(model="ctr", candidate={}, distributions=(time_ordered_holdout("a", "b", rows=1),),
                         metrics=(MetricValue("auc", "golden", 0.7),))
    with pytest.raises(MissingDistribution, match="needs a description"):
        Distribution("holdout", "holdout", "")
    with pytest.raises(MissingDistribution, match="names no distribution"):
        EvaluationReport.from_dict({"model": "ctr", "auc": 0.8})


def test_a_report_survives_a_round_trip_through_json(frame: pd.DataFrame) -> None:
    holdout = time_ordered_holdout("2026-01-07", "2026-01-07", rows=len(frame))
    result = evaluate_binary(frame["y"], {"candidate": frame["p"], "production": frame["q"]},
                             distribution="holdout", bootstrap=Bootstrap(resamples=100))
    report = EvaluationReport("ctr", {"artifact_sha256": "a" * 64}, (holdout,), tuple(result.metrics),
                              compared_with={"alias": "production", "version": 3})
    again = EvaluationReport.from_dict(report.to_dict())
    assert again == report
    assert again.value("auc", subject="production") == pytest.approx(skm.roc_auc_score(frame["y"], frame["q"]))
    assert again.reference_label("production") == "production v3"
