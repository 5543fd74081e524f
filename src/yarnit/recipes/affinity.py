"""Shoppers' click histories, point-in-time: the inputs of ``ctr_features_v2`` and ``ctr_features_v3``.

A day's impression log closes at 06:00 UTC the next day (:data:`LOG_CLOSE`):
clicks that arrive later are never logged, and the day's clicks are known
only from then on. An impression at time *t* therefore sees the logs of the
days that had closed by *t*: every day up to the day of *t* − 6 h, minus one.
A click stamped after the impression never changes its features, in
training (:func:`add_user_affinity`) and in serving (:class:`AffinityHistory`
keeps the same counts live for a ranker that learns from each day it serves).
A frame without ``event_time`` falls back to the days before its ``day``.

For each impression the history gives the shopper's impressions and clicks
before it, in total and on products with the same fiber, weight and colour,
and the share of their clicks on that value (the affinity of v2).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import numpy as np
import pandas as pd

from yarnit.features.ctr_v2 import AFFINITIES

#: Feature transforms that need the shopper history besides the request.
HISTORY_TRANSFORMS = ("ctr_features_v2", "ctr_features_v3")
LOG_CLOSE = pd.Timedelta(hours=6)  # yarnit.world closes day d's log at 06:00 UTC on day d + 1
_USER = "user_id"
_KEYS: tuple[tuple[str, ...], ...] = ((_USER,), *((_USER, a) for a in AFFINITIES))
HISTORY_COLUMNS = (
    "user_history_impressions", "user_history_clicks",
    *(f"user_impressions_{a}" for a in AFFINITIES), *(f"user_clicks_{a}" for a in AFFINITIES),
    *(f"user_affinity_{a}" for a in AFFINITIES),
)  # fmt: skip


def available_through(frame: pd.DataFrame) -> np.ndarray:
    """For each row, the last day whose log had closed when the impression was shown (object array of dates)."""
    if "event_time" in frame.columns:
        closed = (pd.to_datetime(frame["event_time"], utc=True) - LOG_CLOSE).dt.floor("D") - pd.Timedelta(days=1)
        return closed.dt.date.to_numpy(dtype=object)
    return np.array([d - dt.timedelta(days=1) for d in _dates(frame["day"])], dtype=object)


def _dates(series: pd.Series) -> list[dt.date]:
    return [d if type(d) is dt.date else pd.Timestamp(d).date() for d in series.astype(object)]


def _daily_counts(log: pd.DataFrame) -> dict[tuple[str, ...], pd.DataFrame]:
    """Impressions and clicks per (key..., day) for every key set: all the history needs to remember."""
    base = pd.DataFrame({_USER: log[_USER].astype(str).to_numpy(), "day": _dates(log["day"]),
                         "clicked": log["clicked"].to_numpy(dtype=float)})
    for attribute in AFFINITIES:
        base[attribute] = log[attribute].astype(str).to_numpy()
    counts = {}
    for keys in _KEYS:
        grouped = base.groupby([*keys, "day"], sort=False)["clicked"].agg(["size", "sum"]).reset_index()
        counts[keys] = grouped.rename(columns={"size": "impressions", "sum": "clicks"})
    return counts


def _lookup(past: pd.DataFrame, keys: tuple[str, ...], rows: dict[str, np.ndarray]) -> np.ndarray:
    """Summed columns of ``past`` (indexed by ``keys``) for each row's key values; 0 when unseen."""
    index = pd.MultiIndex.from_arrays([rows[k] for k in keys]) if len(keys) > 1 else pd.Index(rows[keys[0]])
    return past.reindex(index).fillna(0.0).to_numpy(dtype=float).T


def _columns(keys: tuple[str, ...]) -> tuple[str, str]:
    """The (impressions, clicks) history columns that one key set fills."""
    if len(keys) == 1:
        return "user_history_impressions", "user_history_clicks"
    return f"user_impressions_{keys[1]}", f"user_clicks_{keys[1]}"


def _annotate(counts: dict[tuple[str, ...], pd.DataFrame], rows: pd.DataFrame, through: np.ndarray) -> pd.DataFrame:
    """``rows`` plus the history columns, each row counting only the days up to its ``through`` day."""
    out = rows.copy()
    values = {column: np.zeros(len(rows)) for column in HISTORY_COLUMNS}
    key_columns = [c for c in (_USER, *AFFINITIES) if c in rows.columns]
    keys_of = {c: rows[c].astype(str).to_numpy() for c in key_columns}
    for day in sorted(set(through)):
        mask = through == day
        masked = {c: v[mask] for c, v in keys_of.items()}
        for keys, table in counts.items():
            past = table[table["day"] <= day]
            if past.empty or any(k not in masked for k in keys):
                continue
            summed = past.groupby(list(keys), sort=False)[["impressions", "clicks"]].sum()
            for column, found in zip(_columns(keys), _lookup(summed, keys, masked), strict=True):
                values[column][mask] = found
    clicks = values["user_history_clicks"]
    for attribute in AFFINITIES:
        same = values[f"user_clicks_{attribute}"]
        values[f"user_affinity_{attribute}"] = np.where(clicks > 0, same / np.maximum(clicks, 1.0), 0.0)
    for column in HISTORY_COLUMNS:
        out[column] = values[column]
    return out


def add_user_affinity(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (an impression log with ``day`` and ``clicked``) plus point-in-time history columns.

    Example:
        >>> import datetime as dt, pandas as pd
        >>> log = pd.DataFrame({"user_id": ["u1", "u1"], "fiber": ["wool", "wool"], "weight_class": ["dk", "dk"],
        ...                     "color": ["red", "red"], "clicked": [1, 0],
        ...                     "day": [dt.date(2026, 1, 5), dt.date(2026, 1, 6)],
        ...                     "event_time": pd.to_datetime(["2026-01-05 10:00", "2026-01-06 10:00"], utc=True)})
        >>> add_user_affinity(log)[["user_history_clicks", "user_affinity_fiber"]].to_numpy().tolist()
        [[0.0, 0.0], [1.0, 1.0]]
    """
    return _annotate(_daily_counts(frame), frame, available_through(frame))


class AffinityHistory:
    """Live click counts per shopper and attribute value, per day; updated with each day's closed log."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, ...], pd.DataFrame] = {}

    def observe(self, impressions: pd.DataFrame) -> None:
        """Add one closed impression log (with ``day`` and ``clicked``)."""
        if impressions.empty:
            return
        for keys, table in _daily_counts(impressions).items():
            known = self.counts.get(keys)
            self.counts[keys] = table if known is None else pd.concat([known, table], ignore_index=True)

    def observe_all(self, logs: Iterable[pd.DataFrame]) -> None:
        for log in logs:
            self.observe(log)

    def annotate(self, candidates: pd.DataFrame) -> pd.DataFrame:
        """``candidates`` plus the history columns, point-in-time when they carry ``event_time``.

        Without ``event_time`` or ``day`` (a request from outside the world), every observed day counts.
        """
        if "event_time" in candidates.columns or "day" in candidates.columns:
            through = available_through(candidates)
        else:
            through = np.full(len(candidates), dt.date.max, dtype=object)
        return _annotate(self.counts, candidates, through)


__all__ = [
    "HISTORY_COLUMNS", "HISTORY_TRANSFORMS", "LOG_CLOSE", "AffinityHistory", "add_user_affinity", "available_through",
]
