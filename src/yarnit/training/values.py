"""Typed values that flow between pipeline steps, and how they are stored.

Every output of a step is stored in the content-addressed artifact store, and
the step's record keeps a small JSON entry per output (its kind and sha256).
A cached or resumed step hands those entries on instead of recomputing, and a
cache key is built from the entries of a step's inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from yarnit.core.errors import InvalidInput
from yarnit.core.hashing import canonical_json, sha256_json
from yarnit.registry import ArtifactFormat
from yarnit.storage import LocalArtifactStore


class ValueKind(str, Enum):
    TABLE = "table"  # a pandas DataFrame (stored as Parquet)
    REPORT = "report"  # a JSON document (validation, evaluation, gate verdicts)
    MODEL = "model"  # a TrainedModel (artifact bytes + metadata)
    REF = "ref"  # a small JSON pointer to something recorded elsewhere (dataset or model version)


@dataclass(frozen=True)
class TrainedModel:
    """A trained model that is not registered yet: safe artifact bytes plus what serving needs."""

    artifact: bytes
    artifact_format: ArtifactFormat
    trainer: str
    params: dict[str, Any] = field(default_factory=dict)
    signature: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)  # rows, seconds, rows/s, warm start …
    probe: list[dict[str, Any]] = field(default_factory=list)  # raw instances for checks and reproduction

    def meta(self) -> dict[str, Any]:
        return {"artifact_format": self.artifact_format.value, "trainer": self.trainer, "params": self.params,
                "signature": self.signature, "training": self.training, "probe": self.probe}


def _table_bytes(frame: pd.DataFrame) -> bytes:
    import io

    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), sink, compression="zstd")
    return sink.getvalue()


def store_value(artifacts: LocalArtifactStore, kind: ValueKind, value: Any) -> dict[str, Any]:
    """Persist one step output; return its JSON entry."""
    if kind is ValueKind.TABLE:
        if not isinstance(value, pd.DataFrame):
            raise InvalidInput(f"A 'table' output must be a pandas DataFrame, got {type(value).__name__}.")
        ref = artifacts.put_bytes(_table_bytes(value))
        return {"kind": kind.value, "sha256": ref.sha256, "rows": len(value)}
    if kind is ValueKind.REPORT:
        if not isinstance(value, dict):
            raise InvalidInput(f"A 'report' output must be a dict, got {type(value).__name__}.")
        ref = artifacts.put_bytes(canonical_json(value))
        return {"kind": kind.value, "sha256": ref.sha256}
    if kind is ValueKind.MODEL:
        if not isinstance(value, TrainedModel):
            raise InvalidInput(f"A 'model' output must be a TrainedModel, got {type(value).__name__}.")
        model = artifacts.put_bytes(value.artifact)
        meta = artifacts.put_bytes(canonical_json(value.meta()))
        return {"kind": kind.value, "sha256": model.sha256, "meta_sha256": meta.sha256}
    if kind is ValueKind.REF:
        if not isinstance(value, dict):
            raise InvalidInput(f"A 'ref' output must be a small dict, got {type(value).__name__}.")
        return {"kind": kind.value, "value": value, "sha256": sha256_json(value)}
    raise InvalidInput(f"Unknown output kind {kind!r}; valid kinds: {', '.join(k.value for k in ValueKind)}.")


def load_value(artifacts: LocalArtifactStore, entry: dict[str, Any]) -> Any:
    """The value an entry points at, read from verified bytes."""
    import io
    import json

    kind = ValueKind(entry["kind"])
    if kind is ValueKind.TABLE:
        return pq.read_table(io.BytesIO(artifacts.get_bytes(entry["sha256"]))).to_pandas()
    if kind is ValueKind.REPORT:
        return json.loads(artifacts.get_bytes(entry["sha256"]))
    if kind is ValueKind.MODEL:
        meta = json.loads(artifacts.get_bytes(entry["meta_sha256"]))
        return TrainedModel(
            artifact=artifacts.get_bytes(entry["sha256"]), artifact_format=ArtifactFormat(meta["artifact_format"]),
            trainer=meta["trainer"], params=meta["params"], signature=meta["signature"],
            training=meta["training"], probe=meta["probe"],
        )
    return entry["value"]


def entry_available(artifacts: LocalArtifactStore, entry: dict[str, Any]) -> bool:
    """True when every artifact an entry needs is still stored (a purge may have removed it)."""
    if entry["kind"] == ValueKind.REF.value:
        return True
    shas = [entry["sha256"]] + ([entry["meta_sha256"]] if "meta_sha256" in entry else [])
    return all(artifacts.exists(sha) for sha in shas)


__all__ = ["TrainedModel", "ValueKind", "entry_available", "load_value", "store_value"]
