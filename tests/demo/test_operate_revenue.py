"""The operate demo's daily revenue: a day on which no one bought anything is worth 0, not a crash (h34).

The ten-day faulted month with the demo's tuned model had such a day (150 sessions, 1,460 impressions, no
purchase): the world's string product ids mapped to prices gave an empty string column, whose sum is ``''``,
and ``float('')`` stopped the month on its third day.
"""

from __future__ import annotations

import pandas as pd
import pytest

from yarnit.demo.operate import _revenue

CATALOG = pd.DataFrame({"product_id": ["p1", "p2"], "price_usd": [10.0, 4.0], "discount": [0.5, None]})


@pytest.mark.parametrize("dtype", ["str", "string", object])
def test_a_day_without_a_purchase_earns_nothing_whatever_the_id_dtype(dtype) -> None:
    truth = pd.DataFrame({"product_id": pd.Series(["p1", "p2"], dtype=dtype), "purchased": [0, 0]})
    assert _revenue(truth, CATALOG) == 0.0


def test_revenue_is_list_price_less_discount_one_unit_each() -> None:
    truth = pd.DataFrame({"product_id": pd.Series(["p1", "p2", "p2", "p9"], dtype="str"), "purchased": [1, 1, 0, 1]})
    assert _revenue(truth, CATALOG) == 10.0 * 0.5 + 4.0  # p9 is not listed: no price, nothing counted
