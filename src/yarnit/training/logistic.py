"""Logistic regression fitted on category codes instead of a sparse one-hot matrix (issue 20).

A one-hot row of the click model has one entry per text column (its value's
vocabulary index, value 1) plus one per numeric column. scikit-learn's
``LogisticRegression`` wants those entries as a CSR matrix: 8 bytes of value
and 4 of index per entry, about 1.3 GB at 30 days of the world. Here each
text column is kept as one int32 column index per row and each numeric column
as its own (narrowed) values: 4 bytes per text entry, 4 or 8 per number.

:func:`fit_coded` minimizes exactly scikit-learn's objective for
``LogisticRegression(solver="lbfgs")`` (the mean half-binomial loss, from the
same Cython loss, plus ``||w||² / (2 C n)``, intercept not penalized) with the
same ``scipy.optimize.minimize(method="L-BFGS-B")`` options. The product
``X @ w`` becomes one gather per text column (``w[codes]``) and ``X.T @ g`` one
``bincount`` per text column. Only the order of the floating-point sums
differs, so the optimum is the same within the solver's tolerance, not the
same bytes (tests/training/test_coded_logistic.py compares them).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from yarnit.core.errors import InvalidInput

from .chunks import FeatureChunks
from .encoding import _is_text, _parts, _scan, _vectorizer, text_codes


@dataclass
class CodedMatrix:
    """A one-hot matrix by column: ``text`` holds (frame column, column index per row; ``n_features`` means no
    entry), ``numeric`` holds (frame column, its column index, its values)."""

    rows: int
    n_features: int
    text: list[tuple[str, np.ndarray]]
    numeric: list[tuple[str, int, np.ndarray]]

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for _n, c in self.text) + sum(v.nbytes for _n, _i, v in self.numeric)

    def product(self, weights: np.ndarray, intercept: float) -> np.ndarray:
        """``X @ weights + intercept`` (float64, one value per row)."""
        extended = np.append(weights, 0.0)  # the slot of a missing or unseen value
        raw = np.full(self.rows, intercept, dtype=np.float64)
        for _name, codes in self.text:
            raw += extended[codes]
        for _name, index, values in self.numeric:
            raw += weights[index] * values.astype(np.float64, copy=False)
        return raw

    def transposed_product(self, g: np.ndarray) -> np.ndarray:
        """``X.T @ g`` (one value per feature)."""
        out = np.zeros(self.n_features + 1, dtype=np.float64)
        for _name, codes in self.text:
            out += np.bincount(codes, weights=g, minlength=self.n_features + 1)
        for _name, index, values in self.numeric:
            out[index] += float(np.dot(values.astype(np.float64, copy=False), g))
        return out[:self.n_features]

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Each feature's sum and sum of squares (for the importances)."""
        sums = np.zeros(self.n_features + 1, dtype=np.float64)
        squares = np.zeros(self.n_features + 1, dtype=np.float64)
        for _name, codes in self.text:
            counts = np.bincount(codes, minlength=self.n_features + 1).astype(np.float64)
            sums += counts
            squares += counts
        for _name, index, values in self.numeric:
            x = values.astype(np.float64, copy=False)
            sums[index] += float(x.sum())
            squares[index] += float(np.dot(x, x))
        return sums[:self.n_features], squares[:self.n_features]


def _float_type(dtypes: set[Any]) -> Any:
    """float32 when every chunk had this column as float32 (``narrow`` keeps only exact values there)."""
    return np.float32 if dtypes and all(np.dtype(d) == np.float32 for d in dtypes) else np.float64


def fit_and_code(frame: pd.DataFrame | FeatureChunks, *, min_count: int = 1) -> tuple[Any, CodedMatrix, list[str]]:
    """The vectorizer :func:`.encoding.fit_and_encode` gives and the same matrix as a :class:`CodedMatrix`, in two
    passes over the chunks (the second fills arrays allocated once at their final size); also the column names."""
    if isinstance(frame, pd.DataFrame) and frame.empty:
        raise InvalidInput("Cannot fit an encoder on an empty frame; the training set has no rows.")
    parts = _parts(frame)
    scan = _scan(parts)
    vectorizer = _vectorizer(scan, min_count)
    vocabulary: dict[str, int] = vectorizer.vocabulary_
    n = len(vocabulary)
    index_type = np.int32 if n < np.iinfo(np.int32).max else np.int64
    text: dict[str, np.ndarray] = {c: np.empty(scan.rows, dtype=index_type) for c in scan.columns if c in scan.text}
    numeric: dict[str, np.ndarray] = {}
    row = 0
    for chunk in parts:
        size = len(chunk)
        if row + size > scan.rows:
            raise InvalidInput(f"The feature chunks gave more than the {scan.rows} rows counted before; they must be "
                               "the same on every pass.")
        for column in chunk.columns:
            name, series = str(column), chunk[column]
            if name in text:
                codes, texts = text_codes(series)
                lookup = np.array([vocabulary.get(f"{name}={t}", n) for t in texts] + [n], dtype=index_type)
                text[name][row:row + size] = lookup[codes]  # −1 (missing) takes the last entry: no feature
            elif _is_text(series):
                raise InvalidInput(f"Column {name!r} is text in one feature chunk and numeric in another.")
            else:
                values = series.to_numpy()
                if not np.isfinite(values.astype(np.float64, copy=False)).all():
                    raise InvalidInput(f"Feature column {name!r} holds NaN or infinite values; logistic regression "
                                       "needs finite numbers (impute them in the feature transform).")
                if name not in numeric:
                    numeric[name] = np.empty(scan.rows, dtype=_float_type(scan.numeric_dtypes.get(name, set())))
                numeric[name][row:row + size] = values
        row += size
    if row != scan.rows:
        raise InvalidInput(f"The feature chunks gave {row} rows, not the {scan.rows} counted before; they must be the "
                           "same on every pass.")
    matrix = CodedMatrix(rows=scan.rows, n_features=n, text=list(text.items()),
                         numeric=[(c, vocabulary[c], v) for c, v in numeric.items()])
    return vectorizer, matrix, scan.columns


_THREADPOOLS: Any = None


def _threadpools() -> Any:
    """One ``ThreadpoolController`` per process, made after scipy's optimizer (and its BLAS) is imported.

    ``threadpool_limits(...)`` builds a controller on every call by walking every shared library the process
    has loaded: about 2 ms in a bare interpreter and tens of ms in a server with DuckDB, ONNX Runtime and
    LightGBM loaded (the operate demo fits four models a day: tune's grid and train). The BLAS libraries the
    solver calls (numpy's and scipy's OpenBLAS) are loaded by then, so the kept controller limits the same ones.
    """
    global _THREADPOOLS
    if _THREADPOOLS is None:
        from scipy import optimize  # noqa: F401 - loads scipy's BLAS before the libraries are listed
        from threadpoolctl import ThreadpoolController

        _THREADPOOLS = ThreadpoolController()
    return _THREADPOOLS


def fit_coded(x: CodedMatrix, y: np.ndarray, *, c: float = 1.0, max_iter: int = 100, tol: float = 1e-4,
              coef: np.ndarray | None = None) -> tuple[np.ndarray, float, int]:
    """(coefficients, intercept, iterations) of ``LogisticRegression(C=c, solver="lbfgs", max_iter, tol)`` fitted
    on ``x`` and 0/1 labels ``y``; ``coef`` (features + intercept) is the warm start."""
    from scipy import optimize
    from sklearn._loss.loss import HalfBinomialLoss
    from sklearn.exceptions import ConvergenceWarning

    n, k = x.rows, x.n_features
    target = np.asarray(y, dtype=np.float64)  # scikit-learn's y_bin: 1.0 for the positive class, else 0.0
    base = HalfBinomialLoss()
    l2 = 1.0 / (c * n)

    def loss_gradient(w: np.ndarray) -> tuple[float, np.ndarray]:
        weights, intercept = w[:k], float(w[k])
        raw = x.product(weights, intercept)
        loss, pointwise = base.loss_gradient(y_true=target, raw_prediction=raw, sample_weight=None, n_threads=1)
        del raw
        value = float(loss.sum() / n) + float(0.5 * l2 * (weights @ weights))
        del loss
        pointwise /= n
        grad = np.empty(k + 1, dtype=np.float64)
        grad[:k] = x.transposed_product(pointwise) + l2 * weights
        grad[k] = pointwise.sum()
        return value, grad

    w0 = np.zeros(k + 1, dtype=np.float64) if coef is None else np.asarray(coef, dtype=np.float64).copy()
    # One BLAS thread: the vectors are memory-bound, and L-BFGS-B's small BLAS calls with OpenBLAS's threads
    # spinning cost 20x the CPU on a busy 2-core machine (a 20,000-row fit: 1.3 CPU-s, not 0.05).
    with _threadpools().limit(limits=1, user_api="blas"):
        result = optimize.minimize(loss_gradient, w0, method="L-BFGS-B", jac=True,
                                   options={"maxiter": max_iter, "maxls": 50, "gtol": tol,
                                            "ftol": 64 * np.finfo(float).eps})
    if result.status != 0:
        warnings.warn(f"lbfgs failed to converge after {result.nit} iterations ({result.message}); increase max_iter "
                      "or scale the numeric features.", ConvergenceWarning, stacklevel=2)
    return result.x[:k].copy(), float(result.x[k]), int(min(result.nit, max_iter))


__all__ = ["CodedMatrix", "fit_and_code", "fit_coded"]
