"""YarnIt's models. Today: the click prediction model; the recommenders land with their issue."""

from .ctr import RAW_INPUTS, TRANSFORM, CtrTrainingResult, time_split, train_ctr

__all__ = ["RAW_INPUTS", "TRANSFORM", "CtrTrainingResult", "time_split", "train_ctr"]
