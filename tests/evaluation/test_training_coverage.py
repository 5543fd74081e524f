"""The coverage section's slice counts (issue 20): the same as counting every row as text, without converting
every row of the training days to a string."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pandas as pd

from yarnit.evaluation import training_coverage


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "country": pd.Categorical(rng.choice(["de", "fr", None, "jp"], n), categories=["de", "fr", "jp", "unused"]),
        "device": pd.Series(rng.choice(np.array(["mobile", None, "desktop"], dtype=object), n), dtype=object),
        "is_partner": rng.random(n) < 0.3,
        "position": rng.integers(1, 5, n),
        "rating": np.where(rng.random(n) < 0.1, np.nan, rng.integers(0, 3, n).astype(float)),
        "mixed": pd.Series(rng.choice(np.array([1, "1", 2.5, None], dtype=object), n), dtype=object),
    })


def test_coverage_counts_each_value_as_its_text_like_the_row_by_row_count() -> None:
    train, evaluation = _frame(3000, 1), _frame(500, 2)
    columns = list(train.columns)
    got = training_coverage(train, evaluation, columns, distribution="holdout")
    expected = []
    for column in columns:  # the definition: every row as text, then counted
        ev, tr = evaluation[column].astype(str).value_counts(), train[column].astype(str).value_counts()
        for value in sorted(set(ev.index) | set(tr.index)):
            e, t = int(ev.get(value, 0)), int(tr.get(value, 0))
            expected.append({"distribution": "holdout", "slice": f"{column}={value}", "eval_rows": e,
                             "eval_share": e / len(evaluation), "train_rows": t, "train_share": t / len(train)})
    assert got == expected
    assert not any(row["slice"] == "country=unused" for row in got)  # an unused category is no slice value


def test_coverage_does_not_turn_every_training_row_into_text() -> None:
    n = 400_000
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 8, n)
    train = pd.DataFrame({"country": pd.Categorical.from_codes(codes, [f"country-{i}" for i in range(8)])})
    evaluation = train.iloc[:1000]
    tracemalloc.start()
    try:
        training_coverage(train, evaluation, ["country"], distribution="holdout")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * n, peak  # counting took 9 bytes a row; the rows as text took 66
