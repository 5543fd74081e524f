"""Feature importances recorded with every trained model, so that drift can weigh columns by what the model uses.

A trainer knows the columns of the frame it was given (the transform's
output); serving and drift know the request's input columns. Two steps:

* :func:`normalized` (used by the trainers): one non-negative weight per frame
  column, summing to 1. LightGBM: total gain per feature. Histogram GBM: total
  split gain read from the fitted trees. Logistic regression: ``|coef|`` times
  the standard deviation of the encoded column (a coefficient alone says more
  about the column's scale than its use), summed over the one-hot columns of a
  text feature (``f=v`` belongs to ``f``).
* :func:`to_inputs` (used by a recipe): the frame columns' weights carried back
  to the input columns they are computed from. Which inputs feed which frame
  column is measured, not declared: each input is shuffled in turn on a
  sample and the frame columns that change depend on it. A derived column's
  weight is shared equally by its inputs.

The result is stored in the version's signature as ``feature_importance``
(input column → weight, sum 1), where ``monitoring.served_drift`` reads it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd


def normalized(weights: Mapping[str, float]) -> dict[str, float] | None:
    """``weights`` scaled to sum 1 (negative or non-finite values count 0); None when nothing is positive."""
    clean = {str(k): float(v) if np.isfinite(v) and v > 0 else 0.0 for k, v in weights.items()}
    total = sum(clean.values())
    if total <= 0:
        return None
    return {k: v / total for k, v in sorted(clean.items())}


def by_frame_column(names: Sequence[str], values: Iterable[float], columns: Sequence[str]) -> dict[str, float]:
    """Sum encoded-feature weights per frame column: ``f=v`` (a one-hot column) and ``f`` both belong to ``f``."""
    known = {str(c) for c in columns}
    out = dict.fromkeys((str(c) for c in columns), 0.0)
    for name, value in zip(names, values, strict=True):
        column = name if name in known else name.split("=", 1)[0]
        if column in out:
            out[column] += float(value)
    return out


def lightgbm_gain(booster: Any, columns: Sequence[str]) -> dict[str, float] | None:
    """Total gain per feature of a LightGBM booster, keyed by the frame's columns (same order as trained)."""
    gains = booster.feature_importance(importance_type="gain")
    if len(gains) != len(columns):
        return None
    return normalized(dict(zip((str(c) for c in columns), gains, strict=True)))


def hist_gbm_gain(model: Any, names: Sequence[str], columns: Sequence[str]) -> dict[str, float] | None:
    """Total split gain per feature of a fitted HistGradientBoostingClassifier (it has no feature_importances_).

    The trees are read from the estimator's ``_predictors`` (node arrays with
    ``feature_idx``, ``gain``, ``is_leaf``); if a scikit-learn release changes
    that layout, no importance is recorded rather than a wrong one.
    """
    try:
        gains = np.zeros(len(names))
        for iteration in model._predictors:
            for predictor in iteration:
                nodes = predictor.nodes
                split = ~nodes["is_leaf"].astype(bool)
                np.add.at(gains, nodes["feature_idx"][split].astype(np.int64), nodes["gain"][split])
    except (AttributeError, KeyError, ValueError, IndexError, TypeError):
        return None
    return normalized(by_frame_column(names, gains, columns))


_BLOCK = 1 << 22  # matrix entries squared at a time by linear_weight


def linear_weight(coef: np.ndarray, matrix: Any, names: Sequence[str], columns: Sequence[str]) -> dict[str, float] | None:
    """``|coef| · std`` of each encoded column (sparse or dense), summed per frame column."""
    x = matrix
    if hasattr(x, "moments"):  # a CodedMatrix (training/logistic.py): per-feature sums without a one-hot copy
        sums, squares = x.moments()
        mean, mean_sq = sums / max(x.rows, 1), squares / max(x.rows, 1)
    elif getattr(x, "format", "") == "csr":  # block by block: no copy of the matrix, squared or transposed
        sums, squares = np.zeros(x.shape[1]), np.zeros(x.shape[1])
        for start in range(0, x.nnz, _BLOCK):
            values, where = x.data[start:start + _BLOCK], x.indices[start:start + _BLOCK]
            sums += np.bincount(where, weights=values, minlength=x.shape[1])
            squares += np.bincount(where, weights=values * values, minlength=x.shape[1])
        mean, mean_sq = sums / max(x.shape[0], 1), squares / max(x.shape[0], 1)
    else:
        mean = np.asarray(x.mean(axis=0)).ravel()
        mean_sq = np.asarray(x.multiply(x).mean(axis=0)).ravel() if hasattr(x, "multiply") else (x * x).mean(axis=0)
    std = np.sqrt(np.maximum(mean_sq - mean * mean, 0.0))
    return normalized(by_frame_column(names, np.abs(np.asarray(coef).ravel()) * std, columns))


def input_sources(transform: Callable[[pd.DataFrame], pd.DataFrame], sample: pd.DataFrame,
                  inputs: Iterable[str], *, seed: int = 0) -> dict[str, list[str]]:
    """For each frame column of ``transform(sample)``, the inputs it changes with when each is shuffled alone.

    A frame column that no shuffle moves (a constant, or an input the sample
    does not vary) maps to itself if it is an input, else to nothing.
    """
    base = transform(sample.reset_index(drop=True))
    rng = np.random.default_rng(seed)
    sources: dict[str, list[str]] = {str(c): [] for c in base.columns}
    n = len(sample)
    for column in inputs:
        if column not in sample.columns or n < 2:
            continue
        shuffled = sample.reset_index(drop=True).copy()
        values = shuffled[column].to_numpy(copy=True)
        order = rng.permutation(n)
        if (values[order] == values).all() if values.dtype != object else \
                all(a == b for a, b in zip(values[order], values, strict=True)):
            order = np.roll(np.arange(n), 1)  # a permutation that moved nothing: shift by one instead
        shuffled[column] = values[order]
        changed = transform(shuffled)
        for out in base.columns:
            a, b = base[out], changed[out]
            if not a.astype(str).reset_index(drop=True).equals(b.astype(str).reset_index(drop=True)):
                sources[str(out)].append(column)
    for out, found in sources.items():
        if not found and out in set(inputs):
            found.append(out)
    return sources


def to_inputs(frame_importance: Mapping[str, float] | None,
              sources: Mapping[str, Sequence[str]]) -> dict[str, float] | None:
    """Frame-column weights carried back to input columns (a derived column's weight split equally)."""
    if not frame_importance:
        return None
    out: dict[str, float] = {}
    for column, weight in frame_importance.items():
        feeds = list(dict.fromkeys(sources.get(column, ())))
        for name in feeds:
            out[name] = out.get(name, 0.0) + weight / len(feeds)
    return normalized(out)


__all__ = ["by_frame_column", "hist_gbm_gain", "input_sources", "lightgbm_gain", "linear_weight", "normalized",
           "to_inputs"]
