"""``yarnit rollout …``: staged rollouts with canary analysis.

* ``yarnit rollout start MODEL --version V [--stages 1,5,25,50,100] [--bake 30m] [--min-requests 500]``
  points the canary at V (a blessed version; the error-budget gate may refuse)
  and sends it the first stage's share; with ``--require-loadtest`` it first
  waits (step by step) for a passing ``yarnit loadtest`` of V;
* ``yarnit rollout step MODEL`` runs one evaluation: hold, advance, promote or
  roll back, audited as ``rollout:<id>`` (run it every bake interval, or let
  ``yarnit loop run`` do it);
* ``yarnit rollout status MODEL`` shows the stage, the share and each metric's verdict;
* ``yarnit rollout abort MODEL --reason …`` takes the canary's traffic away.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from .common import JSON_OPTION, cli_errors, console, emit, workspace

app = typer.Typer(help="Staged rollouts: canary stages judged against production, promoted or rolled back.",
                  no_args_is_help=True)
MODEL = typer.Argument(..., help="Model name.")


def _show(result: dict[str, Any]) -> None:
    console.print(f"[bold]{result['model']}[/bold] rollout {result['id']}: {result['status']}, "
                  f"v{result['canary_version']} vs v{result['baseline_version']}, stage {result['stage']} of "
                  f"{len(result['stages'])} ({result['stage_share']:g}%), canary share now "
                  f"{result['canary_percent']:g}%")
    if result.get("awaiting") == "loadtest":
        console.print("stage: load test (the canary starts after a passing yarnit loadtest of this version)")
    if "action" in result:
        console.print(f"{result['action']}: {result['reason']}")
    analysis = result.get("analysis")
    if analysis:
        table = Table("metric", "group", "verdict", "canary", "baseline", "n (canary/baseline)", "why",
                      title=f"canary analysis: score {analysis['score']:g} ({analysis['decision']})")
        for m in analysis["metrics"]:
            fmt = (lambda v: "" if v is None else f"{v:.4g}")  # noqa: E731
            table.add_row(m["name"], m["group"], m["verdict"], fmt(m["canary"]), fmt(m["baseline"]),
                          f"{m['canary_n']}/{m['baseline_n']}", m["reason"])
        console.print(table)


@app.command("start")
@cli_errors
def start(model: str = MODEL, version: int = typer.Option(..., "--version", help="Version to roll out."),
          stages: str = typer.Option("1,5,25,50,100", "--stages", help="Canary shares in %; 100 means promote."),
          bake: str = typer.Option("30m", "--bake", help="Least time per stage (90s, 30m, 2h)."),
          min_requests: int = typer.Option(500, "--min-requests", help="Least canary requests per stage."),
          threshold: int = typer.Option(1, "--threshold", help="Failed analyses in a stage before rolling back."),
          deadline: str = typer.Option("", "--deadline", help="Roll back a stage held this long without a pass "
                                       "(e.g. 6h; default: hold until aborted)."),
          require_loadtest: bool = typer.Option(False, "--require-loadtest", help="A load-test stage first: no "
                                                "canary traffic until 'yarnit loadtest' passed for VERSION."),
          loadtest_max_age: str = typer.Option("", "--loadtest-max-age", help="With --require-loadtest: only a "
                                               "load test this recent counts (e.g. 1d; default: any age)."),
          reason: str = typer.Option("", "--reason", help="Why (audited)."),
          as_json: bool = JSON_OPTION) -> None:
    """Start a staged rollout of VERSION (one per model at a time)."""
    from yarnit.access import cli_actor
    from yarnit.continuous.rollout import (
        RolloutConfig,
        RolloutController,
        parse_duration,
        parse_stages,
    )

    config = RolloutConfig(stages=parse_stages(stages), bake_s=parse_duration(bake), min_requests=min_requests,
                           threshold=threshold, deadline_s=parse_duration(deadline) if deadline else None,
                           loadtest=require_loadtest,
                           loadtest_max_age_s=parse_duration(loadtest_max_age) if loadtest_max_age else None)
    with workspace() as ws:
        result = RolloutController(ws, model, config=config).start(version, cli_actor(), reason=reason,
                                                                   require_blessing=True)
    emit(result, as_json, lambda: _show(result))


@app.command("step")
@cli_errors
def step(model: str = MODEL, as_json: bool = JSON_OPTION) -> None:
    """Evaluate the current stage once: hold, advance, promote or roll back."""
    from yarnit.continuous.rollout import RolloutController

    with workspace() as ws:
        result = RolloutController(ws, model).step()
    emit(result, as_json, lambda: _show(result))


@app.command("status")
@cli_errors
def status(model: str = MODEL, as_json: bool = JSON_OPTION) -> None:
    """The rollout's stage, share and last canary analysis."""
    from yarnit.continuous.rollout import RolloutController

    with workspace() as ws:
        result = RolloutController(ws, model).status()
    emit(result, as_json, lambda: _show(result))


@app.command("abort")
@cli_errors
def abort(model: str = MODEL, reason: str = typer.Option(..., "--reason", help="Why (audited)."),
          as_json: bool = JSON_OPTION) -> None:
    """Abort the running rollout: canary share 0, canary alias back to production's version."""
    from yarnit.access import cli_actor
    from yarnit.continuous.rollout import RolloutController

    with workspace() as ws:
        result = RolloutController(ws, model).abort(actor=cli_actor(), reason=reason)
    emit(result, as_json, lambda: _show(result))
