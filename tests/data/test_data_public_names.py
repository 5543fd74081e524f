"""The public surface of yarnit.data: every name in __all__ exists; the names others rely on stay."""

from __future__ import annotations

import yarnit.data as data


def test_every_exported_name_exists_and_is_sorted_by_kind() -> None:
    for name in data.__all__:
        assert hasattr(data, name), name
    assert len(set(data.__all__)) == len(data.__all__)


def test_names_used_by_the_demo_api_and_cli_are_kept() -> None:
    for name in ("Datasets", "DatasetVersion", "DatasetNotFound", "table_to_parquet_bytes"):
        assert name in data.__all__
