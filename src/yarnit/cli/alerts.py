"""``yarnit alerts list``: the monitor's alerts, newest first, with their evidence and runbook."""

from __future__ import annotations

import typer
from rich.table import Table

from .common import JSON_OPTION, cli_errors, console, emit, plain, workspace

app = typer.Typer(help="Alerts opened by the SLO monitor (yarnit monitor run).", no_args_is_help=True)


@app.command("list")
@cli_errors
def list_alerts(state: str = typer.Option("all", "--state", help="firing, resolved or all."),
                limit: int = typer.Option(50, "--limit", min=1, max=1000, help="At most this many alerts."),
                as_json: bool = JSON_OPTION) -> None:
    """List alerts (newest first): SLO, severity, state, since when, who acknowledged it, summary and runbook."""
    from yarnit.core.errors import InvalidInput
    from yarnit.monitoring.alerts import AlertStore, alerts_path
    from yarnit.monitoring.workspace import monitoring_dir

    if state not in ("firing", "resolved", "all"):
        raise InvalidInput(f"--state must be one of firing, resolved, all; got {state!r}.")
    with workspace() as ws:
        path = alerts_path(monitoring_dir(ws.home))
        alerts = AlertStore.open(path).list(state, limit=limit) if path.exists() else []
    rows = [a.to_dict() for a in alerts]

    def human() -> None:
        if not rows:
            console.print(f"no {'' if state == 'all' else state + ' '}alerts (the monitor writes them: "
                          "yarnit monitor run)")
            return
        table = Table("alert", "slo", "model", "severity", "state", "since", "until", "acked")
        for a in rows:
            table.add_row(a["alert_name"], plain(a["slo"]), plain(a["model"] or "-"), a["severity"], a["state"],
                          a["started_at"][:19], (a["ended_at"] or "-")[:19],
                          plain(f"by {a['acked_by']}") if a["acked_at"] else "-")
        console.print(table)
        for a in rows:  # what happened and what to do, in full (a table cell would cut both)
            runbook = f" runbook: {a['runbook']}" if a["runbook"] else ""
            acked = f" Acknowledged by {a['acked_by']} at {a['acked_at'][:19]}: {a['ack_reason']}." \
                if a["acked_at"] else ""
            console.print(plain(f"{a['alert_name']} ({a['state']}): {a['summary']}{runbook}{acked}"), soft_wrap=True)

    emit({"state": state, "count": len(rows), "alerts": rows}, as_json, human)


__all__ = ["app"]
