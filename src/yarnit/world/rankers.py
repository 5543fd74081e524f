"""Rankers: what orders the candidates the world shows, closing the loop between models and data.

A ranker is any callable ``ranker(request: RankRequest) -> Sequence[float]``
returning one score per candidate (higher is shown first). A ranker may also
offer ``rank_batch(batch: RankBatch) -> array`` to score many requests at once
(the world uses it when present: 20,000 sessions a day would be slow one by
one), a ``model_version`` string (logged with every impression) and an
``exploration_rate`` in [0, 1] (the share of sessions the world shows in a
uniformly random order; the propensities are logged).

Three rankers come built in: :data:`popularity_ranker` (YarnIt's fallback and
the default), :data:`random_ranker` (explores every session) and
:data:`oracle_ranker` (ranks by the true relevance; for scoring only).

Example:
    >>> from yarnit.world import World, WorldConfig
    >>> def cheapest_first(request):
    ...     return -request.candidates["price_usd"].to_numpy()
    >>> world = World(WorldConfig(sessions_per_day=20, n_users=50), ranker=cheapest_first)
    >>> day = next(iter(world.run(1)))
    >>> day.impressions["model_version"].iloc[0]
    'cheapest_first'
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from yarnit.core.errors import InvalidInput

from .served import CANDIDATE_COLUMNS, REQUEST_COLUMNS, ServedRows

_USER_KEYS = {"user_id": "user_id", "country": "country", "language": "language", "currency": "currency",
              "user_price_sensitivity": "price_sensitivity", "user_is_new": "is_new"}
_CONTEXT_KEYS = ("session_id", "event_time", "day", "hour", "day_of_week", "country", "language", "device")


@dataclass(frozen=True)
class RankRequest:
    """One page to rank: who asks, what for, in which context, among which candidates."""

    user: Mapping[str, Any]  # user_id, country, language, currency, price_sensitivity, is_new
    query: str  # "" when browsing a category page
    context: Mapping[str, Any]  # session_id, event_time, day, hour, day_of_week, country, language, device
    candidates: pd.DataFrame  # one row per candidate product (CANDIDATE_COLUMNS)
    truth_relevance: np.ndarray | None = field(default=None, repr=False, compare=False)  # oracle only


@runtime_checkable
class Ranker(Protocol):
    """Scores the candidates of one request; higher scores are shown first."""

    def __call__(self, request: RankRequest) -> Sequence[float]: ...


class RankBatch:
    """Many rank requests in columnar form; row ``i * n_candidates + j`` is candidate ``j`` of request ``i``.

    ``column(name)`` reads one served column without building a DataFrame;
    ``candidates`` is the whole table (the columns a click model trained on
    the impression log expects, with ``position`` left to the caller).
    """

    def __init__(self, rows: ServedRows, n_requests: int, n_candidates: int, *,
                 renames: Mapping[str, str] | None = None,
                 relevance: Callable[[], np.ndarray] | None = None) -> None:
        self.n_requests = n_requests
        self.n_candidates = n_candidates
        self._rows = rows
        self._renames = dict(renames or {})
        self._original = {new: old for old, new in self._renames.items()}
        self._relevance = relevance

    def __len__(self) -> int:
        return self.n_requests

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self._renames.get(c, c) for c in CANDIDATE_COLUMNS)

    def column(self, name: str) -> np.ndarray:
        """One value per (request, candidate) row: numbers as numbers, strings as an object array."""
        if name in self._renames or name not in self.columns:
            raise KeyError(f"The candidates have no column {name!r}. Columns: {', '.join(self.columns)}")
        original = self._original.get(name, name)
        series = self._rows.series(original)
        return series.to_numpy()

    @cached_property
    def candidates(self) -> pd.DataFrame:
        return self._rows.frame(CANDIDATE_COLUMNS, self._renames)

    @cached_property
    def requests(self) -> pd.DataFrame:
        """One row per request: the request columns of its first candidate."""
        first = self.candidates.iloc[:: self.n_candidates]
        return first[[self._renames.get(c, c) for c in REQUEST_COLUMNS]].reset_index(drop=True)

    def true_relevance(self) -> np.ndarray:
        """The ground-truth relevance of every row. Only the oracle ranker may read this."""
        if self._relevance is None:
            raise InvalidInput("This batch carries no ground truth; only batches made by the world do.")
        return self._relevance()

    def __iter__(self) -> Iterator[RankRequest]:
        frame, size = self.candidates, self.n_candidates
        relevance = self._relevance() if self._relevance is not None else None
        for i, request in enumerate(self.requests.to_dict("records")):
            rows = frame.iloc[i * size : (i + 1) * size].reset_index(drop=True)
            user = {key: request[col] for col, key in _USER_KEYS.items() if col in request}
            context = {key: request[key] for key in _CONTEXT_KEYS if key in request}
            truth = relevance[i * size : (i + 1) * size] if relevance is not None else None
            yield RankRequest(user=user, query=str(request.get("query", "")), context=context, candidates=rows,
                              truth_relevance=truth)


def model_version_of(ranker: object) -> str:
    """The version logged with every impression the ranker ordered."""
    version = getattr(ranker, "model_version", None) or getattr(ranker, "__name__", None)
    return str(version or type(ranker).__name__)


def exploration_rate_of(ranker: object) -> float:
    rate = getattr(ranker, "exploration_rate", 0.0)
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= float(rate) <= 1.0:
        raise InvalidInput(
            f"Ranker {model_version_of(ranker)!r} has exploration_rate={rate!r}; it must be a float in [0, 1]."
        )
    return float(rate)


def score_batch(ranker: object, batch: RankBatch) -> np.ndarray:
    """Scores of shape (requests, candidates), through ``rank_batch`` when the ranker has it."""
    if hasattr(ranker, "rank_batch"):
        raw = np.asarray(ranker.rank_batch(batch), dtype=float)
    elif callable(ranker):
        raw = np.asarray([np.asarray(ranker(request), dtype=float) for request in batch], dtype=float)
    else:
        raise InvalidInput(
            f"{ranker!r} is not a ranker: pass a callable ranker(request) -> scores, or an object with "
            "rank_batch(batch) -> scores (see yarnit.world.rankers)."
        )
    expected = batch.n_requests * batch.n_candidates
    if raw.size != expected:
        raise InvalidInput(
            f"Ranker {model_version_of(ranker)!r} returned {raw.size} scores for {batch.n_requests} requests x "
            f"{batch.n_candidates} candidates; it must return one score per candidate ({expected})."
        )
    scores = raw.reshape(batch.n_requests, batch.n_candidates)
    if not np.isfinite(scores).all():
        bad = int((~np.isfinite(scores)).sum())
        raise InvalidInput(
            f"Ranker {model_version_of(ranker)!r} returned {bad} NaN or infinite scores; scores must be finite floats."
        )
    return scores


class PopularityRanker:
    """Orders candidates by YarnIt's popularity feature (logged clicks over 7 days): the fallback of ch. 7."""

    model_version = "popularity"
    exploration_rate = 0.0

    def rank_batch(self, batch: RankBatch) -> np.ndarray:
        return batch.column("product_clicks_7d").astype(float)

    def __call__(self, request: RankRequest) -> Sequence[float]:
        return request.candidates["product_clicks_7d"].to_numpy(dtype=float)


class RandomRanker:
    """Shows every session's candidates in a uniformly random order (exploration rate 1)."""

    model_version = "random"
    exploration_rate = 1.0

    def rank_batch(self, batch: RankBatch) -> np.ndarray:
        return np.zeros(batch.n_requests * batch.n_candidates)

    def __call__(self, request: RankRequest) -> Sequence[float]:
        return np.zeros(len(request.candidates))


class OracleRanker:
    """Orders candidates by their true relevance (the click probability without position bias).

    It reads the ground truth, so it is a yardstick for scoring models, never a model.
    """

    model_version = "oracle"
    exploration_rate = 0.0

    def rank_batch(self, batch: RankBatch) -> np.ndarray:
        return batch.true_relevance()

    def __call__(self, request: RankRequest) -> Sequence[float]:
        if request.truth_relevance is None:
            raise InvalidInput("oracle_ranker needs requests made by the world (they carry the ground truth).")
        return request.truth_relevance


class Exploring:
    """Wraps a ranker so that a share of sessions see a uniformly random order instead."""

    def __init__(self, ranker: object, rate: float) -> None:
        self.ranker = ranker
        self.exploration_rate = rate
        self.model_version = model_version_of(ranker)
        exploration_rate_of(self)

    def rank_batch(self, batch: RankBatch) -> np.ndarray:
        return score_batch(self.ranker, batch).ravel()


def with_exploration(ranker: object, rate: float) -> Exploring:
    """``ranker``, but ``rate`` of sessions are shown in random order (propensities are logged)."""
    return Exploring(ranker, rate)


popularity_ranker = PopularityRanker()
random_ranker = RandomRanker()
oracle_ranker = OracleRanker()

__all__ = [
    "Exploring",
    "OracleRanker",
    "PopularityRanker",
    "RandomRanker",
    "RankBatch",
    "RankRequest",
    "Ranker",
    "exploration_rate_of",
    "model_version_of",
    "oracle_ranker",
    "popularity_ranker",
    "random_ranker",
    "score_batch",
    "with_exploration",
]
