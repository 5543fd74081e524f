"""Schemas: YAML parsing with exact error locations, round trips, inference, versioning."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

import pyarrow as pa
import pytest

from yarnit.data import DatasetSchema, SchemaError, Schemas, infer_schema, profile
from yarnit.storage import Workspace


def test_schema_yaml_parses_every_section(schema: DatasetSchema) -> None:
    assert schema.subject == "user_id" and schema.slices == ("country",) and schema.retention == "events"
    assert schema.label is not None and schema.label.positive_rate == (0.05, 0.6)
    price = schema.columns["price"]
    assert (price.type, price.nullable, price.min, price.max) == ("float64", False, 0.0, 500.0)
    assert schema.columns["country"].domain == ("DE", "FR", "US", "JP")
    assert schema.columns["event_id"].unique and schema.columns["email"].pii == "drop"
    assert schema.columns["clicked"].environments == ("training",)
    assert not schema.columns["clicked"].present_in("serving")
    assert schema.pii_columns == {"email": "drop"}


def test_yaml_round_trip_keeps_content_and_hash(schema: DatasetSchema) -> None:
    again = DatasetSchema.from_yaml(schema.to_yaml())
    assert again == schema and again.content_sha256() == schema.content_sha256()


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [
        ("columns:\n  price: {type: float64, nulable: false}\n", 2, "unknown key 'nulable' in column 'price'; did you mean 'nullable'?"),
        ("colums:\n  price: {type: float64}\n", 1, "unknown key 'colums' in the schema; did you mean 'columns'?"),
        ("columns:\n  price:\n    type: flaot64\n", 3, "unknown type 'flaot64'; did you mean 'float64'?"),
        ("columns:\n  price: {type: float64, min: low}\n", 2, "column 'price' min must be a number, got 'low'"),
        ("columns:\n  c: {type: string, pii: hashed}\n", 2, "did you mean 'hash'?"),
        ("columns:\n  c: {type: string, min: 3}\n", 2, "type 'string' is not numeric"),
        ("columns:\n  p: {type: float64, min: 5, max: 1}\n", 2, "min 5.0 > max 1.0"),
        ("slices: [contry]\ncolumns:\n  country: {type: string}\n", 1, "did you mean 'country'?"),
        ("columns:\n  c: {type: bool, environments: [trainng]}\n", 2, "unknown environments ['trainng']"),
        ("columns:\n  price: {type: float64\n", 3, "is not valid YAML"),
        ("columns:\n  a: {type: int64}\n  a: {type: int64}\n", 3, "appears twice"),
        ("", 1, "is empty"),
        ("label: {column: clicked}\ncolumns:\n  c: {type: bool}\n", 1, "label.column names column 'clicked'"),
    ],
)
def test_schema_typos_name_the_file_line_and_valid_choice(text: str, line: int, needle: str) -> None:
    with pytest.raises(SchemaError) as caught:
        DatasetSchema.from_yaml(text, path="schema.yaml")
    assert caught.value.line == line
    assert str(caught.value).startswith(f"schema.yaml, line {line}: ")
    assert needle in str(caught.value)


def test_schema_file_that_does_not_exist_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="does not exist.*infer-schema"):
        DatasetSchema.from_file(tmp_path / "nope.yaml")


def test_schema_from_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("columns:\n  x: {type: int64, uniq: true}\n")
    with pytest.raises(SchemaError, match=f"^{path}, line 2: unknown key 'uniq'.*did you mean 'unique'"):
        DatasetSchema.from_file(path)


def test_inferred_schema_has_types_nullability_ranges_and_domains(make_clicks: Callable[..., pd.DataFrame]) -> None:
    frame = make_clicks(200)
    frame.loc[3, "device"] = None
    table = pa.Table.from_pandas(frame, preserve_index=False)
    inferred = infer_schema(table, profile(table), name="clicks")
    assert inferred.columns["price"].type == "float64" and inferred.columns["price"].min is not None
    assert inferred.columns["country"].domain == ("DE", "FR", "JP", "US")
    assert inferred.columns["device"].nullable and not inferred.columns["country"].nullable
    assert inferred.columns["event_id"].unique and inferred.columns["clicked"].type == "bool"
    assert DatasetSchema.from_yaml(inferred.to_yaml()) == inferred


def test_schema_versions_are_numbered_and_identical_content_is_reused(ws: Workspace, schema_yaml: str) -> None:
    schemas = Schemas(ws)
    first = schemas.register("clicks", DatasetSchema.from_yaml(schema_yaml))
    same = schemas.register("clicks", DatasetSchema.from_yaml(schema_yaml + "\n# only a comment\n"))
    widened = schemas.register("clicks", DatasetSchema.from_yaml(schema_yaml.replace("max: 500", "max: 900")))
    assert (first.version, same.version, widened.version) == (1, 1, 2)
    assert schemas.get("clicks").schema.columns["price"].max == 900.0
    assert schemas.get("clicks", 1).schema.columns["price"].max == 500.0
    assert [v.version for v in schemas.versions("clicks")] == [1, 2]
