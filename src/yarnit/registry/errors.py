"""Registry errors: each names the model and the next step."""

from __future__ import annotations

from yarnit.core.errors import Conflict, NotFound


class ModelNotFound(NotFound):
    def __init__(self, model_name: str) -> None:
        super().__init__(
            f"There is no model named {model_name!r}. List models with: yarnit models list"
        )
        self.model_name = model_name


class ModelVersionNotFound(NotFound):
    def __init__(self, model_name: str, version: int) -> None:
        super().__init__(
            f"Model {model_name!r} has no version {version}. See existing versions with: "
            f"yarnit models show {model_name}"
        )
        self.model_name, self.version = model_name, version


class AliasNotFound(NotFound):
    def __init__(self, model_name: str, alias: str) -> None:
        super().__init__(
            f"Model {model_name!r} has no alias {alias!r}. Point it at a version with: "
            f"yarnit models promote {model_name} VERSION --alias {alias}"
        )
        self.model_name, self.alias = model_name, alias


class NothingToRollBackTo(Conflict):
    def __init__(self, model_name: str, alias: str) -> None:
        super().__init__(
            f"Alias {alias!r} of model {model_name!r} has no earlier version in its history to roll back to. "
            f"Pick a version explicitly: yarnit models promote {model_name} VERSION --alias {alias}"
        )


class TaintedVersion(Conflict):
    def __init__(self, ref: str, reason: str | None) -> None:
        super().__init__(
            f"Model version {ref} is tainted ({reason or 'no reason recorded'}) and cannot be promoted. "
            "Retrain it without the affected data, then promote the new version."
        )


class UnservableVersion(Conflict):
    """The version's artifact is missing, corrupted or does not load: an alias on it could never serve."""

    def __init__(self, model_name: str, version: int, alias: str, sha256: str, problem: str) -> None:
        super().__init__(
            f"Refusing to point {alias!r} of model {model_name!r} at v{version}: its artifact sha256:{sha256[:12]}… "
            f"{problem}, so it could never serve. Nothing was moved. Repair it with: yarnit models restore "
            f"{model_name} {version} --file COPY (a copy of the artifact whose sha256 is {sha256}), or move the "
            f"alias to another version (yarnit models show {model_name})."
        )
        self.model_name, self.version, self.alias, self.problem = model_name, version, alias, problem


class PromotionRefused(Conflict):
    """A promotion to a gated alias was refused; the message says why and what to do next."""

    def __init__(self, model_name: str, version: int, alias: str, why: str, next_step: str) -> None:
        super().__init__(
            f"Refusing to promote model {model_name!r} v{version} to {alias!r}: {why}. {next_step}; or override, "
            f"audited, with: yarnit models promote {model_name} {version} --alias {alias} --force --reason '…'"
        )
        self.model_name, self.version, self.alias, self.why = model_name, version, alias, why


class NotBlessed(PromotionRefused):
    """Promotion to a gated alias without a blessed, validity-checked evaluation of the exact version."""

    def __init__(self, model_name: str, version: int, alias: str, why: str) -> None:
        super().__init__(model_name, version, alias, why,
                         f"Evaluate and gate it with: yarnit eval run {model_name} --version {version} && "
                         f"yarnit eval gate --model {model_name} --version {version}")


class ReleaseHalted(PromotionRefused):
    """Promotion to a gated alias while a release gate (the error-budget policy) halts changes to the model."""

    def __init__(self, model_name: str, version: int, alias: str, why: str) -> None:
        Conflict.__init__(
            self,
            f"Refusing to promote model {model_name!r} v{version} to {alias!r}: {why}. Changes are halted until the "
            f"budget recovers (only P0 and security fixes go ahead). To fix the service, roll back (never "
            f"refused): yarnit models rollback {model_name} --alias {alias}; see the budget with: yarnit slo "
            f"status; a P0 or security fix may override, audited with your name and reason: yarnit models promote "
            f"{model_name} {version} --alias {alias} --override-reason '…' (HTTP: \"override_reason\")"
        )
        self.model_name, self.version, self.alias, self.why = model_name, version, alias, why


__all__ = ["AliasNotFound", "ModelNotFound", "ModelVersionNotFound", "NotBlessed", "NothingToRollBackTo",
           "PromotionRefused", "ReleaseHalted", "TaintedVersion", "UnservableVersion"]
