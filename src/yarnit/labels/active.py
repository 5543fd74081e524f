"""Choosing what to label next (active learning) and AI-assisted pre-labels, for text label tasks.

Raters are the scarce resource. The current model says where it is unsure; labelling those items teaches
it most. Uncertainty alone picks near-duplicates (ten typos of one query sit at the same point of doubt),
so :func:`select_batch` takes the ``candidates_factor`` x batch most uncertain items (margin between the
two most likely classes) and keeps a diverse batch of them by greedy farthest-first traversal in the
feature space (the k-center heuristic of Sener & Savarese, 2018), starting from the most uncertain.

:func:`learning_curve` replays a strategy on a pool with known answers (the world's queries and their
true intents, or a finished task's consensus) so strategies can be compared on equal terms;
``benchmarks/bench_labels.py`` compares uncertainty + diversity with random sampling over several seeds.

The model is deliberately small: character 2-4-grams hashed into 2**13 columns and a multinomial logistic
regression (scikit-learn), fast enough to refit after every batch. Its predictions are also what
:meth:`yarnit.labels.Labels.set_prelabels` shows raters as pre-labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from yarnit.core.errors import InvalidInput

Strategy = Literal["uncertainty_diversity", "uncertainty", "random"]
STRATEGIES: tuple[str, ...] = ("uncertainty_diversity", "uncertainty", "random")
_VECTORIZER = HashingVectorizer(analyzer="char_wb", ngram_range=(2, 4), n_features=2**13, alternate_sign=False,
                                norm="l2")


def featurize(texts: Sequence[str]) -> sparse.csr_matrix:
    """Character 2-4-gram features of texts (stateless: the same text always gives the same row)."""
    return _VECTORIZER.transform([str(t).lower() for t in texts]).tocsr()


@dataclass
class TextClassifier:
    """A multinomial logistic regression over :func:`featurize`, answering over a fixed class list."""

    classes: tuple[str, ...]
    c: float = 10.0
    seed: int = 0

    def __post_init__(self) -> None:
        self._model: LogisticRegression | None = None
        self._only: int | None = None

    def fit(self, x: sparse.csr_matrix, y: np.ndarray) -> TextClassifier:
        y = np.asarray(y, dtype=np.int64)
        present = np.unique(y)
        if len(present) == 1:  # one class seen so far: predict it (logistic regression needs two)
            self._model, self._only = None, int(present[0])
            return self
        self._only = None
        # One BLAS thread: a few hundred rows fit in ~0.1 s on one core, while the default thread pool on a
        # busy 2-core machine took 3-8 s per fit (threads fighting over the cores).
        with threadpool_limits(limits=1):
            self._model = LogisticRegression(C=self.c, max_iter=300, random_state=self.seed).fit(x, y)
        return self

    @property
    def estimator(self) -> LogisticRegression | None:
        """The fitted logistic regression (None before fitting, or when only one class was seen)."""
        return self._model

    def predict_proba(self, x: sparse.csr_matrix) -> np.ndarray:
        """Probabilities over all ``classes`` (0 for classes not seen in training)."""
        out = np.zeros((x.shape[0], len(self.classes)))
        if self._only is not None:
            out[:, self._only] = 1.0
            return out
        if self._model is None:
            raise InvalidInput("The classifier is not fitted yet: fit it on labelled items first.")
        out[:, self._model.classes_] = self._model.predict_proba(x)
        return out

    def predict(self, x: sparse.csr_matrix) -> np.ndarray:
        return self.predict_proba(x).argmax(axis=1)


def margin_uncertainty(proba: np.ndarray) -> np.ndarray:
    """1 - (p_top - p_second): 1 where the model cannot choose between two classes, 0 where it is sure."""
    top2 = np.sort(proba, axis=1)[:, -2:]
    return 1.0 - (top2[:, 1] - top2[:, 0])


def select_batch(x: sparse.csr_matrix, proba: np.ndarray | None, n: int, *, strategy: Strategy, seed: int = 0,
                 candidates_factor: int = 5) -> np.ndarray:
    """Indexes (into ``x``'s rows) of the ``n`` items to label next by ``strategy``."""
    if strategy not in STRATEGIES:
        raise InvalidInput(f"Sampling strategy {strategy!r} is not known; choose one of {list(STRATEGIES)}.")
    n = min(n, x.shape[0])
    rng = np.random.default_rng(seed)
    if strategy == "random" or proba is None:
        return rng.choice(x.shape[0], size=n, replace=False)
    score = margin_uncertainty(proba) + 1e-9 * rng.random(len(proba))  # seeded tie-break
    order = np.argsort(-score, kind="stable")
    if strategy == "uncertainty":
        return order[:n]
    candidates = order[: max(n, candidates_factor * n)]
    points = x[candidates]
    chosen = [0]
    # cosine distance on l2-normalized rows: 1 - dot product
    nearest = 1.0 - np.asarray(points @ points[0].T.toarray()).ravel()
    while len(chosen) < n:
        nxt = int(np.argmax(nearest))
        chosen.append(nxt)
        nearest = np.minimum(nearest, 1.0 - np.asarray(points @ points[nxt].T.toarray()).ravel())
        nearest[chosen] = -1.0
    return candidates[np.array(chosen)]


def learning_curve(texts: Sequence[str], labels: Sequence[int] | np.ndarray, test_texts: Sequence[str],
                   test_labels: Sequence[int] | np.ndarray, *, classes: Sequence[str], strategy: Strategy,
                   seed: int, initial: int = 20, batch: int = 20, budget: int = 400) -> list[dict[str, Any]]:
    """Accuracy on the test items after each batch of labels chosen by ``strategy`` (the first batch is
    random for every strategy, so all curves start from the same point)."""
    x, y = featurize(texts), np.asarray(labels, dtype=np.int64)
    x_test, y_test = featurize(test_texts), np.asarray(test_labels, dtype=np.int64)
    if budget > x.shape[0] or initial < 1 or batch < 1:
        raise InvalidInput(f"Budget {budget} exceeds the pool of {x.shape[0]} items (or initial/batch < 1).")
    rng = np.random.default_rng([seed, 0xAC71])
    labelled = list(rng.choice(x.shape[0], size=initial, replace=False))
    model = TextClassifier(tuple(classes), seed=seed)
    curve = []
    while True:
        model.fit(x[labelled], y[labelled])
        curve.append({"labels": len(labelled), "accuracy": float((model.predict(x_test) == y_test).mean())})
        if len(labelled) >= budget:
            return curve
        pool = np.setdiff1d(np.arange(x.shape[0]), labelled)
        proba = model.predict_proba(x[pool]) if strategy != "random" else None
        step = min(batch, budget - len(labelled))
        labelled += pool[select_batch(x[pool], proba, step, strategy=strategy,
                                      seed=int(rng.integers(2**31)))].tolist()


def labels_to_reach(curve: Sequence[dict[str, Any]], accuracy: float) -> int | None:
    """The fewest labels at which ``curve`` reaches ``accuracy`` (None if it never does)."""
    for point in curve:
        if point["accuracy"] >= accuracy - 1e-12:
            return int(point["labels"])
    return None


def prelabel_agreement(answers: Sequence[Any], prelabels: dict[str, str]) -> dict[str, Any]:
    """How often raters chose the model's pre-label when it was shown vs when it was hidden.

    ``answers`` are :class:`~yarnit.labels.Answer` s; ``prelabels`` maps item key to the model's label.
    The difference (shown - hidden) is the anchoring effect: how much seeing the model's answer moved
    raters towards it, beyond the agreement that comes from both being right.
    """
    out: dict[str, Any] = {}
    for shown in (True, False):
        mine = [a for a in answers if a.item_key in prelabels and a.prelabel_shown == shown]
        agree = sum(a.label == prelabels[a.item_key] for a in mine)
        out["shown" if shown else "hidden"] = {"answers": len(mine),
                                               "agree_with_prelabel": agree / len(mine) if mine else None}
    s, h = out["shown"]["agree_with_prelabel"], out["hidden"]["agree_with_prelabel"]
    out["anchoring"] = None if s is None or h is None else s - h
    return out


__all__ = ["STRATEGIES", "Strategy", "TextClassifier", "featurize", "labels_to_reach", "learning_curve",
           "margin_uncertainty", "prelabel_agreement", "select_batch"]
