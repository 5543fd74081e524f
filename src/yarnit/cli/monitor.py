"""``yarnit monitor …``: summaries of served traffic and their drift.

* ``yarnit monitor summarize`` reads what the prediction log gained since the
  last run into the hourly summaries under ``$YARNIT_HOME/monitoring/traffic``
  (on Dask when ``YARNIT_DASK_SCHEDULER`` is set), with progress;
* ``yarnit monitor drift MODEL --window 1d`` does the same, then compares the
  window ending ``--at`` (default now) with the serving version's training
  data (or ``--reference-window``): per feature the distance, test, threshold
  and verdict, the dataset verdict, prediction drift and slice volume.

Other monitor commands attach to the same ``app`` from their own modules:
``monitor_quality`` adds ``labels`` and ``quality``; ``monitor_run`` adds ``run``
(imported by ``cli/app.py``).
"""

from __future__ import annotations

from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .common import JSON_OPTION, cli_errors, console, emit, plain, workspace
from .monitor_quality import register as _register_quality

app = typer.Typer(help="Monitoring: drift of served traffic, prediction quality with delayed labels, SLO runs.",
                  no_args_is_help=True)


def _summarize(ws: Any, as_json: bool) -> dict[str, Any]:
    from yarnit.monitoring import traffic

    # Off a terminal even a transient bar leaves a blank line before the report: show the bar on terminals only.
    with Progress(TextColumn("summarizing the prediction log"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, disable=as_json or not console.is_terminal,
                  transient=True) as progress:
        task = progress.add_task("segments", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        return traffic.update(ws, clock=ws.clock, progress=advance)


@app.command("summarize")
@cli_errors
def summarize(as_json: bool = JSON_OPTION) -> None:
    """Read the prediction log's new segments into the hourly traffic summaries (only what is new)."""
    with workspace() as ws:
        report = _summarize(ws, as_json)
    skipped = sum(report["skipped"].values())
    emit(report, as_json, lambda: console.print(
        f"read {report['records']:,} records ({report['bytes']:,} bytes) from {report['segments_read']} of "
        f"{report['segments']} segment(s); {report['windows_touched']} window(s) updated"
        + (f"; skipped {skipped:,} ({', '.join(f'{k}: {v}' for k, v in sorted(report['skipped'].items()))})"
           if skipped else "")))


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


@app.command("drift")
@cli_errors
def drift(model: str = typer.Argument(..., help="Model name."),
          window: str = typer.Option("1d", "--window", help="Length of the current window: 1h, 6h, 1d, 7d …"),
          at: str | None = typer.Option(None, "--at", help="End of the current window, ISO 8601 (default: now)."),
          reference_window: str | None = typer.Option(
              None, "--reference-window", help="Compare with served traffic instead of the training data: "
              "START/END (ISO 8601) or a shift such as 7d (the same-length window that much earlier)."),
          threshold: float | None = typer.Option(None, "--threshold", help="Effect-size threshold (default 0.1)."),
          no_update: bool = typer.Option(False, "--no-update", help="Use the stored summaries as they are."),
          as_json: bool = JSON_OPTION) -> None:
    """Drift of MODEL's served traffic in a window against its training data or an earlier window."""
    from yarnit.monitoring import served_drift, traffic

    when = served_drift.parse_time(at) if at is not None else None
    served_drift.parse_window(window)  # a bad --window fails before the log is read
    with workspace() as ws:
        update = None if no_update else _summarize(ws, as_json)
        report = traffic.drift_report(ws, model, window=window, at=when, reference_window=reference_window,
                                      threshold=threshold)
    report["update"] = update

    def human() -> None:
        ref = report["reference"]
        against = ref.get("dataset") or (f"{ref['start']} … {ref['end']}" if ref["kind"] == "window" else
                                         f"no reference ({ref.get('reason')})")
        win = report["window"]
        console.print(plain(f"{model}: {report['state'].upper()} — window {win['start']} … {win['end']} "
                            f"({win['requests']:,} requests, {win['rows']:,} rows, version "
                            f"{win['serving_version']}) against {against}"))
        table = Table("feature", "kind", "distance", "interval", "p-value", "threshold", "verdict",
                      title="features")
        for c in [*report["columns"], report["prediction"]]:
            interval = c["detail"].get("effect_interval")
            table.add_row(plain(c["column"]), c["kind"], _fmt(c["value"]),
                          "-" if not interval else f"[{_fmt(interval[0], 3)}, {_fmt(interval[1], 3)}]",
                          _fmt(c["p_value"], 3), _fmt(c["threshold"]),
                          c["state"] if c["state"] != "no_data" else f"no_data: {c['detail'].get('reason', '')}")
        console.print(table)
        ds = report["dataset"]
        console.print(plain(f"dataset: {ds['state']} (drifted share {_fmt(ds['share'], 3)} ≥ {ds['drift_share']}"
                            f"{', importance-weighted' if ds['weighted'] else ''}); drifted: "
                            f"{', '.join(ds['drifted_columns']) or 'none'}"))
        for name, volume in report["slices"].items():
            drops = [v for v in volume["values"] if v["state"] == "drift"]
            console.print(plain(f"slice {name} (against {volume['against']}): "
                                + (", ".join(f"{v['slice']} {_fmt(v['change'], 3)}" for v in drops) + " fell"
                                   if drops else "no slice fell behind")))
        if report["private_columns"]:
            console.print(plain(f"not summarized (personal data): {', '.join(report['private_columns'])}"))
        age = report["summaries"]["age_s"]
        console.print(plain(f"summaries updated {report['summaries']['updated_at']} ({_fmt(age, 3)} s ago); "
                            f"served quantiles within ±{report['rank_error']['served_quantiles']} rank (99 %)"))

    emit(report, as_json, human)


_register_quality(app)

__all__ = ["app"]
