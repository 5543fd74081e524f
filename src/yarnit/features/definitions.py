"""Feature views: one Python definition used by the offline (training) and online (serving) paths.

A feature view is a decorated function that turns source tables into rows of
*entity keys + event time + feature values*. The function either returns
DuckDB SQL over its sources (registered as tables under their names) or
returns a pandas DataFrame / Arrow table computed from them.

The view's ``version`` is a hash of everything that decides its values: the
function's code, its parameters, entities, features, event-time column, TTL
and sources. Change any of them and you get a new version, which the registry
records next to the old one; nothing is overwritten silently.

Example:
    >>> from datetime import timedelta
    >>> @feature_view(
    ...     entities={"product_id": "string"},
    ...     features={"impressions_7d": "int64", "ctr_7d": "float64"},
    ...     ttl=timedelta(days=2),
    ...     sources=("impressions",),
    ...     params={"days": 7},
    ...     owner="ranking@yarnit",
    ... )
    ... def product_ctr(days: int) -> str:
    ...     '''Impressions and click-through rate of each product over the last days.'''
    ...     return f"SELECT product_id, max(event_time) AS event_time, count(*) AS impressions_7d, "\\
    ...            f"avg(clicked::DOUBLE) AS ctr_7d FROM impressions GROUP BY product_id"
    >>> product_ctr.name, product_ctr.feature_names, len(product_ctr.version)
    ('product_ctr', ('impressions_7d', 'ctr_7d'), 16)
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
import sys
import textwrap
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, NamedTuple

import pandas as pd
import pyarrow as pa

from yarnit.core.errors import InvalidInput, YarnitError
from yarnit.core.hashing import canonical_json, sha256_bytes
from yarnit.core.ids import check_name

from .errors import DuplicateFeatureView, EntityKeyError, FeatureComputeError, NaiveTimestamp, UnknownFeature

KEY_DTYPES = ("int64", "string")
FEATURE_DTYPES = ("int64", "float64", "bool", "string")
ARROW_TYPES: dict[str, pa.DataType] = {
    "int64": pa.int64(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "string": pa.string(),
}
EVENT_TIME_TYPE = pa.timestamp("us", tz="UTC")
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

Frames = Literal["pandas", "arrow"]
SourceData = pd.DataFrame | pa.Table


class Field(NamedTuple):
    """A named, typed column of a view: an entity key or a feature."""

    name: str
    dtype: str


def _fields(kind: str, view: str, given: Mapping[str, str], allowed: tuple[str, ...]) -> tuple[Field, ...]:
    if not isinstance(given, Mapping) or not given:
        raise InvalidInput(
            f"Feature view {view!r}: {kind} must be a non-empty mapping of column name to type "
            f"(types: {', '.join(allowed)}), e.g. {{'user_id': 'string'}}; got {given!r}."
        )
    out = []
    for name, dtype in given.items():
        if not isinstance(name, str) or not _COLUMN.match(name):
            raise InvalidInput(
                f"Feature view {view!r}: {kind} column {name!r} is not a valid name; use letters, digits and '_', "
                "starting with a letter or '_' (at most 63 characters)."
            )
        if dtype not in allowed:
            raise InvalidInput(
                f"Feature view {view!r}: {kind} column {name!r} has type {dtype!r}; valid types: "
                f"{', '.join(allowed)}."
            )
        out.append(Field(name, dtype))
    return tuple(out)


def _code_of(fn: Callable[..., Any]) -> str:
    """The function's source from its ``def`` line (decorator text is hashed through its values instead)."""
    try:
        source = textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError):
        # No source file (a REPL, exec): fall back to the compiled code, which still changes with the logic.
        code = fn.__code__
        return f"<bytecode {code.co_code.hex()} consts={code.co_consts!r} names={code.co_names!r}>"
    lines = source.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(("def ", "async def ")):
            lines = lines[i:]
            break
    return "\n".join(line.rstrip() for line in lines).strip() + "\n"


@dataclass(frozen=True)
class FeatureView:
    """Named features keyed by entity + event time, defined once for training and serving.

    Build one with :func:`feature_view`. A view read back from the registry has
    the same fields but no ``fn`` (its code is kept as text for display), so it
    can be materialized, read and joined, but not recomputed.
    """

    name: str
    entities: tuple[Field, ...]
    features: tuple[Field, ...]
    ttl: timedelta | None
    timestamp: str = "event_time"
    sources: tuple[str, ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)
    code: str = ""
    frames: Frames = "pandas"
    owner: str = ""
    description: str = ""
    fn: Callable[..., Any] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        check_name("Feature view", self.name)
        if not self.entities or not self.features:
            raise InvalidInput(f"Feature view {self.name!r} needs at least one entity key and one feature.")
        if self.ttl is not None and (not isinstance(self.ttl, timedelta) or self.ttl <= timedelta(0)):
            raise InvalidInput(
                f"Feature view {self.name!r}: ttl must be a positive timedelta (e.g. timedelta(days=2)) or None "
                f"for values that never go stale; got {self.ttl!r}."
            )
        if not _COLUMN.match(self.timestamp):
            raise InvalidInput(f"Feature view {self.name!r}: timestamp column {self.timestamp!r} is not a valid name.")
        names = [f.name for f in self.entities] + [f.name for f in self.features] + [self.timestamp]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise InvalidInput(
                f"Feature view {self.name!r}: column names {dupes} are used twice; entity keys, features and the "
                "event-time column must all have different names."
            )
        if self.frames not in ("pandas", "arrow"):
            raise InvalidInput(f"Feature view {self.name!r}: frames must be 'pandas' or 'arrow', got {self.frames!r}.")
        try:
            canonical_json(dict(self.params))
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"Feature view {self.name!r}: params must be JSON values ({exc}).") from None
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))
        object.__setattr__(self, "_version", sha256_bytes(canonical_json(self.definition()))[:16])
        object.__setattr__(self, "_feature_index", {f.name: f for f in self.features})

    # --- identity -----------------------------------------------------------------------------
    def definition(self) -> dict[str, Any]:
        """Everything that decides the view's values (hashed into :attr:`version`)."""
        return {
            "name": self.name,
            "entities": [list(f) for f in self.entities],
            "features": [list(f) for f in self.features],
            "timestamp": self.timestamp,
            "ttl_s": None if self.ttl is None else self.ttl.total_seconds(),
            "sources": list(self.sources),
            "params": dict(self.params),
            "frames": self.frames,
            "code": self.code,
        }

    @property
    def version(self) -> str:
        """16 hex digits of the sha256 of :meth:`definition`: a changed definition is a new version."""
        return str(self.__dict__["_version"])

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def entity_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.entities)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    @property
    def ttl_us(self) -> int | None:
        return None if self.ttl is None else self.ttl // timedelta(microseconds=1)

    def feature(self, name: str) -> Field:
        """The feature called ``name``; unknown names raise :class:`UnknownFeature` listing the valid ones."""
        try:
            return self.__dict__["_feature_index"][name]  # type: ignore[no-any-return]
        except KeyError:
            raise UnknownFeature(name, self.feature_names, where=f"feature view {self.name!r}") from None

    def to_dict(self) -> dict[str, Any]:
        return self.definition() | {"version": self.version, "owner": self.owner, "description": self.description}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureView:
        """Rebuild a view from :meth:`to_dict` (without its function); checks the version still matches."""
        ttl_s = data.get("ttl_s")
        view = cls(
            name=data["name"],
            entities=tuple(Field(n, t) for n, t in data["entities"]),
            features=tuple(Field(n, t) for n, t in data["features"]),
            ttl=None if ttl_s is None else timedelta(seconds=ttl_s),
            timestamp=data["timestamp"],
            sources=tuple(data.get("sources", ())),
            params=dict(data.get("params", {})),
            code=data.get("code", ""),
            frames=data.get("frames", "pandas"),
            owner=data.get("owner", ""),
            description=data.get("description", ""),
        )
        stored = data.get("version")
        if stored is not None and stored != view.version:
            raise InvalidInput(
                f"Stored feature view {view.name!r} claims version {stored} but its definition hashes to "
                f"{view.version}; the record was edited by hand or by an incompatible yarnit."
            )
        return view

    # --- computing values ---------------------------------------------------------------------
    def compute(self, sources: Mapping[str, SourceData]) -> pa.Table:
        """Run the definition over ``sources`` and return conformed rows (see :func:`conform`)."""
        if self.fn is None:
            raise InvalidInput(
                f"Feature view {self.ref} was read from the registry and has no code to run. Load its "
                "definitions file (yarnit features backfill --definitions FILE) to recompute it."
            )
        missing = [s for s in self.sources if s not in sources]
        if missing:
            raise InvalidInput(
                f"Feature view {self.name!r} reads sources {list(self.sources)}; missing: {missing}. "
                f"Given: {sorted(sources)}. Ingest them as datasets (yarnit data ingest) or pass them explicitly."
            )
        kwargs: dict[str, Any] = {}
        for pname in inspect.signature(self.fn).parameters:
            if pname in self.sources:
                kwargs[pname] = _as_frames(sources[pname], self.frames)
            elif pname in self.params:
                kwargs[pname] = self.params[pname]
        try:
            result = self.fn(**kwargs)
            if isinstance(result, str):
                result = _run_sql(result, {s: sources[s] for s in self.sources})
        except YarnitError:
            raise
        except Exception as exc:  # user code boundary: keep the cause, say where it came from
            raise FeatureComputeError(
                f"Feature view {self.ref} failed while computing its values: {type(exc).__name__}: {exc}. "
                f"Fix the definition ({_where(self.fn)}) and run the backfill again."
            ) from exc
        return conform(self, result)


def restricted_cause(view: FeatureView, exc: FeatureComputeError,
                     restricted: Mapping[str, tuple[str, Mapping[str, Any]]]) -> YarnitError:
    """The error to raise when ``view`` failed on sources read as their compliant view (book CH4-R3).

    ``restricted`` maps each source to (dataset version ref, its restrictions). A definition that names a
    restricted column, which the compliant view does not hold, fails inside user code with a KeyError or a
    DuckDB binder error naming it: say that the column is restricted and which compliant column to read.
    Any other failure is returned unchanged.
    """
    from yarnit.data.restricted import RestrictedColumn

    def naming(text: str, restrictions: Mapping[str, Any]) -> list[str]:
        return [c for c in restrictions if re.search(rf"(?<![A-Za-z0-9_]){re.escape(c)}(?![A-Za-z0-9_])", text)]

    # The error names the column (KeyError 'age', DuckDB's binder error), or else the definition's code does
    # (pandas' rename() skips a missing column silently, so the error names only what was not produced).
    for text in (f"{exc.__cause__ or exc}", view.code):
        for ref, restrictions in restricted.values():
            named = naming(text, restrictions)
            if named:
                return RestrictedColumn(named, f"{ref} (read by feature view {view.name!r})", restrictions)
    return exc


def _where(fn: Callable[..., Any]) -> str:
    code = getattr(fn, "__code__", None)
    if code is None:
        return getattr(fn, "__qualname__", repr(fn))
    return f"{fn.__module__}.{fn.__qualname__} at {code.co_filename}:{code.co_firstlineno}"


def _as_frames(data: SourceData, frames: Frames) -> SourceData:
    if frames == "arrow":
        return data if isinstance(data, pa.Table) else pa.Table.from_pandas(data, preserve_index=False)
    return data if isinstance(data, pd.DataFrame) else data.to_pandas()


def _run_sql(sql: str, sources: Mapping[str, SourceData]) -> pa.Table:
    import duckdb

    con = duckdb.connect()
    try:
        con.execute("SET TimeZone='UTC'")
        for name, data in sources.items():
            con.register(name, data)
        return con.sql(sql).to_arrow_table()
    finally:
        con.close()


def feature_view(
    *,
    entities: Mapping[str, str],
    features: Mapping[str, str],
    ttl: timedelta | None,
    timestamp: str = "event_time",
    sources: Sequence[str] = (),
    params: Mapping[str, Any] | None = None,
    owner: str = "",
    description: str = "",
    name: str | None = None,
    frames: Frames = "pandas",
) -> Callable[[Callable[..., Any]], FeatureView]:
    """Declare a feature view from a function returning DuckDB SQL, a DataFrame or an Arrow table.

    The function's parameters are filled by name: a parameter named like a
    source receives that source (pandas by default, Arrow with
    ``frames="arrow"``); a parameter named like a key of ``params`` receives the
    value. A function returning SQL sees every source as a table of that name.

    Args:
        entities: entity key columns and their types (``int64`` or ``string``).
        features: feature columns and their types (``int64``, ``float64``, ``bool``, ``string``).
        ttl: how long a value stays valid; older values are ``stale`` online and null in joins.
        timestamp: the event-time column (timezone-aware).
        sources: names of the input tables (dataset names in a workspace).
        params: JSON parameters passed to the function; part of the version.
        name: the view's name (default: the function's name).
    """

    def wrap(fn: Callable[..., Any]) -> FeatureView:
        view_name = name or fn.__name__
        check_name("Feature view", view_name)
        source_names = tuple(sources)
        for s in source_names:
            if not isinstance(s, str) or not _COLUMN.match(s):
                raise InvalidInput(
                    f"Feature view {view_name!r}: source {s!r} is not a valid table name (letters, digits, '_')."
                )
        given = dict(params or {})
        signature = inspect.signature(fn)
        accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())
        for pname, param in signature.parameters.items():
            if param.kind is inspect.Parameter.VAR_KEYWORD:
                continue
            if pname not in source_names and pname not in given and param.default is inspect.Parameter.empty:
                raise InvalidInput(
                    f"Feature view {view_name!r}: parameter {pname!r} of {fn.__qualname__} is neither a source "
                    f"({list(source_names)}) nor a param ({sorted(given)}). Add it to sources= or params=."
                )
        unused = [k for k in given if k not in signature.parameters and not accepts_any]
        if unused:
            raise InvalidInput(
                f"Feature view {view_name!r}: params {unused} are not parameters of {fn.__qualname__} "
                f"(its parameters: {list(signature.parameters)})."
            )
        return FeatureView(
            name=view_name,
            entities=_fields("entities", view_name, entities, KEY_DTYPES),
            features=_fields("features", view_name, features, FEATURE_DTYPES),
            ttl=ttl,
            timestamp=timestamp,
            sources=source_names,
            params=given,
            code=_code_of(fn),
            frames=frames,
            owner=owner,
            description=description or inspect.getdoc(fn) or "",
            fn=fn,
        )

    return wrap


# --- conforming computed rows to the declared schema ------------------------------------------


def _to_table(data: Any, view: str) -> pa.Table:
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, pd.DataFrame):
        return pa.Table.from_pandas(data, preserve_index=False)
    raise InvalidInput(
        f"Feature view {view!r} returned {type(data).__name__}; a view function must return DuckDB SQL (str), "
        "a pandas DataFrame or a pyarrow Table."
    )


def _is_string(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        return _is_string(t.value_type)
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t))


def cast_key_column(column: pa.ChunkedArray | pa.Array, dtype: str, what: str) -> pa.ChunkedArray | pa.Array:
    """``column`` as the key type ``dtype``; a column of another kind raises :class:`EntityKeyError`."""
    t = column.type
    if dtype == "int64" and pa.types.is_integer(t):
        return column.cast(pa.int64())
    if dtype == "string" and _is_string(t):
        return column.cast(pa.string())
    raise EntityKeyError(
        f"{what} has type {t}, but the entity key is declared {dtype}. "
        + ("Convert it with df[col].astype('int64')." if dtype == "int64" else "Convert it with df[col].astype(str).")
    )


def cast_event_time(column: pa.ChunkedArray | pa.Array, what: str) -> pa.ChunkedArray | pa.Array:
    """``column`` as timestamp[us, UTC]; naive timestamps raise :class:`NaiveTimestamp`."""
    t = column.type
    if not pa.types.is_timestamp(t):
        raise InvalidInput(
            f"{what} has type {t}; it must hold timezone-aware timestamps "
            "(e.g. pd.to_datetime(df[col], utc=True))."
        )
    if t.tz is None:
        raise NaiveTimestamp(what)
    return column.cast(EVENT_TIME_TYPE)


def _cast_feature(column: pa.ChunkedArray, f: Field, view: str) -> pa.ChunkedArray:
    t = column.type
    ok = (
        (f.dtype == "int64" and pa.types.is_integer(t))
        or (f.dtype == "float64" and (pa.types.is_floating(t) or pa.types.is_integer(t) or pa.types.is_decimal(t)))
        or (f.dtype == "bool" and pa.types.is_boolean(t))
        or (f.dtype == "string" and _is_string(t))
        or pa.types.is_null(t)
    )
    if f.dtype == "int64" and pa.types.is_decimal(t) and t.scale == 0:
        ok = True
    if not ok:
        raise InvalidInput(
            f"Feature view {view!r}: feature {f.name!r} is declared {f.dtype} but the computed column has type "
            f"{t}. Cast it in the definition or change the declared type."
        )
    return column.cast(ARROW_TYPES[f.dtype])


def conform(view: FeatureView, data: Any) -> pa.Table:
    """Check computed rows against the view and return exactly its columns in their declared types.

    Columns: the entity keys, the event time (timestamp[us, UTC]) and the
    features, in that order. Missing columns, keys or times with nulls, and
    naive timestamps are refused with a message naming the column.
    """
    table = _to_table(data, view.name)
    needed = [*view.entity_names, view.timestamp, *view.feature_names]
    missing = [c for c in needed if c not in table.column_names]
    if missing:
        raise InvalidInput(
            f"Feature view {view.name!r} produced columns {table.column_names}; missing {missing}. "
            f"It must return {needed}."
        )
    arrays: list[pa.ChunkedArray] = []
    for f in view.entities:
        col = cast_key_column(table.column(f.name), f.dtype, f"Entity key column {f.name!r} of view {view.name!r}")
        if col.null_count:
            raise EntityKeyError(
                f"Entity key column {f.name!r} of view {view.name!r} has {col.null_count} null values; "
                "every row needs a key. Filter them out in the definition."
            )
        arrays.append(col)
    ts = cast_event_time(table.column(view.timestamp), f"Event-time column {view.timestamp!r} of view {view.name!r}")
    if ts.null_count:
        raise InvalidInput(
            f"Event-time column {view.timestamp!r} of view {view.name!r} has {ts.null_count} null values; "
            "every row needs an event time."
        )
    arrays.append(ts)
    arrays.extend(_cast_feature(table.column(f.name), f, view.name) for f in view.features)
    schema = pa.schema(
        [pa.field(f.name, ARROW_TYPES[f.dtype], nullable=False) for f in view.entities]
        + [pa.field(view.timestamp, EVENT_TIME_TYPE, nullable=False)]
        + [pa.field(f.name, ARROW_TYPES[f.dtype]) for f in view.features]
    )
    return pa.Table.from_arrays(arrays, schema=schema)


# --- collections of definitions ----------------------------------------------------------------


def _describe(view: FeatureView) -> str:
    return f"{_where(view.fn)} (version {view.version})" if view.fn is not None else f"version {view.version}"


def check_unique(views: Iterable[FeatureView]) -> list[FeatureView]:
    """The views as a list; two *different* definitions with one name raise :class:`DuplicateFeatureView`."""
    seen: dict[str, FeatureView] = {}
    out = []
    for view in views:
        if not isinstance(view, FeatureView):
            raise InvalidInput(f"Expected FeatureView objects (from @feature_view), got {type(view).__name__}.")
        first = seen.get(view.name)
        if first is not None:
            if first.version == view.version:
                continue
            raise DuplicateFeatureView(view.name, _describe(first), _describe(view))
        seen[view.name] = view
        out.append(view)
    return out


def load_definitions(target: str | Path) -> list[FeatureView]:
    """The feature views defined at module level in a Python file or an importable module.

    Importing runs the file's code: load only definitions you trust (your own repository).
    """
    text = str(target)
    path = Path(text)
    if text.endswith(".py") or path.exists():
        if not path.is_file():
            raise InvalidInput(f"Definitions file {text!r} does not exist. Pass a .py file or a module name.")
        module_name = f"yarnit_feature_defs_{sha256_bytes(str(path.resolve()).encode())[:12]}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise InvalidInput(f"Cannot import definitions from {text!r}.")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(text)
        except ImportError as exc:
            raise InvalidInput(f"Cannot import definitions module {text!r}: {exc}. Pass a .py file or a module.") from exc
    views = [v for v in vars(module).values() if isinstance(v, FeatureView)]
    if not views:
        raise InvalidInput(
            f"{text!r} defines no feature views. Define them at module level with @feature_view(...)."
        )
    return check_unique(views)


def normalize_event_time(series_or_array: Any, what: str) -> pa.Array | pa.ChunkedArray:
    """An Arrow timestamp[us, UTC] column from a pandas Series or Arrow column (naive is refused)."""
    if isinstance(series_or_array, pd.Series):
        if not isinstance(series_or_array.dtype, pd.DatetimeTZDtype):
            if pd.api.types.is_datetime64_dtype(series_or_array.dtype):
                raise NaiveTimestamp(what)
            raise InvalidInput(f"{what} has dtype {series_or_array.dtype}; it must hold timezone-aware timestamps.")
        arr = pa.Array.from_pandas(series_or_array)
    else:
        arr = series_or_array
    return cast_event_time(arr, what)


__all__ = [
    "ARROW_TYPES",
    "EVENT_TIME_TYPE",
    "FEATURE_DTYPES",
    "KEY_DTYPES",
    "FeatureView",
    "Field",
    "cast_event_time",
    "cast_key_column",
    "check_unique",
    "conform",
    "feature_view",
    "load_definitions",
    "normalize_event_time",
]
