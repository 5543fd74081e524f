"""``yarnit slo …``: check an SLO file and write its Prometheus rules.

* ``yarnit slo check slos.yaml`` validates the file and lists each SLO with its
  objective, window, error budget and alert pairs;
* ``yarnit slo rules slos.yaml [--out rules.yml]`` writes the recording and
  alerting rules (Sloth's names plus a no-data alert) atomically, or prints
  them on stdout; check them with ``promtool check rules rules.yml``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.table import Table

from yarnit.core.atomic import atomic_write_text

from .common import JSON_OPTION, cli_errors, console, emit

app = typer.Typer(help="SLOs: validate SLO files, generate Prometheus rules.", no_args_is_help=True)
FILE_ARGUMENT = typer.Argument(..., help="SLO file (YAML): service and slos[].")


@app.command("check")
@cli_errors
def check(path: Path = FILE_ARGUMENT, as_json: bool = JSON_OPTION) -> None:
    """Validate an SLO file and show what it declares."""
    from yarnit.monitoring import format_duration, load_slo_file

    spec = load_slo_file(path)
    rows = [{"slo": s.name, "sli": s.sli, "model": s.model, "objective_percent": float(s.objective * 100),
             "window": format_duration(s.window_s), "error_budget": float(s.error_budget),
             "min_events": s.min_events, "prometheus": s.prometheus is not None,
             "alerts": [{"severity": a.severity, "long": format_duration(a.long_s),
                         "short": format_duration(a.short_s), "burn_rate": float(a.burn_rate)} for a in s.alerts]}
            for s in spec.slos]

    def human() -> None:
        table = Table("slo", "sli", "objective", "window", "alerts (long/short > burn)", "min events",
                      title=f"service {spec.service}")
        for row in rows:
            pairs = ", ".join(f"{a['severity']} {a['long']}/{a['short']} > {a['burn_rate']:g}x" for a in row["alerts"])
            table.add_row(row["slo"], row["sli"], f"{row['objective_percent']:g} %", row["window"], pairs or "none",
                          str(row["min_events"]))
        console.print(table)

    emit({"service": spec.service, "slos": rows}, as_json, human)


@app.command("rules")
@cli_errors
def rules(path: Path = FILE_ARGUMENT,
          out: Path | None = typer.Option(None, "--out", "-o", help="Write the rules here (default: stdout)."),
          as_json: bool = JSON_OPTION) -> None:
    """Write Prometheus recording and alerting rules for the file's SLOs (Sloth's names, plus no-data alerts)."""
    from yarnit.monitoring import load_slo_file
    from yarnit.monitoring.rules import rule_groups, rules_yaml

    spec = load_slo_file(path)
    text = rules_yaml(spec)
    groups = rule_groups(spec)["groups"]
    summary = {"service": spec.service, "out": str(out) if out else None, "groups": len(groups),
               "rules": sum(len(g["rules"]) for g in groups),
               "skipped": [s.name for s in spec.slos if s.prometheus is None]}
    if out is None and not as_json:
        sys.stdout.write(text)
        return
    if out is not None:
        atomic_write_text(out, text)
    emit(summary if out is not None else {**summary, "yaml": text}, as_json,
         lambda: console.print(f"wrote {summary['rules']} rules in {summary['groups']} group(s) to {out}; "
                               f"check them with: promtool check rules {out}"))


@app.command("status")
@cli_errors
def status(path: Path = FILE_ARGUMENT,
           counts: Path | None = typer.Option(None, "--counts", help="JSON lines of per-minute counts: "
                                              '{"slo": NAME, "at": ISO-TIME, "good": N, "total": N} '
                                              "(default: read the workspace's prediction log)."),
           log_dir: Path | None = typer.Option(None, "--log-dir", help="Prediction log directory (default: "
                                               "$YARNIT_HOME/prediction_log)."),
           at: str | None = typer.Option(None, "--at", help="Evaluate at this ISO 8601 time (default: now)."),
           as_json: bool = JSON_OPTION) -> None:
    """Each SLO's state, error budget left and burn rate per alert window, from the prediction log or a counts file.

    The log is read incrementally: a checkpoint under $YARNIT_HOME/monitoring keeps the counts and, per
    segment, how far it was read, so a rerun reads only what is new.
    """
    from datetime import datetime, timezone

    from yarnit.core.clock import SystemClock
    from yarnit.core.errors import InvalidInput
    from yarnit.monitoring import SLISource, evaluate, format_duration, load_slo_file
    from yarnit.monitoring.sources import read_counts_jsonl

    spec = load_slo_file(path)
    if at is None:
        when = SystemClock().now()
    else:
        try:
            when = datetime.fromisoformat(at.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInput(f"--at must be an ISO 8601 time such as 2026-03-01T10:00:00Z, got {at!r}.") from None
        if when.tzinfo is None:
            raise InvalidInput(f"--at needs a time zone (e.g. {at}Z for UTC), got {at!r}.")
    when = when.astimezone(timezone.utc)
    log_read: dict[str, object] | None = None
    if counts is not None:
        if log_dir is not None:
            raise InvalidInput("Give either --counts (a counts file) or --log-dir (a prediction log), not both.")
        source: SLISource = read_counts_jsonl(counts, spec)
    else:
        from yarnit.core.settings import load_settings
        from yarnit.monitoring.predlog_source import PredictionLogSource, default_state_path

        home = load_settings().home
        directory = log_dir if log_dir is not None else home / "prediction_log"
        if not directory.is_dir():
            raise InvalidInput(f"No prediction log at {directory}: serve a model first, point --log-dir at the "
                               "log directory, or give --counts.")
        log_source = PredictionLogSource(directory, spec, SystemClock(),
                                         state_path=default_state_path(home, spec, directory))
        report = log_source.refresh()
        log_read = {"directory": str(directory), "segments": report.segments, "records": report.records,
                    "bytes_read": report.bytes_read, "skipped": report.skipped, "corrupt_lines": report.corrupt_lines}
        source = log_source
    statuses = [evaluate(slo, source.counts(slo, until_s=when.timestamp()), when) for slo in spec.slos]
    data = {"service": spec.service, "at": when.isoformat(), "slos": [s.to_dict() for s in statuses]}
    if log_read is not None:
        data["prediction_log"] = log_read

    def human() -> None:
        table = Table("slo", "sli", "objective", "state", "budget left", "burn rate (long/short)",
                      title=f"service {spec.service} at {when.isoformat()}")
        for s in statuses:
            left = "no data" if s.budget_remaining is None else f"{s.budget_remaining:.1%}"
            burns = ", ".join(
                f"{format_duration(a.pair.long_s)}/{format_duration(a.pair.short_s)} "
                f"{_burn(a.long.burn_rate)}/{_burn(a.short.burn_rate)}" + (" (guarded)" if a.guarded else "")
                for a in s.alerts)
            table.add_row(s.slo.name, s.slo.sli, f"{float(s.slo.objective * 100):g} %", s.state, left, burns)
        console.print(table)
        if log_read is not None:
            console.print(f"prediction log: {log_read['records']} new record(s) from {log_read['segments']} "
                          f"segment(s); {log_read['skipped']} request(s) skipped (no time, skewed or too old)")

    emit(data, as_json, human)


def _burn(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"
