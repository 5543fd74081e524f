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
