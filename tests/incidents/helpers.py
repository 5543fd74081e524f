"""Helpers for incident tests: tiny real models, and emergency actions with real effects on the workspace.

``yarnit.continuous.actions`` (another part of issue 18) is not in this branch; these callables have its
signature (``fn(ws, model, *, actor, reason) -> dict``) and really move registry aliases.
"""

from __future__ import annotations

from typing import Any

from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from yarnit.registry import ArtifactFormat, ModelRegistry, dump_sklearn

ROWS = [{"fiber": "merino", "price": 12.0}, {"fiber": "acrylic", "price": 3.0}] * 5


def register(registry: ModelRegistry, name: str, *, dataset_ids: list[str] | None = None) -> Any:
    model = Pipeline([("vec", DictVectorizer()), ("lr", LogisticRegression())]).fit(ROWS, [1, 0] * 5)
    return registry.register(name, dump_sklearn(model), ArtifactFormat.SKOPS,
                             signature={"inputs": {"fiber": "string", "price": "double"}},
                             dataset_version_ids=dataset_ids or [])


def roll_back_action(calls: list[tuple[str, str, str]]) -> Any:
    """``roll_back``: production to the previous version, via the registry (what the real action does)."""

    def roll_back(ws: Any, model: str, *, actor: str, reason: str) -> dict[str, Any]:
        calls.append((model, actor, reason))
        event = ModelRegistry(ws, release_gate=None).roll_back(model, actor=actor, reason=reason)
        return {"action": "roll_back", "model": model, "from_version": event.from_version,
                "to_version": event.to_version}

    return roll_back


def failing_action(calls: list[str]) -> Any:
    def fall_back(ws: Any, model: str, *, actor: str, reason: str) -> dict[str, Any]:
        calls.append(model)
        raise RuntimeError("the fallback switch is unreachable")

    return fall_back
