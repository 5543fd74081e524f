"""LightGBM models in LightGBM's own text format (parsed by LightGBM, never unpickled).

Text features are stored as category codes. The model text carries the
category lists (``pandas_categorical``) and marks which features are
categorical (``feature_infos``), so a dict instance can be encoded at serving
exactly as training encoded its frame.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from yarnit.core.errors import InvalidInput, UnsafeArtifact

_UNSAFE = str.maketrans({c: "_" for c in '",:[]{}'})


def lightgbm_safe(name: str) -> str:
    """LightGBM refuses some JSON characters in feature names; training and serving both replace them."""
    return name.translate(_UNSAFE)


def _feature_infos(model_text: str) -> list[str]:
    for line in model_text.splitlines():
        if line.startswith("feature_infos="):
            return line.split("=", 1)[1].split(" ")
    return []


def unused_features(model_text: str) -> set[int]:
    """Indices of the features a LightGBM model dropped (``feature_infos`` entry ``none``: one value only)."""
    return {i for i, info in enumerate(_feature_infos(model_text)) if info == "none"}


def _categorical_flags(model_text: str, n_features: int) -> list[bool]:
    infos = _feature_infos(model_text)
    if not infos:
        return [False] * n_features
    return [not (info.startswith("[") or info == "none") for info in infos]


class LightgbmPredictor:
    """A LightGBM booster scoring dicts: numbers by feature name, text via the stored category lists."""

    def __init__(self, booster: Any, model_text: str) -> None:
        self.booster = booster
        self.feature_names: list[str] = list(booster.feature_name())
        flags = _categorical_flags(model_text, len(self.feature_names))
        lists = list(booster.pandas_categorical or [])
        self.categories: dict[int, dict[str, int]] = {}
        for index, is_categorical in enumerate(flags):
            if is_categorical and lists:
                self.categories[index] = {value: code for code, value in enumerate(lists.pop(0))}
        self.columns: dict[str, int] = {name: col for col, name in enumerate(self.feature_names)}
        self.unused = unused_features(model_text)

    @classmethod
    def from_bytes(cls, data: bytes) -> LightgbmPredictor:
        import lightgbm

        if not data.startswith(b"tree\n"):
            raise UnsafeArtifact(
                "An artifact declared as 'lightgbm-text' must be a LightGBM text model (starting with 'tree'); "
                "these bytes are not. Save the booster with booster.model_to_string()."
            )
        text = data.decode("utf-8")
        return cls(lightgbm.Booster(model_str=text), text)

    def encode(self, instances: list[dict[str, Any]]) -> np.ndarray:
        """The float64 matrix LightGBM scores: numbers as given, text as its category code, NaN when missing.

        Both the native booster and the compiled ONNX path score this matrix, so
        they always see the same codes. (A Python list per row turned into one
        array at the end: much cheaper than item assignment into numpy.)
        """
        width, columns, categories, nan = len(self.feature_names), self.columns, self.categories, math.nan
        out: list[list[float]] = []
        for instance in instances:
            row = [nan] * width
            for key, value in instance.items():
                col = columns.get(key)
                if col is None:
                    col = columns.get(lightgbm_safe(str(key)))
                    if col is None:
                        continue
                if value is None:
                    row[col] = nan
                    continue
                lookup = categories.get(col)
                if col in self.unused:  # a feature the model dropped (feature_infos=none): no tree reads it
                    continue
                if lookup is not None:
                    code = lookup.get(value if type(value) is str else str(value))
                    row[col] = nan if code is None else code
                elif isinstance(value, bool) or not isinstance(value, int | float):
                    raise InvalidInput(
                        f"Feature {self.feature_names[col]!r} must be a number for this LightGBM model; "
                        f"got {value!r}."
                    )
                else:
                    row[col] = float(value) if math.isfinite(value) else nan
            out.append(row)
        return np.array(out, dtype=np.float64) if out else np.empty((0, width), dtype=np.float64)

    def predict_proba(self, instances: list[dict[str, Any]]) -> np.ndarray:
        return np.asarray(self.booster.predict(self.encode(instances)))


def dump_lightgbm(booster: Any) -> bytes:
    """A booster's text model (with its category lists), as bytes."""
    return str(booster.model_to_string()).encode("utf-8")


__all__ = ["LightgbmPredictor", "dump_lightgbm", "lightgbm_safe", "unused_features"]
