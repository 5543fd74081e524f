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


__all__ = ["AliasNotFound", "ModelNotFound", "ModelVersionNotFound", "NothingToRollBackTo", "TaintedVersion"]
