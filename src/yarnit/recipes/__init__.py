"""YarnIt's models: the click model (``yarnit-ctr``), the five ch. 12 recommenders (``yarnit-recs``) and the
ranking service that combines them (``yarnit-ranker``), each a pipeline of the training runner with gates."""

from .ctr import DEFAULTS, RAW_INPUTS, TRANSFORM, BlockingAnomalies, ctr_pipeline
from .pipelines import BUILTIN_PIPELINES, builtin_pipeline
from .ranker import RankingModel, ranker_pipeline
from .recs_pipeline import recs_pipeline

__all__ = ["BUILTIN_PIPELINES", "DEFAULTS", "RAW_INPUTS", "TRANSFORM", "BlockingAnomalies", "RankingModel",
           "builtin_pipeline", "ctr_pipeline", "ranker_pipeline", "recs_pipeline"]
