"""ColumnStatistics.to_dict, built field by field, is what dataclasses.asdict gave (with top_k as lists)."""

from __future__ import annotations

import dataclasses

import pyarrow as pa

from yarnit.data.statistics import profile


def test_column_statistics_to_dict_equals_asdict_and_shares_no_container() -> None:
    table = pa.table({"n": [1, 2, 3, None, 5], "s": ["a", "b", "a", None, "c"], "x": [0.5, 1.5, 2.5, 3.5, None],
                      "b": [True, False, True, None, True]})
    for name, stats in profile(table, slices=["s"]).columns.items():
        expected = dataclasses.asdict(stats) | {"top_k": [[v, n] for v, n in stats.top_k]}
        got = stats.to_dict()
        assert got == expected, name
        for key in ("quantiles", "histogram", "value_counts"):
            if got[key] is not None:
                assert got[key] is not getattr(stats, key)  # a copy, as asdict made
