"""``yarnit predict-batch MODEL INPUT OUTPUT``: score a Parquet file with a served model version."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from yarnit.core.errors import MissingDependency
from yarnit.registry import ModelRegistry
from yarnit.serving.batch import predict_batch as run_batch

from .common import JSON_OPTION, cli_errors, console, emit, workspace


@contextlib.contextmanager
def _dask_client(scheduler: str | None) -> Iterator[Any]:
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:  # pragma: no cover - distributed is a core dependency
        raise MissingDependency("--dask needs dask.distributed: pip install 'dask[distributed]'") from exc
    if scheduler:
        with Client(scheduler) as client:
            yield client
        return
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        yield client


def _row_count(path: Path) -> int:
    """Rows in ``path`` for the progress bar; 0 when it is not a readable Parquet file (scoring then says why)."""
    try:
        return pq.ParquetFile(path).metadata.num_rows if path.is_file() else 0
    except (pa.ArrowInvalid, OSError):
        return 0


@cli_errors
def predict_batch(
    model: str = typer.Argument(..., help="Model name, e.g. ctr."),
    input: Path = typer.Argument(..., help="Parquet file of raw feature rows."),  # noqa: A002 - CLI word
    output: Path = typer.Argument(..., help="Parquet file to write: the input rows plus 'prediction'."),
    alias: str = typer.Option("production", "--alias", help="Alias of the version to score with."),
    dask: bool = typer.Option(False, "--dask", help="Run on Dask: YARNIT_DASK_SCHEDULER, else a local "
                              "2-worker cluster. One task per Parquet row group."),
    chunk_rows: int = typer.Option(65_536, "--chunk-rows", min=1, help="Rows per streamed chunk (local)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Score every row of INPUT with MODEL's version behind --alias and write OUTPUT (streamed)."""
    with workspace() as ws:
        total = _row_count(input)
        registry = ModelRegistry(ws)
        with Progress(TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, disable=as_json, transient=True) as progress:
            task = progress.add_task("rows", total=total or None)

            def advance(n: int) -> None:
                progress.update(task, advance=n)

            if dask:
                with _dask_client(ws.settings.dask_scheduler) as client:
                    result = run_batch(registry, model, input, output, alias=alias, client=client,
                                       progress=advance)
            else:
                result = run_batch(registry, model, input, output, alias=alias, chunk_rows=chunk_rows,
                                   progress=advance)
    data = result.as_dict()
    emit(data, as_json, lambda: console.print(
        f"scored {result.rows:,} rows with {result.model} v{result.version} ({result.path}, {result.mode}) "
        f"in {result.seconds:.2f} s → {result.output}"))


__all__ = ["predict_batch"]
