"""Gates are data; the verdict blesses or gives every reason as a sentence."""

from __future__ import annotations

from typing import Any

import pytest

from yarnit.evaluation import (
    Distribution,
    EvaluationReport,
    Gate,
    GateConfigError,
    MetricValue,
    gates_from_config,
    judge,
    standard_gates,
    time_ordered_holdout,
)

SHA = "ab" * 32


def _report(values: list[MetricValue], sections: dict[str, Any] | None = None,
            extra: tuple[Distribution, ...] = ()) -> EvaluationReport:
    return EvaluationReport("ctr", {"artifact_sha256": SHA},
                            (time_ordered_holdout("2026-01-07", "2026-01-07", rows=3800, unit="impressions"), *extra),
                            tuple(values), sections=sections or {}, compared_with={"alias": "production", "version": 1})


def mv(metric: str, value: float | None, subject: str = "candidate", slice: str = "", ci: tuple[float, float] | None
       = None, n: int = 3800, positives: int = 160, distribution: str = "holdout") -> MetricValue:
    return MetricValue(metric, distribution, value, subject=subject, slice=slice, ci_low=ci[0] if ci else None,
                       ci_high=ci[1] if ci else None, n=n, positives=positives,
                       undefined=None if value is not None else "all 10 labels are 0")


def test_a_candidate_within_every_gate_is_blessed() -> None:
    report = _report([mv("auc", 0.75), mv("auc", 0.74, "production"), mv("auc", 0.67, "popularity"),
                      mv("positive_rate", 0.042)], {"validity": {"passed": True, "checks": []}})
    verdict = judge(report, standard_gates(min_value=0.6, positive_rate_band=(0.005, 0.5)))
    assert verdict.blessed and verdict.reasons == []
    assert {r.gate for r in verdict.results} == {"label_sanity", "validity", "min_auc", "auc_beats_popularity",
                                                 "auc_vs_production"}


def test_every_failure_is_a_sentence_with_the_values_and_the_next_step() -> None:
    report = _report([mv("auc", 0.58, ci=(0.55, 0.61)), mv("auc", 0.74, "production"), mv("auc", 0.67, "popularity"),
                      mv("auc", -0.16, "delta:production", ci=(-0.19, -0.13)), mv("positive_rate", 0.0, positives=0)],
                     {"validity": {"passed": False, "checks": [
                         {"name": "not_collapsed", "passed": False, "detail": "predictions have collapsed."}]}})
    verdict = judge(report, standard_gates(min_value=0.6, positive_rate_band=(0.005, 0.5)))
    assert not verdict.blessed
    reasons = "\n".join(verdict.reasons)
    assert "Gate 'min_auc' failed for ctr candidate abababababab on time-ordered holdout: 2026-01-07 to " \
           "2026-01-07 (3800 impressions): auc 0.5800 < minimum 0.6, 95% CI [0.5500, 0.6100]." in reasons
    assert "auc 0.5800 < production v1 0.7400 - 0.01 (difference -0.1600, 95% CI [-0.1900, -0.1300]). Retrain" \
        in reasons
    assert "does not beat the popularity baseline 0.6700 (required lift 0). A simpler model is better" in reasons
    assert "positive rate 0.0000 (0 of 3800 rows), outside the expected band [0.005, 0.5]" in reasons
    assert "Validity check 'not_collapsed' failed: predictions have collapsed." in reasons
    assert len(verdict.reasons) == 5


def test_slice_gates_skip_small_slices_and_ignore_noise_but_block_real_drops() -> None:
    values = [mv("auc", 0.75), mv("auc", 0.75, "production")]
    for name, cand, prod, ci, n in (("country=ES", 0.70, 0.74, (-0.07, -0.01), 1200),  # drop, beyond noise
                                    ("country=NO", 0.60, 0.74, (-0.40, 0.12), 150),  # too small
                                    ("device=app", 0.71, 0.74, (-0.07, 0.01), 900)):  # drop within noise
        values += [mv("auc", cand, slice=name, n=n), mv("auc", prod, "production", slice=name, n=n),
                   mv("auc", cand - prod, "delta:production", slice=name, ci=ci, n=n)]
    gates = gates_from_config([{"name": "per_slice", "kind": "change", "metric": "auc", "slice": "*",
                                "max_regression": 0.02, "significant": True, "min_rows": 200}])
    verdict = judge(_report(values), gates)
    status = {r.slice: r.status for r in verdict.results}
    assert status == {"country=NO": "skip", "country=ES": "fail", "device=app": "pass"}
    assert "slice country=ES: auc 0.7000 < production v1 0.7400 - 0.02" in verdict.reasons[0]
    # Bonferroni over the 2 slices tested: the ES interval must clear z(1 - 0.025/2) * se, which it does
    assert "beyond noise, Bonferroni over 2 slices" in verdict.reasons[0]
    only_country = judge(_report(values), [Gate("es", "change", metric="auc", slice="country=ES",
                                                max_regression=0.02)])
    assert [r.status for r in only_country.results] == ["fail"]


def test_lower_is_better_metrics_and_bias_compare_the_right_way() -> None:
    values = [mv("log_loss", 0.170), mv("log_loss", 0.160, "production"), mv("bias", -0.03),
              mv("bias", 0.01, "production")]
    gates = gates_from_config([
        {"name": "ll", "kind": "change", "metric": "log_loss", "max_regression": 0.005},
        {"name": "bias", "kind": "change", "metric": "bias", "max_regression": 0.01},
        {"name": "bias_abs", "kind": "absolute", "metric": "bias", "min": -0.02, "max": 0.02}])
    verdict = judge(_report(values), gates)
    assert [r.status for r in verdict.results] == ["fail", "fail", "fail"]
    assert "log_loss 0.1700 > production v1 0.1600 + 0.005" in verdict.reasons[0]
    assert "bias -0.0300 further from 0 than production v1 0.0100 by more than 0.01" in verdict.reasons[1]


def test_coverage_gate_catches_a_slice_missing_from_the_training_data() -> None:
    coverage = [{"distribution": "holdout", "slice": "country=ES", "eval_rows": 360, "eval_share": 0.095,
                 "train_rows": 0, "train_share": 0.0},
                {"distribution": "holdout", "slice": "country=US", "eval_rows": 1250, "eval_share": 0.33,
                 "train_rows": 2500, "train_share": 0.34},
                {"distribution": "holdout", "slice": "country=IS", "eval_rows": 2, "eval_share": 0.0005,
                 "train_rows": 0, "train_share": 0.0}]
    verdict = judge(_report([mv("auc", 0.75)], {"coverage": coverage}),
                    [Gate("coverage", "coverage", slice="country=*", min_share=0.01, min_ratio=0.5)])
    assert [r.slice for r in verdict.results if r.status == "fail"] == ["country=ES"]
    assert "slice country=ES is 9.5% of time-ordered holdout" in verdict.reasons[0]
    assert "but 0.0% of the training data (0 rows; ratio 0.00 < 0.5)" in verdict.reasons[0]
    assert "biased data loss, book ch. 7" in verdict.reasons[0]


def test_a_gate_that_cannot_be_checked_does_not_pass() -> None:
    report = _report([mv("auc", None)])
    verdict = judge(report, [Gate("min_auc", "absolute", metric="auc", min=0.6),
                             Gate("golden", "absolute", metric="auc", min=0.6, distribution="golden"),
                             Gate("validity", "validity"), Gate("coverage", "coverage")])
    assert [r.status for r in verdict.results] == ["fail", "fail", "fail", "fail"]
    assert "auc is undefined (all 10 labels are 0). A gate that cannot be checked does not pass" in verdict.reasons[0]
    assert "needs distribution 'golden', which the evaluation of ctr candidate abababababab does not have" \
        in verdict.reasons[1]
    optional = judge(report, [Gate("golden", "absolute", metric="auc", min=0.6, distribution="golden",
                                   required=False)])
    assert optional.blessed and optional.results[0].status == "skip"


def test_no_production_yet_means_the_comparison_is_skipped_not_failed() -> None:
    verdict = judge(_report([mv("auc", 0.75)]), standard_gates(validity=False))
    assert verdict.blessed
    assert any("there is no production v1 to compare with" in s for s in verdict.skipped)


@pytest.mark.parametrize("config,message", [
    ([{"kind": "absolute", "metric": "auc", "min": 0.6}], "Gate #1 has no name: every gate needs a name and a kind"),
    ([{"name": "g", "kind": "maximum"}], "has kind 'maximum'; valid kinds: absolute, change, baseline"),
    ([{"name": "g", "kind": "absolute", "metric": "auroc", "min": 0.6}], "Unknown metric 'auroc'.*in gate 'g'"),
    ([{"name": "g", "kind": "absolute", "metric": "auc"}], "needs min, max or both"),
    ([{"name": "g", "kind": "label_rate", "band": [0.5, 0.1]}], r"needs band: \[low, high\] with 0 <= low < high"),
    ([{"name": "g", "kind": "change", "metric": "auc", "max_regresion": 0.1}], "unknown keys \\['max_regresion'\\]"),
    ([{"name": "g", "kind": "validity"}, {"name": "g", "kind": "validity"}], "Two gates are named 'g'"),
    ({"name": "g"}, "Gates must be a list of mappings"),
])
def test_malformed_gates_are_refused_with_the_gate_named(config: Any, message: str) -> None:
    with pytest.raises(GateConfigError, match=message):
        gates_from_config(config)


def test_an_empty_gate_list_is_refused_because_it_would_bless_anything() -> None:
    with pytest.raises(GateConfigError, match="No gates are configured"):
        judge(_report([mv("auc", 0.75)]), [])
