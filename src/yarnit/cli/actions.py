"""``yarnit emergency …``: the five emergency actions (book CH10-R3), each one command, audited and reversible.

stop-training / resume-training, fall-back / restore, roll-back, remove-data,
roll-through, plus ``status`` (which switches are set) and ``history`` (every
emergency action, from the audit log). The actor is the OS user
(``user:<name>``); ``--reason`` is required and kept in the audit history.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Column, Table

from yarnit.access import cli_actor
from yarnit.continuous import actions

from .common import JSON_OPTION, cli_errors, console, emit, plain, workspace

app = typer.Typer(help="Emergency actions: stop training, fall back, roll back, remove bad data, roll through.",
                  no_args_is_help=True)

REASON = typer.Option(..., "--reason", help="Why (required; kept in the audit history).")


def _done(result: dict[str, Any], as_json: bool, text: str) -> None:
    def human() -> None:
        if not result.get("changed"):
            console.print(f"{text}: nothing to change (already so)")
            return
        console.print(f"{text} (audit #{result.get('audit_id')})")
        if result.get("undo"):
            console.print(plain(f"undo: {result['undo']}"))

    emit(result, as_json, human)


@app.command("stop-training")
@cli_errors
def stop_training(model: str, reason: str = REASON, as_json: bool = JSON_OPTION) -> None:
    """Freeze pushes: pipelines and the loop still register versions of MODEL but no longer promote them."""
    with workspace() as ws:
        result = actions.stop_training(ws, model, actor=cli_actor(), reason=reason)
    _done(result, as_json, f"{model}: training frozen")


@app.command("resume-training")
@cli_errors
def resume_training(model: str, reason: str = REASON, as_json: bool = JSON_OPTION) -> None:
    """Lift stop-training: pipelines and the loop may promote MODEL again."""
    with workspace() as ws:
        result = actions.resume_training(ws, model, actor=cli_actor(), reason=reason)
    _done(result, as_json, f"{model}: training resumed")


@app.command("fall-back")
@cli_errors
def fall_back(model: str, reason: str = REASON, as_json: bool = JSON_OPTION) -> None:
    """Serve MODEL's declared fallback (the fallback alias, else its heuristic prior) on every server, now.

    Running servers switch within their policy refresh interval. Refused when MODEL declares no fallback.
    """
    with workspace() as ws:
        result = actions.fall_back(ws, model, actor=cli_actor(), reason=reason)
    fallback = result["fallback"]
    what = f"v{fallback['version']} (fallback alias)" if fallback["kind"] == "alias" else \
        f"the heuristic prior of v{fallback['of_version']}"
    _done(result, as_json, f"{model}: serving {what}")


@app.command("restore")
@cli_errors
def restore(model: str, reason: str = REASON, as_json: bool = JSON_OPTION) -> None:
    """Undo fall-back: MODEL answers again."""
    with workspace() as ws:
        result = actions.restore_model(ws, model, actor=cli_actor(), reason=reason)
    _done(result, as_json, f"{model}: the model answers again")


@app.command("roll-back")
@cli_errors
def roll_back(model: str, reason: str = REASON, as_json: bool = JSON_OPTION) -> None:
    """Production to the previous version (never refused by the error-budget gate)."""
    with workspace() as ws:
        result = actions.roll_back(ws, model, actor=cli_actor(), reason=reason)
    _done(result, as_json, f"{model}: production v{result['from']['version']} → v{result['to']['version']}")


@app.command("abort-canary")
@cli_errors
def abort_canary(model: str, reason: str = REASON, as_json: bool = JSON_OPTION) -> None:
    """Take the canary's traffic away: share 0, the canary alias back to production's version."""
    with workspace() as ws:
        result = actions.abort_canary(ws, model, actor=cli_actor(), reason=reason)
    before, after = result["from"], result["to"]
    _done(result, as_json, f"{model}: canary share {before['canary_percent']:g}% → {after['canary_percent']:g}%, "
                           f"canary alias v{before['canary']} → v{after['canary']}")


@app.command("remove-data")
@cli_errors
def remove_data(dataset: str = typer.Argument(..., help="NAME (its newest version) or NAME:vN."),
                start: str = typer.Option(..., "--start", help="First instant removed (ISO 8601, UTC if no zone)."),
                end: str = typer.Option(..., "--end", help="First instant kept after the window (exclusive)."),
                time_column: str = typer.Option(None, "--time-column", help="The rows' time (default: event_time, "
                                                "or the only timestamp column)."),
                reason: str = REASON, as_json: bool = JSON_OPTION) -> None:
    """Drop a time window of DATASET from training: a new version without it, and retrains requested."""
    with workspace() as ws:
        result = actions.remove_bad_data(ws, dataset, start=start, end=end, time_column=time_column,
                                         actor=cli_actor(), reason=reason)
    models = ", ".join(r["model"] for r in result["retrain_requests"]) or "none"
    _done(result, as_json, f"{result['from']} → {result['to']}: {result['rows_removed']} rows removed, "
                           f"{result['rows_kept']} kept; retrain requested for: {models}")


@app.command("roll-through")
@cli_errors
def roll_through(alert: list[str] = typer.Option(None, "--alert", help="An alert id (repeatable)."),
                 slo: str = typer.Option(None, "--slo", help="Every open alert of this SLO (name or id)."),
                 reason: str = REASON, as_json: bool = JSON_OPTION) -> None:
    """Acknowledge alerts and keep going: they are not re-sent until they resolve."""
    with workspace() as ws:
        result = actions.roll_through(ws, alert_ids=alert or None, slo=slo, actor=cli_actor(), reason=reason)
    _done(result, as_json, f"acknowledged {len(result['acked'])} alert(s)"
                           + (f", {len(result['already_acked'])} already acknowledged" if result["already_acked"]
                              else ""))


@app.command("status")
@cli_errors
def status(model: str, as_json: bool = JSON_OPTION) -> None:
    """Which emergency switches are set for MODEL, and its recent emergency actions."""
    with workspace() as ws:
        data = actions.switches(ws, model) | {"history": actions.history(ws, model=model, limit=20)}

    def human() -> None:
        frozen = data["training_frozen"]
        console.print(plain(f"{model}: training {'FROZEN: ' + frozen['reason'] if frozen else 'running'} · "
                            f"{'FALLING BACK' if data['force_fallback'] else 'model answers'} · production "
                            f"v{data['production']} (rolls back to v{data['rollback_target']}) · "
                            f"{len(data['pending_retrains'])} retrain(s) pending"))
        if data["history"]:
            table = Table("at", Column("action", no_wrap=True), Column("actor", no_wrap=True),
                          Column("reason", overflow="fold"))
            for row in data["history"]:
                table.add_row(row["at"][:19], row["action"], plain(row["actor"]),
                              plain(str(row["detail"].get("reason", ""))))
            console.print(table)

    emit(data, as_json, human)


__all__ = ["app"]
