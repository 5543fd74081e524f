"""The registry's nouns: models, model versions, aliases and alias moves."""

from __future__ import annotations

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


__all__ = ["STANDARD_ALIASES", "AliasEvent", "ArtifactFormat", "ModelVersion"]
