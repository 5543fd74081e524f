"""Serving: the runtime that loads versions by alias and scores requests."""

from .runtime import MAX_INSTANCES, LoadedModel, ModelRuntime, Prediction

__all__ = ["MAX_INSTANCES", "LoadedModel", "ModelRuntime", "Prediction"]
