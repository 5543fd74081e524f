"""LightGBM models in LightGBM's own text format (parsed by LightGBM, never unpickled)."""

from __future__ import annotations

from typing import Any

import numpy as np

from yarnit.core.errors import InvalidInput, UnsafeArtifact


class LightgbmPredictor:
    """A LightGBM booster taking dicts of numeric features by name."""

    def __init__(self, booster: Any) -> None:
        self.booster = booster
        self.feature_names: list[str] = list(booster.feature_name())

    @classmethod
    def from_bytes(cls, data: bytes) -> LightgbmPredictor:
        import lightgbm

        if not data.startswith(b"tree\n"):
            raise UnsafeArtifact(
                "An artifact declared as 'lightgbm-text' must be a LightGBM text model (starting with 'tree'); "
                "these bytes are not. Save the booster with booster.model_to_string()."
            )
        return cls(lightgbm.Booster(model_str=data.decode("utf-8")))

    def predict_proba(self, instances: list[dict[str, Any]]) -> np.ndarray:
        matrix = np.full((len(instances), len(self.feature_names)), np.nan)
        for row, instance in enumerate(instances):
            for col, name in enumerate(self.feature_names):
                value = instance.get(name)
                if value is None:
                    continue
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise InvalidInput(
                        f"Feature {name!r} must be a number for this LightGBM model; got {value!r}. "
                        "Encode categories as numbers before scoring."
                    )
                matrix[row, col] = float(value)
        return np.asarray(self.booster.predict(matrix))


def dump_lightgbm(booster: Any) -> bytes:
    """A booster's text model, as bytes."""
    return str(booster.model_to_string()).encode("utf-8")


__all__ = ["LightgbmPredictor", "dump_lightgbm"]
