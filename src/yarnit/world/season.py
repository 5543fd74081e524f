"""The calendar of the world: weekly traffic, knitting conferences, seasonal and drifting tastes, FX rates.

:class:`Season` carries the slowly moving state (the drift of fiber and colour
tastes, the exchange rates); :meth:`Season.day` returns the frozen
:class:`DayEnvironment` that the rest of the day reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

from . import vocab as v

FIBER_SEASON_AMPLITUDE = 0.25  # logit: warm fibers in January, cool ones in July
FIBER_DRIFT_SD = 0.02  # logit per day
COLOR_DRIFT_SD = 0.03  # logit per day
DRIFT_KEEP = 0.98  # mean reversion of the drift per day
FX_DRIFT_SD = 0.004  # log-rate per day


@dataclass(frozen=True)
class DayEnvironment:
    """What is true of the whole world on one day."""

    index: int
    date: date
    traffic_factor: float  # weekday x conferences
    conferences: tuple[v.Conference, ...]
    fiber_trend: np.ndarray  # logit added per yarn fiber (7)
    color_trend: np.ndarray  # logit added per colour (13)
    conference_fiber: np.ndarray  # bool per fiber: a conference is celebrating it today
    fx_per_usd: np.ndarray  # London end-of-day rate per currency (vocab.CURRENCIES)

    @property
    def weekday(self) -> int:
        return self.date.weekday()


class Season:
    """Slow state of tastes and currencies, advanced once per simulated day."""

    def __init__(self) -> None:
        self._fiber_drift = np.zeros(len(v.FIBERS) - 1)
        self._color_drift = np.zeros(len(v.COLORS))
        self._log_fx = np.log(v.CURRENCY_FX)

    def advance(self, rng: np.random.Generator) -> None:
        """Move tastes and FX rates by one day of random drift."""
        noise = rng.normal(size=len(self._fiber_drift) + len(self._color_drift) + len(self._log_fx))
        nf, nc = len(self._fiber_drift), len(self._color_drift)
        self._fiber_drift = DRIFT_KEEP * self._fiber_drift + FIBER_DRIFT_SD * noise[:nf]
        self._color_drift = DRIFT_KEEP * self._color_drift + COLOR_DRIFT_SD * noise[nf : nf + nc]
        self._log_fx = self._log_fx + FX_DRIFT_SD * noise[nf + nc :]
        self._log_fx[v.CURRENCIES.index("USD")] = 0.0

    def day(self, index: int, when: date) -> DayEnvironment:
        conferences = conferences_on(when)
        doy = when.timetuple().tm_yday
        seasonal = FIBER_SEASON_AMPLITUDE * np.asarray(v.FIBER_WARMTH) * np.cos(2 * np.pi * (doy - 15) / 365.25)
        celebrated = np.zeros(len(v.FIBERS) - 1, dtype=bool)
        for conference in conferences:
            celebrated[v.FIBERS.index(conference.fiber)] = True
        traffic = float(v.WEEKDAY_TRAFFIC[when.weekday()]) * (v.CONFERENCE_TRAFFIC if conferences else 1.0)
        return DayEnvironment(
            index=index,
            date=when,
            traffic_factor=traffic,
            conferences=conferences,
            fiber_trend=seasonal + self._fiber_drift,
            color_trend=self._color_drift.copy(),
            conference_fiber=celebrated,
            fx_per_usd=np.round(np.exp(self._log_fx), 6),
        )


def conferences_on(when: date) -> tuple[v.Conference, ...]:
    """The knitting conferences running on ``when`` (they recur every year)."""
    running = []
    for conference in v.CONFERENCES:
        first = date(when.year, conference.month, conference.day)
        if 0 <= (when - first).days < conference.n_days:
            running.append(conference)
    return tuple(running)


__all__ = ["DayEnvironment", "Season", "conferences_on"]
