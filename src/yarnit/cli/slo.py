"""``yarnit slo …``: check an SLO file, make it the workspace's, see budgets, write Prometheus rules.

* ``yarnit slo check slos.yaml`` validates the file and lists each SLO with its
  objective, window, error budget and alert pairs;
* ``yarnit slo rules slos.yaml [--out rules.yml]`` writes the recording and
  alerting rules (Sloth's names plus a no-data alert) atomically, or prints
  them on stdout; check them with ``promtool check rules rules.yml``;
* ``yarnit slo apply slos.yaml`` makes it the workspace's SLO file
  (``$YARNIT_HOME/slos.yaml``): validated, written atomically, audited (who,
  sha256). The error-budget policy then gates releases of the models it names;
* ``yarnit slo status [FILE]`` shows each SLO's state and budget, every SLI
  from its own source in the workspace.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from yarnit.core.atomic import atomic_write_text

from .common import JSON_OPTION, cli_errors, console, emit, workspace

if TYPE_CHECKING:
    from yarnit.monitoring.slo import SLO

app = typer.Typer(help="SLOs: validate and apply SLO files, budgets and burn rates, Prometheus rules.",
                  no_args_is_help=True)
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


@app.command("apply")
@cli_errors
def apply(path: Path = FILE_ARGUMENT, as_json: bool = JSON_OPTION) -> None:
    """Make an SLO file the workspace's own ($YARNIT_HOME/slos.yaml): validated, written atomically, audited.

    From then on `yarnit slo status` needs no FILE, the monitor reads it, and the error-budget policy gates
    promotions and canary raises of the models it names. A file with a mistake is refused (the error names the
    field) and nothing is written. Each apply is written to the audit log with who applied it and its sha256.
    """
    from sqlalchemy import insert

    from yarnit.access import cli_actor
    from yarnit.core.atomic import atomic_write_bytes
    from yarnit.core.errors import ConfigError
    from yarnit.core.hashing import sha256_bytes
    from yarnit.monitoring import load_slo_file
    from yarnit.monitoring.workspace import slo_path
    from yarnit.storage.schema import audit_log

    spec = load_slo_file(path)  # validates: a bad file stops here, naming the field
    data = path.read_bytes()
    if _parse_bytes(data, path.name) != spec:  # the bytes written are the bytes validated
        raise ConfigError(f"SLO file {path.name!r} changed while it was being applied; apply it again.")
    digest = sha256_bytes(data)
    actor = cli_actor()
    with workspace() as ws:
        target = slo_path(ws.home)
        previous = sha256_bytes(target.read_bytes()) if target.is_file() else None
        with ws.metadata.begin() as conn:  # the file is written inside the audit row's transaction: a failed
            conn.execute(insert(audit_log).values(  # write rolls the row back; only a crash between can leave
                at=ws.clock.now(), actor=actor, action="slo.apply", subject="slos.yaml",  # the file unaudited
                detail={"sha256": digest, "previous_sha256": previous, "service": spec.service,
                        "slos": [s.name for s in spec.slos], "source": path.name}))
            atomic_write_bytes(target, data)
    summary = {"path": str(target), "sha256": digest, "previous_sha256": previous, "changed": previous != digest,
               "service": spec.service, "slos": [s.name for s in spec.slos], "actor": actor}
    emit(summary, as_json, lambda: console.print(
        f"applied {len(spec.slos)} SLO(s) of service {spec.service} as {target} (sha256:{digest[:12]}…"
        + ("" if summary["changed"] else ", unchanged") + f"); audited as {actor}"))


OPTIONAL_FILE = typer.Argument(None, help="SLO file (default: the workspace's, set by yarnit slo apply).")


@app.command("status")
@cli_errors
def status(path: Path | None = OPTIONAL_FILE,
           counts: Path | None = typer.Option(None, "--counts", help="JSON lines of per-minute counts: "
                                              '{"slo": NAME, "at": ISO-TIME, "good": N, "total": N} '
                                              "(default: each SLI's own source in the workspace)."),
           log_dir: Path | None = typer.Option(None, "--log-dir", help="Read the serving SLIs from this prediction "
                                               "log directory only (default: every SLI from its workspace source)."),
           at: str | None = typer.Option(None, "--at", help="Evaluate at this ISO 8601 time (default: now)."),
           as_json: bool = JSON_OPTION) -> None:
    """Each SLO's state, error budget left and burn rate per alert window.

    Without FILE, the workspace's SLO file (yarnit slo apply). Without --counts or --log-dir, every SLO is
    counted by the source of its SLI kind (the prediction log for serving SLIs, probes for freshness and
    pipelines, labels for quality); a kind whose source is not installed reads "no source". The log is read
    incrementally: a checkpoint under $YARNIT_HOME/monitoring keeps the counts and, per segment, how far it
    was read, so a rerun reads only what is new.
    """
    from datetime import datetime, timezone

    from yarnit.core.errors import InvalidInput
    from yarnit.monitoring import SLISource, evaluate, format_duration, load_slo_file
    from yarnit.monitoring.sources import read_counts_jsonl
    from yarnit.monitoring.workspace import (
        SourceUnavailable,
        WorkspaceSLISource,
        load_workspace_slos,
    )

    if counts is not None and log_dir is not None:
        raise InvalidInput("Give either --counts (a counts file) or --log-dir (a prediction log), not both.")
    with workspace() as ws:
        if path is not None:
            spec = load_slo_file(path)
        else:
            found = load_workspace_slos(ws.home)
            if found is None:
                raise InvalidInput(f"No SLO file has been applied to this workspace ({ws.home}): apply one with "
                                   "yarnit slo apply slos.yaml, or give the file: yarnit slo status slos.yaml.")
            spec = found
        if at is None:
            when = ws.clock.now()
        else:
            try:
                when = datetime.fromisoformat(at.replace("Z", "+00:00"))
            except ValueError:
                raise InvalidInput(f"--at must be an ISO 8601 time such as 2026-03-01T10:00:00Z, got {at!r}."
                                   ) from None
            if when.tzinfo is None:
                raise InvalidInput(f"--at needs a time zone (e.g. {at}Z for UTC), got {at!r}.")
        when = when.astimezone(timezone.utc)
        log_read: dict[str, object] | None = None
        if counts is not None:
            source: SLISource = read_counts_jsonl(counts, spec)
        elif log_dir is not None:
            from yarnit.monitoring.predlog_source import (
                PredictionLogSource,
                default_state_path,
            )

            if not log_dir.is_dir():
                raise InvalidInput(f"No prediction log at {log_dir}: serve a model first, point --log-dir at the "
                                   "log directory, or give --counts.")
            log_source = PredictionLogSource(log_dir, spec, ws.clock,
                                             state_path=default_state_path(ws.home, spec, log_dir))
            log_read = _log_report(log_source.refresh(), log_dir)
            source = log_source
        else:
            workspace_source = WorkspaceSLISource(ws, spec, clock=ws.clock)
            serving = next((s for s in spec.slos if s.sli in ("serving_availability", "serving_latency")), None)
            if serving is not None:  # read the log once up front, to report what was read
                log_source = workspace_source.source_for(serving)
                refresh = getattr(log_source, "refresh", None)
                if refresh is not None:
                    log_read = _log_report(refresh(), getattr(log_source, "directory", ""))
            source = workspace_source
        statuses: list[Any] = []
        for slo in spec.slos:
            try:
                statuses.append(evaluate(slo, source.counts(slo, until_s=when.timestamp()), when))
            except SourceUnavailable as exc:
                statuses.append(_NoSource(slo, str(exc)))
    data = {"service": spec.service, "at": when.isoformat(), "slos": [s.to_dict() for s in statuses]}
    if log_read is not None:
        data["prediction_log"] = log_read

    def human() -> None:
        table = Table("slo", "sli", "objective", "state", "budget left", "burn rate (long/short)",
                      title=f"service {spec.service} at {when.isoformat()}")
        for s in statuses:
            if isinstance(s, _NoSource):
                table.add_row(s.slo.name, s.slo.sli, f"{float(s.slo.objective * 100):g} %", "no source", "-",
                              "not installed here")
                continue
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


def _parse_bytes(data: bytes, name: str) -> object:
    import yaml

    from yarnit.monitoring import parse_slo_file

    try:
        return parse_slo_file(yaml.safe_load(data.decode("utf-8")), source=name)
    except (UnicodeDecodeError, yaml.YAMLError):
        return None


@dataclass(frozen=True)
class _NoSource:
    """An SLO whose SLI kind has no source installed: its own state, never a crash and never a pass."""

    slo: SLO
    detail: str
    state: str = "no_source"

    def to_dict(self) -> dict[str, Any]:
        from yarnit.monitoring import format_duration

        s = self.slo
        return {"slo": s.name, "service": s.service, "sli": s.sli, "model": s.model, "objective": float(s.objective),
                "window": format_duration(s.window_s), "state": self.state, "budget_remaining": None,
                "budget_exhausted": False, "detail": self.detail}


def _log_report(report: Any, directory: Any) -> dict[str, Any]:
    return {"directory": str(directory), "segments": report.segments, "records": report.records,
            "bytes_read": report.bytes_read, "skipped": report.skipped, "corrupt_lines": report.corrupt_lines}


def _burn(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"
