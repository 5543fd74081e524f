"""``yarnit pipeline …`` and ``yarnit runs …``: run, inspect, resume and reproduce pipelines."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import runpy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from yarnit.core.errors import InvalidInput
from yarnit.recipes import BUILTIN_PIPELINES, builtin_pipeline
from yarnit.storage import Workspace
from yarnit.training import Pipeline, PipelineRunner, RunStore
from yarnit.training.dask import dask_client
from yarnit.training.params import declared
from yarnit.training.runner import check_run
from yarnit.training.reproduce import reproduce

from .common import JSON_OPTION, cli_errors, console, emit, workspace

pipeline_app = typer.Typer(help="Training pipelines.", no_args_is_help=True)
runs_app = typer.Typer(help="Pipeline runs: list, show, resume, reproduce.", no_args_is_help=True)


def resolve(spec: str) -> tuple[Pipeline, str]:
    """A pipeline from ``NAME`` (built-in), ``FILE.py`` or a recorded source (``builtin:…``/``file:…``)."""
    kind, _, rest = spec.partition(":")
    if kind == "builtin" and rest:
        return builtin_pipeline(rest), spec
    path = Path(rest if kind == "file" and rest else spec)
    if path.suffix == ".py" or path.exists():
        if not path.is_file():
            raise InvalidInput(f"Pipeline file {str(path)!r} does not exist.")
        namespace = runpy.run_path(str(path))
        pipeline = namespace.get("pipeline")
        if pipeline is None and callable(namespace.get("build_pipeline")):
            pipeline = namespace["build_pipeline"]()
        if not isinstance(pipeline, Pipeline):
            raise InvalidInput(
                f"{path} must define `pipeline = Pipeline(...)` or `build_pipeline()`; found neither."
            )
        return pipeline, f"file:{path.resolve()}"
    return builtin_pipeline(spec), f"builtin:{spec}"


def parse_settings(values: list[str]) -> dict[str, Any]:
    """``key=value`` pairs; values are JSON when they parse as JSON, text otherwise."""
    config: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise InvalidInput(f"--set {item!r} is not key=value (e.g. --set trainer=lightgbm --set train.days=5).")
        try:
            config[key] = json.loads(raw)
        except json.JSONDecodeError:
            config[key] = raw
    return config


@contextlib.contextmanager
def _runner(ws: Workspace, use_dask: bool) -> Iterator[PipelineRunner]:
    if not use_dask:  # YARNIT_DASK_SCHEDULER says where Dask runs; --dask says whether
        yield PipelineRunner(ws)
        return
    with dask_client(ws.settings.dask_scheduler) as client:
        yield PipelineRunner(ws, dask_client=client)


@contextlib.contextmanager
def _progress(enabled: bool) -> Iterator[Any]:
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                  disable=not enabled) as bar:
        task = bar.add_task("starting", total=None)

        def update(step: str, state: str) -> None:
            bar.update(task, description=f"{step}: {state}")
            if state in ("done", "cached", "failed", "done earlier"):
                bar.console.print(f"  {step}: {state}")

        yield update


def _show_result(result: Any, as_json: bool) -> None:
    data = result.run.to_dict() | {"steps": [_step_dict(s) for s in result.steps]}

    def human() -> None:
        console.print(f"run {result.run.id}: {result.run.state}")
        _step_table(result.steps)
        if result.run.metrics.get("summary"):  # what the register step did: registered, blessed, promoted, moved
            console.print(result.run.metrics["summary"])

    emit(data, as_json, human)


def _step_dict(s: Any) -> dict[str, Any]:
    data = dict(s.__dict__)
    for key in ("started_at", "ended_at"):
        data[key] = data[key].isoformat() if data[key] else None
    return data


def _step_table(steps: list[Any]) -> None:
    table = Table("step", "state", "attempts", "wall s", "rows", "rows/s", "error")
    for s in steps:
        table.add_row(s.step, s.state, str(s.attempts), "" if s.wall_s is None else f"{s.wall_s:.2f}",
                      "" if s.rows is None else f"{s.rows:,}",
                      "" if s.rows_per_s is None else f"{s.rows_per_s:,.0f}", (s.error or "")[:80])
    console.print(table)


@pipeline_app.command("run")
@cli_errors
def run(spec: str = typer.Argument(..., help="Built-in pipeline name or a Python file defining `pipeline`."),
        set_: list[str] = typer.Option([], "--set", help="Config override key=value (step.key for one step)."),
        seed: int = typer.Option(0, help="Seed of the run."),
        force: bool = typer.Option(False, help="Ignore the step cache."),
        dask: bool = typer.Option(False, "--dask", help="Train on Dask (YARNIT_DASK_SCHEDULER or a local cluster); "
                                  "only steps that can use it, e.g. trainer=lightgbm."),
        as_json: bool = JSON_OPTION) -> None:
    """Run a pipeline; unchanged steps come from the cache."""
    pipeline, source = resolve(spec)
    config = check_run(pipeline, parse_settings(set_), dask=dask)  # refused before a cluster starts
    with workspace() as ws, _runner(ws, dask) as runner, _progress(not as_json) as progress:
        result = runner.run(pipeline, config=config, seed=seed, source=source, force=force, progress=progress)
    _show_result(result, as_json)


@pipeline_app.command("list")
@cli_errors
def list_pipelines(as_json: bool = JSON_OPTION) -> None:
    """List the built-in pipelines with their steps and parameters (type, range, default) in --json."""
    rows = [{"name": n, "steps": [s.name for s in p.steps], "description": p.description,
             "params": [{"name": param.name, "expected": param.expected(), "default": p.config.get(param.name),
                         "help": param.help} for param in declared(p).values()]}
            for n, p in ((n, f()) for n, f in BUILTIN_PIPELINES.items())]
    emit(rows, as_json, lambda: [console.print(f"{r['name']}: {' → '.join(r['steps'])}") for r in rows])


@runs_app.command("list")
@cli_errors
def list_runs(pipeline: str = typer.Option(None, help="Only runs of this pipeline."),
              limit: int = typer.Option(20, min=1, max=1000), as_json: bool = JSON_OPTION) -> None:
    """Recent runs, newest first; a run whose process died shows as interrupted, with its resume command."""
    with workspace() as ws:
        runs = RunStore(ws).list(pipeline, limit)

    def human() -> None:
        table = Table("run", "pipeline", "state", "started", "error", "next")
        for r in runs:
            table.add_row(r.id, r.pipeline, r.state, r.started_at.isoformat(timespec="seconds"), (r.error or "")[:60],
                          r.resume_command or "")
        console.print(table)

    emit([r.to_dict() for r in runs], as_json, human)


@runs_app.command("show")
@cli_errors
def show_run(run_id: str, as_json: bool = JSON_OPTION) -> None:
    """A run's config, environment, metrics and steps."""
    with workspace() as ws:
        store = RunStore(ws)
        run_ = store.get(run_id)
        steps = store.steps(run_id)
    if run_.state == "interrupted":  # the step that was running when the process died
        steps = [dataclasses.replace(s, state="interrupted") if s.state == "running" else s for s in steps]
    data = run_.to_dict() | {"steps": [_step_dict(s) for s in steps]}

    def human() -> None:
        console.print(f"run {run_.id} of {run_.pipeline}: {run_.state} (seed {run_.seed}, code {run_.code_version})")
        if run_.error:
            console.print(f"error: {run_.error}")
        if run_.state == "interrupted":
            console.print(f"no heartbeat since {run_.heartbeat_at} (lease {run_.lease_s} s): its process died. "
                          f"Resume it with: {run_.resume_command}")
        console.print(f"metrics: {json.dumps(run_.metrics, default=str)}")
        _step_table(steps)

    emit(data, as_json, human)


@runs_app.command("resume")
@cli_errors
def resume(run_id: str, dask: bool = typer.Option(False, "--dask"), as_json: bool = JSON_OPTION) -> None:
    """Continue a failed or killed run from its first unfinished step."""
    with workspace() as ws:
        recorded = RunStore(ws).get(run_id)
        pipeline, _ = resolve(recorded.source or "")
        check_run(pipeline, recorded.config, dask=dask)
        with _runner(ws, dask) as runner, _progress(not as_json) as progress:
            result = runner.resume(run_id, pipeline, progress=progress)
    _show_result(result, as_json)


@runs_app.command("reproduce")
@cli_errors
def reproduce_run(run_id: str, tolerance: float = typer.Option(1e-6, help="Largest score difference allowed."),
                  dask: bool = typer.Option(False, "--dask"), as_json: bool = JSON_OPTION) -> None:
    """Retrain from a run's records and compare the models with the originals."""
    with workspace() as ws:
        source = RunStore(ws).get(run_id).source or ""
        pipeline, _ = resolve(source)
        with _runner(ws, dask) as runner, _progress(not as_json) as progress:
            report = reproduce(runner, run_id, pipeline, tolerance=tolerance, progress=progress)
    data = report.to_dict()

    def human() -> None:
        for m in report.models:
            how = "identical bytes" if m.identical_bytes else f"max |Δscore| {m.max_abs_diff}"
            console.print(f"{m.output}: {how} → {'reproduced' if m.within_tolerance else 'NOT reproduced'}")
        console.print(f"reproduction run {report.reproduced_run}: {'ok' if report.reproduced else 'FAILED'}")

    emit(data, as_json, human)
    if not report.reproduced:
        raise typer.Exit(2)
