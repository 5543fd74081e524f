"""Conforming incoming rows to a schema: declared types, declared order, canonical encodings.

The same rows must always become the same Parquet bytes (so re-ingesting
identical content finds the existing version), whichever reader produced them:
dictionary-encoded and large strings become plain strings, pandas metadata is
dropped, declared columns come first in declared order and take their declared
types. A value that cannot take its declared type is reported with its column
and row, found by bisection over vectorized casts.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from .errors import IngestError
from .schema import DatasetSchema


def canonical_type(t: pa.DataType) -> pa.DataType:
    """The one encoding yarnit stores for a logical type."""
    if pa.types.is_dictionary(t):
        return canonical_type(t.value_type)
    if pa.types.is_large_string(t) or getattr(pa.types, "is_string_view", lambda _t: False)(t):
        return pa.string()
    if pa.types.is_large_binary(t) or getattr(pa.types, "is_binary_view", lambda _t: False)(t):
        return pa.binary()
    if pa.types.is_null(t):
        return pa.string()
    return t


def _first_bad_row(values: pa.Array | pa.ChunkedArray, target: pa.DataType) -> int:
    def ok(v: pa.Array | pa.ChunkedArray) -> bool:
        try:
            pc.cast(v, target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return False
        return True

    lo, hi = 0, len(values)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(values.slice(lo, mid - lo)):
            lo = mid
        else:
            hi = mid
    return lo


def conform_table(table: pa.Table, schema: DatasetSchema | None, *, environment: str = "training",
                  where: str = "input", row_offset: int = 0) -> pa.Table:
    """``table`` with declared columns cast and ordered, and canonical encodings everywhere."""
    names = table.column_names
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise IngestError(f"has duplicate column names {dupes}; column names must be unique.", path=where)
    arrays: list[pa.ChunkedArray | pa.Array] = []
    fields: list[pa.Field] = []
    declared: list[str] = []
    if schema is not None:
        for name, col in schema.columns.items():
            if not col.present_in(environment) or col.pii == "drop":
                if name not in names:
                    continue  # absent here by declaration, or about to be dropped anyway
            elif name not in names:
                raise IngestError(f"is declared in the schema but missing from the data; columns "
                                  f"present: {', '.join(names)}. Add it, or mark it 'environments: [...]' if it is "
                                  f"absent in {environment!r}.", path=where, column=name)
            values = table.column(name)
            target = col.arrow_type
            if values.type != target:
                try:
                    values = pc.cast(values, target)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    raw = table.column(name)
                    row = _first_bad_row(raw, target)
                    text = str(raw[row].as_py())
                    private = col.pii is not None or name == schema.subject
                    shown = "(a personal value, not shown)" if private else \
                        repr(text if len(text) <= 40 else text[:37] + "...")
                    raise IngestError(f"row {row_offset + row + 1}: value {shown} is not a valid {col.type}.",
                                      path=where, column=name) from None
            arrays.append(values)
            fields.append(pa.field(name, target))
            declared.append(name)
    for name in names:
        if name in declared:
            continue
        values = table.column(name)
        target = canonical_type(values.type)
        if values.type != target:
            values = pc.cast(values, target)
        arrays.append(values)
        fields.append(pa.field(name, target))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


__all__ = ["canonical_type", "conform_table"]
