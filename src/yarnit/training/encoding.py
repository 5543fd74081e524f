"""One-hot encoding of feature frames, compatible with scikit-learn's DictVectorizer.

Training encodes millions of rows at once from a DataFrame; serving encodes a
few dicts with a DictVectorizer. :func:`fit_vectorizer` builds both from one
vocabulary, so the column a feature lands in is the same on both paths: a
text value ``v`` of feature ``f`` becomes column ``f=v`` with value 1; a
number becomes column ``f`` with its value; unseen text values are ignored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

if TYPE_CHECKING:
    from sklearn.feature_extraction import DictVectorizer

from yarnit.core.errors import InvalidInput

from .chunks import FeatureChunks


def _is_text(series: pd.Series) -> bool:
    return not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)


def text_codes(series: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Integer codes (−1 for missing) and the distinct texts of a text column; cheap for categoricals."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        return series.cat.codes.to_numpy(), [str(c) for c in series.cat.categories]
    codes, uniques = pd.factorize(series.astype(str))
    return codes, [str(u) for u in uniques]


def _parts(frame: pd.DataFrame | FeatureChunks) -> FeatureChunks:
    return frame if isinstance(frame, FeatureChunks) else FeatureChunks.of(frame)


@dataclass
class _Scan:
    """What one pass over the chunks learns: each text column's values with their counts (overall and per
    chunk) and each numeric column's non-zero entries per chunk."""

    columns: list[str] = field(default_factory=list)
    text: dict[str, dict[str, int]] = field(default_factory=dict)
    chunk_text: list[dict[str, dict[str, int]]] = field(default_factory=list)
    chunk_nonzero: list[dict[str, int]] = field(default_factory=list)
    numeric_dtypes: dict[str, set[Any]] = field(default_factory=dict)
    rows: int = 0

    def add(self, frame: pd.DataFrame) -> None:
        if not self.columns:
            self.columns = [str(c) for c in frame.columns]
        texts_here: dict[str, dict[str, int]] = {}
        nonzero: dict[str, int] = {}
        for column in frame.columns:
            series = frame[column]
            if _is_text(series):
                codes, texts = text_codes(series)
                counts = np.bincount(codes[codes >= 0], minlength=len(texts))
                here = texts_here.setdefault(str(column), {})
                total = self.text.setdefault(str(column), {})
                for text, count in zip(texts, counts.tolist(), strict=True):
                    here[text] = here.get(text, 0) + count
                    total[text] = total.get(text, 0) + count
            else:
                nonzero[str(column)] = int(np.count_nonzero(series.to_numpy(dtype=float)))  # NaN counts, as in CSR
                self.numeric_dtypes.setdefault(str(column), set()).add(series.dtype)
        self.chunk_text.append(texts_here)
        self.chunk_nonzero.append(nonzero)
        self.rows += len(frame)

    def nnz(self, vocabulary: dict[str, int]) -> int:
        """Stored entries of the encoded matrix: known text values, and numbers that are not zero."""
        total = 0
        for texts, nonzero in zip(self.chunk_text, self.chunk_nonzero, strict=True):
            total += sum(c for column, counts in texts.items() for t, c in counts.items()
                         if f"{column}={t}" in vocabulary)
            total += sum(c for column, c in nonzero.items() if column in vocabulary)
        return total


def _scan(frame: pd.DataFrame | FeatureChunks) -> _Scan:
    scan = _Scan()
    for chunk in _parts(frame):
        scan.add(chunk)
    return scan


def _vectorizer(scan: _Scan, min_count: int) -> DictVectorizer:
    if scan.rows == 0:
        raise InvalidInput("Cannot fit an encoder on an empty frame; the training set has no rows.")
    names: list[str] = []
    for column in scan.columns:
        if column in scan.text:
            names.extend(f"{column}={text}" for text, count in scan.text[column].items() if count >= min_count)
        else:
            names.append(column)
    names.sort()
    from sklearn.feature_extraction import DictVectorizer  # imported here: the CLI starts faster without it

    vectorizer = DictVectorizer(sparse=True, sort=True)
    vectorizer.feature_names_ = names
    vectorizer.vocabulary_ = {name: i for i, name in enumerate(names)}
    return vectorizer


def fit_vectorizer(frame: pd.DataFrame | FeatureChunks, *, min_count: int = 1) -> DictVectorizer:
    """A fitted DictVectorizer whose vocabulary covers ``frame`` (text values seen ≥ ``min_count`` times)."""
    if isinstance(frame, pd.DataFrame) and frame.empty:
        raise InvalidInput("Cannot fit an encoder on an empty frame; the training set has no rows.")
    return _vectorizer(_scan(frame), min_count)


def fit_and_encode(frame: pd.DataFrame | FeatureChunks, *,
                   min_count: int = 1) -> tuple[DictVectorizer, sp.csr_matrix, list[str]]:
    """:func:`fit_vectorizer` and :func:`encode_frame` in two passes over the chunks (the second fills a
    matrix allocated once at its final size); also the frame's column names."""
    if isinstance(frame, pd.DataFrame) and frame.empty:
        raise InvalidInput("Cannot fit an encoder on an empty frame; the training set has no rows.")
    scan = _scan(frame)
    vectorizer = _vectorizer(scan, min_count)
    matrix = _encode(vectorizer, _parts(frame), rows=scan.rows, nnz=scan.nnz(vectorizer.vocabulary_))
    return vectorizer, matrix, scan.columns


def _slot(vocabulary: dict[str, int], column: Any, series: pd.Series) -> tuple[np.ndarray, np.ndarray | int,
                                                                              np.ndarray | None]:
    """(entry kept?, column index per row or one index, value per row or None for ones) of one frame column."""
    if _is_text(series):
        codes, texts = text_codes(series)
        lookup = np.array([vocabulary.get(f"{column}={t}", -1) for t in texts] + [-1], dtype=np.int64)
        mapped = lookup[codes]
        return mapped >= 0, mapped, None  # an unseen value is no entry, as DictVectorizer ignores it
    values = series.to_numpy(dtype=float)
    return values != 0, vocabulary[str(column)], values


def _encode(vectorizer: DictVectorizer, chunks: Iterable[pd.DataFrame], *, rows: int, nnz: int) -> sp.csr_matrix:
    vocabulary: dict[str, int] = vectorizer.vocabulary_
    index_type = np.int32 if max(nnz, len(vocabulary)) < np.iinfo(np.int32).max else np.int64
    data = np.empty(nnz, dtype=np.float64)
    indices = np.empty(nnz, dtype=index_type)
    indptr = np.zeros(rows + 1, dtype=index_type)
    row = entry = 0
    for frame in chunks:
        n = len(frame)
        if row + n > rows:
            raise InvalidInput(f"The feature chunks gave more than the {rows} rows counted before; they must be the "
                               "same on every pass.")
        columns = [c for c in frame.columns if _is_text(frame[c]) or str(c) in vocabulary]
        per_row = np.zeros(n, dtype=np.int64)
        for column in columns:
            per_row += _slot(vocabulary, column, frame[column])[0]
        ends = entry + np.cumsum(per_row)
        if n and int(ends[-1]) > nnz:
            raise InvalidInput("The feature chunks gave more entries than counted before; they must be the same on "
                               "every pass.")
        indptr[row + 1:row + n + 1] = ends
        at = ends - per_row  # where each row's next entry goes; columns fill in frame order, as DictVectorizer's
        del per_row, ends
        for column in columns:
            keep, index, values = _slot(vocabulary, column, frame[column])
            where = at[keep]
            indices[where] = index[keep] if isinstance(index, np.ndarray) else index
            data[where] = 1.0 if values is None else values[keep]
            at += keep
        row += n
        entry = int(indptr[row])
    if row != rows or entry != nnz:
        raise InvalidInput(f"The feature chunks gave {row} rows and {entry} entries, not the {rows} and {nnz} "
                           "counted before; they must be the same on every pass.")
    # Column indices within a row are left unsorted: a valid CSR matrix for every
    # product scikit-learn computes, and sorting 6M rows would cost more than the fit.
    return sp.csr_matrix((data, indices, indptr), shape=(rows, len(vocabulary)), copy=False)


def encode_frame(vectorizer: DictVectorizer, frame: pd.DataFrame | FeatureChunks) -> sp.csr_matrix:
    """Encode ``frame`` exactly as ``vectorizer.transform(frame.to_dict('records'))`` would.

    Every row has one entry per column (its one-hot index, or the numeric
    column's value) except unseen text values and zeros, which are not stored.
    The entries are counted first, so the CSR arrays are allocated once at their
    final size and filled column by column (no row × column scratch arrays).
    """
    parts = _parts(frame)
    scan = _scan(parts)
    return _encode(vectorizer, parts, rows=scan.rows, nnz=scan.nnz(vectorizer.vocabulary_))


FRAME_CHECK_ROWS = 64


def score_frame(predictor: Any, frame: pd.DataFrame, *, tolerance: float = 1e-9) -> np.ndarray | None:
    """P(positive) for the rows of ``frame`` from a ``Pipeline([DictVectorizer, classifier])``, or None.

    An evaluation scores tens of thousands of rows, and turning them into dicts for the DictVectorizer cost
    more than the model: here the frame is encoded column by column (:func:`encode_frame`) and the
    classifier scores the matrix. The first :data:`FRAME_CHECK_ROWS` rows are also scored the native way
    (dicts) and must agree within ``tolerance``. Anything else (another model shape, text columns holding
    non-text values, missing or infinite numbers, a disagreement) returns None: the caller scores natively.
    """
    estimator = getattr(predictor, "estimator", None)
    steps = getattr(estimator, "steps", None)
    if not steps or len(steps) != 2 or type(steps[0][1]).__name__ != "DictVectorizer" or len(frame) == 0:
        return None
    vectorizer, final = steps[0][1], steps[1][1]
    if getattr(vectorizer, "separator", "=") != "=" or not hasattr(final, "predict_proba") or len(
            getattr(final, "classes_", ())) != 2 or getattr(vectorizer, "vocabulary_", None) is None:
        return None
    for column in frame.columns:
        series = frame[column]
        if pd.api.types.is_bool_dtype(series):
            return None  # DictVectorizer takes a bool for a number; encode_frame for a text
        if series.dtype == object and pd.api.types.infer_dtype(series, skipna=False) != "string":
            return None
    matrix = encode_frame(vectorizer, frame)
    if not np.isfinite(matrix.data).all():
        return None
    out = np.asarray(final.predict_proba(matrix), dtype=np.float64)[:, 1]
    head = frame.iloc[:FRAME_CHECK_ROWS]
    records = head.astype({c: object for c in head.columns if isinstance(head[c].dtype, pd.CategoricalDtype)})
    native = np.asarray(predictor.predict_proba(records.to_dict("records")), dtype=np.float64)
    if native.shape != (len(head),) or not np.allclose(native, out[:len(head)], rtol=0.0, atol=tolerance):
        return None
    return out


__all__ = ["encode_frame", "fit_and_encode", "fit_vectorizer", "score_frame", "text_codes"]
