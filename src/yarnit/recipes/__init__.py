"""YarnIt's models. Today: the click prediction pipeline; the recommenders land with their issue."""

from .ctr import DEFAULTS, RAW_INPUTS, TRANSFORM, BlockingAnomalies, ctr_pipeline
from .pipelines import BUILTIN_PIPELINES, builtin_pipeline

__all__ = ["BUILTIN_PIPELINES", "DEFAULTS", "RAW_INPUTS", "TRANSFORM", "BlockingAnomalies", "builtin_pipeline",
           "ctr_pipeline"]
