"""Property tests of dataset ingestion (issue 22, bad input): random frames against random schemas.

A frame is either ingested, and then reads back equal (each value as its declared type; a missing value,
or a float NaN, as null), or refused with a yarnit error that names the column at fault; nothing else is
ever raised, and a refused frame leaves no version behind. Examples are bounded so the file runs in seconds.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from yarnit.core import Settings, SimulatedClock, utc
from yarnit.core.errors import YarnitError
from yarnit.data import DatasetNotFound, Datasets, DatasetSchema
from yarnit.storage import Workspace, open_workspace

pytestmark = pytest.mark.timeout(120)
# The same examples on every run (derandomize): CI is deterministic; raise max_examples to explore more.
PROPERTY = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
_names = itertools.count()

TYPES = ("int64", "int32", "float64", "string", "bool")
_TYPED = {"int64": st.integers(-(2**63), 2**63 - 1), "int32": st.integers(-(2**31), 2**31 - 1),
          "float64": st.floats(), "string": st.text(max_size=8), "bool": st.booleans()}
_ANY = st.one_of(st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=8), st.booleans(),
                 st.binary(max_size=4), st.lists(st.integers(0, 3), max_size=2))


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    workspace = open_workspace(Settings.for_home(Path(tmp_path_factory.mktemp("ingest")) / "home"),
                               SimulatedClock(utc(2026, 1, 5, 9)))
    yield workspace
    workspace.close()


@st.composite
def _case(draw: st.DrawFn) -> tuple[dict[str, str], dict[str, list[Any]]]:
    """(declared types by column, the frame's columns): values mostly of their declared type (or missing),
    sometimes of any type; a declared column may be absent and an undeclared one present."""
    names = draw(st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=1, max_size=3, unique=True))
    types = {n: draw(st.sampled_from(TYPES)) for n in names}
    rows = draw(st.integers(0, 6))
    columns: dict[str, list[Any]] = {}
    for name, kind in types.items():
        if draw(st.sampled_from([False] * 9 + [True])):
            continue  # declared but absent
        values = _ANY if draw(st.sampled_from([False] * 3 + [True])) else _TYPED[kind]
        columns[name] = draw(st.lists(st.none() | values, min_size=rows, max_size=rows))
    if draw(st.sampled_from([False] * 4 + [True])):
        columns["extra"] = draw(st.lists(st.none() | _TYPED[draw(st.sampled_from(TYPES))], min_size=rows,
                                         max_size=rows))
    return types, columns


def _schema(types: dict[str, str]) -> DatasetSchema:
    return DatasetSchema.from_dict({"allow_extra_columns": True, "columns": {n: {"type": t} for n, t in types.items()}})


def _expected(kind: str, value: Any) -> Any:
    """A value of its declared type as it reads back: a missing value and a float NaN as null."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value) if kind == "float64" else value


def _typed(kind: str, value: Any) -> bool:
    if value is None:
        return True
    if kind == "float64":
        return type(value) is float
    return type(value) is {"int64": int, "int32": int, "string": str, "bool": bool}[kind]


@PROPERTY
@given(case=_case())
@example(case=({"a": "string"}, {"a": ["x", "\ud800"]}))  # a lone surrogate: no UTF-8 for it
@example(case=({"a": "int64"}, {"a": [1, "2"]}))  # mixed types in one column
@example(case=({"a": "int64"}, {"a": [2**64]}))  # past int64 and uint64
@example(case=({"a": "float64"}, {"a": [1.5, float("inf"), None]}))
@example(case=({"a": "int64"}, {}))  # no column at all
def test_a_frame_is_ingested_and_reads_back_equal_or_refused_naming_the_column(
        ws: Workspace, case: tuple[dict[str, str], dict[str, list[Any]]]) -> None:
    types, columns = case
    name = f"prop-{next(_names)}"
    frame = pd.DataFrame({n: pd.Series(v, dtype=object) for n, v in columns.items()})
    datasets = Datasets(ws)
    try:
        version = datasets.ingest_frame(name, frame, source="property test", schema=_schema(types))
    except YarnitError as exc:
        message = str(exc)
        event(f"refused: {type(exc).__name__}")
        # every refusal names the column at fault, or says the frame has no rows or no columns
        assert re.search(r"column '[a-z]+'", message) or "no data rows" in message or "no columns" in message, \
            message
        with pytest.raises(DatasetNotFound):
            datasets.get(name)  # nothing was recorded
        return
    event("ingested")
    table = datasets.read_table(version)
    assert version.row_count == len(frame) and table.num_rows == len(frame)
    assert table.column_names[:len([n for n in types if n in columns])] == [n for n in types if n in columns]
    for column, values in columns.items():
        kind = types.get(column)
        if kind is None or not all(_typed(kind, v) for v in values):
            continue  # converted by the declared type's cast (e.g. "2" -> 2): checked by row count only
        assert table.column(column).to_pylist() == [_expected(kind, v) for v in values], column
