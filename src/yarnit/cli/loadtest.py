"""``yarnit loadtest MODEL --version V --rps R --duration D``: the staging load test and its latency gate.

Exit codes, for CI: 0 the candidate passed the gate; 1 it failed (the verdict is printed and recorded);
2 the request was wrong (no such model or version, a rate or duration that is not positive, a bad
tolerance) and nothing ran; 3 the load test could not run (no production version, no logged traffic to
replay, no C compiler, a staging server that did not start).
``yarnit loadtest MODEL --history`` lists the recorded results instead.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from yarnit.core.errors import InvalidInput, NotFound, YarnitError

from .common import JSON_OPTION, cli_errors, console, emit, fail, workspace


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _show(result: dict[str, Any]) -> None:
    verdict = "[green]PASS[/]" if result["passed"] else "[red]FAIL[/]"
    console.print(f"{verdict} {result['model']} v{result['version']} against production v{result['baseline_version']}"
                  f" at {result['rps']:g} req/s for {result['duration_s']:g} s each ({result['id']})")
    table = Table("version", "sent", "errors", "error rate", "p50 ms", "p95 ms", "p99 ms", "max ms")
    for side in ("candidate", "baseline"):
        f = result[side]
        label = f"v{f['version']} ({'candidate' if side == 'candidate' else 'production'})"
        table.add_row(label, str(f["sent"]), str(f["errors"]), f"{f['error_rate']:.2%}", _ms(f["p50_ms"]),
                      _ms(f["p95_ms"]), _ms(f["p99_ms"]), _ms(f["max_ms"]))
    console.print(table)
    for check in result["checks"]:
        mark = "[green]ok[/]" if check["passed"] else "[red]FAIL[/]"
        console.print(f"  {mark} {check['reason']}")
    inputs = result["inputs"]
    console.print(f"inputs: {inputs['distinct_rows']} distinct logged instances for {inputs['requests_per_version']} "
                  f"requests per version (prediction cache off); injected delay {result['injected_delay_ms']:g} ms")
    cpus = result.get("cpus") or {}
    console.print(f"CPUs: generator {cpus.get('generator') or 'not pinned'}, staging servers "
                  f"{cpus.get('servers') or 'not pinned'}")
    for warning in result.get("warnings", [])[:5]:
        console.print(f"[yellow]generator:[/] {warning}")


@cli_errors
def loadtest(
    model: str = typer.Argument(..., help="Model name."),
    version: int = typer.Option(None, "--version", help="Candidate version to load-test against production."),
    rps: float = typer.Option(50.0, "--rps", help="Requests per second offered to each version (open loop)."),
    duration: str = typer.Option("30s", "--duration", help="Measured time per version (90s, 2m)."),
    p95_tolerance: float = typer.Option(0.25, "--p95-tolerance", help="Candidate p95 may exceed production's by "
                                        "this fraction (plus --slack-ms)."),
    p99_tolerance: float = typer.Option(0.5, "--p99-tolerance", help="The same for p99."),
    slack_ms: float = typer.Option(2.0, "--slack-ms", help="Absolute latency slack in ms on top of the tolerances."),
    max_error_rate_increase: float = typer.Option(0.001, "--max-error-rate-increase",
                                                  help="Error rate the candidate may add to production's."),
    max_p95_ms: float = typer.Option(None, "--max-p95-ms", help="Absolute p95 budget in ms (optional)."),
    max_p99_ms: float = typer.Option(None, "--max-p99-ms", help="Absolute p99 budget in ms (optional)."),
    connections: int = typer.Option(64, "--connections", help="Generator connections per server."),
    inject_delay_ms: float = typer.Option(0.0, "--inject-candidate-delay-ms", help="Drill: add this delay to every "
                                          "candidate scoring call, to see the gate fail (recorded; such a result "
                                          "never clears a rollout)."),
    cpu: str = typer.Option(None, "--cpu", help="Pin the generator to these CPUs (taskset -c); the staging servers "
                            "get the others."),
    isolate: bool = typer.Option(True, "--isolate/--no-isolate", help="Keep the generator on a CPU of its own and "
                                 "the staging servers on the others (default, with 2+ CPUs and taskset), as the "
                                 "serving benchmark does; --no-isolate lets the scheduler place them."),
    history: bool = typer.Option(False, "--history", help="List recorded results of MODEL (--version: of one)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Load-test VERSION against production in staging servers and gate on p95/p99 latency and error rate.

    Exit codes: 0 passed, 1 the gate failed (recorded), 2 a bad request (nothing ran), 3 the load test
    could not run (no production version, no logged traffic to replay, no C compiler, a server not ready).
    """
    try:
        result = _run(model, version, rps, duration, p95_tolerance, p99_tolerance, slack_ms, max_error_rate_increase,
                      max_p95_ms, max_p99_ms, connections, inject_delay_ms, cpu, history, isolate)
    except (InvalidInput, NotFound) as exc:
        fail(str(exc))
        raise typer.Exit(2) from None
    except YarnitError as exc:
        fail(str(exc))
        raise typer.Exit(3) from None
    if history:
        emit(result, as_json, lambda: _show_history(result))
        return
    emit(result, as_json, lambda: _show(result))
    if not result["passed"]:
        raise typer.Exit(1)


def _show_history(rows: list[dict[str, Any]]) -> None:
    table = Table("id", "version", "vs production", "passed", "rps", "s", "p95 ms", "p99 ms", "error rate", "delay ms")
    for r in rows:
        c = r["candidate"]
        table.add_row(r["id"], str(r["version"]), str(r["baseline_version"]), "yes" if r["passed"] else "NO",
                      f"{r['rps']:g}", f"{r['duration_s']:g}", _ms(c["p95_ms"]), _ms(c["p99_ms"]),
                      f"{c['error_rate']:.2%}", f"{r['injected_delay_ms']:g}")
    console.print(table)


def _run(model: str, version: int | None, rps: float, duration: str, p95_tolerance: float, p99_tolerance: float,
         slack_ms: float, max_error_rate_increase: float, max_p95_ms: float | None, max_p99_ms: float | None,
         connections: int, inject_delay_ms: float, cpu: str | None, history: bool, isolate: bool = True) -> Any:
    from yarnit.access import cli_actor
    from yarnit.continuous.rollout import parse_duration
    from yarnit.loadtest import LoadTestPlan, LoadTestStore, Tolerances, run_loadtest
    from yarnit.registry import ModelRegistry

    with workspace() as ws:
        if history:
            if not ModelRegistry(ws).exists(model):
                from yarnit.registry import ModelNotFound

                raise ModelNotFound(model)
            return LoadTestStore(ws).history(model, version)
        if version is None:
            raise InvalidInput("Which version? Pass --version V (the candidate to load-test against production).")
        tolerances = Tolerances(p95_tolerance=p95_tolerance, p99_tolerance=p99_tolerance, slack_ms=slack_ms,
                                max_error_rate_increase=max_error_rate_increase, max_p95_ms=max_p95_ms,
                                max_p99_ms=max_p99_ms)
        plan = LoadTestPlan(rps=rps, duration_s=parse_duration(duration), tolerances=tolerances,
                            connections=connections, inject_delay_ms=inject_delay_ms, cpu=cpu, isolate=isolate)
        return run_loadtest(ws, model, version, plan, actor=cli_actor(),
                            progress=lambda message: console.print(f"  {message}"))


__all__ = ["loadtest"]
