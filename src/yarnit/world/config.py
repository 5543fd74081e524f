"""WorldConfig: everything that decides what the YarnIt world generates, validated up front."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from yarnit.core.clock import utc
from yarnit.core.errors import InvalidInput

from .faults import Fault

#: Largest seed accepted: numpy's SeedSequence wants a non-negative integer; 2**63 keeps JSON exact.
MAX_SEED = 2**63 - 1


def _int_in(name: str, value: Any, low: int, high: int, hint: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(
            f"WorldConfig.{name} must be an int in [{low}, {high}], got {value!r} ({type(value).__name__}). {hint}"
        )
    if not low <= value <= high:
        raise InvalidInput(f"WorldConfig.{name} must be an int in [{low}, {high}], got {value}. {hint}")


@dataclass(frozen=True)
class WorldConfig:
    """The seed and the shape of a simulated YarnIt world.

    Args:
        seed: seeds every random stream (per day and per purpose).
        sessions_per_day: mean number of shopper sessions on an ordinary day (weekends,
            conferences and the traffic-spike fault change the daily count).
        start: the first simulated day, midnight UTC.
        n_products: catalog size on day 0 (new products arrive every day).
        n_users: shoppers known on day 0 (new shoppers arrive every day).
        faults: injected failure scenarios, see :data:`yarnit.world.FAULTS`.
        slate_size: impressions shown per session (the first page).
        n_candidates: products retrieved per session for the ranker to order.
        new_products_per_day: products listed each day (cold start).
        new_user_share: share of sessions that come from a first-time shopper.

    Example:
        >>> WorldConfig(seed=7, sessions_per_day=100).n_candidates
        30
    """

    seed: int = 0
    sessions_per_day: int = 2000
    start: datetime = utc(2026, 1, 5)
    n_products: int = 1000
    n_users: int = 10_000
    faults: tuple[Fault, ...] = ()
    slate_size: int = 10
    n_candidates: int = 30
    new_products_per_day: int = 5
    new_user_share: float = 0.1

    def __post_init__(self) -> None:
        _int_in("seed", self.seed, 0, MAX_SEED, "Pick any non-negative integer, e.g. seed=0.")
        _int_in("sessions_per_day", self.sessions_per_day, 1, 1_000_000, "Tests use ~100, the benchmark 20000.")
        if not isinstance(self.start, datetime) or self.start.tzinfo is None:
            raise InvalidInput(
                f"WorldConfig.start must be a timezone-aware datetime at midnight UTC, got {self.start!r}. "
                "Use yarnit.core.utc(2026, 1, 5)."
            )
        if self.start.utcoffset() != timedelta(0) or (self.start.hour, self.start.minute, self.start.second,
                                                       self.start.microsecond) != (0, 0, 0, 0):
            raise InvalidInput(
                f"WorldConfig.start must be midnight UTC (days are UTC days), got {self.start.isoformat()}. "
                "Use yarnit.core.utc(year, month, day)."
            )
        _int_in("slate_size", self.slate_size, 1, 50, "The default first page shows 10 products.")
        _int_in("n_candidates", self.n_candidates, self.slate_size, 500,
                "It must be at least slate_size: the ranker orders the candidates, the first slate_size are shown.")
        _int_in("n_products", self.n_products, max(100, self.n_candidates), 100_000,
                "The catalog needs at least 100 products and at least n_candidates.")
        _int_in("n_users", self.n_users, 1, 10_000_000, "The default is 10000 shoppers on day 0.")
        _int_in("new_products_per_day", self.new_products_per_day, 0, 100_000, "The default is 5.")
        share = self.new_user_share
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0.0 <= float(share) <= 1.0:
            raise InvalidInput(f"WorldConfig.new_user_share must be a float in [0, 1], got {share!r}.")
        if not isinstance(self.faults, tuple) or not all(isinstance(f, Fault) for f in self.faults):
            raise InvalidInput(
                f"WorldConfig.faults must be a tuple of Fault, got {self.faults!r}. "
                "Build them with Fault('stockout', day=3) or parse_fault('stockout@3')."
            )

    def check_horizon(self, days: int) -> None:
        """Raise InvalidInput unless ``days`` is a valid run length that contains every fault's start."""
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 3660:
            raise InvalidInput(f"days must be an int in [1, 3660], got {days!r}. Example: --days 30.")
        for fault in self.faults:
            if fault.day >= days:
                last = (self.start + timedelta(days=days - 1)).date().isoformat()
                raise InvalidInput(
                    f"Fault {fault.spec()!r} starts on day {fault.day}, after the last simulated day "
                    f"{days - 1} ({last}). Use a day in [0, {days - 1}] or simulate more days."
                )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description (written as world.json)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("start", "faults")}
        out["start"] = self.start.isoformat()
        out["faults"] = [fault.to_dict(self.start) for fault in self.faults]
        return out


__all__ = ["MAX_SEED", "WorldConfig"]
