"""The compiled fast path: ONNX Runtime for linear and tree models, checked against the native model.

scikit-learn spends ~100 µs on one row, mostly in input validation; ONNX
Runtime scores the same row in a few µs. At load, :func:`compile_predictor`
turns a supported model into an ONNX graph, scores a set of probe rows with
both, and keeps the compiled one only if every score agrees within
``tolerance`` (default 1e-6). Anything it cannot convert, or any disagreement,
leaves the native predictor in charge: the fast path is an optimisation,
never a different model.

Supported (binary classifiers, probability of the positive class):

* ``Pipeline([DictVectorizer, estimator])`` and bare estimators fitted on named
  columns (``feature_names_in_``); the dict → row step is a plain Python loop
  over the fitted vocabulary (DictVectorizer's own semantics: a string value
  ``v`` of key ``k`` sets column ``k=v`` to 1, a number sets column ``k``);
* linear models with ``coef_``/``intercept_`` and a logistic link
  (LogisticRegression, SGDClassifier(loss="log_loss")): a float64 graph
  (MatMul → Add → Sigmoid), so scores match to ~1e-16;
* scikit-learn tree ensembles (DecisionTree, RandomForest, ExtraTrees,
  GradientBoosting): converted by skl2onnx with float32 inputs, which is what
  scikit-learn's trees compare in, so the same leaves are reached.

LightGBM boosters stay native (converting their missing-value and categorical
split rules is left for later; the native LightGBM predictor is already
vectorised). Example:

    >>> from sklearn.feature_extraction import DictVectorizer
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import Pipeline
    >>> from yarnit.registry.formats import SklearnPredictor
    >>> rows = [{"fiber": "merino", "price": 12.0}, {"fiber": "acrylic", "price": 3.0}] * 5
    >>> model = Pipeline([("v", DictVectorizer()), ("m", LogisticRegression())]).fit(rows, [1, 0] * 5)
    >>> result = compile_predictor(SklearnPredictor(model), rows)
    >>> result.compiled is not None, result.max_abs_diff < 1e-6
    (True, True)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger("yarnit.serving.compiled")

DEFAULT_TOLERANCE = 1e-6
_TREE_TYPES = (
    "DecisionTreeClassifier",
    "ExtraTreeClassifier",
    "RandomForestClassifier",
    "ExtraTreesClassifier",
    "GradientBoostingClassifier",
)
_LINEAR_TYPES = ("LogisticRegression", "LogisticRegressionCV", "SGDClassifier")


class RowEncoder:
    """Dicts → a dense float matrix, with DictVectorizer's rules over a fixed vocabulary."""

    def __init__(self, vocabulary: dict[str, int], separator: str = "=", dtype: type = np.float64) -> None:
        self.vocabulary = vocabulary
        self.separator = separator
        self.width = len(vocabulary)
        self.dtype = dtype

    def encode(self, instances: Sequence[dict[str, Any]]) -> np.ndarray:
        matrix = np.zeros((len(instances), self.width), dtype=self.dtype)
        vocab, sep = self.vocabulary, self.separator
        for row, instance in enumerate(instances):
            for key, value in instance.items():
                if isinstance(value, str):
                    column = vocab.get(f"{key}{sep}{value}")
                    if column is not None:
                        matrix[row, column] = 1.0
                elif value is not None:
                    column = vocab.get(key)
                    if column is not None:
                        matrix[row, column] = value
        return matrix


class CompiledPredictor:
    """An ONNX Runtime session behind a :class:`RowEncoder`; implements ``Predictor``."""

    def __init__(self, encoder: RowEncoder, onnx_bytes: bytes, *, input_name: str, output_index: int,
                 column: int | None, kind: str) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        # One request is one small matrix: extra threads cost more than they give,
        # and the server already owns a core per worker process.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(onnx_bytes, sess_options=options, providers=["CPUExecutionProvider"])
        self.encoder = encoder
        self.input_name = input_name
        self.output_index = output_index
        self.column = column
        self.kind = kind
        self.onnx_bytes = onnx_bytes

    def predict_proba(self, instances: list[dict[str, Any]]) -> np.ndarray:
        matrix = self.encoder.encode(instances)
        out = self.session.run(None, {self.input_name: matrix})[self.output_index]
        values = out[:, self.column] if self.column is not None else out.reshape(-1)
        return np.asarray(values, dtype=np.float64)


@dataclass(frozen=True)
class CompileResult:
    """What happened when compiling one model version."""

    compiled: CompiledPredictor | None
    kind: str  # "linear-onnx", "tree-onnx" or "native"
    reason: str  # why the native path was kept, or "ok"
    max_abs_diff: float = math.nan
    n_probes: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "reason": self.reason, "max_abs_diff": self.max_abs_diff,
                "n_probes": self.n_probes}


def _split_pipeline(estimator: Any) -> tuple[RowEncoder | None, Any, str]:
    """(encoder, final estimator, reason) for the shapes we know how to compile."""
    steps = getattr(estimator, "steps", None)
    if steps is not None:
        if len(steps) != 2:
            return None, None, f"pipeline has {len(steps)} steps; only [DictVectorizer, estimator] is compiled"
        first, final = steps[0][1], steps[1][1]
        if type(first).__name__ != "DictVectorizer" or not hasattr(first, "vocabulary_"):
            return None, None, f"first step is {type(first).__name__}, not a fitted DictVectorizer"
        vocabulary = {str(k): int(v) for k, v in first.vocabulary_.items()}
        return RowEncoder(vocabulary, getattr(first, "separator", "=")), final, "ok"
    names = getattr(estimator, "feature_names_in_", None)
    if names is None:
        return None, None, "the estimator has no feature names, so dict instances cannot be mapped to columns"
    return RowEncoder({str(n): i for i, n in enumerate(names)}), estimator, "ok"


def _positive_column(final: Any) -> int | None:
    classes = list(getattr(final, "classes_", []))
    return 1 if len(classes) == 2 else None


def _linear_graph(final: Any, width: int) -> bytes:
    from onnx import TensorProto, helper, numpy_helper

    coef = np.asarray(final.coef_, dtype=np.float64).reshape(1, width).T  # (width, 1)
    intercept = np.asarray(final.intercept_, dtype=np.float64).reshape(1)
    nodes = [
        helper.make_node("MatMul", ["X", "W"], ["z0"]),
        helper.make_node("Add", ["z0", "b"], ["z"]),
        helper.make_node("Sigmoid", ["z"], ["p"]),
    ]
    graph = helper.make_graph(
        nodes, "yarnit_linear",
        inputs=[helper.make_tensor_value_info("X", TensorProto.DOUBLE, [None, width])],
        outputs=[helper.make_tensor_value_info("p", TensorProto.DOUBLE, [None, 1])],
        initializer=[numpy_helper.from_array(coef, "W"), numpy_helper.from_array(intercept, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="yarnit")
    model.ir_version = 8
    return bytes(model.SerializeToString())


def _tree_graph(final: Any, width: int) -> bytes:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    onx = convert_sklearn(final, initial_types=[("X", FloatTensorType([None, width]))],
                          options={id(final): {"zipmap": False}}, target_opset={"": 17, "ai.onnx.ml": 3})
    return bytes(onx.SerializeToString())


def _build(estimator: Any) -> tuple[CompiledPredictor | None, str, str]:
    encoder, final, reason = _split_pipeline(estimator)
    if encoder is None or final is None:
        return None, "native", reason
    name = type(final).__name__
    column = _positive_column(final)
    if column is None:
        return None, "native", f"{name} is not a binary classifier"
    if name in _LINEAR_TYPES:
        if name == "SGDClassifier" and getattr(final, "loss", "") != "log_loss":
            return None, "native", f"SGDClassifier(loss={final.loss!r}) has no logistic link"
        if np.asarray(final.coef_).shape != (1, encoder.width):
            return None, "native", f"{name} coefficients do not match the {encoder.width} input columns"
        graph = _linear_graph(final, encoder.width)
        return CompiledPredictor(encoder, graph, input_name="X", output_index=0, column=None,
                                 kind="linear-onnx"), "linear-onnx", "ok"
    if name in _TREE_TYPES:
        encoder = RowEncoder(encoder.vocabulary, encoder.separator, dtype=np.float32)
        graph = _tree_graph(final, encoder.width)
        return CompiledPredictor(encoder, graph, input_name="X", output_index=1, column=column,
                                 kind="tree-onnx"), "tree-onnx", "ok"
    return None, "native", f"{name} has no compiled path (linear and tree models only)"


def probe_rows(estimator: Any, seeds: Sequence[dict[str, Any]], n: int = 64, seed: int = 0) -> list[dict[str, Any]]:
    """Rows to compare native and compiled scores on: the given ones plus random ones from the vocabulary.

    Random rows set each known feature with probability 1/2: categorical
    columns (``k=v``) to their category, numeric ones to a value from a wide
    range, so every coefficient or split takes part in some probe.
    """
    rng = np.random.default_rng(seed)
    rows = [dict(r) for r in seeds]
    encoder, _final, _reason = _split_pipeline(estimator)
    if encoder is None:
        return rows
    names = sorted(encoder.vocabulary, key=encoder.vocabulary.__getitem__)
    for _ in range(n):
        row: dict[str, Any] = {}
        for name in names:
            if rng.random() < 0.5:
                continue
            key, sep, value = name.partition(encoder.separator)
            if sep:
                row[key] = value
            else:
                row[name] = float(rng.choice([0.0, 1.0, -1.0, rng.normal() * 10, rng.uniform(0, 100)]))
        rows.append(row)
    return rows


def compile_predictor(predictor: Any, probes: Sequence[dict[str, Any]], *,
                      tolerance: float = DEFAULT_TOLERANCE) -> CompileResult:
    """Compile ``predictor`` if it is a supported scikit-learn model and it agrees on ``probes``."""
    estimator = getattr(predictor, "estimator", None)
    if estimator is None:
        return CompileResult(None, "native", f"{type(predictor).__name__} has no compiled path")
    try:
        compiled, kind, reason = _build(estimator)
    except Exception as exc:  # a converter gap must never stop a model from serving
        log.info("keeping the native predictor: conversion failed: %s", exc)
        return CompileResult(None, "native", f"conversion failed: {type(exc).__name__}: {exc}")
    if compiled is None:
        return CompileResult(None, kind, reason)
    rows = probe_rows(estimator, probes)
    if not rows:
        return CompileResult(None, "native", "no probe rows to check the compiled model against")
    native = np.asarray(predictor.predict_proba(rows), dtype=np.float64)
    fast = compiled.predict_proba(rows)
    diff = float(np.max(np.abs(native - fast))) if len(rows) else 0.0
    if not np.all(np.isfinite(fast)) or not diff <= tolerance:
        return CompileResult(None, "native", f"compiled scores differ from native by {diff:.3g} > {tolerance:g}",
                             diff, len(rows))
    return CompileResult(compiled, kind, "ok", diff, len(rows))


__all__ = ["CompileResult", "CompiledPredictor", "RowEncoder", "compile_predictor", "probe_rows"]
