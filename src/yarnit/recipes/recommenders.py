"""The five recommenders of ch. 12, trained on YarnIt's interaction logs and compared offline.

* ``popular``: popular yarns by total sales. It is also the universal fallback.
* ``browsing``: recommendations from browsing history. Item-item co-views
  (clicks in one session) are scored against the user's recent clicks.
* ``cross_sell``: cross-selling and upselling from co-purchases (items bought
  by the same shopper), nudged towards higher prices within the same
  product type.
* ``content``: content-based filtering. Cosine similarity between a user's
  profile (the mean attribute vector of what they clicked) and each product.
* ``collaborative``: collaborative filtering by implicit-feedback matrix
  factorization: a truncated SVD of the user × item interaction matrix
  (PureSVD).

Each recommender has the same two methods: ``fit(interactions, catalog)`` and
``recommend(users, k)``, which returns a user → product ids mapping. Users a
model knows nothing about get the popular list, so every user gets *k* items.
:func:`evaluate_recommenders` scores them on the day after training
(precision@k, recall@k, NDCG@k, coverage, novelty).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd
import scipy.sparse as sp

from yarnit.core.errors import InvalidInput

ATTRIBUTES = ("product_type", "fiber", "weight_class", "color", "brand")


class Recommender(Protocol):
    name: str

    def fit(self, interactions: pd.DataFrame, catalog: pd.DataFrame) -> Recommender: ...

    def recommend(self, users: Sequence[str], k: int) -> dict[str, list[str]]: ...


def _check(interactions: pd.DataFrame) -> None:
    missing = {"user_id", "product_id", "session_id", "kind"} - set(interactions.columns)
    if missing:
        raise InvalidInput(f"Interactions lack columns {sorted(missing)}; build them with interactions_from_world().")


class _Indexed:
    """Shared bookkeeping: item/user indices, the popular list and top-k with exclusions."""

    name = "base"

    def _index(self, interactions: pd.DataFrame, catalog: pd.DataFrame) -> None:
        _check(interactions)
        self.items = np.asarray(sorted(set(catalog["product_id"]) | set(interactions["product_id"])), dtype=object)
        self.item_index = {p: i for i, p in enumerate(self.items)}
        self.users = np.asarray(sorted(interactions["user_id"].unique()), dtype=object)
        self.user_index = {u: i for i, u in enumerate(self.users)}
        sales = interactions[interactions["kind"] == "purchase"]["product_id"].value_counts()
        clicks = interactions[interactions["kind"] == "click"]["product_id"].value_counts()
        score = np.zeros(len(self.items))
        for series, weight in ((sales, 1.0), (clicks, 1e-3)):  # clicks only break ties between equal sales
            score[[self.item_index[p] for p in series.index]] += weight * series.to_numpy()
        self.popularity = score
        self.popular_order = np.argsort(-score, kind="stable")
        self.seen = self._matrix(interactions, {"click": 1.0, "purchase": 1.0}).tocsr()
        self.seen.data[:] = 1.0

    def _matrix(self, interactions: pd.DataFrame, weights: dict[str, float]) -> sp.csr_matrix:
        rows = interactions["user_id"].map(self.user_index).to_numpy()
        cols = interactions["product_id"].map(self.item_index).to_numpy()
        vals = interactions["kind"].map(weights).fillna(0.0).to_numpy()
        return sp.csr_matrix((vals, (rows, cols)), shape=(len(self.users), len(self.items)))

    def _top(self, scores: np.ndarray | None, user_row: int | None, k: int) -> list[str]:
        """The k best unseen items by ``scores``; popular items fill what the scores cannot."""
        exclude = set(self.seen.indices[self.seen.indptr[user_row]:self.seen.indptr[user_row + 1]]) \
            if user_row is not None else set()
        chosen: list[int] = []
        if scores is not None:
            candidates = np.argsort(-scores, kind="stable")[: k + len(exclude)]
            chosen = [int(i) for i in candidates if scores[i] > 0 and i not in exclude][:k]
        for i in self.popular_order:
            if len(chosen) >= k:
                break
            if i not in exclude and int(i) not in chosen:
                chosen.append(int(i))
        return [str(self.items[i]) for i in chosen]

    def _scores(self, user_row: int) -> np.ndarray | None:
        return None

    def recommend(self, users: Sequence[str], k: int) -> dict[str, list[str]]:
        out = {}
        for user in users:
            row = self.user_index.get(user)
            out[user] = self._top(None if row is None else self._scores(row), row, k)
        return out


class PopularRecommender(_Indexed):
    name = "popular"

    def fit(self, interactions: pd.DataFrame, catalog: pd.DataFrame) -> PopularRecommender:
        self._index(interactions, catalog)
        return self


class BrowsingHistoryRecommender(_Indexed):
    """Item-item co-views: two items clicked in one session are related."""

    name = "browsing"

    def fit(self, interactions: pd.DataFrame, catalog: pd.DataFrame) -> BrowsingHistoryRecommender:
        self._index(interactions, catalog)
        clicks = interactions[interactions["kind"] == "click"]
        sessions = {s: i for i, s in enumerate(clicks["session_id"].unique())}
        by_session = sp.csr_matrix(
            (np.ones(len(clicks)), (clicks["session_id"].map(sessions).to_numpy(),
                                    clicks["product_id"].map(self.item_index).to_numpy())),
            shape=(len(sessions), len(self.items)))
        by_session.data[:] = 1.0
        co = (by_session.T @ by_session).tocsr()
        co.setdiag(0)
        co.eliminate_zeros()
        norms = np.sqrt(np.asarray(by_session.sum(axis=0)).ravel()) + 1e-9
        self.similarity = sp.diags(1 / norms) @ co @ sp.diags(1 / norms)
        self.user_clicks = self._matrix(clicks, {"click": 1.0}).tocsr()
        return self

    def _scores(self, user_row: int) -> np.ndarray | None:
        history = self.user_clicks[user_row]
        return None if history.nnz == 0 else np.asarray((history @ self.similarity).todense()).ravel()


class CrossSellRecommender(_Indexed):
    """Co-purchases across a shopper's baskets, with an upsell nudge to pricier items of the same type."""

    name = "cross_sell"

    def __init__(self, *, upsell_weight: float = 0.2) -> None:
        self.upsell_weight = upsell_weight

    def fit(self, interactions: pd.DataFrame, catalog: pd.DataFrame) -> CrossSellRecommender:
        self._index(interactions, catalog)
        bought = self._matrix(interactions, {"purchase": 1.0, "click": 0.1}).tocsr()
        co = (bought.T @ bought).tocsr()
        co.setdiag(0)
        co.eliminate_zeros()
        self.co = co
        self.bought = bought
        info = catalog.drop_duplicates("product_id", keep="last").set_index("product_id")
        self.price = info["price_usd"].reindex(self.items).fillna(0.0).to_numpy()
        self.kind = info["product_type"].reindex(self.items).fillna("").to_numpy()
        return self

    def _scores(self, user_row: int) -> np.ndarray | None:
        basket = self.bought[user_row]
        if basket.nnz == 0:
            return None
        scores = np.asarray((basket @ self.co).todense()).ravel()
        owned = basket.indices
        for kind in set(self.kind[owned]):
            ceiling = self.price[owned][self.kind[owned] == kind].max()
            upsell = (self.kind == kind) & (self.price > ceiling)
            scores[upsell] *= 1 + self.upsell_weight
        return scores


class ContentBasedRecommender(_Indexed):
    """Attribute similarity between a user's clicked items and the catalog."""

    name = "content"

    def fit(self, interactions: pd.DataFrame, catalog: pd.DataFrame) -> ContentBasedRecommender:
        self._index(interactions, catalog)
        info = catalog.drop_duplicates("product_id", keep="last").set_index("product_id").reindex(self.items)
        one_hot = pd.get_dummies(info[list(ATTRIBUTES)].astype(str), dtype=float)
        vectors = one_hot.to_numpy()
        self.vectors = vectors / (np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-9)
        self.user_clicks = self._matrix(interactions, {"click": 1.0, "purchase": 2.0}).tocsr()
        return self

    def _scores(self, user_row: int) -> np.ndarray | None:
        history = self.user_clicks[user_row]
        if history.nnz == 0:
            return None
        profile = np.asarray(history @ self.vectors).ravel()
        profile /= np.linalg.norm(profile) + 1e-9
        return self.vectors @ profile + 1e-6 * self.popularity / (self.popularity.max() + 1e-9)


class CollaborativeFilteringRecommender(_Indexed):
    """Implicit-feedback matrix factorization: truncated SVD of user × item (PureSVD)."""

    name = "collaborative"

    def __init__(self, *, factors: int = 32, seed: int = 0) -> None:
        self.factors, self.seed = factors, seed

    def fit(self, interactions: pd.DataFrame, catalog: pd.DataFrame) -> CollaborativeFilteringRecommender:
        from scipy.sparse.linalg import svds

        self._index(interactions, catalog)
        matrix = self._matrix(interactions, {"click": 1.0, "purchase": 3.0}).tocsr()
        matrix.data = np.log1p(matrix.data)
        rank = max(1, min(self.factors, min(matrix.shape) - 1))
        v0 = np.random.default_rng(self.seed).random(min(matrix.shape))
        _, _, vt = svds(matrix.astype(float), k=rank, v0=v0)
        self.item_factors = vt.T
        self.matrix = matrix
        return self

    def _scores(self, user_row: int) -> np.ndarray | None:
        row = self.matrix[user_row]
        if row.nnz == 0:
            return None
        return np.asarray(row @ self.item_factors).ravel() @ self.item_factors.T


RECOMMENDERS: dict[str, type] = {
    "popular": PopularRecommender, "browsing": BrowsingHistoryRecommender, "cross_sell": CrossSellRecommender,
    "content": ContentBasedRecommender, "collaborative": CollaborativeFilteringRecommender,
}


def interactions_from_world(partitions: Sequence[Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Clicks and purchases of world day partitions as one interaction log, plus the newest catalog."""
    frames = []
    for p in partitions:
        frames.append(p.clicks[["user_id", "product_id", "session_id", "day"]].assign(kind="click"))
        frames.append(p.purchases[["user_id", "product_id", "session_id", "day"]].assign(kind="purchase"))
    return pd.concat(frames, ignore_index=True), partitions[-1].catalog


@dataclass(frozen=True)
class RecommenderScore:
    name: str
    precision_at_k: float
    recall_at_k: float
    ndcg_at_k: float
    coverage: float
    novelty: float
    users: int


def _ranking_metrics(recommended: dict[str, list[str]], relevant: dict[str, set[str]], k: int
                     ) -> tuple[float, float, float]:
    precision, recall, ndcg = [], [], []
    discounts = 1 / np.log2(np.arange(2, k + 2))
    for user, truth in relevant.items():
        items = recommended.get(user, [])[:k]
        hits = np.array([item in truth for item in items], dtype=float)
        precision.append(hits.sum() / k)
        recall.append(hits.sum() / len(truth))
        ideal = discounts[: min(len(truth), k)].sum()
        ndcg.append(float((hits * discounts[: len(hits)]).sum() / ideal))
    return float(np.mean(precision)), float(np.mean(recall)), float(np.mean(ndcg))


def evaluate_recommenders(train: pd.DataFrame, test: pd.DataFrame, catalog: pd.DataFrame, *, k: int = 10,
                          names: Sequence[str] = tuple(RECOMMENDERS)) -> list[RecommenderScore]:
    """Fit each recommender on ``train`` and score its top-k on the items each user clicked in ``test``."""
    relevant = test[test["kind"] == "click"].groupby("user_id")["product_id"].agg(set).to_dict()
    known = set(train["user_id"])
    relevant = {u: items for u, items in relevant.items() if u in known}
    if not relevant:
        raise InvalidInput("No test user appears in the training interactions; use more days of data.")
    item_share = train["product_id"].value_counts(normalize=True)
    scores = []
    for name in names:
        model = RECOMMENDERS[name]().fit(train, catalog)
        recommended = model.recommend(list(relevant), k)
        precision, recall, ndcg = _ranking_metrics(recommended, relevant, k)
        shown = [item for items in recommended.values() for item in items]
        coverage = len(set(shown)) / max(1, catalog["product_id"].nunique())
        floor = 1.0 / max(1, len(train))
        novelty = float(np.mean([-np.log2(item_share.get(item, floor)) for item in shown]))
        scores.append(RecommenderScore(name, precision, recall, ndcg, coverage, novelty, len(relevant)))
    return scores


__all__ = [
    "RECOMMENDERS",
    "BrowsingHistoryRecommender",
    "CollaborativeFilteringRecommender",
    "ContentBasedRecommender",
    "CrossSellRecommender",
    "PopularRecommender",
    "Recommender",
    "RecommenderScore",
    "evaluate_recommenders",
    "interactions_from_world",
]
