"""Human labels (book ch. 4): label tasks over dataset versions, rater quality, consensus, label sets.

* :class:`Labels` (service.py): versioned label schemas, tasks with overlap and hidden golden items,
  answers, QA review, consensus, and label sets published as dataset versions with lineage;
* agreement.py: Cohen's and Fleiss' kappa, Krippendorff's alpha, majority vote, Dawid-Skene;
* quality.py: golden accuracy per rater, its drift, flags and weights;
* active.py: uncertainty + diversity sampling and AI-assisted pre-labels;
* labelstudio.py: Label Studio JSON import and export;
* simulate.py: drive a task with answering functions (simulated raters).
"""

from .agreement import (
    MISSING,
    cohen_kappa,
    count_table,
    dawid_skene,
    fleiss_kappa,
    krippendorff_alpha,
    majority_vote,
)
from .labelstudio import export_tasks, import_tasks, label_config, parse_tasks
from .models import (
    Answer,
    DuplicateAnswer,
    LabelSchema,
    LabelSchemaNotFound,
    LabelTask,
    LabelTaskNotFound,
    QualityPolicy,
    UnknownClass,
    UnknownItem,
)
from .quality import RaterQuality, accuracy_over_time, rater_quality, wilson_bounds
from .service import METHODS, AnswerTable, ConsensusLabel, Labels, check_rater
from .simulate import run_raters

__all__ = [
    "METHODS",
    "MISSING",
    "Answer",
    "AnswerTable",
    "ConsensusLabel",
    "DuplicateAnswer",
    "LabelSchema",
    "LabelSchemaNotFound",
    "LabelTask",
    "LabelTaskNotFound",
    "Labels",
    "QualityPolicy",
    "RaterQuality",
    "UnknownClass",
    "UnknownItem",
    "accuracy_over_time",
    "check_rater",
    "cohen_kappa",
    "count_table",
    "dawid_skene",
    "export_tasks",
    "fleiss_kappa",
    "import_tasks",
    "krippendorff_alpha",
    "label_config",
    "majority_vote",
    "parse_tasks",
    "rater_quality",
    "run_raters",
    "wilson_bounds",
]
