"""Per-minute counts of served rows by which inputs they carried: what ``input_completeness`` reads.

The data plane drops ``null`` values from a request's instances (a null is a
missing feature, :func:`yarnit.serving.service.validate_instances`), so in the
prediction log an empty input is an *absent* column. The traffic summaries
(:mod:`.traffic`) therefore keep, for each (model, version, role, hour), an
:class:`InputCounts`: the distinct *key sets* of the logged rows (the sorted
names of the non-personal columns a row held with a value; a ``None`` value,
as other writers may log it, counts as absent) and, per minute, how many rows
had each key set.

A row is **incomplete** when it lacks a column that is expected: by default
every column some row of the same summary held (one model version's traffic
in one hour: "all feature columns seen"), or, with ``columns``, those named.
The world's ``partner_lookup`` fault gives two key sets, the full one and one
without fiber, weight_class, color and brand; a model's fixed feature set
keeps their number small. Past :data:`MAX_KEYSETS` distinct key sets in one
summary the rows are kept under ``-1`` ("columns not recorded") and counted
incomplete: the count may overstate the bad rows of such hostile traffic,
never hide them.

Everything merges by adding; personal columns are dropped from the key sets
(:meth:`InputCounts.drop_columns`) before anything is written.

Example:
    >>> counts = InputCounts()
    >>> full, partial = ("brand", "fiber", "price"), ("price",)
    >>> counts.add(29_000_000, {full: 6, partial: 4})
    >>> counts.add(29_000_001, {full: 5})
    >>> counts.rows, counts.incomplete_rows, counts.events()
    (15, 4, {29000000: (6, 10), 29000001: (5, 5)})
    >>> counts.events(columns={"price"})
    {29000000: (10, 10), 29000001: (5, 5)}
    >>> InputCounts.from_dict(counts.to_dict()).events(columns={"fiber"})
    {29000000: (6, 10), 29000001: (5, 5)}
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_KEYSETS = 32  # distinct key sets per summary; rows with more are kept under OVERFLOW
OVERFLOW = -1

KeySet = tuple[str, ...]


@dataclass
class InputCounts:
    """Distinct key sets, and per epoch minute (``floor(time / 60)``) the rows of each (by index, ``-1``: overflow)."""

    keysets: list[KeySet] = field(default_factory=list)
    minutes: dict[int, dict[int, int]] = field(default_factory=dict)
    # (minutes, good, total) arrays per expected-column set, for a summary that no longer changes (see arrays())
    _arrays: dict[frozenset[str] | None, tuple[Any, Any, Any]] = field(default_factory=dict, init=False, repr=False,
                                                                        compare=False)

    @property
    def rows(self) -> int:
        return sum(sum(m.values()) for m in self.minutes.values())

    @property
    def incomplete_rows(self) -> int:
        """Rows missing a column some row of this summary held (or past the key-set cap)."""
        return sum(total - good for good, total in self.events().values())

    def add(self, minute: int, rows: Mapping[KeySet | None, int]) -> None:
        """Count rows in ``minute`` by key set (``None``: not recorded, as past the cap)."""
        if not any(rows.values()):
            return
        self._arrays.clear()
        slot = self.minutes.setdefault(minute, {})
        index = {k: i for i, k in enumerate(self.keysets)}
        for keyset, n in rows.items():
            if not n:
                continue
            i = OVERFLOW if keyset is None else index.get(keyset)
            if i is None:
                if len(self.keysets) >= MAX_KEYSETS:
                    i = OVERFLOW
                else:
                    i = index[keyset] = len(self.keysets)  # type: ignore[index]
                    self.keysets.append(keyset)  # type: ignore[arg-type]
            slot[i] = slot.get(i, 0) + n

    def merge(self, other: InputCounts) -> None:
        for minute, rows in other.minutes.items():
            self.add(minute, {other._keyset(i): n for i, n in rows.items()})

    def drop_columns(self, names: Collection[str]) -> None:
        """Forget ``names`` (personal columns) in every key set (key sets that become equal are merged)."""
        if not names or not any(set(k) & set(names) for k in self.keysets):
            return
        old = self.minutes, [tuple(c for c in k if c not in names) for k in self.keysets]
        self.keysets, self.minutes = [], {}
        for minute, rows in old[0].items():
            self.add(minute, {None if i == OVERFLOW else old[1][i]: n for i, n in rows.items()})

    def events(self, columns: Collection[str] | None = None) -> dict[int, tuple[int, int]]:
        """minute -> (complete rows, rows): rows holding every expected column (``columns``, or all seen here)."""
        expected = set(columns) if columns is not None else {c for k in self.keysets for c in k}
        complete = {i for i, k in enumerate(self.keysets) if expected.issubset(k)}
        out: dict[int, tuple[int, int]] = {}
        for minute, rows in sorted(self.minutes.items()):
            total = sum(rows.values())
            if total:
                out[minute] = (sum(n for i, n in rows.items() if i in complete), total)
        return out

    def arrays(self, columns: Collection[str] | None = None) -> tuple[Any, Any, Any]:
        """:meth:`events` as three int64 arrays (minute, complete rows, rows), kept until the counts change:
        a monitor judges the same committed hours every pass."""
        import numpy as np

        key = frozenset(columns) if columns is not None else None
        cached = self._arrays.get(key)
        if cached is None:
            events = self.events(columns)
            cached = (np.fromiter(events.keys(), dtype=np.int64, count=len(events)),
                      np.fromiter((g for g, _t in events.values()), dtype=np.int64, count=len(events)),
                      np.fromiter((t for _g, t in events.values()), dtype=np.int64, count=len(events)))
            self._arrays[key] = cached
        return cached

    def _keyset(self, i: int) -> KeySet | None:
        return None if i == OVERFLOW else self.keysets[i]

    def to_dict(self) -> dict[str, Any]:
        return {"keysets": [list(k) for k in self.keysets],
                "minutes": {str(m): {str(i): n for i, n in sorted(rows.items())}
                            for m, rows in sorted(self.minutes.items())}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> InputCounts:
        """The inverse of :meth:`to_dict`; ``None`` (a summary written before inputs were counted) is empty."""
        if not data:
            return cls()
        return cls([tuple(str(c) for c in k) for k in data["keysets"]],
                   {int(m): {int(i): int(n) for i, n in rows.items()} for m, rows in data["minutes"].items()})


__all__ = ["MAX_KEYSETS", "OVERFLOW", "InputCounts", "KeySet"]
