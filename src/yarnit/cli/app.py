"""The ``yarnit`` command: ``yarnit <noun> <verb>``, plus ``init``, ``serve`` and ``demo``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.markup import escape
from rich.table import Table
from rich.text import Text

import yarnit
from yarnit.core.errors import YarnitError
from yarnit.core.settings import load_settings

from . import (
    actions,
    alerts,
    data,
    deploy,
    evaluation,
    features,
    incidents,
    labels,
    lineage,
    models,
    monitor,
    monitor_run,  # noqa: F401  (attaches `yarnit monitor run` to the monitor app)
    pipelines,
    rollout,
    slo,
    tokens,
)
from . import loop as loop_cli
from .backup import artifacts_app, backup_app, restore
from .readiness import readiness
from .capacity import capacity
from .common import JSON_OPTION, cli_errors, console, emit, fail, options, workspace
from .loadtest import loadtest
from .serving import predict_batch

app = typer.Typer(
    name="yarnit",
    help="Reliable machine learning in production, run the way SRE runs services.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(models.app, name="models")
app.add_typer(pipelines.pipeline_app, name="pipeline")
app.add_typer(pipelines.runs_app, name="runs")
app.add_typer(features.app, name="features")
app.add_typer(evaluation.app, name="eval")
app.command("predict-batch")(predict_batch)
app.add_typer(data.app, name="data")
app.add_typer(lineage.app, name="lineage")
app.add_typer(tokens.app, name="tokens")
app.add_typer(tokens.access_app, name="access")
app.add_typer(slo.app, name="slo")
app.add_typer(monitor.app, name="monitor")  # drift, summarize; labels, quality (monitor_quality); run (monitor_run)
app.add_typer(alerts.app, name="alerts")
app.add_typer(actions.app, name="emergency")
app.add_typer(rollout.app, name="rollout")
app.add_typer(incidents.app, name="incidents")
app.add_typer(deploy.app, name="deploy")  # yarnit deploy lb|k8s (scale-out configuration)
app.add_typer(labels.app, name="labels")
app.add_typer(loop_cli.app, name="loop")  # yarnit loop run|status (continuous/loop.py)
app.add_typer(backup_app, name="backup")  # yarnit backup [list|verify] (storage/backup.py)
app.command("restore")(restore)
app.add_typer(artifacts_app, name="artifacts")  # yarnit artifacts gc (storage/gc.py)
app.command("readiness")(readiness)  # yarnit readiness MODEL [--ci] (readiness/: the ML Test Score)
app.command("capacity")(capacity)  # yarnit capacity MODEL (monitoring/capacity.py)
app.command("loadtest")(loadtest)  # staging load test with a latency gate (loadtest/, cli/loadtest.py)


def _add_world() -> None:
    try:
        from . import world
    except ImportError:  # the world simulator is optional at import time of the CLI
        return
    app.add_typer(world.app, name="world")


_add_world()


def _version(value: bool) -> None:
    if value:
        typer.echo(f"yarnit {yarnit.__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
    debug: bool = typer.Option(False, "--debug", help="Show the traceback of an unexpected error."),
) -> None:
    """yarnit: datasets, features, training, registry, serving, monitoring and incidents in one system."""
    options.debug = debug


@app.command()
@cli_errors
def init(as_json: bool = JSON_OPTION) -> None:
    """Create (or upgrade) the workspace at YARNIT_HOME."""
    with workspace() as ws:
        info = {"home": str(ws.home), "metadata": ws.metadata.safe_url(), "schema_revision":
                ws.metadata.current_revision(), "recovered_temp_files": len(ws.recovered)}
    emit(info, as_json, lambda: console.print(
        f"workspace ready at {info['home']} (metadata {info['metadata']}, schema {info['schema_revision']})"))


@app.command()
@cli_errors
def serve(host: str = typer.Option("127.0.0.1", help="Interface to bind."),
          port: int = typer.Option(8080, min=1, max=65535, help="TCP port."),
          workers: str = typer.Option("1", "--workers", help="Worker processes sharing the port (1..64, or "
                                      "'auto': one per CPU). Each opens the workspace and loads the models "
                                      "itself; a supervisor restarts one that dies."),
          prediction_log: Path | None = typer.Option(None, "--prediction-log", help="Directory of the prediction "
                                                     "log (default: $YARNIT_HOME/prediction_log). yarnit capacity "
                                                     "--measure-s points it at a scratch directory: its requests "
                                                     "are not demand."),
          cache_entries: int = typer.Option(10_000, "--cache-entries", min=0, max=10_000_000,
                                            help="Rows the prediction cache keeps per process (0: no cache). "
                                            "yarnit capacity --measure-s sets 0: a capacity is what scoring "
                                            "sustains, not what repeating one request costs.")) -> None:
    """Serve the data plane, control plane, metrics and dashboard over HTTP."""
    from yarnit.api import create_app
    from yarnit.api.dataplane import asgi_entry
    from yarnit.api.server import prepare_for_traffic, serve_forever
    from yarnit.api.workers import parse_workers, serve_workers
    from yarnit.serving import ServingOptions

    n_workers = parse_workers(workers)
    ws = workspace()  # opening it migrates the schema: once, before any worker starts
    if ws.settings.api_token is None and host not in ("127.0.0.1", "::1", "localhost"):
        console.print("[yellow]warning:[/] YARNIT_API_TOKEN is not set; control-plane writes are refused "
                      "from anywhere but loopback.")
    if n_workers > 1:
        ws.metadata.close()
        import logging

        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        console.print(f"serving on http://{host}:{port} with {n_workers} worker processes")
        raise typer.Exit(serve_workers(host, port, n_workers, cache_entries=cache_entries,
                                       log_dir=None if prediction_log is None else str(prediction_log)))
    app_ = create_app(ws, serving=ServingOptions(log_dir=prediction_log, cache_entries=cache_entries))
    for name, outcome in prepare_for_traffic(app_).items():  # preload models, freeze start-up objects for the GC
        console.print(f"serving {name}: {outcome}")
    serve_forever(asgi_entry(app_), host, port)


@app.command()
@cli_errors
def demo(days: int | None = typer.Option(None, min=2, max=60, help="Simulated days (default 30; --quick: 3)."),
         seed: int = typer.Option(0, help="Seed of the simulated world."),
         sessions_per_day: int | None = typer.Option(None, min=50, max=100_000,
                                                     help="Shopper sessions per day (default 500; --quick: 1500)."),
         out: Path | None = typer.Option(None, "--out", help="Where the two months' workspaces and the report go "
                                         "(default: $YARNIT_HOME/demo; a previous demo's output there is replaced)."),
         serial: bool = typer.Option(False, "--serial", help="Run the faulted and the clean month one after the "
                                     "other (default: side by side, one process each)."),
         durable: bool = typer.Option(False, "--durable", help="fsync every write of the two months' scratch "
                                      "workspaces, as a production workspace does (default: atomic writes without "
                                      "fsync; the next demo replaces them anyway)."),
         quick: bool = typer.Option(False, "--quick", help="Only the build-and-serve path: world → dataset → model → "
                                    "registry → one HTTP prediction, in this workspace."),
         as_json: bool = JSON_OPTION) -> None:
    """The 30-day operate demo: YarnIt served over HTTP while the platform detects and mitigates four faults.

    It runs the month twice (with the faults, and the same seed without them), then prints the table: fault,
    injected at, detected at (time to detect), action, recovered at, CTR and revenue impact; and writes a
    self-contained HTML report. --quick runs the short build-and-serve demo instead.
    """
    if quick:
        _quick_demo(days or 3, seed, sessions_per_day or 1500, as_json)
        return
    from yarnit.demo.operate import OperateConfig, run_operate
    from yarnit.demo.report import render_table

    config = OperateConfig(days=days or 30, seed=seed, sessions_per_day=sessions_per_day or 500, durable=durable)
    target = out if out is not None else load_settings().home / "demo"
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                  disable=as_json, transient=False) as progress:
        task = progress.add_task(f"simulating {config.days} days twice (with and without faults)", total=None)

        def step(message: str) -> None:
            progress.console.print(f"  {message}")
            progress.update(task, description=message)

        report = run_operate(target, config, progress=step, parallel=not serial)
        progress.update(task, description="done")

    def human() -> None:
        rows = render_table(report)
        table = Table(*rows[0], title=report["title"])
        for row in rows[1:]:
            table.add_row(*(Text(cell) for cell in row))
        console.print(table)
        for t in report["targets"]:
            mark = "[green]pass[/]" if t["met"] else "[red]FAIL[/]"
            console.print(f"{mark} {escape(t['name'])}: {escape(str(t['value']))} (target {escape(str(t['target']))})")
        console.print(f"report: {target / 'report.html'} (self-contained HTML), {target / 'report.json'}")

    emit(report | {"report_html": str(target / "report.html")}, as_json, human)


def _quick_demo(days: int, seed: int, sessions_per_day: int, as_json: bool) -> None:
    """The build-and-serve path: world → dataset → model → registry → HTTP prediction."""
    from yarnit.demo import run_demo

    with workspace() as ws:
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                      disable=as_json, transient=False) as progress:
            task = progress.add_task("starting", total=None)

            def step(message: str) -> None:
                progress.console.print(f"  {message}")
                progress.update(task, description=message)

            result = run_demo(ws, days=days, seed=seed, sessions_per_day=sessions_per_day, progress=step)
            progress.update(task, description="done")

    def human() -> None:
        table = Table(title="yarnit demo --quick", show_header=False)
        def auc(value: float | None) -> str:
            return "n/a" if value is None else f"{value:.4f}"

        rows: list[tuple[str, Any]] = [
            ("pipeline run", f"{result.run_id} ({result.cached_steps} steps from cache)"),
            ("dataset version", result.dataset_version),
            ("model version", f"{result.model_ref} ({'blessed' if result.blessed else 'NOT blessed'})"),
            ("AUC, time-ordered holdout", auc(result.auc_holdout)),
            ("AUC of the popularity baseline", auc(result.auc_popularity)),
            ("AUC of the ground-truth oracle", auc(result.auc_oracle)),
            ("served prediction", f"{result.served_prediction:.4f} by ctr v{result.served_by_version} "
                                  f"({result.served_by}) via {result.server_url}/v1/models/ctr:predict"),
            ("requests sent", str(result.requests_sent)),
            ("answered by", ", ".join(f"{who}: {n}" for who, n in result.answered_by.items())),
        ]
        for key, value in rows:
            table.add_row(key, str(value))
        console.print(table)

    emit(result.as_dict(), as_json, human)


def main() -> None:
    """Console-script entry point."""
    try:
        load_settings()
    except YarnitError as exc:
        raise SystemExit(fail(str(exc)).exit_code) from None
    app()


__all__ = ["app", "main"]
