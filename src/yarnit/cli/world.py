"""``yarnit world …``: generate a simulated YarnIt world to Parquet, list the fault scenarios."""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from yarnit.core.errors import InvalidInput

from .common import JSON_OPTION, cli_errors, console, emit

app = typer.Typer(help="The YarnIt world simulator: shoppers, sessions, clicks, purchases and faults.",
                  no_args_is_help=True)

RANKERS = ("popularity", "random", "oracle")


def _start(text: str) -> datetime:
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"--start {text!r} is not a date; use YYYY-MM-DD, e.g. --start 2026-01-05.") from None
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)


@app.command()
@cli_errors
def generate(
    days: int = typer.Option(..., "--days", help="Number of days to simulate (1-3660)."),
    out: Path = typer.Option(..., "--out", help="Output directory (must not exist, or be empty)."),
    seed: int = typer.Option(0, "--seed", help="Seed: the same seed and options give byte-identical files."),
    sessions_per_day: int = typer.Option(2000, "--sessions-per-day", help="Mean shopper sessions per day."),
    fault: list[str] = typer.Option(  # noqa: B008 - typer reads defaults at definition time
        [], "--fault", help="NAME@DAY[:HOURS][,param=value...]; repeatable. See: yarnit world faults"),
    start: str = typer.Option("2026-01-05", "--start", help="First simulated day (UTC), YYYY-MM-DD."),
    ranker: str = typer.Option("popularity", "--ranker", help=f"Ranker in the loop: {', '.join(RANKERS)}."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Simulate DAYS days of the YarnIt store and write them as Parquet partitioned by day."""
    from yarnit.world import WorldConfig, oracle_ranker, parse_fault, popularity_ranker, random_ranker, write_world

    if ranker not in RANKERS:
        raise InvalidInput(f"--ranker {ranker!r} is not known; choose one of {', '.join(RANKERS)}.")
    first_day = _start(start)
    faults = tuple(parse_fault(spec, start=first_day) for spec in fault)
    config = WorldConfig(seed=seed, sessions_per_day=sessions_per_day, start=first_day, faults=faults)
    config.check_horizon(days)
    chosen = {"popularity": popularity_ranker, "random": random_ranker, "oracle": oracle_ranker}[ranker]

    with Progress(TextColumn("[bold]world[/]"), BarColumn(), MofNCompleteColumn(), TextColumn("days"),
                  TimeElapsedColumn(), console=console, transient=True, disable=as_json) as progress:
        task = progress.add_task("days", total=days)
        summary = write_world(out, config, days, ranker=chosen, on_day=lambda _p: progress.advance(task))

    def human() -> None:
        table = Table("table", "rows")
        for name, count in summary["rows"].items():
            table.add_row(name, f"{count:,}")
        console.print(table)
        for f in summary["faults"]:
            console.print(f"fault {f['spec']}: {f['start']} → {f['end']}")
        console.print(f"wrote {days} days (seed {seed}, ranker {summary['ranker']}) to {summary['out']}")

    emit(summary, as_json, human)


@app.command("faults")
@cli_errors
def list_faults(as_json: bool = JSON_OPTION) -> None:
    """List the fault scenarios, their book references and parameters."""
    from yarnit.world import FAULTS, describe_faults
    from yarnit.world.faults import SPEC_SYNTAX

    rows = [{"name": k.name, "book": k.book, "summary": k.summary,
             "params": [{"name": p.name, "default": p.default, "help": p.describe()} for p in k.params]}
            for k in FAULTS.values()]

    def human() -> None:
        typer.echo(describe_faults())
        typer.echo(f"\nuse: --fault {SPEC_SYNTAX}; DAY 0 is the start date")

    emit(rows, as_json, human)


__all__ = ["app"]
