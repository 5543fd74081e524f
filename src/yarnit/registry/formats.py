"""Turning trained models into bytes and back, without ever unpickling.

* scikit-learn → skops, loaded with an explicit list of trusted types; any
  type outside :data:`TRUSTED_SKOPS_PREFIXES` is refused before loading.
* LightGBM → its own text model format (parsed, not executed).
* ONNX → loaded by ONNX Runtime.

Bytes that look like a pickle (also gzip- or zip-wrapped) are refused with
:class:`~yarnit.core.UnsafeArtifact`, whatever format they claim.
"""

from __future__ import annotations

import gzip
import io
import zipfile
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from yarnit.core.errors import InvalidInput, UnsafeArtifact

from .models import ArtifactFormat

# Types a yarnit model may contain. Anything else makes the load fail loudly.
TRUSTED_SKOPS_PREFIXES = ("sklearn.", "numpy.", "builtins.", "collections.OrderedDict", "scipy.sparse.")


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
    import json

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
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            target.writestr(info, files[name])
    return out.getvalue()


def dump_sklearn(estimator: Any) -> bytes:
    """Serialize a fitted scikit-learn estimator with skops (byte-stable for equal models)."""
    import skops.io as sio

    data = _deterministic_zip(sio.dumps(estimator))
    _check_trusted(data)
    return data


def _check_trusted(data: bytes) -> list[str]:
    import skops.io as sio

    untrusted = sio.get_untrusted_types(data=data)
    refused = [t for t in untrusted if not t.startswith(TRUSTED_SKOPS_PREFIXES)]
    if refused:
        raise UnsafeArtifact(
            f"skops artifact contains types outside yarnit's trusted list: {', '.join(sorted(refused))}. "
            f"Trusted prefixes: {', '.join(TRUSTED_SKOPS_PREFIXES)}. Use standard scikit-learn components, "
            "or export the model to ONNX."
        )
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
        trusted = _check_trusted(data)
        return SklearnPredictor(sio.loads(data, trusted=trusted))
    if fmt is ArtifactFormat.LIGHTGBM_TEXT:
        from .lightgbm_format import LightgbmPredictor

        return LightgbmPredictor.from_bytes(data)
    raise InvalidInput(f"Artifact format {fmt.value!r} is not servable yet; use skops or lightgbm-text.")


__all__ = [
    "TRUSTED_SKOPS_PREFIXES",
    "Predictor",
    "SklearnPredictor",
    "dump_sklearn",
    "load_predictor",
    "refuse_pickle",
]
