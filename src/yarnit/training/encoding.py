"""One-hot encoding of feature frames, compatible with scikit-learn's DictVectorizer.

Training encodes millions of rows at once from a DataFrame; serving encodes a
few dicts with a DictVectorizer. :func:`fit_vectorizer` builds both from one
vocabulary, so the column a feature lands in is the same on both paths: a
text value ``v`` of feature ``f`` becomes column ``f=v`` with value 1; a
number becomes column ``f`` with its value; unseen text values are ignored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

if TYPE_CHECKING:
    from sklearn.feature_extraction import DictVectorizer

from yarnit.core.errors import InvalidInput


def _is_text(series: pd.Series) -> bool:
    return not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)


def text_codes(series: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Integer codes (−1 for missing) and the distinct texts of a text column; cheap for categoricals."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        return series.cat.codes.to_numpy(), [str(c) for c in series.cat.categories]
    codes, uniques = pd.factorize(series.astype(str))
    return codes, [str(u) for u in uniques]


def fit_vectorizer(frame: pd.DataFrame, *, min_count: int = 1) -> DictVectorizer:
    """A fitted DictVectorizer whose vocabulary covers ``frame`` (text values seen ≥ ``min_count`` times)."""
    if frame.empty:
        raise InvalidInput("Cannot fit an encoder on an empty frame; the training set has no rows.")
    names: list[str] = []
    for column in frame.columns:
        series = frame[column]
        if _is_text(series):
            codes, texts = text_codes(series)
            counts = np.bincount(codes[codes >= 0], minlength=len(texts))
            names.extend(f"{column}={text}" for text, count in zip(texts, counts, strict=True) if count >= min_count)
        else:
            names.append(str(column))
    names.sort()
    from sklearn.feature_extraction import DictVectorizer  # imported here: the CLI starts faster without it

    vectorizer = DictVectorizer(sparse=True, sort=True)
    vectorizer.feature_names_ = names
    vectorizer.vocabulary_ = {name: i for i, name in enumerate(names)}
    return vectorizer


def encode_frame(vectorizer: DictVectorizer, frame: pd.DataFrame) -> sp.csr_matrix:
    """Encode ``frame`` exactly as ``vectorizer.transform(frame.to_dict('records'))`` would.

    Every row has one slot per column (its one-hot index, or the numeric
    column's index), so the CSR arrays are built directly with a fixed stride
    instead of through a COO detour that would triple the memory.
    """
    vocabulary: dict[str, int] = vectorizer.vocabulary_
    n = len(frame)
    columns = [c for c in frame.columns if _is_text(frame[c]) or str(c) in vocabulary]
    width = len(columns)
    indices = np.zeros((n, width), dtype=np.int32)
    data = np.zeros((n, width), dtype=np.float64)
    for slot, column in enumerate(columns):
        series = frame[column]
        if _is_text(series):
            codes, texts = text_codes(series)
            lookup = np.array([vocabulary.get(f"{column}={t}", -1) for t in texts] + [-1], dtype=np.int64)
            mapped = lookup[codes]
            known = mapped >= 0
            indices[:, slot] = np.where(known, mapped, 0)
            data[:, slot] = known  # an unseen value is an explicit zero, as DictVectorizer ignores it
        else:
            indices[:, slot] = vocabulary[str(column)]
            data[:, slot] = series.to_numpy(dtype=float)
    # Column indices within a row are left unsorted: a valid CSR matrix for every
    # product scikit-learn computes, and sorting 6M rows would cost more than the fit.
    matrix = sp.csr_matrix((data.ravel(), indices.ravel(), np.arange(0, n * width + 1, width, dtype=np.int64)),
                           shape=(n, len(vocabulary)))
    matrix.eliminate_zeros()
    return matrix


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


__all__ = ["encode_frame", "fit_vectorizer", "score_frame", "text_codes"]
