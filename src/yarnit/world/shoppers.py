"""The shoppers: where they live, what they pay, what they like, how often they come back.

Public attributes (country, language, currency, device, price sensitivity)
reach the logs as features. Tastes over fibers, weights and colours are hidden:
they enter the logs only through what shoppers search for and click.
"""

from __future__ import annotations

import numpy as np

from . import vocab as v

TASTE_SD = 0.35  # spread of personal taste (logit)
_COUNTRY_SHARE = np.array([c.share for c in v.COUNTRIES])
_COUNTRY_FIBER = np.zeros((len(v.COUNTRIES), len(v.FIBERS) - 1))
for _code, _prefs in v.COUNTRY_FIBER_PREF.items():
    for _fiber, _value in _prefs.items():
        _COUNTRY_FIBER[v.COUNTRY_CODES.index(_code), v.FIBERS.index(_fiber)] = _value


class Shoppers:
    """Every shopper ever seen, as parallel arrays (append-only)."""

    def __init__(self) -> None:
        self.country = np.zeros(0, dtype=np.int16)
        self.language = np.zeros(0, dtype=np.int16)
        self.device = np.zeros(0, dtype=np.int16)
        self.price_sensitivity = np.zeros(0)
        self.activity = np.zeros(0)
        self.crochet = np.zeros(0, dtype=bool)
        self.created_day = np.zeros(0, dtype=np.int32)
        self.pref_fiber = np.zeros((0, len(v.FIBERS) - 1))
        self.pref_weight = np.zeros((0, len(v.WEIGHT_CLASSES) - 1))
        self.pref_color = np.zeros((0, len(v.COLORS)))
        self.last_query = np.zeros(0, dtype=np.int64)  # -1: never searched
        self.last_device = np.zeros(0, dtype=np.int16)
        self.n_sessions = np.zeros(0, dtype=np.int64)
        self._cum_activity: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.country)

    @property
    def currency(self) -> np.ndarray:
        return v.COUNTRY_CURRENCY[self.country]

    def add(self, n: int, created_day: np.ndarray | int, rng: np.random.Generator) -> np.ndarray:
        """Create ``n`` shoppers; return their indices. Uses a fixed number of draws per shopper."""
        u = rng.random((n, 5))
        country = np.searchsorted(np.cumsum(_COUNTRY_SHARE), u[:, 0] * 0.999999, side="right")
        language = v.COUNTRY_LANGUAGE[country].copy()
        canadian_french = (country == v.COUNTRY_CODES.index("CA")) & (u[:, 1] < 0.2)
        language[canadian_french] = v.LANGUAGES.index("fr")
        device = np.searchsorted(np.cumsum(v.DEVICE_SHARE), u[:, 2] * 0.999999, side="right")
        sensitivity = np.clip(np.round(rng.gamma(2.0, 0.5, size=n), 3), 0.05, 4.0)
        activity = rng.gamma(0.6, 1.0, size=n) + 1e-3
        taste = rng.normal(0.0, TASTE_SD, size=(n, 7 + 7 + 13))
        start = len(self)
        self.country = np.concatenate([self.country, country.astype(np.int16)])
        self.language = np.concatenate([self.language, language.astype(np.int16)])
        self.device = np.concatenate([self.device, device.astype(np.int16)])
        self.price_sensitivity = np.concatenate([self.price_sensitivity, sensitivity])
        self.activity = np.concatenate([self.activity, activity])
        self.crochet = np.concatenate([self.crochet, u[:, 3] < 0.3])
        self.created_day = np.concatenate(
            [self.created_day, np.broadcast_to(np.asarray(created_day, dtype=np.int32), (n,))]
        )
        fiber = np.asarray(v.FIBER_BASE_PREF) + _COUNTRY_FIBER[country] + taste[:, :7]
        self.pref_fiber = np.concatenate([self.pref_fiber, fiber])
        self.pref_weight = np.concatenate([self.pref_weight, taste[:, 7:14]])
        self.pref_color = np.concatenate([self.pref_color, taste[:, 14:]])
        self.last_query = np.concatenate([self.last_query, np.full(n, -1, dtype=np.int64)])
        self.last_device = np.concatenate([self.last_device, device.astype(np.int16)])
        self.n_sessions = np.concatenate([self.n_sessions, np.zeros(n, dtype=np.int64)])
        self._cum_activity = None
        return np.arange(start, start + n)

    def pick_returning(self, u: np.ndarray, known: int) -> np.ndarray:
        """Map uniforms ``u`` to shoppers among the first ``known``, in proportion to activity."""
        if self._cum_activity is None or len(self._cum_activity) != known:
            self._cum_activity = np.cumsum(self.activity[:known])
        total = self._cum_activity[-1]
        return np.minimum(np.searchsorted(self._cum_activity, u * total, side="right"), known - 1)

    def record_sessions(self, user: np.ndarray, qid: np.ndarray, device: np.ndarray) -> None:
        """Remember each shopper's latest search and device (inputs are in time order)."""
        self.n_sessions += np.bincount(user, minlength=len(self))
        searched = qid >= 0
        if searched.any():
            u, q, d = user[searched][::-1], qid[searched][::-1], device[searched][::-1]
            first = np.unique(u, return_index=True)[1]  # first in reversed order = latest
            self.last_query[u[first]] = q[first]
            self.last_device[u[first]] = d[first]


__all__ = ["Shoppers", "TASTE_SD"]
