"""``yarnit monitor labels ingest FILE`` and ``yarnit monitor quality MODEL``: quality with delayed labels.

* ``labels ingest FILE`` stores a file of labels (JSON Lines, CSV or Parquet;
  columns ``request_id, index, kind, value, event_time[, arrival_time]``) and
  joins them with the prediction log; bad, duplicate, early, clock-skewed and
  unknown labels are counted, never fatal;
* ``quality MODEL --window 1d [--by country]`` shows, per version (and
  slice), the realized CTR, AUC, calibration, bias and ECE with 95 %
  intervals, and for the predictions whose labels have not come yet the
  confidence-based estimate (CBPE), marked as an estimate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from .common import JSON_OPTION, cli_errors, console, emit, workspace

labels_app = typer.Typer(help="Labels for the prediction log (clicks, purchases, fraud flags).",
                         no_args_is_help=True)


def _fmt(value: Any, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _ci(interval: Any) -> str:
    return "" if not interval else f" [{interval[0]:.4f}, {interval[1]:.4f}]"


@labels_app.command("ingest")
@cli_errors
def ingest(path: Path = typer.Argument(..., help="Labels: .jsonl, .csv or .parquet with request_id, index, kind, "
                                                   "value, event_time[, arrival_time]."),
           join: bool = typer.Option(True, "--join/--no-join", help="Join them with the prediction log now."),
           as_json: bool = JSON_OPTION) -> None:
    """Store a file of labels keyed by (request id, instance index), then join them with the prediction log."""
    from yarnit.monitoring import quality

    with workspace() as ws, console.status(f"ingesting {path.name} …"):
        report = quality.ingest_labels(ws, path)
        joined = quality.update(ws) if join else None
    out = {"ingest": report.__dict__, "join": joined}

    def human() -> None:
        console.print(f"{report.file}: {report.rows} rows, {report.stored} stored; skipped: {report.invalid} invalid, "
                      f"{report.duplicate} duplicate, {report.future} from the future (clock skew), "
                      f"{report.ignored_kind} of another kind")
        for example in report.examples:
            console.print(f"  {example}")
        if joined is not None:
            run = joined["this_run"]
            console.print(f"joined {run.get('labels_joined', 0)} labels ({run.get('late', 0)} late); skipped "
                          f"{run.get('unknown', 0)} unknown, {run.get('early', 0)} before their prediction, "
                          f"{run.get('duplicate', 0)} duplicate; {joined['labels_waiting']} labels wait for their "
                          "prediction")

    emit(out, as_json, human)


def quality_command(model: str = typer.Argument(..., help="The model, as served (e.g. ctr)."),
                    window: str = typer.Option("1d", "--window", help="How far back: 1h, 1d, 7d …"),
                    by: str | None = typer.Option(None, "--by", help="Slice by a request field (country, device …)."),
                    as_json: bool = JSON_OPTION) -> None:
    """Realized quality with 95 % intervals, and the estimate (CBPE) for predictions still without labels."""
    from yarnit.monitoring import quality
    from yarnit.monitoring.slo import parse_duration

    window_s = parse_duration(window, "--window")
    with workspace() as ws, console.status("joining new log records and labels …"):
        quality.update(ws)
        report = quality.quality_report(ws, model, window_s=window_s, by=by)

    def human() -> None:
        table = Table("version", *(["slice"] if by else []), "predictions", "labelled", "CTR [95 %]",
                      "AUC [95 %] ± bin bound", "calibration", "bias", "ECE",
                      "estimate before labels", title=f"{model}: quality over the last {window}")
        for group in report["groups"]:
            r, e = group["realized"], group["estimate"]
            auc = "-" if r["auc"] is None else f"{r['auc']:.4f}{_ci(r['auc_ci'])} ±{r['auc_bound']:.1e}"
            estimate = "-" if not group["pending"] else \
                f"estimated: AUC {_fmt(e['auc'])}, CTR {_fmt(e['ctr'])} ({group['pending']} unlabelled)"
            table.add_row(group["version"], *([group["slice"] or "-"] if by else []), str(r["count"]),
                          str(r["labelled"]), f"{_fmt(r['ctr'])}{_ci(r['ctr_ci'])}", auc, _fmt(r["calibration"], 3),
                          _fmt(r["bias"]), _fmt(r["ece"]), estimate)
        console.print(table)
        lc = report["label_completeness"]
        console.print(f"label completeness: {lc['good']}/{lc['total']} predictions labelled in time"
                      + (f" ({lc['ratio']:.2%})" if lc["ratio"] is not None else ""))
        if report["estimate_mean_abs_auc_error"] is not None:
            console.print(f"past estimates: mean |estimated - realized AUC| = "
                          f"{report['estimate_mean_abs_auc_error']:.4f} over {len(report['estimate_history'])} hours")

    emit(report, as_json, human)


def register(app: typer.Typer) -> None:
    """Attach ``labels`` and ``quality`` to the ``monitor`` app."""
    app.add_typer(labels_app, name="labels")
    app.command("quality")(cli_errors(quality_command))


__all__ = ["labels_app", "register"]
