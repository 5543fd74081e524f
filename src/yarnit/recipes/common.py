"""What every recipe's ``register`` step shares: reuse a version with the same bytes, promote a blessed one.

A pipeline moves ``production`` only forward in quality. The gate's change
checks allow a small regression (``max_regression``) so that noise does not
block retraining, but that allowance is for blessing, not for replacing what
serves: re-running an older config would otherwise take production back to
a slightly worse model "blessed by gate". So when the recipe compared the
candidate with production (:class:`HoldoutComparison`), promotion also needs
that comparison to be against the version that is production *now*, and the
candidate to be at least as good on that same holdout. Every run says what
happened: registered, blessed, promoted, which alias moved (and why not).
While the model's training is frozen (``yarnit emergency stop-training``) the
candidate is still registered, but production does not move, and the run says so.
"""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class HoldoutComparison:
    """The candidate and the production version it was evaluated against, on one holdout (paired rows)."""

    metric: str  # e.g. "auc"; higher is better
    candidate: float | None
    production: float | None
    production_version: int | None  # None: the evaluation had no production to compare with
    distribution: str = "the holdout"


def not_promotable(comparison: HoldoutComparison | None, production: int | None) -> str | None:
    """Why a blessed candidate must not replace ``production`` (its version now), or None.

    Example:
        >>> c = HoldoutComparison("auc", 0.70, 0.72, production_version=2)
        >>> not_promotable(c, 2)
        'auc 0.7000 < production v2 0.7200 on the holdout: a pipeline never moves production to a worse model'
    """
    if production is None or comparison is None:
        return None
    if comparison.production_version != production:
        against = f"production v{comparison.production_version}" if comparison.production_version else \
            "no production version"
        return (f"its evaluation compared it with {against}, but production is v{production} now; rerun the "
                "pipeline to compare them on the same holdout")
    c, p = comparison.candidate, comparison.production
    if c is None or p is None:
        return f"{comparison.metric} of the candidate or of production v{production} is undefined on " \
               f"{comparison.distribution}"
    if c < p:
        return (f"{comparison.metric} {c:.4f} < production v{production} {p:.4f} on {comparison.distribution}: a "
                "pipeline never moves production to a worse model")
    return None


def _frozen(registry: ModelRegistry, name: str) -> str | None:
    """Why pushes of ``name`` are frozen (an emergency stop-training), or None when not (or not installed)."""
    try:
        from yarnit.continuous.actions import training_frozen  # local: continuous orchestrates the recipes
    except ImportError:
        return None
    return training_frozen(registry.ws, name)


def promote_and_report(ctx: StepContext, registry: ModelRegistry, version: ModelVersion,
                       verdict: dict[str, Any], reason: str, *,
                       comparison: HoldoutComparison | None = None) -> dict[str, Any]:
    """Move ``production`` to ``version`` when blessed, allowed and not worse than production; the step's output.

    Promotion is idempotent: a rerun of a run that already promoted this
    version moves nothing (and writes no audit event). The output and the
    run's metrics say which version was registered (new in this run or
    reused), whether it was blessed and promoted, and which alias moved.
    """
    name = version.model_name
    production = registry.aliases(name).get("production")
    blessed = bool(verdict["blessed"])
    moved: str | None = None
    promoted = False
    if not blessed:
        decision = "not promoted: the gate did not bless it"
    elif not ctx.config["promote"]:
        decision = "not promoted: promotion is off for this run (promote=false)"
    elif production == version.version:
        promoted, decision = True, f"already production (v{production}); nothing moved"
    elif (frozen := _frozen(registry, name)) is not None:
        # Stop training (yarnit emergency stop-training): the version is registered, but nothing new serves.
        decision = f"not promoted: training of {name} is frozen ({frozen}). Once resolved: yarnit emergency " \
                   f"resume-training {name} --reason '…'"
    elif (why := not_promotable(comparison, production)) is not None:
        decision = f"not promoted: {why}. To promote it anyway: yarnit models promote {name} {version.version} " \
                   "--force --reason '…'"
    elif (halt := registry.release_refusal(name, version.version, "production")) is not None:
        decision = f"not promoted: releases of {name} are halted ({halt}). Once the budget recovers, or for a P0 " \
                   f"fix: yarnit models promote {name} {version.version} --override-reason '…'"
    else:
        event = registry.promote(name, version.version, actor=f"pipeline:{ctx.run_id}", reason=reason)
        promoted = True
        moved = f"production v{event.from_version} → v{event.to_version}" if event.from_version else \
            f"production → v{event.to_version}"
        decision = f"promoted: {moved}"
    registered = "registered" if version.run_id == ctx.run_id else "reused"
    summary = (f"{name} v{version.version} {registered} by this run · {'blessed' if blessed else 'NOT blessed'} · "
               f"{decision}")
    ctx.log(summary)
    ctx.metric("model_version", version.version)
    ctx.metric("promoted", promoted)
    ctx.metric("alias_moved", moved)
    ctx.metric("summary", summary)
    return {"model_version": {"model": name, "version": version.version, "id": version.id, "promoted": promoted,
                              "registered": registered == "registered", "blessed": blessed, "alias_moved": moved,
                              "production": registry.aliases(name).get("production"), "decision": decision,
                              "summary": summary}}


__all__ = ["HoldoutComparison", "not_promotable", "promote_and_report", "registered_version"]
