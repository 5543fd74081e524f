"""Batch inference: a Parquet file in, the same rows plus a ``prediction`` column out.

The input is streamed in chunks (``chunk_rows`` at a time locally, one
Parquet row group per task on Dask), so memory stays flat however large the
file. Each chunk goes through exactly the serving path: the version's
input contract declared in its signature (types, ranges, imputation, and
fixed values such as ``position``: :mod:`yarnit.serving.inputs`, the same call
the data plane makes, so a row scores the same on both paths), the
request-time transform, then the compiled ONNX predictor when it passed its
check against the native model (else the native one). The output is written
beside its final name and renamed into place when complete, so a crash never
leaves a half-written file under the output name. Its Parquet metadata
records the model, version, artifact sha256 and scoring path.

On Dask (``client=``), the artifact bytes are broadcast to the workers once;
each worker verifies their sha256, loads the model once per process, and
scores the row groups it is given. At most two tasks per worker are in
flight, and results are written in input order.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from yarnit.core.errors import IntegrityError, InvalidInput, NotFound
from yarnit.features import get_transform
from yarnit.registry import ModelRegistry, load_predictor

from .compiled import compile_predictor
from .inputs import Contract, Counts, conform
from .onlinefeatures import FeatureSpec
from .runtime import example_rows

PREDICTION = "prediction"
Progress = Callable[[int], None]


@dataclass(frozen=True)
class ModelBlob:
    """What a worker needs to score: verified bytes plus the version's identity and signature."""

    model: str
    version: int
    artifact_sha256: str
    artifact_format: str
    signature: dict[str, Any]
    data: bytes
    compile: bool = True


@dataclass(frozen=True)
class BatchResult:
    model: str
    version: int
    alias: str
    rows: int
    chunks: int
    output: str
    seconds: float
    mode: str  # "local" or "dask"
    path: str  # scoring path: linear-onnx, tree-onnx or native
    imputed: dict[str, int]  # "feature:reason" -> values imputed per the input contract

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class _Scorer:
    def __init__(self, blob: ModelBlob) -> None:
        if hashlib.sha256(blob.data).hexdigest() != blob.artifact_sha256:
            raise IntegrityError(f"The artifact of {blob.model} v{blob.version} changed in transit: its bytes do "
                                 f"not hash to {blob.artifact_sha256}.")
        native = load_predictor(blob.data, blob.artifact_format)
        name = blob.signature.get("transform")
        self.transform = get_transform(name) if name else None
        self.contract = Contract.of(blob.signature)
        self.predictor = native
        self.path = "native"
        if blob.compile:
            probes = example_rows(blob.signature, FeatureSpec.from_signature(blob.signature))
            rows = [self.transform(p) for p in probes] if self.transform else probes
            result = compile_predictor(native, rows)
            if result.compiled is not None:
                self.predictor, self.path = result.compiled, result.kind

    def score_table(self, table: pa.Table, first_row: int = 0, imputed: Counts | None = None) -> pa.Table:
        """``table`` with its prediction column; ``first_row`` numbers rows in errors (the file's offset)."""
        rows = [{k: v for k, v in row.items() if v is not None} for row in table.to_pylist()]
        rows = conform(self.contract, rows, imputed, first_row)
        if self.transform is not None:
            rows = [self.transform(r) for r in rows]
        values = np.asarray(self.predictor.predict_proba(rows), dtype=np.float64) if rows else np.zeros(0)
        return table.append_column(PREDICTION, pa.array(values, type=pa.float64()))


_WORKER_SCORERS: dict[str, _Scorer] = {}


def _scorer_for(blob: ModelBlob) -> _Scorer:
    scorer = _WORKER_SCORERS.get(blob.artifact_sha256)
    if scorer is None:
        scorer = _WORKER_SCORERS[blob.artifact_sha256] = _Scorer(blob)
    return scorer


def score_row_group(path: str, row_group: int, blob: ModelBlob) -> tuple[pa.Table, Counts]:
    """One Dask task: read a row group, score it, return it with its prediction column (and imputations)."""
    parquet = pq.ParquetFile(path)
    first_row = sum(parquet.metadata.row_group(i).num_rows for i in range(row_group))
    imputed: Counts = {}
    return _scorer_for(blob).score_table(parquet.read_row_group(row_group), first_row, imputed), imputed


def _output_schema(schema: pa.Schema, blob: ModelBlob, path: str) -> pa.Schema:
    if PREDICTION in schema.names:
        raise InvalidInput(f"The input already has a column named {PREDICTION!r}; rename it before scoring.")
    metadata = dict(schema.metadata or {})
    metadata.update({b"yarnit.model": blob.model.encode(), b"yarnit.version": str(blob.version).encode(),
                     b"yarnit.artifact_sha256": blob.artifact_sha256.encode(), b"yarnit.path": path.encode()})
    return schema.append(pa.field(PREDICTION, pa.float64())).with_metadata(metadata)


def predict_batch(registry: ModelRegistry, model: str, input_path: str | Path, output_path: str | Path, *,
                  alias: str = "production", chunk_rows: int = 65_536, client: Any = None,
                  compile: bool = True, progress: Progress | None = None) -> BatchResult:
    """Score every row of ``input_path`` with the version behind ``alias``; write ``output_path``."""
    source = Path(input_path)
    target = Path(output_path)
    if not source.is_file():
        raise NotFound(f"Input file {str(source)!r} does not exist. Give a Parquet file of raw feature rows.")
    if chunk_rows < 1:
        raise InvalidInput(f"chunk_rows must be at least 1; got {chunk_rows}.")
    version = registry.resolve(model, alias)
    blob = ModelBlob(model, version.version, version.artifact_sha256, version.artifact_format.value,
                     dict(version.signature), registry.ws.artifacts.get_bytes(version.artifact_sha256), compile)
    try:
        parquet = pq.ParquetFile(source)
    except (pa.ArrowInvalid, OSError) as exc:
        raise InvalidInput(f"{str(source)!r} is not a readable Parquet file: {exc}") from None
    started = time.monotonic()
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.parent / f".tmp-{target.name}.{os.getpid()}.{os.urandom(4).hex()}"
    rows = chunks = 0
    imputed: Counts = {}
    local = _Scorer(blob) if client is None else None
    path = local.path if local is not None else _remote_path(client, blob)
    schema = _output_schema(parquet.schema_arrow, blob, path)
    try:
        with pq.ParquetWriter(temp, schema) as writer:
            parts = _local_parts(parquet, local, chunk_rows, imputed) if local is not None else \
                _dask_parts(client, str(source), parquet.metadata.num_row_groups, blob, imputed)
            for table in parts:
                writer.write_table(table.replace_schema_metadata(schema.metadata))
                rows += table.num_rows
                chunks += 1
                if progress is not None:
                    progress(table.num_rows)
        with open(temp, "rb") as stream:
            os.fsync(stream.fileno())
        os.replace(temp, target)
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    finally:
        temp.unlink(missing_ok=True)
    return BatchResult(model, version.version, alias, rows, chunks, str(target), time.monotonic() - started,
                       "local" if client is None else "dask", path,
                       {f"{feature}:{reason}": n for (feature, reason), n in sorted(imputed.items())})


def _local_parts(parquet: pq.ParquetFile, scorer: _Scorer, chunk_rows: int, imputed: Counts) -> Iterator[pa.Table]:
    first_row = 0
    for batch in parquet.iter_batches(batch_size=chunk_rows):
        yield scorer.score_table(pa.Table.from_batches([batch]), first_row, imputed)
        first_row += batch.num_rows


def _remote_path(client: Any, blob: ModelBlob) -> str:
    return str(client.submit(lambda b: _scorer_for(b).path, blob, pure=False).result())


def _dask_parts(client: Any, path: str, row_groups: int, blob: ModelBlob, imputed: Counts) -> Iterator[pa.Table]:
    [shared] = client.scatter([blob], broadcast=True)
    workers = max(1, len(client.scheduler_info().get("workers", {})))
    window: deque[Any] = deque()
    next_group = 0
    while next_group < row_groups or window:
        while next_group < row_groups and len(window) < 2 * workers:
            window.append(client.submit(score_row_group, path, next_group, shared, pure=False))
            next_group += 1
        table, counts = window.popleft().result()
        for key, n in counts.items():
            imputed[key] = imputed.get(key, 0) + n
        yield table


__all__ = ["PREDICTION", "BatchResult", "ModelBlob", "predict_batch", "score_row_group"]
