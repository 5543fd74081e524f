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

A :class:`RecommenderSet` is the five fitted together, with the catalog they
saw, as one safe artifact (``yarnit-recs-npz``: numpy arrays read with
``allow_pickle=False`` plus a JSON manifest). The ``yarnit-recs`` pipeline
registers it, and the ranker generates its candidates from it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd
import scipy.sparse as sp

from yarnit.core.errors import InvalidInput

ATTRIBUTES = ("product_type", "fiber", "weight_class", "color", "brand")
_SHARED = ("items", "users", "popularity", "popular_order", "seen")  # the same for every recommender of a set


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
    _FITTED: tuple[str, ...] = ()  # fitted attributes beyond the shared index (saved as arrays)
    _PARAMS: tuple[str, ...] = ()  # constructor parameters (saved in the manifest)

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

    def item_scores(self, user: str | None) -> np.ndarray:
        """A score per item for ``user`` (higher is better); popularity when the model knows nothing of them."""
        row = self.user_index.get(user) if user is not None else None
        scores = self._scores(row) if row is not None else None
        return self.popularity.astype(float) if scores is None else np.asarray(scores, dtype=float)

    # -- saving: arrays, never pickles ----------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._PARAMS}

    def state(self, *, shared: bool = True) -> dict[str, np.ndarray]:
        """The fitted state as plain arrays (sparse matrices as CSR parts, strings as fixed-width unicode)."""
        out: dict[str, np.ndarray] = {}
        for name in (*(_SHARED if shared else ()), *self._FITTED):
            out.update(_to_arrays(name, getattr(self, name)))
        return out

    @classmethod
    def from_state(cls, arrays: Mapping[str, np.ndarray], params: Mapping[str, Any]) -> _Indexed:
        model = cls(**dict(params)) if cls._PARAMS else cls()
        for name in (*_SHARED, *cls._FITTED):
            setattr(model, name, _from_arrays(name, arrays))
        model.items = np.asarray(model.items.tolist(), dtype=object)
        model.users = np.asarray(model.users.tolist(), dtype=object)
        if hasattr(model, "kind"):
            model.kind = np.asarray(model.kind.tolist(), dtype=object)
        model.item_index = {p: i for i, p in enumerate(model.items)}
        model.user_index = {u: i for i, u in enumerate(model.users)}
        return model


class PopularRecommender(_Indexed):
    name = "popular"

    def fit(self, interactions: pd.DataFrame, catalog: pd.DataFrame) -> PopularRecommender:
        self._index(interactions, catalog)
        return self


class BrowsingHistoryRecommender(_Indexed):
    """Item-item co-views: two items clicked in one session are related."""

    name = "browsing"
    _FITTED = ("similarity", "user_clicks")

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
    _FITTED = ("co", "bought", "price", "kind")
    _PARAMS = ("upsell_weight",)

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
    _FITTED = ("vectors", "user_clicks")

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
    _FITTED = ("item_factors", "matrix")
    _PARAMS = ("factors", "seed")

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


def _to_arrays(name: str, value: Any) -> dict[str, np.ndarray]:
    if sp.issparse(value):
        csr = sp.csr_matrix(value)
        return {f"{name}.data": csr.data.astype(float), f"{name}.indices": csr.indices.astype(np.int64),
                f"{name}.indptr": csr.indptr.astype(np.int64), f"{name}.shape": np.asarray(csr.shape, dtype=np.int64)}
    array = np.asarray(value)
    return {name: array.astype(str) if array.dtype.hasobject else array}


def _from_arrays(name: str, arrays: Mapping[str, np.ndarray]) -> Any:
    if f"{name}.indptr" in arrays:
        shape = tuple(int(n) for n in arrays[f"{name}.shape"])
        return sp.csr_matrix((arrays[f"{name}.data"], arrays[f"{name}.indices"], arrays[f"{name}.indptr"]),
                             shape=shape)
    if name not in arrays:
        raise InvalidInput(f"The recommender state lacks array {name!r}; the artifact is incomplete.")
    return arrays[name]


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


def score_recommenders(models: Mapping[str, Any], train: pd.DataFrame, test: pd.DataFrame,
                       catalog: pd.DataFrame, *, k: int = 10) -> list[RecommenderScore]:
    """Score fitted recommenders' top-k on the items each user clicked in ``test`` (users known in ``train``)."""
    relevant = test[test["kind"] == "click"].groupby("user_id")["product_id"].agg(set).to_dict()
    known = set(train["user_id"])
    relevant = {u: items for u, items in relevant.items() if u in known}
    if not relevant:
        raise InvalidInput("No test user appears in the training interactions; use more days of data.")
    item_share = train["product_id"].value_counts(normalize=True)
    scores = []
    for name, model in models.items():
        recommended = model.recommend(list(relevant), k)
        precision, recall, ndcg = _ranking_metrics(recommended, relevant, k)
        shown = [item for items in recommended.values() for item in items]
        coverage = len(set(shown)) / max(1, catalog["product_id"].nunique())
        floor = 1.0 / max(1, len(train))
        novelty = float(np.mean([-np.log2(item_share.get(item, floor)) for item in shown]))
        scores.append(RecommenderScore(name, precision, recall, ndcg, coverage, novelty, len(relevant)))
    return scores


def evaluate_recommenders(train: pd.DataFrame, test: pd.DataFrame, catalog: pd.DataFrame, *, k: int = 10,
                          names: Sequence[str] = tuple(RECOMMENDERS)) -> list[RecommenderScore]:
    """Fit each recommender on ``train`` and score its top-k on the items each user clicked in ``test``."""
    models = {name: RECOMMENDERS[name]().fit(train, catalog) for name in names}
    return score_recommenders(models, train, test, catalog, k=k)


#: Product columns a recommender set keeps from the catalog (the ranker's features for generated candidates).
CATALOG_FIELDS = ("product_id", "product_name", *ATTRIBUTES, "is_partner", "price_usd", "discount", "in_stock",
                  "product_clicks_7d", "product_age_days")
RECS_SCHEMA = "yarnit-recs/v1"


class RecommenderSet:
    """The five recommenders fitted on the same interactions, plus the catalog they saw: one artifact.

    It is also a *ranking* model that can be served by name: an instance
    ``{"user_id": "u0000042", "k": 10, "recommender": "collaborative"}`` gets
    that recommender's top-k (``default`` when none is named), or its order of
    the ``candidates`` given. Scores are the recommender's own; nothing is
    explored, so every propensity is 1.
    """

    kind = "ranking"

    def __init__(self, models: Mapping[str, _Indexed], catalog: pd.DataFrame, *, default: str = "popular",
                 meta: Mapping[str, Any] | None = None) -> None:
        self.models = dict(models)
        self.catalog = catalog
        self.default = default
        self.meta = dict(meta or {})

    @classmethod
    def fit(cls, interactions: pd.DataFrame, catalog: pd.DataFrame, *, names: Sequence[str] = tuple(RECOMMENDERS),
            params: Mapping[str, Mapping[str, Any]] | None = None, default: str = "popular",
            meta: Mapping[str, Any] | None = None) -> RecommenderSet:
        unknown = [n for n in names if n not in RECOMMENDERS]
        if unknown:
            raise InvalidInput(f"Unknown recommenders {unknown}; known: {', '.join(RECOMMENDERS)}.")
        if "popular" not in names:
            raise InvalidInput("A recommender set must include 'popular': it is the universal fallback.")
        params = params or {}
        models = {n: RECOMMENDERS[n](**dict(params.get(n, {}))).fit(interactions, catalog) for n in names}
        info = catalog.drop_duplicates("product_id", keep="last")
        missing = [c for c in CATALOG_FIELDS if c not in info.columns]
        if missing:
            raise InvalidInput(f"The catalog lacks columns {missing}; pass the world's catalog table.")
        return cls(models, info[list(CATALOG_FIELDS)].reset_index(drop=True), default=default, meta=meta)

    def recommender(self, name: str | None) -> _Indexed:
        chosen = name or self.default
        model = self.models.get(chosen)
        if model is None:
            raise InvalidInput(f"No recommender {chosen!r} in this set; it has: {', '.join(self.models)}.")
        return model

    # -- the artifact ------------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        from yarnit.registry.formats import MANIFEST, dump_arrays, dump_bundle

        first = next(iter(self.models.values()))
        arrays = {f"index.{k}": v for k, v in first.state(shared=True).items() if k.split(".")[0] in _SHARED}
        for name, model in self.models.items():
            if not (np.array_equal(model.items, first.items) and np.array_equal(model.users, first.users)):
                raise InvalidInput(f"Recommender {name!r} was fitted on other data than {first.name!r}; fit the "
                                   "set with RecommenderSet.fit.")
            arrays.update({f"{name}.{k}": v for k, v in model.state(shared=False).items()})
        for column in CATALOG_FIELDS:
            values = self.catalog[column].to_numpy()
            arrays[f"catalog.{column}"] = values.astype(str) if values.dtype.hasobject else values
        manifest = {"schema": RECS_SCHEMA, "default": self.default, "meta": self.meta,
                    "recommenders": {n: {"class": type(m).__name__, "params": m.params()}
                                     for n, m in self.models.items()}}
        return dump_bundle({MANIFEST: json.dumps(manifest, sort_keys=True).encode(), "arrays.npz": dump_arrays(arrays)})

    @classmethod
    def from_bytes(cls, data: bytes) -> RecommenderSet:
        from yarnit.registry.formats import bundle_manifest, load_arrays, read_bundle

        members = read_bundle(data, "yarnit-recs-npz")
        manifest = bundle_manifest(members, "yarnit-recs-npz")
        if manifest.get("schema") != RECS_SCHEMA or "arrays.npz" not in members:
            raise InvalidInput(f"Not a {RECS_SCHEMA} bundle (schema {manifest.get('schema')!r}); build it with "
                               "RecommenderSet.to_bytes.")
        arrays = load_arrays(members["arrays.npz"])
        shared = {k[len("index."):]: v for k, v in arrays.items() if k.startswith("index.")}
        models: dict[str, _Indexed] = {}
        for name, spec in manifest["recommenders"].items():
            kind = RECOMMENDERS.get(name)
            if kind is None or kind.__name__ != spec.get("class"):
                raise InvalidInput(f"Recommender {name!r} ({spec.get('class')!r}) is not one yarnit knows; known: "
                                   f"{', '.join(RECOMMENDERS)}.")
            own = {k[len(name) + 1:]: v for k, v in arrays.items() if k.startswith(f"{name}.")}
            models[name] = kind.from_state({**shared, **own}, spec.get("params") or {})
        catalog = pd.DataFrame({c: arrays[f"catalog.{c}"] for c in CATALOG_FIELDS})
        for column in ("product_id", "product_name", *ATTRIBUTES):
            catalog[column] = catalog[column].astype(object)
        return cls(models, catalog, default=manifest.get("default", "popular"), meta=manifest.get("meta"))

    # -- serving it as a ranking model --------------------------------------------------------------
    def predict_proba(self, instances: list[dict[str, Any]]) -> np.ndarray:
        raise InvalidInput("A recommender set answers slates, not probabilities; call rank() (served with "
                           "signature output 'ranking').")

    def popular(self, n: int) -> list[str]:
        model = self.models["popular"]
        return [str(model.items[i]) for i in model.popular_order[:n]]

    def rank(self, instances: list[dict[str, Any]], *, explore: bool = True) -> list[dict[str, Any]]:
        out = []
        for instance in instances:
            k = _k_of(instance)
            model = self.recommender(instance.get("recommender"))
            user = "" if instance.get("user_id") is None else str(instance["user_id"])  # "": nobody we know
            candidates = instance.get("candidates")
            scores = model.item_scores(user)
            if candidates is None:
                items = model.recommend([user], k)[user]
            else:
                ids = [c if isinstance(c, str) else str(c.get("product_id")) for c in candidates]
                known = [i for i in dict.fromkeys(ids) if i in model.item_index]
                items = sorted(known, key=lambda i: -scores[model.item_index[i]])[:k]
            out.append({"items": items, "scores": [float(scores[model.item_index[i]]) for i in items],
                        "propensities": [1.0] * len(items), "explored": False})
        return out


def _k_of(instance: Mapping[str, Any], *, default: int = 10, limit: int = 100) -> int:
    k = instance.get("k", default)
    if isinstance(k, bool) or not isinstance(k, int | float) or k != int(k) or not 1 <= int(k) <= limit:
        raise InvalidInput(f"'k' must be a whole number in [1, {limit}]; got {k!r}.")
    return int(k)


__all__ = [
    "CATALOG_FIELDS",
    "RECOMMENDERS",
    "RecommenderSet",
    "BrowsingHistoryRecommender",
    "CollaborativeFilteringRecommender",
    "ContentBasedRecommender",
    "CrossSellRecommender",
    "PopularRecommender",
    "Recommender",
    "RecommenderScore",
    "evaluate_recommenders",
    "interactions_from_world",
    "score_recommenders",
]
