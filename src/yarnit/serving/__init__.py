"""Serving: the runtime (loaded versions, hot swap), traffic split and shadow, admission control,
fallbacks, the prediction cache, the compiled fast path, the prediction log and batch inference."""

from .admission import AdmissionController, AdmissionLimits
from .cache import PredictionCache
from .compiled import CompileResult, compile_predictor
from .errors import Overloaded, RequestTooLarge, VersionRejected
from .fallback import CircuitBreaker, HeuristicFallback
from .inputs import InputGuard, InputRejected
from .metrics import ServingCollector
from .onlinefeatures import FeatureSource, FeatureSpec, FeatureStatus, FeatureValue, OnlineFeatures, StaticFeatureSource
from .predlog import LogPolicy, PredictionLog, read_prediction_log, scan_prediction_log
from .router import Router, ShadowScorer, TrafficPolicy
from .runtime import MAX_INSTANCES, LoadedModel, ModelRuntime, ModelState, SwapEvent
from .service import InferenceService, Prediction, ServingOptions, validate_instances

__all__ = [
    "MAX_INSTANCES",
    "AdmissionController",
    "AdmissionLimits",
    "CircuitBreaker",
    "CompileResult",
    "FeatureSource",
    "FeatureSpec",
    "FeatureStatus",
    "FeatureValue",
    "HeuristicFallback",
    "InferenceService",
    "InputGuard",
    "InputRejected",
    "LoadedModel",
    "LogPolicy",
    "ModelRuntime",
    "ModelState",
    "OnlineFeatures",
    "Overloaded",
    "Prediction",
    "PredictionCache",
    "PredictionLog",
    "RequestTooLarge",
    "Router",
    "ServingCollector",
    "ServingOptions",
    "ShadowScorer",
    "StaticFeatureSource",
    "SwapEvent",
    "TrafficPolicy",
    "VersionRejected",
    "compile_predictor",
    "read_prediction_log",
    "scan_prediction_log",
    "validate_instances",
]
