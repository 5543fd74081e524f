"""``yarnit features …``: list, show, backfill, materialize, get, skew."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from yarnit.access import cli_actor
from yarnit.core.errors import InvalidInput
from yarnit.features import FeatureStore, FeatureView, load_definitions, parse_key
from yarnit.features.errors import NaiveTimestamp, UnknownFeature

from .common import JSON_OPTION, cli_errors, console, emit, workspace

app = typer.Typer(
    help="Feature views: definitions, offline backfills, online materialization and reads, skew checks.",
    no_args_is_help=True,
)


def _when(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(
            f"{option} {value!r} is not an ISO 8601 time; use e.g. 2026-01-05T00:00:00Z."
        ) from None
    if when.tzinfo is None:
        raise NaiveTimestamp(f"{option} {value!r}")
    return when


@contextmanager
def _progress(enabled: bool, description: str) -> Iterator[Any]:
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, disable=not enabled, transient=True) as progress:
        task = progress.add_task(description, total=None)

        def update(done: int, total: int | None) -> None:
            progress.update(task, completed=done, total=total)

        yield update


def _ttl(view: FeatureView) -> str:
    return "never" if view.ttl is None else str(view.ttl)


@app.command("list")
@cli_errors
def list_views(as_json: bool = JSON_OPTION) -> None:
    """List feature views (newest version of each) with their consumers."""
    with workspace() as ws:
        registry = FeatureStore(ws).registry
        versions = registry.list()
        consumers = registry.consumers()
    rows = [{
        "name": v.name, "number": v.number, "version": v.version, "entities": dict(v.view.entities),
        "features": list(v.view.feature_names), "ttl_s": None if v.view.ttl is None else v.view.ttl.total_seconds(),
        "owner": v.view.owner, "description": v.view.description, "created_at": v.created_at.isoformat(),
        "consumers": sorted({c.consumer for c in consumers if c.view_name == v.name}),
    } for v in versions]

    def human() -> None:
        table = Table("view", "version", "entities", "features", "ttl", "owner", "consumers")
        for v, r in zip(versions, rows, strict=True):
            table.add_row(v.name, f"v{v.number} ({v.version[:8]})", ", ".join(v.view.entity_names),
                          str(len(v.view.features)), _ttl(v.view), v.view.owner, ", ".join(r["consumers"]))
        console.print(table)

    emit(rows, as_json, human)


@app.command("show")
@cli_errors
def show(name: str, number: int | None = typer.Option(None, "--version", help="Version number (default: newest)."),
         as_json: bool = JSON_OPTION) -> None:
    """Show a view's definition, versions, consumers, freshness and recent materializations."""
    with workspace() as ws:
        store = FeatureStore(ws)
        try:
            chosen = store.registry.get(name, number)
            versions = store.registry.versions(name)
            consumers = store.registry.consumers(name)
            freshness = store.freshness([name])[0] if number is None else None
            runs = store.registry.runs(name, limit=10)
        finally:
            store.close()
    data = {
        "view": chosen.to_dict(),
        "versions": [{"number": v.number, "version": v.version, "created_at": v.created_at.isoformat()}
                     for v in versions],
        "consumers": [c.to_dict() for c in consumers],
        "freshness": None if freshness is None else freshness.to_dict(),
        "materializations": [r.to_dict() for r in runs],
    }

    def human() -> None:
        view = chosen.view
        console.print(f"[bold]{view.name}[/] v{chosen.number} (version {view.version}) — {view.description}")
        console.print(f"owner: {view.owner or '-'}   entities: {dict(view.entities)}   event time: "
                      f"{view.timestamp}   ttl: {_ttl(view)}   sources: {', '.join(view.sources) or '-'}")
        table = Table("feature", "type")
        for f in view.features:
            table.add_row(f.name, f.dtype)
        console.print(table)
        if freshness is not None:
            console.print(f"online: {freshness.status}, {freshness.rows:,} entities, newest value age "
                          f"{'-' if freshness.age_s is None else f'{freshness.age_s:,.0f} s'}")
        if consumers:
            console.print("consumers: " + ", ".join(f"{c.consumer} ({c.source})" for c in consumers))
        console.print("versions: " + ", ".join(f"v{v.number} {v.version[:8]}" for v in versions))

    emit(data, as_json, human)


@app.command("backfill")
@cli_errors
def backfill(
    definitions: str = typer.Option(..., "--definitions", "-d",
                                    help="Python file (or module) defining the views with @feature_view."),
    names: list[str] = typer.Argument(None, help="Views to backfill (default: every view in the file)."),
    start: str | None = typer.Option(None, help="First event time to store (ISO 8601 with zone)."),
    end: str | None = typer.Option(None, help="End of the range, exclusive (ISO 8601 with zone)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Register the definitions and compute views over the workspace's datasets into the offline store."""
    views = load_definitions(definitions)
    by_name = {v.name: v for v in views}
    chosen = names or list(by_name)
    for n in chosen:
        if n not in by_name:
            raise UnknownFeature(n, by_name, kind="feature view", where=definitions)
    first, last = _when(start, "--start"), _when(end, "--end")
    results = []
    with workspace() as ws, FeatureStore(ws, actor=cli_actor()) as store:
        for n in chosen:
            with _progress(not as_json, f"backfilling {n}") as update:
                result = store.backfill(by_name[n], start=first, end=last, progress=update)
            number = store.registry.get_version(n, by_name[n].version).number
            results.append({"view": n, "number": number, "version": result.version, "rows": result.rows,
                            "days": [d.isoformat() for d in result.days],
                            "removed_days": [d.isoformat() for d in result.removed_days]})

    def human() -> None:
        for r in results:
            console.print(f"{r['view']} v{r['number']}: {r['rows']:,} rows over {len(r['days'])} days")

    emit(results, as_json, human)


@app.command("materialize")
@cli_errors
def materialize(
    names: list[str] = typer.Argument(None, help="Views to materialize (default: all)."),
    full: bool = typer.Option(False, "--full", help="Rebuild the online table instead of an incremental update."),
    end: str | None = typer.Option(None, help="Materialize values up to this time (default: now)."),
    chunk_rows: int = typer.Option(100_000, min=1_000, max=5_000_000, help="Rows per streamed chunk."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Copy the newest offline values into the online store (all or nothing per view)."""
    until = _when(end, "--end")
    results = []
    with workspace() as ws:
        with FeatureStore(ws) as store:
            chosen = names or store.registry.names()
            for n in chosen:
                with _progress(not as_json, f"materializing {n}") as update:
                    results.append(store.materialize(n, full=full, end=until, chunk_rows=chunk_rows,
                                                     progress=update).to_dict())

    def human() -> None:
        table = Table("view", "mode", "window end", "rows written", "online rows", "seconds")
        for r in results:
            table.add_row(r["view"], r["mode"], r["window_end"], f"{r['rows_written']:,}", f"{r['rows_total']:,}",
                          f"{r['duration_s']:.2f}")
        console.print(table)

    emit(results, as_json, human)


@app.command("get")
@cli_errors
def get(name: str, keys: list[str] = typer.Argument(..., help="Entity keys (JSON lists for composite keys)."),
        as_json: bool = JSON_OPTION) -> None:
    """Read a view's online values for entities, with status, event time and age."""
    with workspace() as ws:
        with FeatureStore(ws) as store:
            view = store.view(name)
            rows = store.read_online(name, [parse_key(view, k) for k in keys])
    data = [r.to_dict() for r in rows]

    def human() -> None:
        table = Table("entity", "status", "event time", "age", *view.feature_names)
        for r in rows:
            age = "-" if r.age_s is None else f"{r.age_s:,.0f} s"
            when = "-" if r.event_time is None else r.event_time.isoformat()
            table.add_row(str(r.key), r.status.value, when, age, *(str(r.values[f]) for f in view.feature_names))
        console.print(table)

    emit(data, as_json, human)


@app.command("skew")
@cli_errors
def skew(
    name: str,
    since: str | None = typer.Option(None, help="Only requests at or after this time (ISO 8601 with zone)."),
    until: str | None = typer.Option(None, help="Only requests before this time."),
    max_mismatch_rate: float = typer.Option(0.0, min=0.0, max=0.99, help="Mismatch rate above which a feature "
                                                                          "is reported as skewed."),
    tolerance: float = typer.Option(1e-9, min=0.0, help="Largest float difference counted as equal."),
    fail_on_skew: bool = typer.Option(False, "--fail-on-skew", help="Exit with code 2 when any feature is skewed, "
                                                                   "and 3 when there is no logged data to compare."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Compare logged serving values with the offline recomputation, feature by feature."""
    with workspace() as ws:
        with FeatureStore(ws) as store:
            report = store.skew(name, since=_when(since, "--since"), until=_when(until, "--until"),
                                max_mismatch_rate=max_mismatch_rate, tolerance=tolerance)

    def human() -> None:
        console.print(f"{report.view} ({report.version}): {report.rows:,} logged rows, served status "
                      f"{report.served_status or '-'}: {report.status.upper()}")
        if report.status == "no data":
            console.print("No served rows of this view were logged in the window, so nothing was compared. "
                          "The data plane samples the rows it reads (ServingOptions.feature_log_sample_rate); "
                          "serve a model that reads this view, or widen --since/--until.")
        table = Table("feature", "mismatch rate", "mismatches", "served unavailable", "distance", "skewed")
        for f in report.features:
            distance = "-" if f.distance is None else f"{f.distance:.4f} ({f.distance_kind})"
            table.add_row(f.feature, f"{f.mismatch_rate:.2%}", str(f.mismatches), str(f.served_unavailable),
                          distance, f.status.upper() if f.status != "ok" else "ok")
        console.print(table)

    emit(report.to_dict(), as_json, human)
    if fail_on_skew and report.skewed:
        raise typer.Exit(2)
    if fail_on_skew and report.status == "no data":
        raise typer.Exit(3)


__all__ = ["app"]
