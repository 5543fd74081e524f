"""The loop's own alerts (data checks, labels held) and the removed-data windows it honours.

The loop raises tickets in the monitor's alert store (where ``yarnit alerts``
and incident intake read alerts), under the monitor's lock
(:func:`yarnit.monitoring.alerts.locked_store`). Their ``slo_id`` starts with
``loop:``; the monitor leaves such alerts alone (they have no SLO in the SLO
file: the loop itself resolves them).

* ``loop:<model>:data:<check>`` (sli ``data_validation``): a data check of a
  day failed; evidence ``{day, days, check, observed, expected, window:
  {time_column, start, end}, dataset}``. A later day passing that check
  resolves it.
* ``loop:<model>:labels`` (sli ``label_completeness``): a day is held for
  incomplete labels; evidence ``{day, days, waiting, window, check,
  observed, expected}``. Resolved once no held day is waiting.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from yarnit.core.ids import new_id
from yarnit.storage import Workspace
from yarnit.storage.schema import audit_log

LOOP_PREFIX = "loop:"


def raise_alert(ws: Workspace, *, slo_id: str, model: str, sli: str, name: str, slo: str, summary: str,
                runbook: str, evidence: dict[str, Any]) -> dict[str, Any]:
    """Open the ticket ``slo_id`` (or refresh the open one: summary, evidence merged, days accumulated)."""
    from yarnit.monitoring.alerts import Alert, locked_store
    from yarnit.monitoring.workspace import monitoring_dir

    now = ws.clock.now().isoformat()
    with locked_store(monitoring_dir(ws.home)) as store:
        current = store.open_alert(slo_id, "ticket")
        if current is not None:
            days = sorted({*current.evidence.get("days", []), *evidence.get("days", [])})
            kept = {k: current.evidence[k] for k in ("day", "window", "dataset") if k in current.evidence}
            current.updated_at, current.summary = now, summary[:1000]
            current.evidence = current.evidence | evidence | kept | {"days": days}  # the first bad day's window stays
            return current.to_dict()
        alert = Alert(id=new_id("alert", ws.clock), slo_id=slo_id, service=f"yarnit-loop-{model}", slo=slo, sli=sli,
                      model=model, alert="ticket", alert_name=name, severity="ticket", state="firing",
                      started_at=now, updated_at=now, ended_at=None, summary=summary[:1000], runbook=runbook,
                      evidence=evidence)
        store.alerts.append(alert)
        return alert.to_dict()


def open_alert(ws: Workspace, slo_id: str) -> dict[str, Any] | None:
    """The open ticket ``slo_id`` as a dict, or None."""
    from yarnit.monitoring.alerts import AlertStore, alerts_path
    from yarnit.monitoring.workspace import monitoring_dir

    path = alerts_path(monitoring_dir(ws.home))
    if not path.exists():
        return None
    alert = AlertStore.open(path).open_alert(slo_id, "ticket")
    return None if alert is None else alert.to_dict()


def update_alert(ws: Workspace, slo_id: str, evidence: dict[str, Any], *, resolve: bool,
                 because: str) -> dict[str, Any] | None:
    """Merge ``evidence`` into the open ticket ``slo_id``, and resolve it when ``resolve``; None if none is open."""
    from yarnit.monitoring.alerts import locked_store
    from yarnit.monitoring.workspace import monitoring_dir

    now = ws.clock.now().isoformat()
    with locked_store(monitoring_dir(ws.home)) as store:
        current = store.open_alert(slo_id, "ticket")
        if current is None:
            return None
        current.evidence = current.evidence | evidence
        current.updated_at = now
        if resolve:
            current.state, current.ended_at = "resolved", now
            current.evidence = current.evidence | {"resolved_because": because}
        return current.to_dict()


def data_alerts(ws: Workspace, model: str, day: str, report: dict[str, Any] | None,
                clean: dict[str, Any] | None) -> list[str]:
    """Raise a ticket per failing check of ``day``'s ``report``; a pass on a later day resolves it. Alert ids."""
    touched: list[str] = []
    for check, result in sorted(((report or {}).get("checks") or {}).items()):
        slo_id = f"{LOOP_PREFIX}{model}:data:{check}"
        if result.get("status") == "fail":
            evidence = {"day": day, "days": [day], "check": check, "observed": result.get("observed"),
                        "expected": result.get("expected"), "window": result.get("window"),
                        "dataset": (clean or {}).get("ref"), "why": result.get("why")}
            alert = raise_alert(ws, slo_id=slo_id, model=model, sli="data_validation", slo=f"loop data {check}",
                                name=f"YarnitLoopData{''.join(p.capitalize() for p in check.split('_'))}",
                                summary=f"Data check {check} of {model}'s day {day} failed: {result.get('why')}",
                                runbook="yarnit loop status; look at the day's data; remove it from training with "
                                        "yarnit emergency remove-bad-data DATASET --start S --end E",
                                evidence=evidence)
            touched.append(alert["id"])
        elif result.get("status") == "pass":
            current = open_alert(ws, slo_id)
            if current is not None and max(current["evidence"].get("days") or [""]) < day:
                update_alert(ws, slo_id, {"passed_on": day}, resolve=True, because=f"the check passed on {day}")
                touched.append(current["id"])
    return touched


def label_alert(ws: Workspace, model: str, day: str, label: dict[str, Any], *, held: bool,
                window: dict[str, str]) -> str | None:
    """``held``: a ticket that ``day`` waits for its labels; else ``day`` is no longer waiting (resolved if none is)."""
    slo_id = f"{LOOP_PREFIX}{model}:labels"
    if held:
        current = open_alert(ws, slo_id)
        waiting = sorted({*((current or {}).get("evidence", {}).get("waiting") or []), day})
        alert = raise_alert(ws, slo_id=slo_id, model=model, sli="label_completeness", slo="loop labels",
                            name="YarnitLoopLabelsIncomplete",
                            summary=f"The loop of {model} holds {', '.join(waiting)}: labels incomplete "
                                    f"({label.get('note', '')})",
                            runbook="yarnit loop status; check the click log pipeline (late clicks); the day "
                                    "trains once its labels arrive",
                            evidence={"day": day, "days": [day], "waiting": waiting, "window": window,
                                      "check": "label_completeness", "observed": label.get("rate"),
                                      "expected": label.get("needed")})
        return str(alert["id"])
    current = open_alert(ws, slo_id)
    if current is None or day not in (current["evidence"].get("waiting") or []):
        return None
    waiting = [d for d in current["evidence"]["waiting"] if d != day]
    update_alert(ws, slo_id, {"waiting": waiting}, resolve=not waiting and not current["evidence"].get("skipped"),
                 because=f"the labels of {day} are complete")
    return str(current["id"])


def removed_windows(ws: Workspace, datasets: tuple[str, ...]) -> list[list[str]]:
    """``[time_column, start, end]`` of every ``remove_bad_data`` on one of ``datasets``, oldest first."""
    with ws.metadata.begin() as conn:
        rows = conn.execute(select(audit_log.c.detail).where(audit_log.c.action == "emergency.remove_bad_data")
                            .order_by(audit_log.c.id)).scalars().all()
    out: list[list[str]] = []
    for detail in rows:
        window = (detail or {}).get("window") or {}
        if (detail or {}).get("dataset") in datasets and window.get("start") and window.get("end"):
            entry = [str(window.get("time_column") or "event_time"), str(window["start"]), str(window["end"])]
            if entry not in out:
                out.append(entry)
    return out


__all__ = ["LOOP_PREFIX", "data_alerts", "label_alert", "open_alert", "raise_alert", "removed_windows",
           "update_alert"]
