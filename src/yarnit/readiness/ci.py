"""What CI runs: each ML Test Score test mapped to the tests in yarnit's own suite that prove it.

``yarnit readiness MODEL --ci`` counts a test (1 point) only when this mapping names, for it, pytest tests
that exist in the checkout's ``tests/`` tree: ``make test`` (what ``.ci/run`` runs) collects every file
there, so a named test is a test CI runs on every change. A mapping entry whose file or function is gone
scores 0 and says which one, so the score cannot outlive the test that earned it; a test that CI does not
run earns nothing, whatever the workspace shows, and manual attestations never count here.

``"*"`` entries prove a platform capability for every model the platform serves (the rollout controller,
the monitor, the registry); entries under a model name prove what depends on that model's recipe. The
ranker's features and click-model development are its click model's (it bundles ``ctr``), so its data and
model-development entries name the click model's tests, as the workspace probes do (:mod:`.probes`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from yarnit.core.errors import InvalidInput

from .rubric import AUTOMATED, NONE, TESTS, Evidence, Finding

ANY = "*"

CTR_DATA = {
    "data.1": ["tests/recipes/test_ctr_pipeline.py::test_faulty_data_stops_the_run_at_validate_with_the_anomaly_named",
               "tests/recipes/test_ctr_pipeline.py::test_the_curated_schema_declares_every_column_the_pipeline_reads"],
    "data.2": ["tests/training/test_importance.py::test_every_trainer_records_normalized_importances_by_frame_column",
               "tests/training/test_importance.py::"
               "test_derived_columns_are_traced_back_to_the_inputs_they_are_computed_from"],
    "data.7": ["tests/features/test_request_time_frame.py::"
               "test_frame_and_record_paths_agree_on_every_value_of_10000_rows",
               "tests/features/test_skew.py::test_request_time_transforms_are_one_code_path_for_training_and_serving"],
}
CTR_MODEL = {
    "model.4": ["tests/readiness/test_ml_test_score.py::"
                "test_the_ctr_evaluation_measures_quality_day_by_day_after_training"],
    "model.5": ["tests/recipes/test_ctr_pipeline.py::test_the_pipeline_trains_a_blessed_model_better_than_popularity"],
    "model.6": ["tests/evaluation/test_gates.py::"
                "test_slice_gates_skip_small_slices_and_ignore_noise_but_block_real_drops",
                "tests/evaluation/test_slices_and_report.py::test_every_slice_value_equals_scikit_learn_on_the_subset"],
    "model.7": ["tests/evaluation/test_fairness.py::test_rates_and_differences_follow_fairlearns_definitions",
                "tests/access/test_restricted_reads.py::"
                "test_fairness_evaluation_reads_a_restricted_column_raw_only_through_the_audited_path"],
}

#: test id -> {model or "*": pytest node ids}
CI_PROOF: dict[str, dict[str, list[str]]] = {
    # Features and data
    "data.1": {"ctr": CTR_DATA["data.1"], "yarnit-ranker": CTR_DATA["data.1"]},
    "data.2": {"ctr": CTR_DATA["data.2"], "yarnit-ranker": CTR_DATA["data.2"]},
    "data.3": {ANY: ["tests/training/test_runner.py::test_a_run_records_every_step_with_its_measures",
                     "tests/evaluation/test_validity.py::"
                     "test_the_wrong_artifact_and_broken_budgets_and_skew_each_fail"]},
    "data.4": {ANY: ["tests/data/test_privacy_pii.py::"
                     "test_personal_data_without_a_subject_column_is_refused_unless_a_reason_is_given",
                     "tests/access/test_restricted_reads.py::"
                     "test_recipe_training_frames_see_restricted_columns_only_through_their_compliant_transform"]},
    "data.5": {ANY: ["tests/data/test_retention_enforcement.py::test_versions_expire_by_class_and_purge_after_grace",
                     "tests/data/test_forget_subject.py::test_forget_rewrites_taints_receipts_and_purges",
                     "tests/access/test_restricted_reads.py::"
                     "test_raw_read_with_the_role_is_audited_who_what_where_why_when"]},
    "data.6": {ANY: ["tests/features/test_materialize.py::"
                     "test_the_feature_store_records_runs_and_serves_what_it_materialized",
                     "tests/features/test_definitions.py::test_a_sql_view_runs_in_duckdb_over_its_sources"]},
    "data.7": {"ctr": CTR_DATA["data.7"], "yarnit-ranker": CTR_DATA["data.7"]},
    # Model development
    "model.2": {ANY: ["tests/continuous/test_rollout.py::test_ctr_from_joined_labels_is_judged_and_a_drop_rolls_back",
                      "tests/monitoring/test_quality.py::"
                      "test_realized_auc_and_calibration_equal_sklearn_within_the_stated_bound"]},
    "model.4": {"ctr": CTR_MODEL["model.4"], "yarnit-ranker": CTR_MODEL["model.4"]},
    "model.5": {"ctr": CTR_MODEL["model.5"],
                "yarnit-ranker": ["tests/recipes/test_ranking.py::"
                                  "test_the_loop_logs_the_model_version_and_beats_a_random_order",
                                  "tests/recipes/test_recs_pipeline.py::"
                                  "test_a_recommender_below_popularity_on_every_metric_is_not_served"]},
    "model.6": {"ctr": CTR_MODEL["model.6"], "yarnit-ranker": CTR_MODEL["model.6"]},
    "model.7": {"ctr": CTR_MODEL["model.7"], "yarnit-ranker": CTR_MODEL["model.7"]},
    # ML infrastructure
    "infrastructure.1": {"ctr": ["tests/recipes/test_ctr_pipeline.py::test_reproducing_a_run_gives_identical_bytes"],
                         "yarnit-ranker": ["tests/recipes/test_ranker.py::"
                                           "test_a_reproduction_packages_the_same_pinned_parts_into_the_same_bytes"]},
    "infrastructure.2": {"ctr": ["tests/training/test_trainers.py::test_trained_models_load_from_bytes_and_rank_well",
                                 "tests/training/test_trainers.py::test_training_is_deterministic"],
                         "yarnit-ranker": ["tests/recipes/test_ranker.py::"
                                           "test_the_bundle_round_trips_and_refuses_tampering",
                                           "tests/recipes/test_ranker.py::"
                                           "test_out_of_stock_is_never_shown_and_diversity_holds"]},
    "infrastructure.3": {"ctr": ["tests/e2e/test_demo.py::test_demo_serves_a_prediction_from_the_model_it_trained",
                                 "tests/continuous/test_loop.py::"
                                 "test_each_day_is_validated_trained_gated_registered_and_promoted_once"],
                         "yarnit-ranker": ["tests/recipes/test_ranker.py::"
                                           "test_the_pipeline_registers_a_ranker_that_pins_its_parts",
                                           "tests/recipes/test_ranker.py::"
                                           "test_two_days_of_the_world_ranked_over_http_log_the_rankers_version"]},
    "infrastructure.4": {ANY: ["tests/registry/test_alias_moves_are_checked.py::"
                               "test_cli_promote_refuses_an_unblessed_version"],
                         "ctr": ["tests/recipes/test_ctr_gate.py::"
                                 "test_a_model_trained_on_biased_data_loss_is_blocked_with_its_reasons"],
                         "yarnit-ranker": ["tests/recipes/test_ranker.py::"
                                           "test_a_version_whose_golden_slates_are_wrong_is_not_swapped_in"]},
    "infrastructure.6": {ANY: ["tests/continuous/test_rollout.py::test_a_canary_failing_every_request_is_rolled_back",
                               "tests/continuous/test_canary.py::"
                               "test_target9_fifty_percent_slower_canary_is_high_in_at_least_99_percent"]},
    "infrastructure.7": {ANY: ["tests/registry/test_registry_contract.py::"
                               "test_rollback_walks_back_through_history_and_never_forward",
                               "tests/continuous/test_rollout.py::"
                               "test_target10_bad_canary_rolled_back_within_interval_times_threshold"]},
    # Monitoring
    "monitoring.1": {"ctr": ["tests/continuous/test_data_checks.py::"
                             "test_a_stockout_and_a_lost_language_fail_their_checks_with_observed_and_expected",
                             "tests/continuous/test_data_checks.py::"
                             "test_a_lost_language_is_ticketed_removed_by_intake_and_the_retrain_leaves_its_rows_out"]},
    "monitoring.2": {ANY: ["tests/serving/test_inputs.py::test_policy_from_training_follows_what_training_saw",
                           "tests/api/test_input_contract.py::"
                           "test_a_discount_far_outside_training_and_an_empty_instance_are_refused",
                           "tests/monitoring/test_input_completeness.py::"
                           "test_partner_lookup_fault_pages_within_two_hours_and_clean_traffic_never_alerts"]},
    "monitoring.3": {"ctr": ["tests/features/test_skew.py::"
                             "test_batch_and_online_paths_give_bitwise_identical_values_on_10000_rows",
                             "tests/api/test_input_contract.py::test_batch_and_online_score_the_same_rows_identically"],
                     "yarnit-ranker": ["tests/recipes/test_ranker.py::test_a_page_scores_like_a_batch",
                                       "tests/recipes/test_ranker_history.py::"
                                       "test_the_served_ranker_scores_with_the_shoppers_history"]},
    "monitoring.4": {ANY: ["tests/monitoring/test_probes.py::"
                           "test_model_freshness_follows_the_production_alias_history_including_a_rollback"]},
    "monitoring.5": {ANY: ["tests/serving/test_fallback.py::test_non_finite_scores_count_as_a_model_failure",
                           "tests/evaluation/test_validity.py::test_nan_weights_are_refused_before_serving"]},
    "monitoring.6": {ANY: ["tests/continuous/test_canary.py::"
                           "test_target9_fifty_percent_slower_canary_is_high_in_at_least_99_percent",
                           "tests/monitoring/test_monitor_runner.py::"
                           "test_target_4_a_full_outage_pages_on_the_first_minute_and_clears_five_minutes_after_errors_stop"]},
    "monitoring.7": {ANY: ["tests/monitoring/test_quality.py::"
                           "test_quality_events_judge_each_labelled_minute_on_the_hour_before_it",
                           "tests/continuous/test_rollout.py::"
                           "test_ctr_from_joined_labels_is_judged_and_a_drop_rolls_back"]},
}

#: why a test has no CI proof (printed with its 0)
NO_PROOF: dict[str, str] = {
    "model.1": "runs record the commit they ran, but no test checks a model's code is reviewed",
    "model.3": "every yarnit-ctr run tunes (its tune step, read in workspace mode), but the recipe's default c=1.0 "
               "is not the best of its own search on the default world, so no CI test can assert it is tuned",
    "infrastructure.5": "yarnit has no step-by-step debugger for one example",
}


_NOT_RUN = re.compile(r"pytest\.mark\.(skip\b(?!if)|xfail\b)")


@dataclass(frozen=True)
class NodeCheck:
    node: str
    present: bool
    why: str


def tests_root(explicit: Path | None = None) -> Path:
    """The checkout's ``tests/`` directory: ``explicit``, or the one beside this installed source tree."""
    if explicit is not None:
        root = Path(explicit)
    else:
        root = Path(__file__).resolve().parents[3] / "tests"
    if not root.is_dir():
        raise InvalidInput(f"--ci reads yarnit's test suite, and {root} is not a directory: run it from a yarnit "
                           "checkout (pip install -e .) or pass --tests-root PATH/TO/yarnit/tests.")
    return root


def check_node(root: Path, node: str) -> NodeCheck:
    """Whether ``path::name`` is a test function defined in that file of the suite."""
    path, _, name = node.partition("::")
    name = name.split("[", 1)[0]
    file = root.parent / path
    if not path.startswith("tests/") or ".." in Path(path).parts or not file.is_file():
        return NodeCheck(node, False, f"{path} is not a file of the test suite")
    source = file.read_text(encoding="utf-8", errors="replace")
    found = re.search(rf"^\s*(async\s+)?def {re.escape(name)}\(", source, re.MULTILINE)
    if found is None:
        return NodeCheck(node, False, f"{path} defines no test {name}")
    decorators = []
    for line in reversed(source[:found.start()].splitlines()):
        if not line.strip().startswith(("@", ")", "]", "}", '"', "'")) and not line.startswith((" ", "\t")):
            break
        decorators.append(line)
    if _NOT_RUN.search("\n".join(decorators)) or re.search(r"^pytestmark\s*=.*" + _NOT_RUN.pattern, source,
                                                           re.MULTILINE):
        return NodeCheck(node, False, f"{node} is marked skip or xfail: CI does not run it as a check")
    return NodeCheck(node, True, "defined in the suite make test runs")


def proof_nodes(model: str, test_id: str, mapping: Mapping[str, Mapping[str, list[str]]] = CI_PROOF) -> list[str]:
    entry = mapping.get(test_id) or {}
    return list(dict.fromkeys([*entry.get(ANY, []), *entry.get(model, [])]))


def ci_finding(model: str, test_id: str, root: Path,
               mapping: Mapping[str, Mapping[str, list[str]]] = CI_PROOF) -> Finding:
    """1 point when every test the mapping names for (model, test) is in the suite; else 0 with what is missing."""
    nodes = proof_nodes(model, test_id, mapping)
    if not nodes:
        return Finding(test_id, NONE, (), NO_PROOF.get(test_id, f"no test in the suite proves it for {model}"),
                       "write a test that proves it, and name it in yarnit.readiness.ci.CI_PROOF")
    checks = [check_node(root, n) for n in nodes]
    evidence = tuple(Evidence("test", c.node, c.why) for c in checks)
    missing = [c for c in checks if not c.present]
    if missing:
        return Finding(test_id, NONE, evidence, "; ".join(c.why for c in missing),
                       "restore the named test, or name the test that replaced it in yarnit.readiness.ci.CI_PROOF")
    return Finding(test_id, AUTOMATED, evidence, f"{len(checks)} test(s) in the suite CI runs")


def ci_findings(model: str, root: Path) -> dict[str, Finding]:
    return {t.id: ci_finding(model, t.id, root) for t in TESTS}


__all__ = ["ANY", "CI_PROOF", "NO_PROOF", "NodeCheck", "check_node", "ci_finding", "ci_findings", "proof_nodes",
           "tests_root"]
