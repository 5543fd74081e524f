"""Restricted columns (book CH4-R3): what a dataset version restricts, and its compliant view.

A curated schema marks a column ``restricted`` (see :mod:`yarnit.data.schema`).
Feature views, training frames and API reads then see the *compliant view* of
the data: each restricted column is removed and, if the schema declares a
compliant transform, its output is added as a new column (``age`` → ``age_band``).
The raw column is read only through :class:`yarnit.access.RestrictedReads`,
which needs a token with the ``read-restricted`` role and audits every read.

The restriction travels with the version through its curated schema
(``schema_id``), which ``forget`` carries over to rewritten versions.

Example:
    >>> import pyarrow as pa
    >>> from yarnit.data.schema import ColumnRestriction
    >>> t = pa.table({"age": [17, 30, 70, None], "x": [1, 2, 3, 4]})
    >>> r = {"age": ColumnRestriction(output="age_band", bucket=(18.0, 25.0, 65.0))}
    >>> compliant_table(t, r).to_pydict()
    {'x': [1, 2, 3, 4], 'age_band': ['<18', '25-65', '65+', None]}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from yarnit.core.errors import Forbidden, InvalidInput
from yarnit.storage import Workspace

from .schema import ColumnRestriction
from .schema_registry import Schemas
from .versions import Datasets, DatasetVersion

READ_ROLE = "read-restricted"


class RestrictedColumn(Forbidden):
    """A restricted column was asked for raw without the role (or outside the audited path)."""

    def __init__(self, columns: Sequence[str], where: str, restrictions: Mapping[str, ColumnRestriction]) -> None:
        outputs = [f"{c!r} → {restrictions[c].output!r}" for c in columns if restrictions[c].output is not None]
        compliant = (f" Read its compliant transform instead ({', '.join(outputs)})." if outputs
                     else " It declares no compliant transform.")
        super().__init__(
            f"Column(s) {sorted(columns)} of {where} are restricted: raw values reach feature views and training "
            f"frames only through a declared compliant transform.{compliant} A raw read needs a token with the "
            f"{READ_ROLE!r} role and a stated purpose, and is audited (yarnit access read --raw COLUMN --purpose "
            "WHY --token-file FILE).")
        self.columns = tuple(sorted(columns))


def restrictions_of(ws: Workspace, version: DatasetVersion) -> dict[str, ColumnRestriction]:
    """The restricted columns of ``version`` (from the curated schema it was ingested with) that it holds."""
    if version.schema_id is None:
        return {}
    schema = Schemas(ws).get_by_id(version.schema_id).schema
    return {name: r for name, r in schema.restricted_columns.items() if name in version.schema}


def compliant_outputs(restrictions: Mapping[str, ColumnRestriction]) -> dict[str, str]:
    """``{output column: restricted column}`` for every declared compliant transform."""
    return {r.output: name for name, r in restrictions.items() if r.output is not None}


def columns_to_read(requested: Sequence[str] | None, restrictions: Mapping[str, ColumnRestriction], *,
                    where: str, raw: Sequence[str] = ()) -> list[str] | None:
    """The stored columns needed for ``requested`` (None: all), refusing restricted ones not in ``raw``."""
    if requested is None:
        return None
    refused = [c for c in requested if c in restrictions and c not in raw]
    if refused:
        raise RestrictedColumn(refused, where, restrictions)
    outputs = compliant_outputs(restrictions)
    return list(dict.fromkeys(outputs.get(c, c) for c in requested))


def read_compliant(ws: Workspace, version: DatasetVersion, *, columns: Sequence[str] | None = None,
                   raw: Sequence[str] = ()) -> pa.Table:
    """Rows of ``version`` as its compliant view: what feature views, training frames and the API read.

    ``raw`` is for :class:`yarnit.access.RestrictedReads` only, which checks the role and audits first.
    """
    restrictions = restrictions_of(ws, version)
    if columns is not None:
        known = [*(c for c in version.schema if c not in restrictions or c in raw), *compliant_outputs(restrictions)]
        unknown = [c for c in columns if c not in known and c not in restrictions]
        if unknown:
            raise InvalidInput(f"{version.ref} has no column(s) {unknown}; readable columns: {', '.join(known)}.")
    stored = columns_to_read(columns, restrictions, where=version.ref, raw=raw)
    table = Datasets(ws).read_table(version, columns=stored)
    return compliant_table(table, restrictions, raw=raw, requested=columns)


def compliant_table(table: pa.Table, restrictions: Mapping[str, ColumnRestriction], *,
                    raw: Sequence[str] = (), requested: Sequence[str] | None = None) -> pa.Table:
    """``table`` with each restricted column (except those in ``raw``) replaced by its compliant output.

    ``requested`` (None: everything) selects and orders the result; it may name
    compliant outputs (``age_band``) and the ``raw`` columns.
    """
    out = table
    for name, restriction in restrictions.items():
        if name not in out.column_names:
            continue
        if restriction.output is not None:
            out = out.append_column(restriction.output, apply_restriction(out.column(name), restriction))
        if name not in raw:
            out = out.drop_columns([name])
    if requested is not None:
        out = out.select([c for c in dict.fromkeys(requested) if c in out.column_names])
    return out


def apply_restriction(column: pa.ChunkedArray | pa.Array, restriction: ColumnRestriction) -> pa.Array:
    """The compliant transform's output for ``column`` (strings; nulls stay null)."""
    values = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    valid = np.asarray(values.is_valid())
    if restriction.bucket is not None:
        bounds = np.asarray(restriction.bucket, dtype=np.float64)
        labels = np.array(_bucket_labels(restriction.bucket), dtype=object)
        numbers = np.asarray(pc.fill_null(pc.cast(values, pa.float64()), 0.0))
        picked = labels[np.searchsorted(bounds, numbers, side="right")]
    elif restriction.mapping is not None:
        groups = dict(restriction.mapping)
        strings = values.cast(pa.string()).to_pylist()
        picked = np.array([groups.get(v, restriction.other) if v is not None else None for v in strings],
                          dtype=object)
    else:
        raise ValueError("a restriction without a compliant transform has no output")
    return pa.array(np.where(valid, picked, None), type=pa.string())


def _bucket_labels(bounds: Sequence[float]) -> list[str]:
    shown = [f"{b:g}" for b in bounds]
    return [f"<{shown[0]}"] + [f"{lo}-{hi}" for lo, hi in zip(shown, shown[1:], strict=False)] + [f"{shown[-1]}+"]


__all__ = ["READ_ROLE", "RestrictedColumn", "apply_restriction", "columns_to_read", "compliant_outputs",
           "compliant_table", "read_compliant", "restrictions_of"]
