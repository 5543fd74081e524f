"""A blameless postmortem in Markdown, generated from an incident's timeline, impact and triage.

What the record knows is filled in (summary, impact, the five phases with
times and the durations between them, the changes triage listed, every action
taken and its result, the full timeline); what only people know (what went
well, what went badly, where we got lucky, follow-up items) is left as clearly
marked placeholders, with the book's prompts. Blameless: actors appear as the
roles and systems that acted, and the text describes what happened, not who
failed. Free text from the timeline is escaped so a note cannot inject
Markdown or HTML into the document.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from .models import PHASES, Incident

PLACEHOLDER = "> **TO BE WRITTEN BY THE INCIDENT TEAM.**"
_MD = re.compile(r"([\\`*_{}\[\]<>()#+!|~])")


def _esc(text: Any) -> str:
    return _MD.sub(r"\\\1", " ".join(str(text).split()))


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def duration(seconds: float | None) -> str:
    """``1 h 05 min``, ``12 min``, ``45 s``; ``—`` when unknown."""
    if seconds is None:
        return "—"
    sign, s = ("-" if seconds < 0 else ""), int(round(abs(seconds)))
    if s < 60:
        return f"{sign}{s} s"
    hours, minutes = divmod(s // 60, 60)
    if hours >= 24:
        days, hours = divmod(hours, 24)
        return f"{sign}{days} d {hours} h {minutes:02d} min"
    return f"{sign}{hours} h {minutes:02d} min" if hours else f"{sign}{minutes} min"


def durations(incident: Incident) -> dict[str, float | None]:
    """Seconds from the outage start to detection, mitigation and resolution (and detection → mitigation)."""
    start, det = _dt(incident.phases.get("outage_start")), _dt(incident.phases.get("detection"))
    mit, res = _dt(incident.phases.get("mitigation")), _dt(incident.phases.get("resolution"))

    def span(a: datetime | None, b: datetime | None) -> float | None:
        return (b - a).total_seconds() if a and b else None

    return {"time_to_detect_s": span(start, det), "time_to_mitigate_s": span(start, mit),
            "time_to_resolve_s": span(start, res), "detect_to_mitigate_s": span(det, mit),
            "trigger_to_outage_s": span(_dt(incident.phases.get("trigger")), start)}


def render_postmortem(incident: Incident) -> str:
    p, d = incident.phases, durations(incident)
    lines = [f"# Postmortem: {_esc(incident.title)}", "",
             f"*Incident `{incident.id}` · {incident.severity} · state **{incident.state}** · generated from the "
             "incident record by yarnit; blameless: it describes what happened and what the systems and roles did, "
             "not who is at fault.*", "",
             *(["**A postmortem is required by the error-budget policy:** this incident spent more than the "
                "policy's share of an SLO's error budget (see Impact).", ""] if incident.postmortem_required else []),
             "## Summary", "",
             f"- **What:** {_esc(incident.title)} (service `{_esc(incident.service)}`).",
             f"- **Affected models:** {', '.join(f'`{_esc(m)}`' for m in incident.models) or '—'}.",
             f"- **Affected data:** {', '.join(f'`{_esc(x)}`' for x in incident.data) or 'none named yet'}.",
             f"- **Alerts:** {len(incident.alerts)} "
             f"({', '.join(sorted({_esc(a['alert_name']) + ' ' + a['alert'] for a in incident.alerts.values()}))}).",
             f"- **Time to detect:** {duration(d['time_to_detect_s'])}; **to mitigate:** "
             f"{duration(d['time_to_mitigate_s'])}; **to resolve:** {duration(d['time_to_resolve_s'])} "
             "(each from the outage start).", "",
             PLACEHOLDER + " One paragraph: what users saw, why, and how it ended.", "",
             "## Impact", ""]
    if incident.impact:
        lines += ["| SLO | SLI | bad events since the outage start | error budget spent | budget left |",
                  "|---|---|---:|---:|---:|"]
        for entry in incident.impact.values():
            spent = entry.get("budget_spent")
            left = entry.get("budget_remaining")
            lines.append(f"| {_esc(entry['slo'])} | {_esc(entry['sli'])} | {entry.get('bad_events', 0)} | "
                         f"{'—' if spent is None else f'{spent:.1%}'} | "
                         f"{'—' if left is None else f'{left:.1%}'} |")
        lines += ["", "Bad events are the SLO's own events (for serving SLOs: requests not answered by the model) "
                      "counted over its window, minus those before the outage start."]
    else:
        lines.append("No SLO counted the impact (no alert carried counts).")
    lines += ["", PLACEHOLDER + " Revenue, CTR, partners, users: the impact beyond the SLOs (finance, partner "
                                "management and PR may need to add theirs).", "",
              "## Phases", "", "| phase | time (UTC) | since outage start |", "|---|---|---:|"]
    start = _dt(p.get("outage_start"))
    names = {"trigger": "trigger (the change that caused it)", "outage_start": "outage start (first bad minute)",
             "detection": "detection (first alert)", "mitigation": "mitigation", "resolution": "resolution"}
    for phase in PHASES:
        at = _dt(p.get(phase))
        since = duration((at - start).total_seconds()) if at and start else "—"
        lines.append(f"| {names[phase]} | {at.isoformat() if at else 'not recorded'} | {since} |")
    lines += ["", f"- Time to detect: **{duration(d['time_to_detect_s'])}**",
              f"- Time to mitigate: **{duration(d['time_to_mitigate_s'])}** "
              f"(detection to mitigation: {duration(d['detect_to_mitigate_s'])})",
              f"- Time to resolve: **{duration(d['time_to_resolve_s'])}**", ""]
    outage_note = next((a for a in incident.alerts.values() if a.get("outage_start") == p.get("outage_start")), None)
    if outage_note is not None:
        how = "to the minute from the SLO's per-minute counts" if outage_note.get("outage_start_from") == "counts" \
            else "estimated from the alert's evidence windows"
        lines += [f"The outage start is {how} ({_esc(outage_note['slo'])}).", ""]
    lines += ["## Trigger", ""]
    if incident.trigger:
        change = incident.trigger["change"]
        lines.append(f"Named by {_esc(incident.trigger['by'])}: **{_esc(change['summary'])}** "
                     f"({change['kind']}, {change['at']}).")
    else:
        lines.append("Not identified yet. Name it from the triage list: "
                     f"`yarnit incidents trigger {incident.id} CHANGE_ID`.")
    lines += ["", "## Changes before the outage (automatic triage)", "",
              "Evidence, not conclusions: every recorded change in the lookback window, the model's own lineage "
              "path first, then by time before the outage start.", ""]
    if incident.triage:
        lines += ["| # | when (UTC) | before outage | kind | change | lineage |", "|---:|---|---:|---|---|---|"]
        for item in incident.triage[:30]:
            dist = item.get("lineage_distance")
            lineage = f"{_esc(item['relation'])} (distance {dist})" if dist is not None else "not on the path"
            lines.append(f"| {item.get('rank', '')} | {item['at']} | {duration(item.get('before_outage_s'))} | "
                         f"{item['kind']} | {_esc(item['summary'])} | {lineage} |")
        if len(incident.triage) > 30:
            lines.append(f"\n…and {len(incident.triage) - 30} more (yarnit incidents show {incident.id} --json).")
    else:
        lines.append("Triage found no recorded change in the lookback window.")
    lines += ["", "## Actions taken", ""]
    actions = [e for e in incident.events if e.kind in ("mitigation", "mitigation_failed", "mitigation_suggested")]
    if actions:
        for e in actions:
            result = e.data.get("result", {})
            outcome = {"mitigation": "done", "mitigation_failed": f"failed ({_esc(result.get('error', ''))})",
                       "mitigation_suggested": "suggested, not run automatically"}[e.kind]
            lines.append(f"- {e.at} — `{_esc(e.data.get('action'))}` on `{_esc(e.data.get('model'))}` by "
                         f"{_esc(e.actor)}: {outcome}.")
    else:
        lines.append("No mitigation action was recorded.")
    roles = ", ".join(f"{r}: {_esc(w)}" for r, w in sorted(incident.roles.items())) or "none assigned"
    lines += ["", f"**Roles:** {roles}.", "",
              "## Timeline", "", "| time (UTC) | event | by | what |", "|---|---|---|---|"]
    for e in sorted(incident.events, key=lambda e: (e.at, e.seq)):
        lines.append(f"| {e.at} | {e.kind} | {_esc(e.actor)} | {_esc(e.summary)[:300]} |")
    lines += ["", "## What went well", "", PLACEHOLDER, "",
              "## What went badly", "", PLACEHOLDER + " Where did detection, diagnosis or mitigation lose time?", "",
              "## Where we got lucky", "", PLACEHOLDER, "",
              "## Follow-up items", "", PLACEHOLDER + " Each with an owner and a ticket: monitoring that would have "
              "caught it sooner, a test that would have stopped the change, a runbook step.", ""]
    return "\n".join(lines)


__all__ = ["PLACEHOLDER", "duration", "durations", "render_postmortem"]
