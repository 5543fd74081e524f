"""Batch inference: streamed Parquet in and out, locally and on a real Dask LocalCluster."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from yarnit.core import InvalidInput, NotFound
from yarnit.registry import ModelRegistry
from yarnit.serving.batch import predict_batch
from yarnit.storage import Workspace


def _input(path: Path, n: int = 1_000, row_group: int = 250) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"id": np.arange(n), "fiber": rng.choice(["merino", "acrylic", "silk", None], n),
                          "price": rng.uniform(1, 40, n)})
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=row_group)
    return frame


def _expected(ws: Workspace, frame: pd.DataFrame, version: int = 1) -> np.ndarray:
    registry = ModelRegistry(ws)
    predictor = registry.load(registry.get("ctr", version))
    rows = [{k: v for k, v in r.items() if v is not None and k != "id"} for r in
            frame.astype(object).where(frame.notna(), None).to_dict("records")]
    return np.asarray(predictor.predict_proba(rows))


def test_local_batch_streams_chunks_and_matches_the_native_model(ctr_ws: Workspace, tmp_path: Path) -> None:
    frame = _input(tmp_path / "in.parquet")
    seen: list[int] = []
    result = predict_batch(ModelRegistry(ctr_ws), "ctr", tmp_path / "in.parquet", tmp_path / "out.parquet",
                           chunk_rows=300, progress=seen.append)
    assert (result.rows, result.chunks, result.version, result.path, result.mode) == (1000, 4, 1, "linear-onnx",
                                                                                      "local")
    assert seen == [300, 300, 300, 100]
    out = pq.read_table(tmp_path / "out.parquet")
    assert out.column("id").to_pylist() == list(range(1000))
    np.testing.assert_allclose(out.column("prediction").to_numpy(), _expected(ctr_ws, frame), atol=1e-9)
    assert out.schema.metadata[b"yarnit.version"] == b"1"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")] == []


def test_batch_on_a_dask_local_cluster_gives_the_same_rows(ctr_ws: Workspace, tmp_path: Path) -> None:
    from distributed import Client, LocalCluster

    frame = _input(tmp_path / "in.parquet", n=2_000, row_group=400)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        result = predict_batch(ModelRegistry(ctr_ws), "ctr", tmp_path / "in.parquet", tmp_path / "out.parquet",
                               client=client)
        assert len(client.scheduler_info()["workers"]) == 2
    assert (result.rows, result.chunks, result.mode, result.path) == (2000, 5, "dask", "linear-onnx")
    out = pq.read_table(tmp_path / "out.parquet")
    assert out.column("id").to_pylist() == list(range(2000))  # written in input order
    np.testing.assert_allclose(out.column("prediction").to_numpy(), _expected(ctr_ws, frame), atol=1e-9)


def test_bad_inputs_are_refused_with_a_reason(ctr_ws: Workspace, tmp_path: Path) -> None:
    registry = ModelRegistry(ctr_ws)
    with pytest.raises(NotFound, match="does not exist"):
        predict_batch(registry, "ctr", tmp_path / "missing.parquet", tmp_path / "out.parquet")
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(InvalidInput, match="not a readable Parquet"):
        predict_batch(registry, "ctr", tmp_path / "junk.parquet", tmp_path / "out.parquet")
    pq.write_table(pa.table({"prediction": [1.0]}), tmp_path / "clash.parquet")
    with pytest.raises(InvalidInput, match="already has a column"):
        predict_batch(registry, "ctr", tmp_path / "clash.parquet", tmp_path / "out.parquet")
    assert not (tmp_path / "out.parquet").exists()


def test_the_cli_command_scores_and_prints_json(ctr_ws: Workspace, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from yarnit.cli.serving import predict_batch as command

    _input(tmp_path / "in.parquet", n=100)
    app = typer.Typer()
    app.command("predict-batch")(command)
    app.command("noop")(lambda: None)
    monkeypatch.setenv("YARNIT_HOME", str(ctr_ws.home))
    result = CliRunner().invoke(app, ["predict-batch", "ctr", str(tmp_path / "in.parquet"),
                                      str(tmp_path / "out.parquet"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows"] == 100
    missing = CliRunner().invoke(app, ["predict-batch", "nope", str(tmp_path / "in.parquet"),
                                       str(tmp_path / "o2.parquet")])
    assert missing.exit_code == 1 and "no model named 'nope'" in missing.output
