"""Training: run records (the pipeline runner, trainers and reproducibility land with their issue)."""

from .runs import Run, RunStore, detect_code_version

__all__ = ["Run", "RunStore", "detect_code_version"]
