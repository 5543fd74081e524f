"""Statistics: exact values on small data, mergeability, redaction of personal columns."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from yarnit.data import DatasetStatistics, merge_statistics, profile
from yarnit.data.statistics import HISTOGRAM_BINS


def test_profile_values_are_exact_on_small_data() -> None:
    table = pa.table({
        "price": [1.0, 2.0, None, 4.0, float("nan"), 6.0],
        "n": pa.array([1, 1, 2, 3, 3, 3], pa.int64()),
        "country": ["DE", "DE", "FR", None, "DE", "US"],
        "clicked": [True, False, False, True, False, False],
    })
    stats = profile(table, slices=["country"])
    price = stats.columns["price"]
    assert (price.count, price.missing, price.min, price.max) == (6, 2, 1.0, 6.0)
    assert price.mean == pytest.approx(13 / 4) and price.quantile(0.5) == pytest.approx(3.0)
    assert sum(price.histogram["counts"]) == 4 and len(price.histogram["counts"]) == HISTOGRAM_BINS
    n = stats.columns["n"]
    assert n.value_counts == {"1": 2, "2": 1, "3": 3} and n.distinct == 3 and n.distinct_exact
    country = stats.columns["country"]
    assert country.top_k[0] == ("DE", 3) and country.distinct == 3 and country.missing == 1
    assert (country.length_min, country.length_max) == (2, 2)
    assert stats.columns["clicked"].mean == pytest.approx(2 / 6)
    assert stats.slices == {"country": {"DE": 3, "FR": 1, "US": 1, "(missing)": 1}}


def test_profile_is_deterministic_and_json_round_trips(make_clicks: Callable[..., pd.DataFrame]) -> None:
    table = pa.Table.from_pandas(make_clicks(300_000 // 100), preserve_index=False)
    a, b = profile(table), profile(table)
    assert a == b
    assert DatasetStatistics.from_dict(a.to_dict()) == a


def test_merge_of_partitions_matches_the_whole_on_exact_fields(make_clicks: Callable[..., pd.DataFrame]) -> None:
    whole = pa.Table.from_pandas(make_clicks(3000, seed=4), preserve_index=False)
    parts = [profile(whole.slice(0, 1000), slices=["country"]), profile(whole.slice(1000, 1200), slices=["country"]),
             profile(whole.slice(2200), slices=["country"])]
    merged, direct = merge_statistics(parts), profile(whole, slices=["country"])
    assert merged.row_count == direct.row_count == 3000
    assert merged.slices == direct.slices
    for name in ("price", "position", "country", "clicked"):
        m, d = merged.columns[name], direct.columns[name]
        assert (m.count, m.missing, m.min, m.max, m.value_counts) == (d.count, d.missing, d.min, d.max,
                                                                       d.value_counts)
        if d.mean is not None:
            assert m.mean == pytest.approx(d.mean, rel=1e-12)
        if d.std is not None:
            assert m.std == pytest.approx(d.std, rel=1e-9)
    price_m, price_d = merged.columns["price"], direct.columns["price"]
    assert sum(price_m.histogram["counts"]) == pytest.approx(sum(price_d.histogram["counts"]))
    span = price_d.max - price_d.min
    for q in (0.1, 0.5, 0.9):  # the mixture of partition CDFs is within 2% of the range of the truth
        assert abs(price_m.quantile(q) - price_d.quantile(q)) < 0.02 * span


def test_large_tables_use_a_fixed_seed_sample_for_quantiles() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(0, 1, 400_000)
    stats = profile(pa.table({"x": values})).columns["x"]
    assert stats.quantile(0.5) == pytest.approx(np.quantile(values, 0.5), abs=0.02)
    assert stats.quantile(0.99) == pytest.approx(np.quantile(values, 0.99), abs=0.05)
    assert stats.min == values.min() and stats.max == values.max()


def test_redact_keeps_counts_and_drops_every_value() -> None:
    stats = profile(pa.table({"user_id": ["u1", "u2", "u2"], "age": [30, 40, 50]}))
    red = stats.redact(["user_id", "age"])
    for c in red.columns.values():
        assert c.top_k == [] and c.value_counts is None and c.min is None and c.quantiles is None
        assert c.count == 3
    assert "u2" not in str(red.to_dict()) and "40" not in str(red.columns["age"].to_dict()["quantiles"])
