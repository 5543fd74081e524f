"""Model registry: versions with safe artifacts, audited aliases, one-step rollback."""

from .errors import (
    AliasNotFound,
    ModelNotFound,
    ModelVersionNotFound,
    NotBlessed,
    NothingToRollBackTo,
    ReleaseHalted,
    TaintedVersion,
    UnservableVersion,
)
from .formats import Predictor, dump_sklearn, load_predictor
from .lightgbm_format import dump_lightgbm
from .models import (
    STANDARD_ALIASES,
    AliasEvent,
    ArtifactFormat,
    FeaturePolicy,
    InputSignature,
    ModelVersion,
)
from .restore import ModelRestoreReport, restore_last_known_good
from .service import GATED_ALIASES, ModelRegistry, rollback_candidates

__all__ = [
    "GATED_ALIASES",
    "STANDARD_ALIASES",
    "AliasEvent",
    "AliasNotFound",
    "ArtifactFormat",
    "FeaturePolicy",
    "InputSignature",
    "ModelNotFound",
    "ModelRegistry",
    "ModelRestoreReport",
    "ModelVersion",
    "ModelVersionNotFound",
    "NotBlessed",
    "ReleaseHalted",
    "NothingToRollBackTo",
    "Predictor",
    "TaintedVersion",
    "UnservableVersion",
    "dump_lightgbm",
    "dump_sklearn",
    "load_predictor",
    "restore_last_known_good",
    "rollback_candidates",
]
