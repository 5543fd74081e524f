"""Evaluation: metrics on named distributions and slices, fairness, validity checks, gates, model cards.

Book ch. 5 (validity and quality), ch. 6 (fairness, CH6-R1 checklist) and
ch. 7 (CH7-R2: evaluation as an automatic gate that blocks a worse model).

* :mod:`.metrics`: AUC-ROC, PR-AUC, clipped log loss, Brier, calibration
  (ECE and buckets), bias, precision/recall@k, NDCG@k, MAP, equal to
  scikit-learn's values;
* :mod:`.bootstrap`: fast bootstrap intervals (Poisson bootstrap over cells);
* :mod:`.distributions`, :mod:`.slices`, :mod:`.report`: every value is a
  (metric, distribution[, slice]) pair, and a report without a distribution
  is refused (CH5-R6);
* :mod:`.evaluator`: everything per slice in a few vectorized passes, and
  paired differences against production;
* :mod:`.fairness`: selection rate, TPR, FPR, demographic-parity and
  equalized-odds differences, by Fairlearn's definitions;
* :mod:`.validity`: right artifact, loads in the serving runtime in a separate
  process, memory and latency budgets, golden requests, finite outputs,
  serving equals training, no collapse;
* :mod:`.gates`: gates as data and a verdict with every reason;
* :mod:`.golden`: fixed golden sets rebuilt when deletion touches them;
* :mod:`.cards`: model cards (Markdown and HTML);
* :mod:`.store`: reports stored with lineage (migration 0006);
* :mod:`.service`: :class:`ReportBuilder` and :func:`evaluate_version`.
"""

from .bootstrap import Bootstrap
from .cards import CHECKLIST, CardInfo, ModelCard
from .distributions import Distribution, golden_distribution, progressive_day, stress, time_ordered_holdout
from .errors import (
    EvaluationNotFound,
    GateConfigError,
    MissingDistribution,
    UndefinedMetric,
    UnknownMetric,
    UnknownSliceColumn,
)
from .evaluator import BinaryEvaluation, delong, evaluate_binary, evaluate_ranking, paired_deltas
from .fairness import FairnessResult, GroupRates, group_fairness
from .gates import Gate, GateResult, Verdict, gates_from_config, judge, standard_gates
from .golden import GoldenSet, GoldenSets
from .metrics import (
    METRICS,
    Calibration,
    bias,
    brier_score,
    calibration,
    expected_calibration_error,
    log_loss,
    mean_average_precision,
    ndcg_at_k,
    pr_auc,
    precision_at_k,
    recall_at_k,
    roc_auc,
)
from .report import EvaluationReport, MetricValue
from .service import (
    EvaluationRequest,
    ReportBuilder,
    TrainingCounts,
    card_for,
    evaluate_version,
    holdout_start,
    latest_evaluation,
    score_frame,
    training_coverage,
)
from .slices import Slice, Slices
from .store import EvaluationStore, StoredEvaluation
from .validity import (
    Candidate,
    ValidityBudget,
    ValidityCheck,
    ValidityProbe,
    ValidityReport,
    check_validity,
    check_version,
    golden_requests,
)

__all__ = [
    "CHECKLIST",
    "METRICS",
    "BinaryEvaluation",
    "Bootstrap",
    "Calibration",
    "Candidate",
    "CardInfo",
    "Distribution",
    "EvaluationNotFound",
    "EvaluationReport",
    "EvaluationRequest",
    "EvaluationStore",
    "FairnessResult",
    "Gate",
    "GateConfigError",
    "GateResult",
    "GoldenSet",
    "GoldenSets",
    "GroupRates",
    "MetricValue",
    "MissingDistribution",
    "ModelCard",
    "ReportBuilder",
    "Slice",
    "Slices",
    "StoredEvaluation",
    "TrainingCounts",
    "UndefinedMetric",
    "UnknownMetric",
    "UnknownSliceColumn",
    "ValidityBudget",
    "ValidityCheck",
    "ValidityProbe",
    "ValidityReport",
    "Verdict",
    "bias",
    "brier_score",
    "calibration",
    "card_for",
    "check_validity",
    "check_version",
    "delong",
    "evaluate_binary",
    "evaluate_ranking",
    "evaluate_version",
    "expected_calibration_error",
    "gates_from_config",
    "golden_distribution",
    "golden_requests",
    "group_fairness",
    "holdout_start",
    "judge",
    "latest_evaluation",
    "log_loss",
    "mean_average_precision",
    "ndcg_at_k",
    "paired_deltas",
    "pr_auc",
    "precision_at_k",
    "progressive_day",
    "recall_at_k",
    "roc_auc",
    "score_frame",
    "standard_gates",
    "stress",
    "time_ordered_holdout",
    "training_coverage",
]
