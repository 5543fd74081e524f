"""DayPartition: everything the world produced on one simulated day, as pandas DataFrames."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import ClassVar

import pandas as pd

from .faults import Fault


@dataclass(frozen=True)
class DayPartition:
    """One day of the YarnIt world.

    Tables (see docs of :mod:`yarnit.world.logs` for their columns):

    * ``catalog``: every listed product as served at midnight (stock, price, discount, popularity);
    * ``users``: shoppers active that day (``is_new`` for first-timers);
    * ``sessions``: one row per page view (search or category browse);
    * ``impressions``: the click log, one row per impression, ready to train a click model;
    * ``clicks``, ``purchases``: events with their event and arrival times;
    * ``labels``: click, purchase and fraud labels with the time they arrive;
    * ``truth``: the ground truth per impression (``p_click`` …): for scoring, never a feature.

    ``faults`` are the injected faults whose window overlaps the day.
    """

    index: int
    day: date
    catalog: pd.DataFrame
    users: pd.DataFrame
    sessions: pd.DataFrame
    impressions: pd.DataFrame
    clicks: pd.DataFrame
    purchases: pd.DataFrame
    labels: pd.DataFrame
    truth: pd.DataFrame
    faults: tuple[Fault, ...]

    TABLES: ClassVar[tuple[str, ...]] = (
        "catalog", "users", "sessions", "impressions", "clicks", "purchases", "labels", "truth",
    )  # fmt: skip

    def tables(self) -> dict[str, pd.DataFrame]:
        """The eight tables by name."""
        return {name: getattr(self, name) for name in self.TABLES}


__all__ = ["DayPartition"]
