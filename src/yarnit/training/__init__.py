"""Training: pipelines of typed steps, a runner that caches, retries and resumes, run records, trainers."""

from .params import InvalidParameter, Param
from .pipeline import Pipeline, PipelineDefinitionError, Step
from .runner import PipelineRunner, RunResult, StepContext, StepFailed, StepTimedOut, TransientStepError
from .runs import Run, RunStore, StepRecord, detect_code_version, environment
from .values import TrainedModel, ValueKind, load_value

__all__ = [
    "Pipeline",
    "PipelineDefinitionError",
    "PipelineRunner",
    "InvalidParameter",
    "Param",
    "Run",
    "RunResult",
    "RunStore",
    "Step",
    "StepContext",
    "StepFailed",
    "StepRecord",
    "StepTimedOut",
    "TrainedModel",
    "TransientStepError",
    "ValueKind",
    "detect_code_version",
    "environment",
    "load_value",
]
