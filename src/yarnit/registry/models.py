"""The registry's nouns: models, model versions, aliases and alias moves."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any


class ArtifactFormat(str, Enum):
    """Model artifact formats yarnit accepts. None of them runs code on load."""

    SKOPS = "skops"  # scikit-learn estimators, loaded with an explicit trusted-type list
    LIGHTGBM_TEXT = "lightgbm-text"  # LightGBM's own text model format
    ONNX = "onnx"
    RECS_NPZ = "yarnit-recs-npz"  # recommenders: numpy arrays (no pickles) + a JSON manifest, in one zip
    RANKER = "yarnit-ranker"  # a ranking bundle: pinned click model + recommenders + rules, in one zip
    INTENT = "yarnit-intent-npz"  # query intent: class names and logistic weights as numpy arrays (no pickles)


STANDARD_ALIASES = ("production", "canary", "shadow", "fallback", "staging")


@dataclass(frozen=True)
class ModelVersion:
    """One trained model: an artifact plus what it was made from and how well it did."""

    id: str
    model_name: str
    version: int
    artifact_sha256: str
    artifact_format: ArtifactFormat
    created_at: datetime
    signature: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    dataset_version_ids: tuple[str, ...] = ()
    run_id: str | None = None
    code_version: str | None = None
    seed: int | None = None
    tainted: bool = False
    taint_reason: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.model_name}:v{self.version}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (API responses, ``--json`` output)."""
        data = dict(self.__dict__)
        data["artifact_format"] = self.artifact_format.value
        data["created_at"] = self.created_at.isoformat()
        data["dataset_version_ids"] = list(self.dataset_version_ids)
        return data


@dataclass(frozen=True)
class AliasEvent:
    """One audited move of an alias (set, rollback, delete)."""

    model_name: str
    alias: str
    from_version: int | None
    to_version: int | None
    action: str
    actor: str
    reason: str
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__) | {"at": self.at.isoformat()}


# -- the input contract a version declares in its signature ----------------------------------------------
FEATURE_TYPES = ("string", "double", "int", "bool")
_TYPE_ALIASES = {"str": "string", "float": "double", "integer": "int", "boolean": "bool"}
MISSING_POLICIES = ("reject", "impute", "allow")
RANGE_POLICIES = ("reject", "impute")


@dataclass(frozen=True)
class FeaturePolicy:
    """What one input feature of a version accepts, and what serving does with a value outside it.

    ``missing``: ``reject`` (422), ``impute`` (score the training ``default``,
    counted) or ``allow`` (score it missing, as training saw it).
    ``out_of_range`` (numbers outside ``[min, max]``): ``reject`` or
    ``impute``. ``fixed``: a constant that replaces whatever a row holds
    (``position``: every path scores items as if shown first).
    """

    name: str
    type: str
    min: float | None = None
    max: float | None = None
    default: Any = None
    missing: str = "allow"
    out_of_range: str = "reject"
    fixed: Any = None

    def __post_init__(self) -> None:
        if self.type not in FEATURE_TYPES:
            raise ValueError(f"Feature {self.name!r} has type {self.type!r}; valid: {', '.join(FEATURE_TYPES)}.")
        if self.missing not in MISSING_POLICIES or self.out_of_range not in RANGE_POLICIES:
            raise ValueError(f"Feature {self.name!r}: missing must be one of {MISSING_POLICIES} and out_of_range "
                             f"one of {RANGE_POLICIES}; got {self.missing!r}, {self.out_of_range!r}.")
        if "impute" in (self.missing, self.out_of_range) and self.default is None:
            raise ValueError(f"Feature {self.name!r} imputes but declares no training default.")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "missing": self.missing, "out_of_range": self.out_of_range}
        for key in ("min", "max", "default", "fixed"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out

    @classmethod
    def from_dict(cls, name: str, data: Mapping[str, Any]) -> FeaturePolicy:
        kind = str(data.get("type", "string"))
        return cls(name, _TYPE_ALIASES.get(kind, kind), _bound(data.get("min")), _bound(data.get("max")),
                   data.get("default"), str(data.get("missing", "allow")), str(data.get("out_of_range", "reject")),
                   data.get("fixed"))


def _bound(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(
        value) else None


@dataclass(frozen=True)
class InputSignature:
    """The per-feature input contract of a version: ``signature["input_policy"]``, declared at training.

    A version registered without one (before the contract existed) gets the
    types of its ``inputs`` with every value allowed missing and no range:
    what it was served with before, less values of the wrong type.

    Example:
        >>> sig = InputSignature.of({"inputs": {"price_usd": "double"},
        ...                          "input_policy": {"price_usd": {"type": "double", "min": 0, "max": 80}}})
        >>> sig.features["price_usd"].max, sig.declared
        (80.0, True)
        >>> InputSignature.of({"inputs": {"hour": "int"}}).features["hour"].missing
        'allow'
    """

    features: Mapping[str, FeaturePolicy]
    declared: bool = False  # False: derived from the legacy "inputs" types

    @classmethod
    def of(cls, signature: Mapping[str, Any]) -> InputSignature:
        policy = signature.get("input_policy")
        if isinstance(policy, Mapping):
            return cls({name: FeaturePolicy.from_dict(name, spec) for name, spec in policy.items()
                        if isinstance(spec, Mapping)}, declared=True)
        inputs = signature.get("inputs")
        features: dict[str, FeaturePolicy] = {}
        if isinstance(inputs, Mapping):
            for name, kind in inputs.items():
                kind = _TYPE_ALIASES.get(str(kind), str(kind))
                if kind in FEATURE_TYPES:
                    features[name] = FeaturePolicy(name, kind)
        return cls(features)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form stored as ``signature["input_policy"]``."""
        return {name: policy.to_dict() for name, policy in self.features.items()}


__all__ = ["FEATURE_TYPES", "STANDARD_ALIASES", "AliasEvent", "ArtifactFormat", "FeaturePolicy", "InputSignature",
           "ModelVersion"]
