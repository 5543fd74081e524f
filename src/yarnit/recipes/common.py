"""What every recipe's ``register`` step ends with: promote a blessed version, report the version."""

from __future__ import annotations

from typing import Any

from yarnit.registry import ModelRegistry, ModelVersion
from yarnit.training import StepContext


def promote_and_report(ctx: StepContext, registry: ModelRegistry, version: ModelVersion,
                       verdict: dict[str, Any], reason: str) -> dict[str, Any]:
    """Move ``production`` to ``version`` when the gate blessed it and the run may promote; the step's output.

    Promotion is idempotent: a rerun of a run that already promoted this
    version moves nothing (and writes no audit event).
    """
    name = version.model_name
    promoted = False
    if verdict["blessed"] and ctx.config["promote"]:
        if registry.aliases(name).get("production") != version.version:
            registry.promote(name, version.version, actor=f"pipeline:{ctx.run_id}", reason=reason)
        promoted = True
    ctx.metric("model_version", version.version)
    return {"model_version": {"model": name, "version": version.version, "id": version.id, "promoted": promoted}}


__all__ = ["promote_and_report"]
