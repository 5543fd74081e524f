"""One-hot encoding of feature frames, compatible with scikit-learn's DictVectorizer.

Training encodes millions of rows at once from a DataFrame; serving encodes a
few dicts with a DictVectorizer. :func:`fit_vectorizer` builds both from one
vocabulary, so the column a feature lands in is the same on both paths: a
text value ``v`` of feature ``f`` becomes column ``f=v`` with value 1; a
number becomes column ``f`` with its value; unseen text values are ignored.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.feature_extraction import DictVectorizer

from yarnit.core.errors import InvalidInput


def _is_text(series: pd.Series) -> bool:
    return not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)


def fit_vectorizer(frame: pd.DataFrame, *, min_count: int = 1) -> DictVectorizer:
    """A fitted DictVectorizer whose vocabulary covers ``frame`` (text values seen ≥ ``min_count`` times)."""
    if frame.empty:
        raise InvalidInput("Cannot fit an encoder on an empty frame; the training set has no rows.")
    names: list[str] = []
    for column in frame.columns:
        series = frame[column]
        if _is_text(series):
            counts = series.astype(str).value_counts()
            names.extend(f"{column}={value}" for value in counts[counts >= min_count].index)
        else:
            names.append(str(column))
    names.sort()
    vectorizer = DictVectorizer(sparse=True, sort=True)
    vectorizer.feature_names_ = names
    vectorizer.vocabulary_ = {name: i for i, name in enumerate(names)}
    return vectorizer


def encode_frame(vectorizer: DictVectorizer, frame: pd.DataFrame) -> sp.csr_matrix:
    """Encode ``frame`` exactly as ``vectorizer.transform(frame.to_dict('records'))`` would."""
    vocabulary: dict[str, int] = vectorizer.vocabulary_
    n = len(frame)
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    vals: list[np.ndarray] = []
    index = np.arange(n)
    for column in frame.columns:
        series = frame[column]
        if _is_text(series):
            codes, uniques = pd.factorize(series.astype(str))
            lookup = np.array([vocabulary.get(f"{column}={u}", -1) for u in uniques] + [-1], dtype=np.int64)
            mapped = lookup[codes]
            keep = mapped >= 0
            rows.append(index[keep])
            cols.append(mapped[keep])
            vals.append(np.ones(int(keep.sum())))
        elif str(column) in vocabulary:
            values = series.to_numpy(dtype=float)
            rows.append(index)
            cols.append(np.full(n, vocabulary[str(column)], dtype=np.int64))
            vals.append(values)
    matrix = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n, len(vocabulary)),
        dtype=np.float64,
    )
    matrix.sum_duplicates()
    return matrix


__all__ = ["encode_frame", "fit_vectorizer"]
