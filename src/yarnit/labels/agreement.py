"""Agreement between raters and consensus labels, computed with numpy on one representation.

Every function here takes the answers of a label task as an integer matrix ``answers[item, rater]``
holding a class index, or ``-1`` where that rater did not label that item (:data:`MISSING`). One
representation for all of them means a task's answers are read once and every statistic is computed
from the same numbers.

* :func:`cohen_kappa` for two raters on the items both labelled (equal to
  ``sklearn.metrics.cohen_kappa_score``);
* :func:`fleiss_kappa` for a fixed number of raters per item (equal to statsmodels'
  ``fleiss_kappa(method="fleiss")``; it takes the items x classes count table statsmodels takes);
* :func:`krippendorff_alpha` for nominal data with any pattern of missing answers (equal to the
  ``krippendorff`` package's ``alpha(level_of_measurement="nominal")``);
* :func:`majority_vote`, optionally weighted per rater, and :func:`dawid_skene`, which estimates each
  rater's confusion matrix by EM (Dawid & Skene, 1979) and so trusts reliable raters more, and can even
  read a rater who is consistently wrong the same way.

The tests compare the three statistics with the peer packages within 1e-9 on random and awkward data.

Example:
    >>> import numpy as np
    >>> answers = np.array([[0, 0, 1], [1, 1, 1], [2, 2, 0], [0, 0, 0]])
    >>> round(krippendorff_alpha(answers.T), 3), majority_vote(answers, 3)[0].tolist()
    (0.5, [0, 1, 2, 0])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from yarnit.core.errors import InvalidInput

MISSING = -1


def _matrix(answers: np.ndarray | Sequence[Sequence[int]]) -> np.ndarray:
    matrix = np.asarray(answers)
    if matrix.ndim != 2:
        raise InvalidInput(f"Answers must be a 2-d items x raters matrix; got {matrix.ndim} dimension(s).")
    return matrix.astype(np.int64)


def cohen_kappa(a: Sequence[int] | np.ndarray, b: Sequence[int] | np.ndarray) -> float:
    """Cohen's kappa of two raters over the items both answered (``-1`` entries are skipped)."""
    x, y = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    if x.shape != y.shape:
        raise InvalidInput(f"Cohen's kappa needs two answer lists of one length; got {x.shape} and {y.shape}.")
    both = (x != MISSING) & (y != MISSING)
    x, y = x[both], y[both]
    if len(x) == 0:
        raise InvalidInput("Cohen's kappa needs items answered by both raters; these two share none.")
    classes, codes = np.unique(np.concatenate([x, y]), return_inverse=True)
    k, n = len(classes), len(x)
    confusion = np.bincount(codes[:n] * k + codes[n:], minlength=k * k).reshape(k, k).astype(float)
    expected = np.outer(confusion.sum(axis=1), confusion.sum(axis=0)) / n
    # sklearn's form (1 - sum(w * observed) / sum(w * expected) with w = 1 - identity), kept for equality
    weights = 1.0 - np.eye(k)
    disagree_expected = float(np.sum(weights * expected))
    if disagree_expected == 0.0:
        return float("nan")  # one class only: agreement is undefined (sklearn says nan too)
    return 1.0 - float(np.sum(weights * confusion)) / disagree_expected


def count_table(answers: np.ndarray, n_classes: int) -> np.ndarray:
    """The items x classes table of how many raters chose each class (what Fleiss' kappa takes)."""
    matrix = _matrix(answers)
    table = np.zeros((matrix.shape[0], n_classes), dtype=np.int64)
    rows, cols = np.nonzero(matrix != MISSING)
    np.add.at(table, (rows, matrix[rows, cols]), 1)
    return table


def fleiss_kappa(table: np.ndarray) -> float:
    """Fleiss' kappa from an items x classes count table; every item needs the same number of raters."""
    counts = np.asarray(table, dtype=float)
    if counts.ndim != 2 or counts.shape[0] == 0:
        raise InvalidInput("Fleiss' kappa takes a non-empty items x classes count table.")
    per_item = counts.sum(axis=1)
    if not np.all(per_item == per_item[0]) or per_item[0] < 2:
        raise InvalidInput(
            f"Fleiss' kappa needs the same number (>= 2) of raters on every item; got between "
            f"{int(per_item.min())} and {int(per_item.max())}. Use krippendorff_alpha for uneven overlap.")
    n_items, n_raters = counts.shape[0], per_item[0]
    p_class = counts.sum(axis=0) / (n_items * n_raters)
    p_item = (np.sum(counts * counts, axis=1) - n_raters) / (n_raters * (n_raters - 1.0))
    p_mean, p_chance = float(p_item.mean()), float(np.sum(p_class * p_class))
    return float((p_mean - p_chance) / (1.0 - p_chance))


def krippendorff_alpha(reliability: np.ndarray | Sequence[Sequence[float]]) -> float:
    """Krippendorff's alpha for nominal data from a raters x items matrix (``-1`` or NaN where missing).

    Units answered by fewer than two raters are not pairable and do not count, as in Krippendorff (2011).
    """
    data = np.asarray(reliability, dtype=float)
    if data.ndim != 2:
        raise InvalidInput("Krippendorff's alpha takes a raters x items matrix.")
    data = np.where(np.isnan(data), MISSING, data).astype(np.int64)
    present = data != MISSING
    classes = np.unique(data[present])
    if len(classes) == 0:
        raise InvalidInput("Krippendorff's alpha needs at least one answered item.")
    k = len(classes)
    codes = np.full(data.shape, -1, dtype=np.int64)
    codes[present] = np.searchsorted(classes, data[present])
    per_unit = np.zeros((data.shape[1], k))  # units x classes
    rows, cols = np.nonzero(present)
    np.add.at(per_unit, (cols, codes[rows, cols]), 1.0)
    m = per_unit.sum(axis=1)
    pairable = m >= 2
    per_unit, m = per_unit[pairable], m[pairable]
    if len(m) == 0:
        raise InvalidInput("Krippendorff's alpha needs an item answered by at least two raters.")
    # coincidence matrix: o_ck = sum_u n_uc (n_uk - [c == k]) / (m_u - 1)
    coincidence = np.einsum("uc,uk->ck", per_unit / (m - 1.0)[:, None], per_unit)
    coincidence -= np.diag((per_unit / (m - 1.0)[:, None]).sum(axis=0))
    n_c = coincidence.sum(axis=1)
    n = n_c.sum()
    observed = coincidence.sum() - np.trace(coincidence)
    expected = n_c.sum() ** 2 - np.sum(n_c * n_c)
    if expected == 0.0:
        return float("nan")  # one value only: no variation to agree on
    return float(1.0 - (n - 1.0) * observed / expected)


def majority_vote(answers: np.ndarray, n_classes: int, weights: Sequence[float] | np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The (weighted) most chosen class per item and its share of the votes; ties go to the lower class.

    Items nobody answered get class ``-1`` and confidence 0.
    """
    matrix = _matrix(answers)
    w = np.ones(matrix.shape[1]) if weights is None else np.asarray(weights, dtype=float)
    votes = np.zeros((matrix.shape[0], n_classes))
    rows, cols = np.nonzero(matrix != MISSING)
    np.add.at(votes, (rows, matrix[rows, cols]), w[cols])
    total = votes.sum(axis=1)
    label = np.where(total > 0, votes.argmax(axis=1), MISSING)
    confidence = np.divide(votes.max(axis=1), total, out=np.zeros_like(total), where=total > 0)
    return label, confidence


def dawid_skene(answers: np.ndarray, n_classes: int, *, weights: Sequence[float] | np.ndarray | None = None,
                known: Sequence[int] | np.ndarray | None = None, max_iter: int = 100, tol: float = 1e-7,
                smoothing: float = 0.01, diagonal_prior: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dawid-Skene EM: ``(posterior[item, class], confusion[rater, true, answered], class priors)``.

    Starts from the (weighted) majority vote, then alternates estimating each rater's confusion matrix
    and each item's class posterior. ``weights`` temper a rater's evidence (a flagged rater at 0.1 counts
    a tenth of the log-likelihood); ``smoothing`` is a Dirichlet pseudo-count that keeps a rater who never
    saw a class from zeroing a posterior, and ``diagonal_prior`` adds that many pseudo-answers of "right"
    to each row of each confusion matrix: a rater is assumed better than chance until the data say
    otherwise, so a class seen on one or two items cannot make a rater's slip look like a signal (a
    consistent adversary, with a hundred answers, still shows through). ``known[item]`` (a class, or -1) pins items whose class is known
    (golden items): their posterior stays one-hot, so they anchor every rater's confusion matrix. On small
    tasks this matters: unanchored EM can settle on a confusion that fits a few dozen items well and the
    truth badly.
    """
    matrix = _matrix(answers)
    n_items, n_raters = matrix.shape
    w = np.ones(n_raters) if weights is None else np.asarray(weights, dtype=float)
    onehot = np.zeros((n_items, n_raters, n_classes))
    rows, cols = np.nonzero(matrix != MISSING)
    onehot[rows, cols, matrix[rows, cols]] = 1.0
    pinned = np.full(n_items, MISSING) if known is None else np.asarray(known, dtype=np.int64)
    if pinned.shape != (n_items,):
        raise InvalidInput(f"known must give one class (or -1) per item: {n_items} expected, got {pinned.shape}.")
    is_known = pinned != MISSING
    truth = np.zeros((n_items, n_classes))
    truth[np.flatnonzero(is_known), pinned[is_known]] = 1.0
    votes = np.einsum("irk,r->ik", onehot, w) + 1e-9
    posterior = votes / votes.sum(axis=1, keepdims=True)
    posterior[is_known] = truth[is_known]
    confusion = np.zeros((n_raters, n_classes, n_classes))
    priors = np.full(n_classes, 1.0 / n_classes)
    previous = -np.inf
    for _ in range(max_iter):
        priors = (posterior.sum(axis=0) + smoothing) / (n_items + smoothing * n_classes)
        counts = np.einsum("ij,irk->rjk", posterior, onehot) + smoothing + diagonal_prior * np.eye(n_classes)
        confusion = counts / counts.sum(axis=2, keepdims=True)
        log_conf = np.log(confusion)
        # log p(item's answers | true class j) = sum_r w_r * log confusion[r, j, answer_r]
        log_like = np.einsum("irk,rjk,r->ij", onehot, log_conf, w) + np.log(priors)
        top = log_like.max(axis=1, keepdims=True)
        posterior = np.exp(log_like - top)
        norm = posterior.sum(axis=1, keepdims=True)
        posterior /= norm
        posterior[is_known] = truth[is_known]
        total = float(np.sum(np.log(norm) + top))
        if abs(total - previous) <= tol * max(1.0, abs(total)):
            break
        previous = total
    return posterior, confusion, priors


__all__ = ["MISSING", "cohen_kappa", "count_table", "dawid_skene", "fleiss_kappa", "krippendorff_alpha",
           "majority_vote"]
