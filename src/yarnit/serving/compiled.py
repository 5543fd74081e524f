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
  (MatMul → Add → Sigmoid), so scores match to ~1e-16. Batches of up to
  :data:`SMALL_BATCH_ROWS` rows skip the graph: a weight per vocabulary
  entry, summed in plain Python, costs ~3 µs a row against ONNX Runtime's
  ~30 µs per call; both routes are checked against the native model;
* scikit-learn tree ensembles (DecisionTree, RandomForest, ExtraTrees,
  GradientBoosting): converted by skl2onnx with float32 inputs, which is what
  scikit-learn's trees compare in, so the same leaves are reached.

* LightGBM binary boosters (``lightgbm-text``): the trees from ``dump_model()``
  become one ONNX ``TreeEnsemble`` (ai.onnx.ml opset 5) in float64, so
  thresholds, leaf values and the sum are LightGBM's own doubles. Rows are
  encoded by the predictor's own ``encode`` (category codes from the stored
  category lists, NaN for missing), so both paths see the same matrix.
  LightGBM's split rules map one to one: a numeric split with missing type
  ``NaN`` sends NaN its ``default_left`` way; with ``None`` NaN is scored as
  0.0, which goes the way ``0.0 <= threshold`` goes; a categorical split is a
  set-membership test whose NaN and negative codes go right. Splits with
  missing type ``Zero`` (``zero_as_missing``) and linear trees stay native.

Example:

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
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

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


class Encoder(Protocol):
    """Turns dict instances into the matrix a compiled graph takes."""

    def encode(self, instances: list[dict[str, Any]]) -> np.ndarray: ...


class CompiledPredictor:
    """An ONNX Runtime session behind an :class:`Encoder`; implements ``Predictor``."""

    def __init__(self, encoder: Encoder, onnx_bytes: bytes, *, input_name: str, output_index: int,
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

        self._linear: _LinearRows | None = None

    def predict_proba(self, instances: list[dict[str, Any]]) -> np.ndarray:
        linear = self._linear
        if linear is not None and len(instances) <= SMALL_BATCH_ROWS:
            return linear.predict_proba(instances)
        matrix = self.encoder.encode(instances)
        out = self.session.run(None, {self.input_name: matrix})[self.output_index]
        values = out[:, self.column] if self.column is not None else out.reshape(-1)
        return np.asarray(values, dtype=np.float64)


# Up to this many rows a linear model is scored in plain Python (a dict lookup per feature value, ~3 µs a
# row); ONNX Runtime's fixed cost per call (~30 µs here, plus building the matrix) wins only on larger batches.
SMALL_BATCH_ROWS = 8


class _LinearRows:
    """A logistic model scored row by row from a weight per vocabulary entry (DictVectorizer's rules)."""

    def __init__(self, vocabulary: dict[str, int], separator: str, coef: np.ndarray, intercept: float) -> None:
        weights = coef.reshape(-1).tolist()
        self.weights = {name: weights[column] for name, column in vocabulary.items()}
        self.separator = separator
        self.intercept = float(intercept)

    def predict_proba(self, instances: list[dict[str, Any]]) -> np.ndarray:
        weights, sep, out = self.weights, self.separator, []
        get = weights.get
        for instance in instances:
            z = self.intercept
            for key, value in instance.items():
                if isinstance(value, str):
                    z += get(f"{key}{sep}{value}", 0.0)
                elif value is not None:
                    w = get(key)
                    if w is not None:
                        z += w * value
            if z >= 0:
                out.append(1.0 / (1.0 + math.exp(-z)))
            else:  # exp(-z) would overflow for a very negative z
                e = math.exp(z)
                out.append(e / (1.0 + e))
        return np.asarray(out, dtype=np.float64)


@dataclass(frozen=True)
class CompileResult:
    """What happened when compiling one model version."""

    compiled: CompiledPredictor | None
    kind: str  # "linear-onnx", "tree-onnx", "lightgbm-onnx" or "native"
    reason: str  # why the native path was kept, or "ok"
    max_abs_diff: float = math.nan
    n_probes: int = 0
    row_cost_s: float = math.nan  # compiled scoring time per row, timed on the probes at load

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "reason": self.reason, "max_abs_diff": self.max_abs_diff,
                "n_probes": self.n_probes, "row_cost_s": self.row_cost_s}


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
        compiled = CompiledPredictor(encoder, graph, input_name="X", output_index=0, column=None, kind="linear-onnx")
        compiled._linear = _LinearRows(encoder.vocabulary, encoder.separator, np.asarray(final.coef_, dtype=np.float64),
                                       float(np.asarray(final.intercept_).reshape(-1)[0]))
        return compiled, "linear-onnx", "ok"
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


# -- LightGBM ----------------------------------------------------------------------------------------
_BRANCH_LEQ, _BRANCH_MEMBER = 0, 6  # ai.onnx.ml TreeEnsemble node modes
_AVERAGE, _SUM = 0, 1  # its aggregate functions
_DUMPED_INF = 1e300  # dump_model() writes an infinite threshold as ±1e300 (LightGBM's AvoidInf)


class _NotCompilable(Exception):
    """A model feature the converter does not translate (the native model keeps serving)."""


@dataclass
class _Trees:
    """A LightGBM model dump flattened into TreeEnsemble's parallel arrays."""

    width: int
    feature: list[int] = field(default_factory=list)
    mode: list[int] = field(default_factory=list)
    split: list[float] = field(default_factory=list)
    true_id: list[int] = field(default_factory=list)
    true_leaf: list[int] = field(default_factory=list)
    false_id: list[int] = field(default_factory=list)
    false_leaf: list[int] = field(default_factory=list)
    missing_true: list[int] = field(default_factory=list)
    members: list[list[int]] = field(default_factory=list)
    roots: list[int] = field(default_factory=list)
    leaves: list[float] = field(default_factory=list)
    thresholds: dict[int, set[float]] = field(default_factory=dict)  # numeric split points, for probes
    categorical: dict[int, set[int]] = field(default_factory=dict)  # feature → codes some split tests

    def add_tree(self, root: dict[str, Any]) -> None:
        self.roots.append(len(self.feature))
        if "split_feature" not in root:  # a one-leaf tree: a node whose both branches reach that leaf
            leaf = self._leaf(root)
            self._node(0, _BRANCH_LEQ, 0.0, (leaf, 1), (leaf, 1), 1, [])
            return
        pending = [(self._placeholder(), root)]
        while pending:  # iterative: a deep tree must not hit Python's recursion limit
            index, node = pending.pop()
            children = []
            for side in ("left_child", "right_child"):
                child = node[side]
                if "split_feature" in child:
                    child_index = self._placeholder()
                    pending.append((child_index, child))
                    children.append((child_index, 0))
                else:
                    children.append((self._leaf(child), 1))
            self._fill(index, node, children[0], children[1])

    def _leaf(self, leaf: dict[str, Any]) -> int:
        if "leaf_const" in leaf:
            raise _NotCompilable("linear trees (linear_tree=true) have no compiled equivalent")
        self.leaves.append(float(leaf["leaf_value"]))
        return len(self.leaves) - 1

    def _placeholder(self) -> int:
        self._node(0, _BRANCH_LEQ, 0.0, (0, 1), (0, 1), 0, [])
        return len(self.feature) - 1

    def _node(self, feature: int, mode: int, split: float, true: tuple[int, int], false: tuple[int, int],
              missing_true: int, members: list[int]) -> None:
        self.feature.append(feature)
        self.mode.append(mode)
        self.split.append(split)
        self.true_id.append(true[0])
        self.true_leaf.append(true[1])
        self.false_id.append(false[0])
        self.false_leaf.append(false[1])
        self.missing_true.append(missing_true)
        self.members.append(members)

    def _fill(self, index: int, node: dict[str, Any], left: tuple[int, int], right: tuple[int, int]) -> None:
        feature = int(node["split_feature"])
        decision, missing = node.get("decision_type"), node.get("missing_type", "None")
        if decision == "==":
            # LightGBM: a code in the set goes left; NaN and negative codes go right.
            members = [int(v) for v in str(node["threshold"]).split("||") if v != ""]
            mode, split, missing_true = _BRANCH_MEMBER, math.nan, 0
            self.categorical.setdefault(feature, set()).update(members)
        elif decision == "<=":
            split, members, mode = float(node["threshold"]), [], _BRANCH_LEQ
            if abs(split) >= _DUMPED_INF:
                split = math.copysign(math.inf, split)  # the dump writes ±inf as ±1e300 (the text model: inf)
            if missing == "NaN":
                missing_true = int(bool(node.get("default_left")))
            elif missing == "None":
                missing_true = int(0.0 <= split)  # NaN is scored as 0.0
            else:
                raise _NotCompilable(f"a split with missing type {missing!r} (zero_as_missing) has no compiled "
                                     "equivalent")
            self.thresholds.setdefault(feature, set()).add(split)
        else:
            raise _NotCompilable(f"split decision type {decision!r} is not one LightGBM documents")
        self.feature[index], self.mode[index], self.split[index] = feature, mode, split
        self.true_id[index], self.true_leaf[index] = left
        self.false_id[index], self.false_leaf[index] = right
        self.missing_true[index], self.members[index] = missing_true, members


def _lightgbm_trees(dump: dict[str, Any]) -> tuple[_Trees, float, bool]:
    """(trees, sigmoid scale, average?) for a binary LightGBM dump, or raise :class:`_NotCompilable`."""
    objective = str(dump.get("objective", "")).split()
    if int(dump.get("num_class", 1)) != 1 or not objective or objective[0] != "binary":
        raise _NotCompilable(f"objective {dump.get('objective')!r} is not binary; only binary boosters are "
                             "compiled")
    sigmoid = 1.0
    for part in objective[1:]:
        if part.startswith("sigmoid:"):
            sigmoid = float(part.split(":", 1)[1])
    trees = _Trees(width=int(dump["max_feature_idx"]) + 1)
    for tree in dump.get("tree_info", []):
        trees.add_tree(tree["tree_structure"])
    if not trees.roots:
        raise _NotCompilable("the booster has no trees")
    return trees, sigmoid, bool(dump.get("average_output"))


def _lightgbm_graph(trees: _Trees, sigmoid: float, average: bool) -> bytes:
    from onnx import TensorProto, helper, numpy_helper

    membership: list[float] = []
    for members in trees.members:
        if members:
            membership.extend(float(v) for v in members)
            membership.append(math.nan)  # each member node's set ends with NaN

    def tensor(values: Sequence[float], name: str, dtype: Any = np.float64) -> Any:
        return numpy_helper.from_array(np.asarray(values, dtype=dtype), name)

    ensemble = helper.make_node(
        "TreeEnsemble", ["X"], ["raw"], domain="ai.onnx.ml",
        aggregate_function=_AVERAGE if average else _SUM, post_transform=0, n_targets=1,
        tree_roots=trees.roots, nodes_featureids=trees.feature,
        nodes_modes=tensor(trees.mode, "nodes_modes", np.uint8), nodes_splits=tensor(trees.split, "nodes_splits"),
        nodes_truenodeids=trees.true_id, nodes_trueleafs=trees.true_leaf,
        nodes_falsenodeids=trees.false_id, nodes_falseleafs=trees.false_leaf,
        nodes_missing_value_tracks_true=trees.missing_true,
        leaf_targetids=[0] * len(trees.leaves), leaf_weights=tensor(trees.leaves, "leaf_weights"),
        **({"membership_values": tensor(membership, "membership_values")} if membership else {}),
    )
    nodes, initializers, logit = [ensemble], [], "raw"
    if sigmoid != 1.0:
        nodes.append(helper.make_node("Mul", ["raw", "scale"], ["z"]))
        initializers.append(numpy_helper.from_array(np.array([sigmoid], dtype=np.float64), "scale"))
        logit = "z"
    nodes.append(helper.make_node("Sigmoid", [logit], ["p"]))
    graph = helper.make_graph(
        nodes, "yarnit_lightgbm",
        inputs=[helper.make_tensor_value_info("X", TensorProto.DOUBLE, [None, trees.width])],
        outputs=[helper.make_tensor_value_info("p", TensorProto.DOUBLE, [None, 1])],
        initializer=initializers,
    )
    model = helper.make_model(graph, producer_name="yarnit",
                              opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("ai.onnx.ml", 5)])
    model.ir_version = 10
    return bytes(model.SerializeToString())


class _TruncatingEncoder:
    """The predictor's encoder, then categorical columns truncated toward zero as LightGBM's ``(int)`` cast does.

    Only needed for categorical features given as raw numbers (no stored
    category list): codes from a category list are whole numbers already.
    """

    def __init__(self, encoder: Encoder, columns: list[int]) -> None:
        self.encoder, self.columns = encoder, columns

    def encode(self, instances: list[dict[str, Any]]) -> np.ndarray:
        matrix = self.encoder.encode(instances)
        matrix[:, self.columns] = np.trunc(matrix[:, self.columns])
        return matrix


def _build_lightgbm(predictor: Any) -> tuple[CompiledPredictor, _Trees]:
    trees, sigmoid, average = _lightgbm_trees(predictor.booster.dump_model())
    if trees.width != len(predictor.feature_names):
        raise _NotCompilable(f"the trees use {trees.width} features but the model names "
                             f"{len(predictor.feature_names)}")
    graph = _lightgbm_graph(trees, sigmoid, average)
    # The predictor's own encode: the compiled path sees exactly the matrix LightGBM would.
    raw_codes = sorted(c for c in trees.categorical if c not in predictor.categories)
    encoder: Encoder = _TruncatingEncoder(predictor, raw_codes) if raw_codes else predictor
    compiled = CompiledPredictor(encoder, graph, input_name="X", output_index=0, column=None, kind="lightgbm-onnx")
    return compiled, trees


def lightgbm_probe_rows(predictor: Any, trees: _Trees, seeds: Sequence[dict[str, Any]], n: int = 256,
                        seed: int = 0) -> list[dict[str, Any]]:
    """Seed rows plus random ones that hit LightGBM's edges: split points and their neighbours, NaN, unseen
    categories, and missing features (float64 ties at a threshold are where a float32 path would differ)."""
    rng = np.random.default_rng(seed)
    rows = [dict(r) for r in seeds]
    names = predictor.feature_names
    categories = {col: list(lookup) for col, lookup in predictor.categories.items()}
    points = {col: sorted(values) for col, values in trees.thresholds.items()}
    for _ in range(n):
        row: dict[str, Any] = {}
        for col, name in enumerate(names):
            draw = rng.random()
            if draw < 0.2:
                continue  # missing
            if col in categories:
                known = categories[col]
                row[name] = known[int(rng.integers(len(known)))] if known and draw < 0.9 else "<unseen>"
            elif col in trees.categorical:  # raw numeric codes: members, non-members, fractions, negatives
                codes = sorted(trees.categorical[col])
                code = codes[int(rng.integers(len(codes)))] if codes and draw < 0.7 else int(rng.integers(-2, 40))
                row[name] = float(code + rng.choice([0.0, 0.0, 0.5, -0.5]))
            elif col in points and draw < 0.8:
                at = points[col][int(rng.integers(len(points[col])))]
                row[name] = float(rng.choice([at, np.nextafter(at, -math.inf), np.nextafter(at, math.inf)]))
            else:
                row[name] = float(rng.choice([0.0, -1.0, rng.normal() * 10, rng.uniform(0, 100)]))
        rows.append(row)
    return rows


def _check(native: Any, compiled: CompiledPredictor, kind: str, rows: list[dict[str, Any]],
           tolerance: float) -> CompileResult:
    if not rows:
        return CompileResult(None, "native", "no probe rows to check the compiled model against")
    expected = np.asarray(native.predict_proba(rows), dtype=np.float64)
    fast = compiled.predict_proba(rows)
    # Small batches may take another route (linear models: plain Python): check it row by row too.
    one_by_one = np.concatenate([compiled.predict_proba([row]) for row in rows])
    diff = float(max(np.max(np.abs(expected - fast)), np.max(np.abs(expected - one_by_one))))
    fast = np.where(np.isfinite(one_by_one), fast, np.nan)
    if not np.all(np.isfinite(fast)) or not diff <= tolerance:
        return CompileResult(None, "native", f"compiled scores differ from native by {diff:.3g} > {tolerance:g}",
                             diff, len(rows))
    # Timed on a second, warm run: the data plane uses it to decide which batches it may score on the loop.
    # The slower of the two routes counts (per-row Python for small batches, the graph for large ones).
    started = time.perf_counter()
    compiled.predict_proba(rows)
    row_cost_s = (time.perf_counter() - started) / len(rows)
    small = rows[:SMALL_BATCH_ROWS]
    started = time.perf_counter()
    compiled.predict_proba(small)
    row_cost_s = max(row_cost_s, (time.perf_counter() - started) / len(small))
    return CompileResult(compiled, kind, "ok", diff, len(rows), row_cost_s)


def compile_predictor(predictor: Any, probes: Sequence[dict[str, Any]], *,
                      tolerance: float = DEFAULT_TOLERANCE) -> CompileResult:
    """Compile ``predictor`` if it is a supported model and it agrees with the native one on ``probes``."""
    if hasattr(predictor, "booster") and hasattr(predictor, "encode"):  # LightgbmPredictor
        try:
            compiled, trees = _build_lightgbm(predictor)
            rows = lightgbm_probe_rows(predictor, trees, probes)
        except _NotCompilable as exc:
            return CompileResult(None, "native", f"LightGBM model not compiled: {exc}")
        except Exception as exc:  # a converter gap must never stop a model from serving
            log.info("keeping the native predictor: conversion failed: %s", exc)
            return CompileResult(None, "native", f"conversion failed: {type(exc).__name__}: {exc}")
        return _check(predictor, compiled, "lightgbm-onnx", rows, tolerance)
    estimator = getattr(predictor, "estimator", None)
    if estimator is None:
        return CompileResult(None, "native", f"{type(predictor).__name__} has no compiled path")
    try:
        built, kind, reason = _build(estimator)
    except Exception as exc:  # a converter gap must never stop a model from serving
        log.info("keeping the native predictor: conversion failed: %s", exc)
        return CompileResult(None, "native", f"conversion failed: {type(exc).__name__}: {exc}")
    if built is None:
        return CompileResult(None, kind, reason)
    return _check(predictor, built, kind, probe_rows(estimator, probes), tolerance)


__all__ = ["CompileResult", "CompiledPredictor", "Encoder", "RowEncoder", "compile_predictor",
           "lightgbm_probe_rows", "probe_rows"]
