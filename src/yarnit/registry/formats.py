"""Turning trained models into bytes and back, without ever unpickling.

* scikit-learn → skops. Before anything is loaded, :func:`audit_skops` reads
  the archive's ``schema.json`` and refuses it unless every node names a type
  in :data:`SKOPS_TRUSTED_TYPES` (an exact list: what yarnit's trainers write,
  no prefixes) through a loader in :data:`SKOPS_LOADERS`, no array is an
  object array, and skops' own audit (``get_untrusted_types``) finds nothing
  outside the list either.
* LightGBM → its own text model format (parsed, not executed).
* ONNX → loaded by ONNX Runtime.
* Composite models (``yarnit-recs-npz``, ``yarnit-ranker``) → a zip of named
  members written with fixed timestamps: a JSON manifest, numpy ``.npy``
  arrays read with ``allow_pickle=False`` (so no object arrays), and the
  safe artifacts of the models they pin, each checked against the sha256
  its manifest records.

Bytes that look like a pickle (also gzip- or zip-wrapped) are refused with
:class:`~yarnit.core.UnsafeArtifact`, whatever format they claim.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib
import io
import json
import threading
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from yarnit.core.errors import IntegrityError, InvalidInput, UnsafeArtifact

from .models import ArtifactFormat

# Every type a yarnit skops artifact may name, exactly: training/trainers.py writes
# Pipeline(DictVectorizer, LogisticRegression) ("logistic") and Pipeline(DictVectorizer,
# HistGradientBoostingClassifier) ("hist_gbm"), and a ranker bundle pins one of those as its click model.
# The list was read off the trainers' dumps; tests/registry/test_skops_allow_list.py keeps it true. A type
# outside it (builtins.exec, os.system, a new estimator) is refused before any byte is loaded: trusting a
# prefix such as "builtins." would admit exec, eval, getattr and __import__.
SKOPS_TRUSTED_TYPES: frozenset[str] = frozenset({
    # containers and primitives (skops stores primitives as JSON under builtins.str)
    "builtins.dict", "builtins.list", "builtins.tuple", "builtins.str", "builtins.int", "builtins.float",
    "builtins.bool", "builtins.NoneType",
    # arrays and dtypes
    "numpy.ndarray", "numpy.float64", "numpy.float32", "numpy.int64", "numpy.int32", "numpy.uint8",
    "numpy.uint32", "numpy.uint64", "numpy.bool_", "numpy.random._generator.Generator",
    # the two pipelines
    "sklearn.pipeline.Pipeline",
    "sklearn.feature_extraction._dict_vectorizer.DictVectorizer",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.preprocessing._label.LabelEncoder",
    "sklearn._loss.loss.HalfBinomialLoss",
    "sklearn._loss._loss.CyHalfBinomialLoss",
    "sklearn._loss.link.LogitLink",
    "sklearn._loss.link.Interval",
})
# How skops may rebuild those types. Left out on purpose: the nodes that call or look up a name read from
# the file (ConstructorFromReduceNode, ReduceNode, FunctionNode, MethodNode, PartialNode, OperatorFuncNode),
# which yarnit's trainers never write.
SKOPS_LOADERS: frozenset[str] = frozenset({
    "ObjectNode", "DictNode", "ListNode", "TupleNode", "JsonNode", "NdArrayNode", "TypeNode", "CachedNode",
    "LossNode", "RandomGeneratorNode",
})
_MAX_SKOPS_SCHEMA_BYTES = 64 << 20


class Predictor(Protocol):
    """What serving needs from a loaded model: a probability per instance."""

    def predict_proba(self, instances: list[dict[str, Any]]) -> np.ndarray: ...


def _looks_like_pickle(data: bytes) -> bool:
    if data[:1] == b"\x80":  # PROTO opcode: every pickle since protocol 2
        return True
    if data[:2] == b"\x1f\x8b":  # gzip: look inside
        try:
            return _looks_like_pickle(gzip.GzipFile(fileobj=io.BytesIO(data)).read(16))
        except (OSError, EOFError):
            return True  # an unreadable gzip is refused too
    return False


def refuse_pickle(data: bytes, claimed: str) -> None:
    """Raise UnsafeArtifact if ``data`` is (or wraps) a pickle."""
    if _looks_like_pickle(data):
        raise UnsafeArtifact(
            f"Refusing to load an artifact declared as {claimed!r}: its bytes are a pickle (or a compressed "
            "pickle), which runs code when loaded. Re-save the model with yarnit (skops, LightGBM text or "
            "ONNX)."
        )
    if data[:2] == b"PK":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            for member in archive.namelist():
                if member.endswith((".pkl", ".pickle", ".joblib")) or member.endswith("data.pkl"):
                    raise UnsafeArtifact(
                        f"Refusing to load an artifact declared as {claimed!r}: it contains {member!r}, a pickle. "
                        "Re-save the model with yarnit (skops, LightGBM text or ONNX)."
                    )


class SklearnPredictor:
    """A fitted scikit-learn estimator (usually a Pipeline) taking a list of dicts."""

    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator

    def predict_proba(self, instances: list[dict[str, Any]]) -> np.ndarray:
        return np.asarray(self.estimator.predict_proba(instances))[:, 1]


def _deterministic_zip(data: bytes) -> bytes:
    """Re-pack a skops zip so that equal models give equal bytes (target 16).

    skops names array files and objects after ``id()`` (memory addresses) and
    stamps the zip with the current time; renumber both in order of
    appearance in ``schema.json`` and fix the timestamps.
    """

    with zipfile.ZipFile(io.BytesIO(data)) as source:
        schema = json.loads(source.read("schema.json"))
        renames: dict[str, str] = {}
        ids: dict[int, int] = {}

        def walk(node: Any) -> Any:
            if isinstance(node, dict):
                out = {}
                for key, value in node.items():
                    if key == "file" and isinstance(value, str) and value in source.namelist():
                        value = renames.setdefault(value, f"{len(renames):06d}{Path(value).suffix}")
                    elif key == "__id__" and isinstance(value, int):
                        value = ids.setdefault(value, len(ids) + 1)  # object identity, renumbered in order
                    out[key] = walk(value)
                return out
            if isinstance(node, list):
                return [walk(v) for v in node]
            return node

        fixed_schema = walk(schema)
        files = {"schema.json": json.dumps(fixed_schema, sort_keys=True).encode()}
        files |= {new: source.read(old) for old, new in renames.items()}
    return stable_zip(files)


def stable_zip(members: Mapping[str, bytes]) -> bytes:
    """A zip of ``members`` sorted by name, with fixed timestamps and modes: equal content, equal bytes."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for name in sorted(members):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            target.writestr(info, members[name])
    return out.getvalue()


def dump_sklearn(estimator: Any) -> bytes:
    """Serialize a fitted scikit-learn estimator with skops (byte-stable for equal models)."""
    import skops.io as sio

    data = _deterministic_zip(sio.dumps(estimator))
    audit_skops(data)  # a model yarnit could not load again is refused when it is written
    return data


def _unsafe_skops(problem: str) -> UnsafeArtifact:
    return UnsafeArtifact(
        f"Refusing a skops artifact before loading it: {problem}. yarnit loads only the types its own trainers "
        "write (see yarnit.registry.formats.SKOPS_TRUSTED_TYPES); retrain the model with yarnit, or export it "
        "to ONNX or LightGBM text."
    )


def _skops_nodes(node: Any) -> Iterator[dict[str, Any]]:
    """Every node of a skops schema (a dict with a string ``__loader__``), depth first, without recursion."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("__loader__"), str):
                yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _npy_is_object(archive: zipfile.ZipFile, member: str) -> bool:
    with archive.open(member) as stream:
        version = np.lib.format.read_magic(stream)
        header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        _shape, _fortran, dtype = header(stream)
    return bool(dtype.hasobject)


def audit_skops(data: bytes) -> list[str]:
    """:func:`_audit_skops`, remembered per process by the archive's sha256 (:data:`_AUDITED_KEPT` archives).

    The audit is a function of the bytes alone (the trusted lists are constants), and one artifact is audited
    many times: written (training), registered, checked servable, loaded by evaluate, by warm start and by
    serving: 4-6 ms each, about 5 loads per daily version in the continuous loop. A refused archive is not
    remembered: it is refused again, with the same error, on every call.
    """
    key = hashlib.sha256(data).digest()
    with _AUDITED_LOCK:
        known = _AUDITED.get(key)
    if known is None:
        known = tuple(_audit_skops(data))
        with _AUDITED_LOCK:
            _AUDITED[key] = known
            while len(_AUDITED) > _AUDITED_KEPT:
                _AUDITED.pop(next(iter(_AUDITED)))
    return list(known)


_AUDITED: dict[bytes, tuple[str, ...]] = {}
_AUDITED_KEPT = 64
_AUDITED_LOCK = threading.Lock()


def _audit_skops(data: bytes) -> list[str]:
    """Check a skops archive against :data:`SKOPS_TRUSTED_TYPES` without loading it; the types to pass to skops.

    Reads ``schema.json`` and refuses the archive (:class:`~yarnit.core.UnsafeArtifact`) when a node names a
    type outside the list or uses a loader outside :data:`SKOPS_LOADERS`, when an array is an object array
    (in the schema or in its ``.npy`` member), or when skops' own audit reports a type outside the list.
    Returns what ``skops.io.get_untrusted_types`` reported (all in the list), for ``skops.io.loads``.
    """
    import skops.io as sio

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            info = archive.getinfo("schema.json")
            if info.file_size > _MAX_SKOPS_SCHEMA_BYTES:
                raise _unsafe_skops(f"its schema.json unpacks to {info.file_size:,} bytes (at most "
                                    f"{_MAX_SKOPS_SCHEMA_BYTES:,})")
            schema = json.loads(archive.read(info))
            members = set(archive.namelist())
            types: set[str] = set()
            for node in _skops_nodes(schema):
                loader, module, name = node["__loader__"], node.get("__module__"), node.get("__class__")
                if not isinstance(module, str) or not isinstance(name, str):
                    raise _unsafe_skops(f"a {loader!r} node names no type")
                kind = f"{module}.{name}"
                if loader not in SKOPS_LOADERS:
                    raise _unsafe_skops(f"node {kind!r} uses loader {loader!r}, which yarnit's trainers never "
                                        f"write (allowed: {', '.join(sorted(SKOPS_LOADERS))})")
                types.add(kind)
                if loader == "NdArrayNode":
                    file = node.get("file")
                    if node.get("type") != "numpy" or not isinstance(file, str) or file not in members:
                        raise _unsafe_skops(f"array node {kind!r} is an object array (or names no .npy member); "
                                            "object arrays are rebuilt from arbitrary objects")
                    if _npy_is_object(archive, file):
                        raise _unsafe_skops(f"array member {file!r} has an object dtype, which needs pickle")
    except (KeyError, ValueError, zipfile.BadZipFile, EOFError, OSError) as exc:
        raise _unsafe_skops(f"it is not a readable skops archive ({type(exc).__name__}: {exc})") from None
    outside = sorted(types - SKOPS_TRUSTED_TYPES)
    if outside:
        raise _unsafe_skops(f"it names types outside yarnit's list: {', '.join(outside)}")
    try:
        untrusted = sio.get_untrusted_types(data=data)
    except Exception as exc:  # skops refuses malformed trees with assorted errors; none of them is a load
        raise _unsafe_skops(f"skops cannot audit it ({type(exc).__name__}: {exc})") from None
    outside = sorted(set(untrusted) - SKOPS_TRUSTED_TYPES)
    if outside:
        raise _unsafe_skops(f"skops' audit reports types outside yarnit's list: {', '.join(outside)}")
    return list(untrusted)


def load_predictor(data: bytes, artifact_format: ArtifactFormat | str) -> Predictor:
    """Load verified artifact bytes into a predictor; never unpickles."""
    try:
        fmt = ArtifactFormat(artifact_format)
    except ValueError:
        valid = ", ".join(f.value for f in ArtifactFormat)
        raise InvalidInput(f"Unknown artifact format {artifact_format!r}; valid formats: {valid}.") from None
    refuse_pickle(data, fmt.value)
    if fmt is ArtifactFormat.SKOPS:
        import skops.io as sio

        if data[:2] != b"PK":
            raise UnsafeArtifact(
                "An artifact declared as 'skops' must be a skops zip archive; these bytes are not. "
                "Re-save the model with yarnit."
            )
        trusted = audit_skops(data)
        return SklearnPredictor(sio.loads(data, trusted=trusted))
    if fmt is ArtifactFormat.LIGHTGBM_TEXT:
        from .lightgbm_format import LightgbmPredictor

        return LightgbmPredictor.from_bytes(data)
    if fmt in _COMPOSITE_LOADERS:
        module, name = _COMPOSITE_LOADERS[fmt]
        loader: Any = getattr(importlib.import_module(module), name)
        return loader.from_bytes(data)  # type: ignore[no-any-return]
    raise InvalidInput(f"Artifact format {fmt.value!r} is not servable yet; use skops or lightgbm-text.")


# -- composite models: bundles of named members ------------------------------------------------------
# Their loaders live in yarnit.recipes, the layer that composes models, and are found through this fixed
# table, never through a name read from the artifact. (Exit: a plugin registry, once a model family
# outside yarnit needs a composite format.)
_COMPOSITE_LOADERS: dict[ArtifactFormat, tuple[str, str]] = {
    ArtifactFormat.RECS_NPZ: ("yarnit.recipes.recommenders", "RecommenderSet"),
    ArtifactFormat.RANKER: ("yarnit.recipes.ranker", "RankingModel"),
    ArtifactFormat.INTENT: ("yarnit.recipes.intent", "IntentModel"),
}
MANIFEST = "manifest.json"
_MAX_MEMBERS = 1024
_MAX_UNPACKED_BYTES = 4 << 30


def dump_bundle(members: Mapping[str, bytes]) -> bytes:
    """A zip of ``members`` (name → bytes), sorted, with fixed timestamps: equal content, equal bytes."""
    for name in members:
        if name.endswith((".pkl", ".pickle", ".joblib")) or "/" in name or name.startswith("."):
            raise InvalidInput(f"Bundle member name {name!r} is not allowed; use plain names such as "
                               "'manifest.json' or 'items.npy'.")
    return stable_zip(members)


def read_bundle(data: bytes, claimed: str) -> dict[str, bytes]:
    """The members of a bundle written by :func:`dump_bundle` (pickles refused, manifest required)."""
    refuse_pickle(data, claimed)
    if data[:2] != b"PK":
        raise UnsafeArtifact(f"An artifact declared as {claimed!r} must be a yarnit bundle (a zip archive); these "
                             "bytes are not. Build it with yarnit.")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
            if len(names) > _MAX_MEMBERS:
                raise UnsafeArtifact(f"The {claimed!r} bundle has {len(names)} members; at most {_MAX_MEMBERS}.")
            unpacked = sum(info.file_size for info in archive.infolist())
            if unpacked > _MAX_UNPACKED_BYTES:  # a zip bomb, or a model far larger than any yarnit writes
                raise UnsafeArtifact(f"The {claimed!r} bundle unpacks to {unpacked:,} bytes; at most "
                                     f"{_MAX_UNPACKED_BYTES:,}.")
            members = {name: archive.read(name) for name in names}
    except zipfile.BadZipFile as exc:
        raise UnsafeArtifact(f"The {claimed!r} bundle is not a readable zip archive ({exc}).") from None
    if MANIFEST not in members:
        raise InvalidInput(f"The {claimed!r} bundle has no {MANIFEST}; members: {', '.join(sorted(members))}.")
    return members


def bundle_manifest(members: Mapping[str, bytes], claimed: str) -> dict[str, Any]:
    """The bundle's manifest, after checking every member it pins (``"members": {name: sha256}``)."""
    from yarnit.core.hashing import sha256_bytes

    try:
        manifest = json.loads(members[MANIFEST])
    except (KeyError, ValueError) as exc:
        raise InvalidInput(f"The {claimed!r} bundle's {MANIFEST} is not valid JSON ({exc}).") from None
    if not isinstance(manifest, dict):
        raise InvalidInput(f"The {claimed!r} bundle's {MANIFEST} must be a JSON object.")
    pinned = manifest.get("members") or {}
    for name, sha in pinned.items():
        if name not in members:
            raise IntegrityError(f"The {claimed!r} bundle pins member {name!r}, which it does not contain.")
        got = sha256_bytes(members[name])
        if got != sha:
            raise IntegrityError(f"The {claimed!r} bundle's member {name!r} has sha256 {got[:12]}…, but its "
                                 f"manifest pins {str(sha)[:12]}…: the bundle was altered. Rebuild it with yarnit.")
    return manifest


def dump_arrays(arrays: Mapping[str, np.ndarray]) -> bytes:
    """numpy arrays as a byte-stable ``.npz`` (no object arrays: strings must be fixed-width unicode)."""
    members = {}
    for name, array in arrays.items():
        value = np.asarray(array)
        if value.dtype.hasobject:
            raise InvalidInput(f"Array {name!r} has dtype object, which needs pickle; store strings with "
                               "array.astype(str).")
        buffer = io.BytesIO()
        np.lib.format.write_array(buffer, value, allow_pickle=False)
        members[f"{name}.npy"] = buffer.getvalue()
    return stable_zip(members)


def load_arrays(data: bytes) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` written by :func:`dump_arrays`, read with ``allow_pickle=False``."""
    refuse_pickle(data, "npz")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise UnsafeArtifact(f"Refusing arrays that numpy cannot read without pickle: {exc}") from None
    # numpy hands out a member that is not an .npy as its raw bytes: refuse it rather than pass bytes on as an array
    stray = sorted(name for name, value in arrays.items() if not isinstance(value, np.ndarray))
    if stray:
        raise UnsafeArtifact(f"Refusing arrays: member(s) {', '.join(repr(n) for n in stray[:5])} are not numpy "
                             ".npy arrays. Write the arrays with yarnit (dump_arrays).")
    return arrays


__all__ = [
    "MANIFEST",
    "SKOPS_LOADERS",
    "SKOPS_TRUSTED_TYPES",
    "Predictor",
    "SklearnPredictor",
    "audit_skops",
    "bundle_manifest",
    "dump_arrays",
    "dump_bundle",
    "dump_sklearn",
    "load_arrays",
    "load_predictor",
    "read_bundle",
    "refuse_pickle",
]
