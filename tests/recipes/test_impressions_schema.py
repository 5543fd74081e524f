"""The curated impression schema is parsed once per process; each caller still gets its own schema."""

from __future__ import annotations

from yarnit.data.schema import DatasetSchema
from yarnit.recipes.impressions_schema import IMPRESSIONS_SCHEMA, impressions_schema


def test_each_call_gives_the_parsed_schema_with_its_own_overrides_and_its_own_columns() -> None:
    fresh = DatasetSchema.from_yaml(IMPRESSIONS_SCHEMA, path="yarnit/recipes/impressions_schema.py")
    relaxed = impressions_schema({"slice_max_drop": 0.9, "slices": ["device"]})
    assert (relaxed.slice_max_drop, relaxed.slices) == (0.9, ("device",))
    relaxed.columns.pop("price_usd")  # one caller changing its dict changes nobody else's schema
    plain = impressions_schema()
    assert plain == fresh
    assert "price_usd" in plain.columns and plain.columns is not impressions_schema().columns
