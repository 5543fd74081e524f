"""Slices: the subsets of an evaluation distribution that must each be good enough (ML Test Score Model 6).

A slice spec is a column (every value becomes a slice), ``column=value`` (one
slice), or a numeric column with bucket edges. Columns are encoded once as
integer codes, so evaluating 20 slices of a million rows costs 20 vectorized
comparisons, not 20 copies of a DataFrame.

Example:
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"country": ["ES", "US", "ES"], "price": [0.5, 7.0, 12.0]})
    >>> s = Slices.from_frame(frame, ["country", "country=NO"], bins={"price": [1, 5, 10]})
    >>> [(x.name, int(x.rows)) for x in s]
    [('country=ES', 2), ('country=US', 1), ('country=NO', 0)]
    >>> [x.name for x in Slices.from_frame(frame, ["price"], bins={"price": [1, 5, 10]})]
    ['price=[-inf, 1)', 'price=[5, 10)', 'price=[10, inf)']
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from yarnit.core.errors import InvalidInput

from .errors import UnknownSliceColumn

MISSING = "(missing)"
MAX_VALUES = 200


@dataclass(frozen=True)
class SliceColumn:
    """One column encoded as integer codes (one per row) and the value each code stands for."""

    column: str
    codes: np.ndarray
    values: tuple[str, ...]


@dataclass(frozen=True)
class Slice:
    """One slice: ``column=value``. ``code`` is -1 for a requested value that no row has."""

    column: str
    value: str
    code: int
    rows: int

    @property
    def name(self) -> str:
        return f"{self.column}={self.value}"


def _fmt(x: float) -> str:
    return "inf" if x == np.inf else "-inf" if x == -np.inf else f"{x:g}"


def encode_column(frame: pd.DataFrame, column: str, *, bins: Sequence[float] | None = None,
                  max_values: int = MAX_VALUES) -> SliceColumn:
    """Encode ``frame[column]`` for slicing (bucketed by ``bins`` edges when given)."""
    if column not in frame.columns:
        raise UnknownSliceColumn(column, [str(c) for c in frame.columns])
    series = frame[column]
    if bins is not None:
        edges = np.asarray(sorted(float(b) for b in bins), dtype=np.float64)
        if len(edges) == 0 or not np.isfinite(edges).all():
            raise InvalidInput(f"Bucket edges for slice column {column!r} must be finite numbers; got {list(bins)!r}.")
        numbers = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        bounds = np.concatenate(([-np.inf], edges, [np.inf]))
        labels = [f"[{_fmt(bounds[i])}, {_fmt(bounds[i + 1])})" for i in range(len(bounds) - 1)]
        codes = np.searchsorted(edges, numbers, side="right").astype(np.int32)
        missing = np.isnan(numbers)
        if missing.any():
            codes[missing] = len(labels)
            labels.append(MISSING)
        return SliceColumn(column, codes, tuple(labels))
    codes, uniques = pd.factorize(series, sort=True, use_na_sentinel=True)
    values = [str(v) for v in uniques]
    codes = codes.astype(np.int32)
    if (codes < 0).any():
        codes[codes < 0] = len(values)
        values.append(MISSING)
    if len(values) > max_values:
        raise InvalidInput(
            f"Slice column {column!r} has {len(values)} distinct values (more than {max_values}); slice a "
            f"coarser column, name single values ({column}=VALUE), or give bucket edges for a numeric column."
        )
    return SliceColumn(column, codes, tuple(values))


class Slices:
    """The slices of one evaluation distribution, in a stable order (columns as given, values sorted)."""

    def __init__(self, columns: Sequence[SliceColumn], selected: Sequence[tuple[str, str | None]],
                 n_rows: int) -> None:
        self.columns = {c.column: c for c in columns}
        self.selected = list(selected)
        self.n_rows = n_rows

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, specs: Sequence[str], *,
                   bins: Mapping[str, Sequence[float]] | None = None, max_values: int = MAX_VALUES) -> Slices:
        """Slices of ``frame`` from specs such as ``"country"`` or ``"country=ES"``.

        Unknown columns raise :class:`UnknownSliceColumn`; a requested value that
        no row has becomes an empty slice, which evaluations report as undefined.
        """
        bins = dict(bins or {})
        columns: dict[str, SliceColumn] = {}
        selected: list[tuple[str, str | None]] = []
        for spec in specs:
            if not isinstance(spec, str) or not spec.strip():
                raise InvalidInput(f"A slice spec is a column name or column=value, got {spec!r}.")
            column, sep, value = spec.partition("=")
            column = column.strip()
            if column not in columns:
                columns[column] = encode_column(frame, column, bins=bins.get(column), max_values=max_values)
            entry = (column, value.strip() if sep else None)
            if entry not in selected:
                selected.append(entry)
        return cls(list(columns.values()), selected, len(frame))

    def __iter__(self) -> Iterator[Slice]:
        seen: set[tuple[str, str]] = set()
        for column, value in self.selected:
            encoded = self.columns[column]
            counts = np.bincount(encoded.codes, minlength=len(encoded.values))
            if value is None:
                wanted = [(v, i) for i, v in enumerate(encoded.values) if counts[i] > 0]
            else:
                code = encoded.values.index(value) if value in encoded.values else -1
                wanted = [(value, code)]
            for v, code in wanted:
                if (column, v) in seen:
                    continue
                seen.add((column, v))
                yield Slice(column, v, code, int(counts[code]) if code >= 0 else 0)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def mask(self, s: Slice) -> np.ndarray:
        """Boolean row mask of slice ``s``."""
        if s.code < 0:
            return np.zeros(self.n_rows, dtype=bool)
        return self.columns[s.column].codes == s.code


__all__ = ["MISSING", "Slice", "SliceColumn", "Slices", "encode_column"]
