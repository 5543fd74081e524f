"""Shoppers' tastes from their click history, point-in-time (inputs of ``ctr_features_v2``).

For an impression on day *d*, a shopper's affinity for its fiber, weight and
colour is the share of their clicks *before d* on products with the same
value. Clicks of day *d* itself are never used, so there is no leakage.
:func:`add_user_affinity` computes this for a training log.
:class:`AffinityHistory` keeps the same counts live for a ranker that learns
from each day it serves (the closed loop).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from yarnit.features.ctr_v2 import AFFINITIES

_USER = "user_id"


def _lookup(history: pd.DataFrame, frame: pd.DataFrame, attribute: str) -> np.ndarray:
    counts = history.groupby([_USER, attribute], observed=True).size().rename("n").reset_index()
    keys = frame[[_USER, attribute]].astype(object)
    merged = keys.merge(counts.astype({_USER: object, attribute: object}), how="left", on=[_USER, attribute])
    return merged["n"].fillna(0.0).to_numpy(dtype=float)


def add_user_affinity(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (an impression log with ``day`` and ``clicked``) plus point-in-time affinity columns."""
    out = frame.copy()
    clicks = frame.loc[frame["clicked"] == 1, [_USER, "day", *AFFINITIES]]
    for column in (*[f"user_affinity_{a}" for a in AFFINITIES], "user_history_clicks"):
        out[column] = 0.0
    for day in sorted(frame["day"].unique()):
        rows = (frame["day"] == day).to_numpy()
        past = clicks[clicks["day"] < day]
        if past.empty:
            continue
        today = frame.loc[rows]
        total = past.groupby(_USER, observed=True).size()
        n = today[_USER].astype(object).map(total).fillna(0.0).to_numpy(dtype=float)
        out.loc[rows, "user_history_clicks"] = n
        for attribute in AFFINITIES:
            same = _lookup(past, today, attribute)
            out.loc[rows, f"user_affinity_{attribute}"] = np.where(n > 0, same / np.maximum(n, 1.0), 0.0)
    return out


class AffinityHistory:
    """Live click counts per shopper and attribute value; updated with each day's log."""

    def __init__(self) -> None:
        self.clicks = pd.DataFrame(columns=[_USER, *AFFINITIES])

    def observe(self, impressions: pd.DataFrame) -> None:
        new = impressions.loc[impressions["clicked"] == 1, [_USER, *AFFINITIES]]
        self.clicks = pd.concat([self.clicks, new.astype(object)], ignore_index=True)

    def observe_all(self, logs: Iterable[pd.DataFrame]) -> None:
        for log in logs:
            self.observe(log)

    def annotate(self, candidates: pd.DataFrame) -> pd.DataFrame:
        """``candidates`` plus the affinity columns from the history seen so far."""
        out = candidates.copy()
        total = self.clicks.groupby(_USER).size()
        n = candidates[_USER].astype(object).map(total).fillna(0.0).to_numpy(dtype=float)
        out["user_history_clicks"] = n
        for attribute in AFFINITIES:
            same = _lookup(self.clicks, candidates, attribute) if len(self.clicks) else np.zeros(len(candidates))
            out[f"user_affinity_{attribute}"] = np.where(n > 0, same / np.maximum(n, 1.0), 0.0)
        return out


__all__ = ["AffinityHistory", "add_user_affinity"]
