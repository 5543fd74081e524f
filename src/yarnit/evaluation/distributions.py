"""Evaluation distributions: every metric value says which data it was measured on (book CH5-R6).

A :class:`Distribution` names the rows a metric was computed over and how
they were chosen. The kinds follow book ch. 5:

* ``holdout``: a time-ordered holdout (the days after the training data, so no
  future leaks into training);
* ``progressive``: one day of a time-ordered evaluation (backtesting day by day);
* ``golden``: a fixed, versioned set that catches sudden regressions; it is
  rebuilt when deletion or retention touches it (see :mod:`.golden`);
* ``stress``: rare slices or hard cases, such as cold-start (new) products;
* ``iid``: a random sample, when the data has no time order.

Slices (``country=ES``) qualify a distribution rather than replace it: a value
is keyed by (metric, distribution, slice).

Example:
    >>> d = time_ordered_holdout("2026-01-07", "2026-01-07", rows=3800)
    >>> d.name, d.description
    ('holdout', 'time-ordered holdout: 2026-01-07 to 2026-01-07 (3800 rows)')
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from .errors import MissingDistribution

DistributionKind = Literal["holdout", "progressive", "golden", "stress", "iid"]
KINDS: tuple[str, ...] = get_args(DistributionKind)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@/+-]{0,127}$")


@dataclass(frozen=True)
class Distribution:
    """The data an evaluation ran on: a short ``name``, its ``kind`` and a sentence saying what it is."""

    name: str
    kind: DistributionKind
    description: str
    rows: int | None = None
    dataset_version_ids: tuple[str, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise MissingDistribution(
                "An evaluation distribution needs a name (e.g. 'holdout', 'golden', 'cold_start'); got "
                f"{self.name!r}. Every evaluation is a (metric, distribution) pair (book CH5-R6)."
            )
        if not _NAME.match(self.name):
            raise MissingDistribution(
                f"Distribution name {self.name!r} is not valid: use 1-128 letters, digits and _.:@/+- "
                "(e.g. 'holdout', 'day:2026-01-07')."
            )
        if self.kind not in KINDS:
            raise MissingDistribution(f"Distribution {self.name!r} has kind {self.kind!r}; valid kinds: "
                                      f"{', '.join(KINDS)}.")
        if not isinstance(self.description, str) or not self.description.strip():
            raise MissingDistribution(f"Distribution {self.name!r} needs a description saying which rows it holds "
                                      "and how they were chosen.")
        object.__setattr__(self, "dataset_version_ids", tuple(self.dataset_version_ids))
        object.__setattr__(self, "details", dict(self.details))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "description": self.description, "rows": self.rows,
                "dataset_version_ids": list(self.dataset_version_ids), "details": dict(self.details)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Distribution:
        if not isinstance(data, Mapping):
            raise MissingDistribution(f"A distribution must be a mapping with name, kind and description; got "
                                      f"{type(data).__name__}.")
        return cls(name=data.get("name", ""), kind=data.get("kind", ""), description=data.get("description", ""),
                   rows=data.get("rows"), dataset_version_ids=tuple(data.get("dataset_version_ids") or ()),
                   details=data.get("details") or {})


def time_ordered_holdout(first_day: str, last_day: str, *, rows: int, unit: str = "rows",
                         dataset_version_ids: Sequence[str] = (), name: str = "holdout") -> Distribution:
    """The days after the training data (the book's first evaluation: AUC on a time-ordered holdout)."""
    return Distribution(name, "holdout", f"time-ordered holdout: {first_day} to {last_day} ({rows} {unit})",
                        rows, tuple(dataset_version_ids), {"first_day": first_day, "last_day": last_day})


def progressive_day(day: str, *, rows: int, trained_before: str, dataset_version_ids: Sequence[str] = ()
                    ) -> Distribution:
    """One day of a time-ordered evaluation: progressive validation, day by day."""
    return Distribution(f"day:{day}", "progressive",
                        f"progressive validation: {day} only ({rows} rows; model trained on data before "
                        f"{trained_before})", rows, tuple(dataset_version_ids), {"day": day})


def stress(name: str, description: str, *, rows: int, dataset_version_ids: Sequence[str] = (),
           details: Mapping[str, Any] | None = None) -> Distribution:
    """A stress set: rare slices or hard cases (cold-start products, a small country)."""
    return Distribution(name, "stress", description, rows, tuple(dataset_version_ids), details or {})


def golden_distribution(ref: str, *, rows: int, dataset_version_id: str, note: str = "") -> Distribution:
    """A fixed, versioned golden set (a dataset version, rebuilt when deletions touch it)."""
    text = f"golden set {ref} ({rows} rows, fixed across model versions)" + (f"; {note}" if note else "")
    return Distribution("golden", "golden", text, rows, (dataset_version_id,), {"ref": ref})


__all__ = ["KINDS", "Distribution", "DistributionKind", "golden_distribution", "progressive_day", "stress",
           "time_ordered_holdout"]
