"""Logistic regression fitted on category codes instead of a sparse one-hot matrix (issue 20).

A one-hot row of the click model has one entry per text column (its value's
vocabulary index, value 1) plus one per numeric column. scikit-learn's
``LogisticRegression`` wants those entries as a CSR matrix: 8 bytes of value
and 4 of index per entry, about 1.3 GB at 30 days of the world. Here a text
column, and a number with at most :data:`GROUP_CELLS` distinct values (the
0/1 flags, the discount), is a column of small codes, and columns whose
combinations fit in :data:`GROUP_CELLS` share one code per row (mixed radix):
at 30 days, 24 columns become six uint16 code arrays and one float64 column,
119 MB instead of 670 (h33's int32 per text column) or 1.3 GB (CSR).

:func:`fit_coded` minimizes exactly scikit-learn's objective for
``LogisticRegression(solver="lbfgs")`` (the mean half-binomial loss, from the
same Cython loss, plus ``||w||² / (2 C n)``, intercept not penalized) with the
same ``scipy.optimize.minimize(method="L-BFGS-B")`` options. The product
``X @ w`` becomes one gather per group from the table of each combination's
``Σ w × value`` (at most 32 KiB: it stays in the L1 cache), and ``X.T @ g``
one ``bincount`` per group, whose per-combination sums are then summed per
column. Both walk the rows in blocks of :data:`BLOCK_ROWS`, so nothing as long
as the data is allocated per call. Only the order of the floating-point sums
differs, so the optimum is the same within the solver's tolerance, not the
same bytes (tests/training/test_coded_logistic.py compares them).

Why blocks and groups (h40): one gather and one bincount per column over the
whole 5.9 M rows, with int32 indices (numpy converts them to intp on its slow
path) and a fresh 47 MB temporary for each, cost 1.2 s per loss evaluation;
the solver took 63 CPU-s at 30 days where scikit-learn's CSR path took 24.
Grouped and blocked, an evaluation costs about 0.17 s plus the loss's 0.12 s.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from yarnit.core.errors import InvalidInput

from .chunks import FeatureChunks
from .encoding import _is_text, _parts, _Scan, _vectorizer, text_codes


#: A group's table of every combination of its columns' values has at most this many entries (32 KiB of float64:
#: it stays in the L1 cache while the rows' codes stream past it). See :func:`_groups`.
GROUP_CELLS = 4096
#: Rows per block of :meth:`CodedMatrix.product` and :meth:`CodedMatrix.transposed_product`: the block's int
#: codes, gathered values and sums stay in the L2 cache, and no array as long as the data is allocated per call.
BLOCK_ROWS = 1 << 15


@dataclass
class CodedColumn:
    """One frame column as codes: the row's code ``j`` stands for the entry ``values[j]`` in the matrix column
    ``features[j]`` (``n_features``: no entry). A text column's values are all 1; a number with few distinct
    values has one code per distinct value, all in its own column."""

    name: str
    features: np.ndarray
    values: np.ndarray


@dataclass
class CodedGroup:
    """Columns coded together: a row's code is ``Σ code_j × stride_j`` (mixed radix, the first column varying
    fastest), so one gather from the table of every combination's sum gives the group's part of ``X @ w``."""

    columns: list[CodedColumn]
    codes: np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:
        """The table's shape: the last column first (C order, the first column varies fastest)."""
        return tuple(len(c.features) for c in reversed(self.columns))

    def table(self, extended: np.ndarray) -> np.ndarray:
        """Each code's ``Σ weight × value`` over the group's columns (``extended`` has 0 for "no entry")."""
        table = np.zeros(1)
        for column in self.columns:
            table = np.add.outer(extended[column.features] * column.values, table).ravel()
        return table

    def marginals(self, cells: np.ndarray) -> list[np.ndarray]:
        """Per column, the per-code sums of ``cells`` (one value per group code)."""
        grid, axes = cells.reshape(self.shape), len(self.columns)
        return [grid.sum(axis=tuple(a for a in range(axes) if a != axes - 1 - i)) for i in range(axes)]


@dataclass
class CodedMatrix:
    """A one-hot matrix as groups of coded columns (text columns, and numbers with at most :data:`GROUP_CELLS`
    distinct values) plus ``numeric``: (frame column, its column index, its values) of the other numbers."""

    rows: int
    n_features: int
    groups: list[CodedGroup]
    numeric: list[tuple[str, int, np.ndarray]]

    @property
    def nbytes(self) -> int:
        return sum(g.codes.nbytes for g in self.groups) + sum(v.nbytes for _n, _i, v in self.numeric)

    def product(self, weights: np.ndarray, intercept: float, *, out: np.ndarray | None = None) -> np.ndarray:
        """``X @ weights + intercept`` (float64, one value per row), into ``out`` when given."""
        extended = np.append(weights, 0.0)  # the slot of a missing or unseen value
        tables = [g.table(extended) for g in self.groups]
        raw = np.empty(self.rows, dtype=np.float64) if out is None else out
        index, gathered = np.empty(BLOCK_ROWS, dtype=np.intp), np.empty(BLOCK_ROWS, dtype=np.float64)
        for start in range(0, self.rows, BLOCK_ROWS):
            stop = min(start + BLOCK_ROWS, self.rows)
            block, at, got = raw[start:stop], index[:stop - start], gathered[:stop - start]
            block.fill(intercept)
            for group, table in zip(self.groups, tables, strict=True):
                np.copyto(at, group.codes[start:stop])  # take() would convert a narrower index on its own, slower
                block += np.take(table, at, out=got)
            for _name, column, values in self.numeric:
                block += np.multiply(values[start:stop], weights[column], out=got, dtype=np.float64)
        return raw

    def transposed_product(self, g: np.ndarray) -> np.ndarray:
        """``X.T @ g`` (one value per feature)."""
        out = np.zeros(self.n_features + 1, dtype=np.float64)
        cells = [np.zeros(int(np.prod(group.shape)), dtype=np.float64) for group in self.groups]
        index = np.empty(BLOCK_ROWS, dtype=np.intp)
        # a table too big for the cache (a text column with many values) is counted in one call, not per block
        small = [(group, sums) for group, sums in zip(self.groups, cells, strict=True) if len(sums) <= GROUP_CELLS]
        for group, sums in zip(self.groups, cells, strict=True):
            if len(sums) > GROUP_CELLS:
                sums += np.bincount(group.codes, weights=g, minlength=len(sums))
        for start in range(0, self.rows, BLOCK_ROWS):
            stop = min(start + BLOCK_ROWS, self.rows)
            at, weights = index[:stop - start], g[start:stop]
            for group, sums in small:
                np.copyto(at, group.codes[start:stop])
                sums += np.bincount(at, weights=weights, minlength=len(sums))
            for _name, column, values in self.numeric:
                out[column] += float(np.dot(values[start:stop], weights))
        for group, sums in zip(self.groups, cells, strict=True):
            for column, per_code in zip(group.columns, group.marginals(sums), strict=True):
                out += np.bincount(column.features, weights=per_code * column.values, minlength=self.n_features + 1)
        return out[:self.n_features]

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Each feature's sum and sum of squares (for the importances)."""
        sums = np.zeros(self.n_features + 1, dtype=np.float64)
        squares = np.zeros(self.n_features + 1, dtype=np.float64)
        for group in self.groups:
            counts = np.bincount(group.codes, minlength=int(np.prod(group.shape))).astype(np.float64)
            for column, per_code in zip(group.columns, group.marginals(counts), strict=True):
                sums += np.bincount(column.features, weights=per_code * column.values, minlength=self.n_features + 1)
                squares += np.bincount(column.features, weights=per_code * column.values ** 2,
                                       minlength=self.n_features + 1)
        for _name, index, values in self.numeric:
            x = values.astype(np.float64, copy=False)
            sums[index] += float(x.sum())
            squares[index] += float(np.dot(x, x))
        return sums[:self.n_features], squares[:self.n_features]


def _float_type(dtypes: set[Any]) -> Any:
    """float32 when every chunk had this column as float32 (``narrow`` keeps only exact values there)."""
    return np.float32 if dtypes and all(np.dtype(d) == np.float32 for d in dtypes) else np.float64


def _groups(sizes: dict[str, int], limit: int = GROUP_CELLS) -> list[list[str]]:
    """Columns packed into groups of at most ``limit`` combinations (first fit, largest first); a column with
    more values than that is a group of its own."""
    groups: list[tuple[int, list[str]]] = []
    for name in sorted(sizes, key=lambda c: -sizes[c]):
        for i, (cells, members) in enumerate(groups):
            if cells * sizes[name] <= limit:
                groups[i] = (cells * sizes[name], [*members, name])
                break
        else:
            groups.append((sizes[name], [name]))
    return [members for _cells, members in groups]


class _Distinct:
    """Each numeric column's distinct values (sorted, float64), for the columns with at most ``limit`` of them."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.values: dict[str, np.ndarray] = {}
        self.too_many: set[str] = set()

    def add(self, name: str, values: np.ndarray) -> None:
        if name in self.too_many:
            return
        seen = pd.unique(values).astype(np.float64)  # a hash table: cheaper than sorting the chunk
        merged = np.union1d(self.values[name], seen) if name in self.values else np.sort(seen)
        if len(merged) <= self.limit:
            self.values[name] = merged
        else:
            self.too_many.add(name)
            self.values.pop(name, None)


def fit_and_code(frame: pd.DataFrame | FeatureChunks, *, min_count: int = 1) -> tuple[Any, CodedMatrix, list[str]]:
    """The vectorizer :func:`.encoding.fit_and_encode` gives and the same matrix as a :class:`CodedMatrix`, in two
    passes over the chunks (the second fills arrays allocated once at their final size); also the column names."""
    if isinstance(frame, pd.DataFrame) and frame.empty:
        raise InvalidInput("Cannot fit an encoder on an empty frame; the training set has no rows.")
    parts = _parts(frame)
    scan, distinct = _Scan(), _Distinct(GROUP_CELLS)
    for chunk in parts:
        scan.add(chunk)
        for column in chunk.columns:
            if not _is_text(chunk[column]):
                distinct.add(str(column), chunk[column].to_numpy())
    vectorizer = _vectorizer(scan, min_count)
    vocabulary: dict[str, int] = vectorizer.vocabulary_
    n = len(vocabulary)
    coded: dict[str, CodedColumn] = {}
    for column in scan.columns:
        if column in scan.text:  # one code per distinct text, and one for missing and unseen (no entry)
            texts = list(scan.text[column])
            features = np.array([vocabulary.get(f"{column}={t}", n) for t in texts] + [n], dtype=np.intp)
            coded[column] = CodedColumn(column, features, np.ones(len(features)))
        elif column in distinct.values:
            values = distinct.values[column]
            coded[column] = CodedColumn(column, np.full(len(values), vocabulary[column], dtype=np.intp), values)
    groups = []
    for members in _groups({c: len(coded[c].features) for c in coded}):
        cells = int(np.prod([len(coded[c].features) for c in members]))
        code_type = np.uint16 if cells <= 1 << 16 else np.int32 if cells < np.iinfo(np.int32).max else np.int64
        groups.append(CodedGroup([coded[c] for c in members], np.zeros(scan.rows, dtype=code_type)))
    where = {c.name: (g, int(np.prod([len(m.features) for m in g.columns[:i]])))
             for g in groups for i, c in enumerate(g.columns)}
    positions = {c: {t: i for i, t in enumerate(scan.text[c])} for c in scan.text if c in coded}
    numeric: dict[str, np.ndarray] = {}
    row = 0
    for chunk in parts:
        size = len(chunk)
        if row + size > scan.rows:
            raise InvalidInput(f"The feature chunks gave more than the {scan.rows} rows counted before; they must be "
                               "the same on every pass.")
        for column in chunk.columns:
            name, series = str(column), chunk[column]
            if name in scan.text:
                codes, texts = text_codes(series)
                missing = len(positions[name])
                lookup = np.array([positions[name].get(t, missing) for t in texts] + [missing], dtype=np.intp)
                local = lookup[codes]  # −1 (missing) takes the last entry: no feature
            elif _is_text(series):
                raise InvalidInput(f"Column {name!r} is text in one feature chunk and numeric in another.")
            else:
                values = series.to_numpy()
                if not np.isfinite(values.astype(np.float64, copy=False)).all():
                    raise InvalidInput(f"Feature column {name!r} holds NaN or infinite values; logistic regression "
                                       "needs finite numbers (impute them in the feature transform).")
                if name not in coded:
                    if name not in numeric:
                        numeric[name] = np.empty(scan.rows, dtype=_float_type(scan.numeric_dtypes.get(name, set())))
                    numeric[name][row:row + size] = values
                    continue
                table = coded[name].values
                local = np.minimum(np.searchsorted(table, values), len(table) - 1)
                if not np.array_equal(table[local], values):
                    raise InvalidInput(f"Column {name!r} gave other values than counted before; the feature chunks "
                                       "must be the same on every pass.")
            group, stride = where[name]
            group.codes[row:row + size] += (local * stride).astype(group.codes.dtype, copy=False)
        row += size
    if row != scan.rows:
        raise InvalidInput(f"The feature chunks gave {row} rows, not the {scan.rows} counted before; they must be the "
                           "same on every pass.")
    matrix = CodedMatrix(rows=scan.rows, n_features=n, groups=groups,
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

    # allocated once: three vectors as long as the data, new on each of ~100 calls, cost page faults (system CPU)
    raw, loss, pointwise = (np.empty(n, dtype=np.float64) for _ in range(3))

    def loss_gradient(w: np.ndarray) -> tuple[float, np.ndarray]:
        weights, intercept = w[:k], float(w[k])
        x.product(weights, intercept, out=raw)
        base.loss_gradient(y_true=target, raw_prediction=raw, sample_weight=None, loss_out=loss,
                           gradient_out=pointwise, n_threads=1)
        value = float(loss.sum() / n) + float(0.5 * l2 * (weights @ weights))
        np.divide(pointwise, n, out=pointwise)
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
