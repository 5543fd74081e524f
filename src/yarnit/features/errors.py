"""Errors of the feature store; each names the offending item and the valid choices.

::

    InvalidInput (yarnit.core)
     ├── UnknownFeature          a feature (or view) name that is not defined
     ├── EntityKeyError          an entity key that is missing or of the wrong type
     ├── NaiveTimestamp          a timestamp without a time zone
     └── DuplicateFeatureView    two definitions share one name
    NotFound (yarnit.core)
     └── FeatureViewNotFound     no registered view (or version) of that name
    Conflict (yarnit.core)
     └── MaterializationConflict another materialization committed first
    YarnitError
     └── FeatureComputeError     a view's own code or SQL failed (cause kept)
"""

from __future__ import annotations

from collections.abc import Iterable

from yarnit.core.errors import Conflict, InvalidInput, NotFound, YarnitError


def _choices(names: Iterable[str], limit: int = 20) -> str:
    items = sorted(set(names))
    if not items:
        return "(none)"
    shown = ", ".join(items[:limit])
    return shown if len(items) <= limit else f"{shown}, … ({len(items)} in all)"


class UnknownFeature(InvalidInput):
    """A feature or feature view name that the definitions do not contain."""

    def __init__(self, name: str, valid: Iterable[str], *, kind: str = "feature", where: str = "") -> None:
        place = f" in {where}" if where else ""
        super().__init__(
            f"Unknown {kind} {name!r}{place}. Valid {kind}s: {_choices(valid)}. "
            "See the definitions with: yarnit features show NAME"
        )
        self.name = name


class EntityKeyError(InvalidInput):
    """An entity key is missing or has the wrong type for its view."""


class NaiveTimestamp(InvalidInput):
    """A timestamp (column or value) has no time zone."""

    def __init__(self, what: str) -> None:
        super().__init__(
            f"{what} has no time zone. yarnit compares times across sources and only accepts timezone-aware "
            "UTC times: use datetime(..., tzinfo=timezone.utc), or for a pandas column "
            "df[col] = df[col].dt.tz_localize('UTC')."
        )


class DuplicateFeatureView(InvalidInput):
    """Two different definitions were given one view name."""

    def __init__(self, name: str, first: str, second: str) -> None:
        super().__init__(
            f"Two feature views are named {name!r}: {first} and {second}. A view name must be unique; "
            f"rename one (e.g. name='{name}_v2' in @feature_view) or drop the older definition."
        )
        self.name = name


class FeatureViewNotFound(NotFound):
    """No registered feature view (or version) of that name."""

    def __init__(self, name: str, valid: Iterable[str], number: int | None = None) -> None:
        what = f"feature view {name!r}" if number is None else f"version {number} of feature view {name!r}"
        super().__init__(
            f"There is no {what}. Registered views: {_choices(valid)}. Register definitions with "
            "yarnit features backfill --definitions FILE, and list them with: yarnit features list"
        )
        self.name = name


class MaterializationConflict(Conflict):
    """Another materialization of the same view committed while this one ran."""


class FeatureComputeError(YarnitError):
    """A feature view's own code (the decorated function or its SQL) failed; the cause is kept."""


__all__ = [
    "DuplicateFeatureView",
    "EntityKeyError",
    "FeatureComputeError",
    "FeatureViewNotFound",
    "MaterializationConflict",
    "NaiveTimestamp",
    "UnknownFeature",
]
