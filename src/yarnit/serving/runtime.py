"""The serving runtime: loaded model versions, found by alias, swapped when the alias moves.

A request asks for a model by name; the runtime answers with the version the
``production`` alias points at. It re-reads the alias at most every
``refresh_s`` seconds (of the injected clock); when the alias has moved, the
new version is loaded (sha256-verified) beside the old one and then swapped in
with one reference assignment, so in-flight requests finish on the version
they started with and no request sees a mix.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from yarnit.core.clock import Clock
from yarnit.core.errors import InvalidInput
from yarnit.features import get_transform
from yarnit.registry import ModelRegistry, ModelVersion, Predictor

MAX_INSTANCES = 10_000


@dataclass(frozen=True)
class LoadedModel:
    version: ModelVersion
    predictor: Predictor
    loaded_at_s: float
    transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None

    def score(self, instances: list[dict[str, Any]]) -> np.ndarray:
        rows = [self.transform(i) for i in instances] if self.transform else instances
        return np.asarray(self.predictor.predict_proba(rows), dtype=float)


@dataclass(frozen=True)
class Prediction:
    """Scores plus who produced them (ch. 8: every response carries the model version)."""

    values: list[float]
    model_name: str
    model_version: int
    served_by: str  # "model" now; "previous" and "fallback" arrive with the serving issue


class ModelRuntime:
    """Holds one loaded version per (model, alias)."""

    def __init__(self, registry: ModelRegistry, clock: Clock, *, refresh_s: float = 1.0) -> None:
        self.registry = registry
        self.clock = clock
        self.refresh_s = refresh_s
        self._loaded: dict[tuple[str, str], LoadedModel] = {}
        self._checked_at: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def current(self, model_name: str, alias: str = "production") -> LoadedModel:
        """The loaded version behind ``alias``, reloading if the alias moved."""
        key = (model_name, alias)
        now = self.clock.monotonic()
        loaded = self._loaded.get(key)
        if loaded is not None and now - self._checked_at.get(key, -1e18) < self.refresh_s:
            return loaded
        with self._lock:
            loaded = self._loaded.get(key)
            if loaded is not None and now - self._checked_at.get(key, -1e18) < self.refresh_s:
                return loaded
            target = self.registry.resolve(model_name, alias)
            if loaded is None or loaded.version.id != target.id:
                predictor = self.registry.load(target)  # verifies sha256; the old one serves meanwhile
                transform_name = target.signature.get("transform")
                transform = get_transform(transform_name) if transform_name else None
                loaded = LoadedModel(target, predictor, now, transform)
                self._loaded[key] = loaded
            self._checked_at[key] = now
            return loaded

    def predict(self, model_name: str, instances: list[dict[str, Any]], alias: str = "production") -> Prediction:
        if not instances:
            raise InvalidInput("'instances' is empty; send at least one instance, e.g. {\"instances\": [{...}]}.")
        if len(instances) > MAX_INSTANCES:
            raise InvalidInput(
                f"'instances' has {len(instances)} items; at most {MAX_INSTANCES} per request. Split the batch."
            )
        loaded = self.current(model_name, alias)
        values = loaded.score(instances)
        if not np.all(np.isfinite(values)):
            raise InvalidInput(
                f"Model {loaded.version.ref} produced non-finite scores for this input; check the instance values."
            )
        return Prediction([float(v) for v in values], model_name, loaded.version.version, "model")

    def ready(self) -> dict[str, int]:
        return {f"{name}@{alias}": m.version.version for (name, alias), m in self._loaded.items()}


__all__ = ["MAX_INSTANCES", "LoadedModel", "ModelRuntime", "Prediction"]
