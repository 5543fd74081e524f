"""``yarnit incidents …``: list, show, acknowledge, staff, annotate, mitigate, resolve, write the postmortem.

Incidents are opened by the monitor (``yarnit monitor run``) from its alerts;
these commands are how people work them. Every change is recorded on the
incident's timeline with the operating-system user (``user:NAME``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Column, Table

from .common import JSON_OPTION, cli_errors, console, emit, plain, workspace

app = typer.Typer(help="Incidents opened by alerts: triage, roles, timeline, mitigation, postmortem (book ch. 11).",
                  no_args_is_help=True)
ID_ARGUMENT = typer.Argument(..., help="Incident id (see: yarnit incidents list).")


def _change(how: Any) -> dict[str, Any]:
    from yarnit.access import cli_actor
    from yarnit.incidents import IncidentStore

    with workspace() as ws, IncidentStore.locked(ws.home, ws.clock) as store:
        return how(store, cli_actor()).to_dict()


def _done(value: dict[str, Any], as_json: bool, message: str) -> None:
    emit(value, as_json, lambda: console.print(plain(message)))


@app.command("list")
@cli_errors
def list_incidents(state: str = typer.Option("active", "--state", help="active (not resolved), open, mitigated, "
                                             "resolved or all."),
                   limit: int = typer.Option(50, "--limit", min=1, max=1000), as_json: bool = JSON_OPTION) -> None:
    """Incidents newest first: severity, state, models, commander, detection."""
    from yarnit.incidents import IncidentStore

    with workspace() as ws:
        rows = [i.summary() for i in IncidentStore.open(ws.home, ws.clock).list(state, limit=limit)]

    def human() -> None:
        if not rows:
            console.print(f"no {state} incidents (the monitor opens them from alerts: yarnit monitor run)")
            return
        table = Table(Column("id", no_wrap=True, min_width=30), "sev", "state", "acked", "title", "models",
                      "commander", "detected")  # the id unbroken: it is what the other commands take
        for r in rows:
            table.add_row(r["id"], r["severity"], r["state"], "yes" if r["acked"] else "no", plain(r["title"]),
                          plain(", ".join(r["models"]) or "-"), plain(r["commander"] or "-"),
                          (r["detection"] or "-")[:19])
        console.print(table)

    emit({"state": state, "count": len(rows), "incidents": rows}, as_json, human)


@app.command("show")
@cli_errors
def show(incident_id: str = ID_ARGUMENT, as_json: bool = JSON_OPTION) -> None:
    """One incident: phases, roles, impact, triage (changes before the outage) and timeline."""
    from yarnit.incidents import IncidentStore, durations
    from yarnit.incidents.postmortem import duration

    with workspace() as ws:
        incident = IncidentStore.open(ws.home, ws.clock).get(incident_id)
    data = incident.to_dict() | {"durations": durations(incident)}

    def human() -> None:
        console.print(plain(f"{incident.id}  {incident.severity}  {incident.state}"
                            f"{' (acked by ' + incident.acked_by + ')' if incident.acked_by else ''}"))
        console.print(plain(f"{incident.title}; models: {', '.join(incident.models) or '-'}"))
        phases = Table("phase", "time (UTC)")
        for phase, at in incident.phases.items():
            phases.add_row(phase, at or "-")
        console.print(phases)
        d = data["durations"]
        console.print(f"time to detect {duration(d['time_to_detect_s'])}, to mitigate "
                      f"{duration(d['time_to_mitigate_s'])}, to resolve {duration(d['time_to_resolve_s'])}")
        if incident.roles:
            console.print(plain("roles: " + ", ".join(f"{r}={w}" for r, w in sorted(incident.roles.items()))))
        triage = Table("#", "id", "when", "kind", "change", "distance", title="triage: changes before the outage")
        for item in incident.triage[:15]:
            dist = item.get("lineage_distance")
            triage.add_row(str(item.get("rank")), plain(item["id"]), item["at"][:19], item["kind"],
                           plain(item["summary"][:80]), "-" if dist is None else str(dist))
        console.print(triage)
        timeline = Table("time", "event", "by", "what", title="timeline")
        for e in incident.events:
            timeline.add_row(e.at[:19], e.kind, plain(e.actor), plain(e.summary[:100]))
        console.print(timeline)

    emit(data, as_json, human)


@app.command("ack")
@cli_errors
def ack(incident_id: str = ID_ARGUMENT, as_json: bool = JSON_OPTION) -> None:
    """Acknowledge: you have the incident."""
    value = _change(lambda s, actor: s.ack(incident_id, actor=actor))
    _done(value, as_json, f"acknowledged {incident_id}")


@app.command("assign")
@cli_errors
def assign(incident_id: str = ID_ARGUMENT,
           role: str = typer.Option(..., "--role", help="commander, communications, operations or planning."),
           who: str | None = typer.Option(None, "--who", help="Who takes the role (omit with --clear)."),
           clear: bool = typer.Option(False, "--clear", help="Leave the role empty."),
           as_json: bool = JSON_OPTION) -> None:
    """Put someone in an incident role (CH11-R1), or clear it; audited on the timeline."""
    from yarnit.core.errors import InvalidInput

    if (who is None) != clear:
        raise InvalidInput("Give --who NAME to assign the role, or --clear to leave it empty (one of them).")
    value = _change(lambda s, actor: s.assign(incident_id, role, who, actor=actor))
    _done(value, as_json, f"{role} of {incident_id}: {who or '(empty)'}")


@app.command("note")
@cli_errors
def note(incident_id: str = ID_ARGUMENT, text: str = typer.Argument(..., help="The note (plain text)."),
         as_json: bool = JSON_OPTION) -> None:
    """Add a note to the timeline."""
    def add(store: Any, actor: str) -> Any:
        store.note(incident_id, text, actor=actor)
        return store.get(incident_id)
    _done(_change(add), as_json, f"noted on {incident_id}")


@app.command("trigger")
@cli_errors
def trigger(incident_id: str = ID_ARGUMENT,
            change: str = typer.Argument(..., help="The triage item id of the change that caused it."),
            as_json: bool = JSON_OPTION) -> None:
    """Name the change that triggered the incident (from its triage list); sets the trigger phase."""
    value = _change(lambda s, actor: s.set_trigger(incident_id, change, actor=actor))
    _done(value, as_json, f"trigger of {incident_id}: {change}")


@app.command("mitigate")
@cli_errors
def mitigate_cmd(incident_id: str = ID_ARGUMENT,
                 action: str = typer.Option(..., "--action", help="roll_back, fall_back, stop_training, …"),
                 model: str | None = typer.Option(None, "--model", help="Default: the incident's first model."),
                 reason: str = typer.Option("", "--reason"), as_json: bool = JSON_OPTION) -> None:
    """Run an emergency action for the incident (yarnit.continuous.actions) and record it on the timeline."""
    from yarnit.access import cli_actor
    from yarnit.core.errors import Conflict
    from yarnit.incidents import mitigate

    with workspace() as ws:
        result = mitigate(ws, incident_id, action, actor=cli_actor(), model=model, reason=reason)
    if not result["ok"]:
        raise Conflict(f"{action} on {result['model']} failed: {result['result']['error']} (recorded on "
                       f"{incident_id}'s timeline).")
    _done(result, as_json, f"{action} on {result['model']}: done; recorded on {incident_id}")


@app.command("resolve")
@cli_errors
def resolve(incident_id: str = ID_ARGUMENT,
            reason: str = typer.Option(..., "--reason", help="Why it is over (one line)."),
            as_json: bool = JSON_OPTION) -> None:
    """Resolve the incident (sets the resolution phase)."""
    value = _change(lambda s, actor: s.resolve(incident_id, reason=reason, actor=actor))
    _done(value, as_json, f"resolved {incident_id}")


@app.command("postmortem")
@cli_errors
def postmortem(incident_id: str = ID_ARGUMENT,
               out: Path | None = typer.Option(None, "--out", "-o", help="Write the Markdown here (atomically)."),
               as_json: bool = JSON_OPTION) -> None:
    """The blameless postmortem in Markdown, from the timeline and triage (stdout, or -o FILE)."""
    import sys

    from yarnit.core.atomic import atomic_write_text
    from yarnit.incidents import IncidentStore, render_postmortem

    with workspace() as ws:
        text = render_postmortem(IncidentStore.open(ws.home, ws.clock).get(incident_id))
    if out is not None:
        atomic_write_text(out, text)
    if as_json:
        emit({"incident": incident_id, "out": str(out) if out else None, "markdown": text}, True, lambda: None)
    elif out is None:
        sys.stdout.write(text)
    else:
        console.print(plain(f"wrote the postmortem of {incident_id} to {out}"))


__all__ = ["app"]
