"""JSON columns are read with orjson, falling back to json (issue 18): the values are json.loads' own."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sqlalchemy import JSON, Column, Integer, MetaData, Table, insert, select

from yarnit.storage.metadata import create_metadata_engine, json_loads

DOCUMENTS = [
    {"a": 1, "b": [1.5, -0.0, 1e-320, 1.7976931348623157e308, 0.1 + 0.2], "c": None, "d": True, "é": "ü\u2603"},
    {"big": 2**63 - 1, "neg": -(2**63), "bigger": 2**64, "huge": 10**30},  # past 64 bits: json's own int
    {"nan": float("nan"), "inf": float("inf"), "ninf": -float("inf")},  # json.dumps writes NaN and Infinity
    {"lone": "\ud800x", "pair": "\U0001f600", "ctl": "\x00\n\t"},
    {"z": 1, "a": 2, "m": {"y": [], "x": {}}},  # key order kept
    [],
    "text",
    3.25,
]


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@pytest.mark.parametrize("document", DOCUMENTS)
def test_a_json_column_reads_as_json_loads_reads_it(document) -> None:
    text = json.dumps(document)
    assert _same(json_loads(text), json.loads(text))


def test_random_floats_and_duplicate_keys_read_as_json_loads_reads_them() -> None:
    rng = np.random.default_rng(0)
    values = [float(v) for v in np.concatenate([rng.normal(size=2000) * 10.0 ** rng.integers(-300, 300, 2000),
                                                rng.random(2000)])]
    text = json.dumps({"v": values})
    assert json_loads(text)["v"] == json.loads(text)["v"]
    assert json_loads('{"a": 1, "b": 2, "a": 3}') == json.loads('{"a": 1, "b": 2, "a": 3}')
    assert list(json_loads('{"a": 1, "b": 2, "a": 3}')) == list(json.loads('{"a": 1, "b": 2, "a": 3}'))
    with pytest.raises(ValueError):
        json_loads("{not json")


def test_a_sqlite_engine_decodes_json_columns_with_it(tmp_path) -> None:
    engine = create_metadata_engine(f"sqlite:///{tmp_path}/m.db")
    table = Table("t", MetaData(), Column("id", Integer, primary_key=True), Column("doc", JSON))
    table.metadata.create_all(engine)
    with engine.begin() as conn:
        for i, doc in enumerate(DOCUMENTS):
            conn.execute(insert(table).values(id=i, doc=doc))
    with engine.begin() as conn:
        got = [row.doc for row in conn.execute(select(table).order_by(table.c.id))]
    assert all(_same(g, json.loads(json.dumps(d))) for g, d in zip(got, DOCUMENTS, strict=True))
    assert engine.dialect._json_deserializer is json_loads
    engine.dispose()


@pytest.mark.parametrize("text", [
    '{"n": -9223372036854775809}',  # 19 digits just past int64: json's int, not orjson's float
    '{"n": 18446744073709551616}',  # 2**64 (20 digits)
    '[123456789012345678, 1234567890123456789, "123456789012345678", "x1234567890123456789y"]',
    '{"s": "\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669"}',
    '{"s": "12345678901234567\u00e9890123"}',  # a run broken by a non-ASCII character
    r'{"s": "\ud800"}',  # an escaped lone surrogate
])
def test_digit_runs_at_the_orjson_boundary_read_as_json_loads_reads_them(text) -> None:
    assert _same(json_loads(text), json.loads(text))


def test_a_text_holding_a_lone_surrogate_reads_as_json_loads_reads_it() -> None:
    text = '{"s": "\ud800"}'  # the character itself (not escaped): not encodable as UTF-8
    assert json_loads(text) == json.loads(text)
