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


def dump_sklearn(estimator: Any) -> bytes:
    """Serialize a fitted scikit-learn estimator with skops."""
    import skops.io as sio

    data: bytes = sio.dumps(estimator)
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
