"""What every recipe's ``register`` step shares: reuse a version with the same bytes, promote a blessed one."""

from __future__ import annotations

from typing import Any

from yarnit.core.hashing import sha256_bytes
from yarnit.registry import ModelRegistry, ModelVersion
from yarnit.training import StepContext


def registered_version(registry: ModelRegistry, name: str, artifact: bytes) -> ModelVersion | None:
    """The newest version of ``name`` with exactly these artifact bytes, if any.

    Identical bytes are the same model: a cached rerun, or a resume after a crash between registering
    and recording the step, reuses that version instead of registering a duplicate.
    """
    if not registry.exists(name):
        return None
    sha = sha256_bytes(artifact)
    same = [v for v in registry.versions(name) if v.artifact_sha256 == sha]
    return same[-1] if same else None


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


__all__ = ["promote_and_report", "registered_version"]
