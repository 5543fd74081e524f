"""Where incidents live: one JSON file under the workspace, changed under a lock, written atomically.

``$YARNIT_HOME/incidents/incidents.json`` holds every incident with its
timeline. A file, not a table, for the same reasons as the monitor's alert
store (:mod:`yarnit.monitoring.alerts`): incidents are few (a busy workspace
has tens a month), are read and written whole by the monitor's run, the CLI
and the API, and must open cleanly after a ``kill -9`` at any point: every
write is an atomic replace (:func:`yarnit.core.atomic.atomic_write_text`), so a
reader sees the old file or the new one. Writers take turns with an exclusive
``flock`` on ``incidents/incidents.lock`` (held from read to write, released by
the kernel if the process dies), so an ``ack`` from the CLI while the monitor
attaches an alert loses neither. An unreadable file is set aside as
``incidents.json.corrupt`` (never deleted) and the store starts empty, saying so.

Bounded: resolved incidents beyond :data:`MAX_RESOLVED` (the oldest first) and
timeline events beyond :data:`~.models.MAX_EVENTS` per incident (the oldest
notes first; phase events are kept) are dropped.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from yarnit.core.atomic import atomic_write_text
from yarnit.core.clock import Clock
from yarnit.core.errors import Conflict, InvalidInput
from yarnit.core.ids import new_id
from yarnit.core.jsonfile import state_json
from yarnit.core.text import check_plain_text

from .models import (
    MAX_EVENTS,
    MAX_TEXT,
    STATES,
    Event,
    Incident,
    IncidentNotFound,
    check_role,
    check_severity,
)

STORE_VERSION = 1
MAX_RESOLVED = 1_000
INCIDENTS_DIRNAME = "incidents"
INCIDENTS_FILENAME = "incidents.json"
KEEP_KINDS = frozenset({"opened", "alert_fired", "outage_start", "trigger", "mitigation", "mitigated", "resolved"})


def incidents_dir(home: str | Path) -> Path:
    return Path(home) / INCIDENTS_DIRNAME


def incidents_path(home: str | Path) -> Path:
    return incidents_dir(home) / INCIDENTS_FILENAME


def _text(field_name: str, value: str, *, limit: int = MAX_TEXT, multiline: bool = False) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{field_name} must be non-empty text.")
    if len(value) > limit:
        raise InvalidInput(f"{field_name} is {len(value)} characters long; at most {limit} are kept. Shorten it.")
    check_plain_text(field_name, value.replace("\n", " ") if multiline else value)
    return value.strip()


@dataclass
class IncidentStore:
    """Every incident of a workspace (read with :meth:`open`, or changed inside :meth:`locked`)."""

    path: Path
    clock: Clock
    incidents: list[Incident] = field(default_factory=list)
    recovered: bool = False
    _saved: str | None = None

    @classmethod
    def open(cls, home: str | Path, clock: Clock) -> IncidentStore:
        store = cls(incidents_path(home), clock)
        try:
            text = store.path.read_text(encoding="utf-8")
            data = json.loads(text)
            if not isinstance(data, dict) or data.get("version") != STORE_VERSION:
                raise ValueError("not an incident store of this version")
            store.incidents = [Incident.from_dict(i) for i in data["incidents"]]
            store._saved = text
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError):
            store.incidents, store.recovered = [], True
            try:
                store.path.replace(store.path.with_name(store.path.name + ".corrupt"))
            except OSError:
                pass
        return store

    @classmethod
    @contextmanager
    def locked(cls, home: str | Path, clock: Clock) -> Iterator[IncidentStore]:
        """The store, read under the workspace's incident lock and saved when the block ends without error."""
        directory = incidents_dir(home)
        directory.mkdir(parents=True, exist_ok=True)
        with (directory / "incidents.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            store = cls.open(home, clock)
            yield store
            store.save()

    def save(self) -> bool:
        resolved = [i for i in self.incidents if i.state == "resolved"]
        if len(resolved) > MAX_RESOLVED:
            dropped = {i.id for i in sorted(resolved, key=lambda i: i.updated_at)[:-MAX_RESOLVED]}
            self.incidents = [i for i in self.incidents if i.id not in dropped]
        for incident in self.incidents:
            if len(incident.events) > MAX_EVENTS:
                extra = len(incident.events) - MAX_EVENTS
                drop = {e.seq for e in incident.events if e.kind not in KEEP_KINDS}
                drop = set(sorted(drop)[:extra])
                incident.events = [e for e in incident.events if e.seq not in drop]
        # orjson writes the dataclasses as they are (no deep copy first): a monitor saves every pass, and this
        # comparison with what was read is what tells whether the file changed at all
        text = state_json({"version": STORE_VERSION, "incidents": [i.plain() for i in self.incidents]},
                          text_fallback=True).decode("utf-8")
        if text == self._saved:
            return False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, text, mode=0o600)
        self._saved = text
        return True

    # -- reading --------------------------------------------------------------------------------
    def get(self, incident_id: str) -> Incident:
        for incident in self.incidents:
            if incident.id == incident_id:
                return incident
        raise IncidentNotFound(incident_id)

    def list(self, state: str = "active", *, limit: int = 100) -> list[Incident]:
        """Incidents newest first; ``state``: open, mitigated, resolved, active (not resolved) or all."""
        if state not in (*STATES, "active", "all"):
            raise InvalidInput(f"Unknown incident state {state[:20]!r}; valid: {', '.join(STATES)}, active, all.")
        chosen = [i for i in self.incidents
                  if state == "all" or i.state == state or (state == "active" and i.state != "resolved")]
        return sorted(chosen, key=lambda i: (i.opened_at, i.id), reverse=True)[:limit]

    # -- writing --------------------------------------------------------------------------------
    def now(self) -> str:
        return self.clock.now().isoformat()

    def add_event(self, incident: Incident, kind: str, summary: str, *, actor: str, at: str | None = None,
                  data: dict[str, Any] | None = None) -> Event:
        seq = (incident.events[-1].seq + 1) if incident.events else 1
        event = Event(seq=seq, at=at or self.now(), kind=kind, actor=actor, summary=summary, data=data or {})
        incident.events.append(event)
        incident.updated_at = self.now()
        return event

    def create(self, *, title: str, severity: str, service: str, models: list[str], actor: str,
               detail: dict[str, Any] | None = None) -> Incident:
        now = self.now()
        incident = Incident(id=new_id("inc", self.clock), title=title[:300], severity=check_severity(severity),
                            state="open", service=service, opened_at=now, updated_at=now, models=list(models))
        self.incidents.append(incident)
        self.add_event(incident, "opened", f"{incident.severity} opened: {incident.title}", actor=actor,
                       data=detail or {})
        return incident

    def set_phase(self, incident: Incident, phase: str, at: str, *, overwrite: bool = False) -> bool:
        if incident.phases.get(phase) and not overwrite:
            return False
        incident.phases[phase] = at
        return True

    def ack(self, incident_id: str, *, actor: str) -> Incident:
        incident = self.get(incident_id)
        if incident.state == "resolved":
            raise Conflict(f"Incident {incident.id} is resolved; there is nothing to acknowledge.")
        if incident.acked_by is None:
            incident.acked_by, incident.acked_at = actor, self.now()
            self.add_event(incident, "acked", f"acknowledged by {actor}", actor=actor)
        return incident

    def assign(self, incident_id: str, role: str, who: str | None, *, actor: str) -> Incident:
        """Put ``who`` in ``role`` (None: leave the role empty); audited on the timeline."""
        incident = self.get(incident_id)
        check_role(role)
        before = incident.roles.get(role)
        if who is None:
            if before is None:
                return incident
            del incident.roles[role]
            self.add_event(incident, "unassigned", f"{before} is no longer {role}", actor=actor,
                           data={"role": role, "from": before})
            return incident
        who = _text("who", who, limit=128)
        if before == who:
            return incident
        incident.roles[role] = who
        self.add_event(incident, "assigned", f"{who} is {role}" + (f" (was {before})" if before else ""),
                       actor=actor, data={"role": role, "from": before, "to": who})
        return incident

    def note(self, incident_id: str, text: str, *, actor: str) -> Event:
        incident = self.get(incident_id)
        return self.add_event(incident, "note", _text("note", text, multiline=True), actor=actor)

    def set_severity(self, incident: Incident, severity: str, *, actor: str, reason: str) -> bool:
        severity = check_severity(severity)
        if severity == incident.severity:
            return False
        before, incident.severity = incident.severity, severity
        self.add_event(incident, "severity", f"severity {before} -> {severity}: {reason}", actor=actor,
                       data={"from": before, "to": severity})
        return True

    def set_trigger(self, incident_id: str, change_id: str, *, actor: str) -> Incident:
        """Name the change that caused the incident (a triage item's id); sets the trigger phase to its time."""
        incident = self.get(incident_id)
        item = next((c for c in incident.triage if c.get("id") == change_id), None)
        if item is None:
            known = ", ".join(str(c.get("id")) for c in incident.triage[:10]) or "none (triage found no change)"
            raise InvalidInput(f"Incident {incident.id} has no triage item {change_id[:80]!r}; its items: {known}. "
                               f"See them with: yarnit incidents show {incident.id}")
        incident.trigger = {"change": item, "by": actor, "at": self.now()}
        self.set_phase(incident, "trigger", str(item["at"]), overwrite=True)
        self.add_event(incident, "trigger", f"trigger named: {item.get('summary')}", actor=actor,
                       data={"change": change_id})
        for ref in item.get("data_refs", []):
            if ref not in incident.data:
                incident.data.append(ref)
        return incident

    def mark_mitigated(self, incident: Incident, at: str, *, actor: str, why: str) -> bool:
        self.set_phase(incident, "mitigation", at)
        if incident.state != "open":
            return False
        incident.state = "mitigated"
        self.add_event(incident, "mitigated", why, actor=actor, at=at)
        return True

    def resolve(self, incident_id: str, *, reason: str, actor: str, at: str | None = None) -> Incident:
        incident = self.get(incident_id)
        if incident.state == "resolved":
            raise Conflict(f"Incident {incident.id} was already resolved at {incident.phases.get('resolution')}.")
        reason = _text("reason", reason, limit=1000)
        at = at or self.now()
        self.set_phase(incident, "mitigation", at)  # resolved implies mitigated; an earlier time is kept
        incident.state = "resolved"
        self.set_phase(incident, "resolution", at, overwrite=True)
        self.add_event(incident, "resolved", f"resolved: {reason}", actor=actor, at=at, data={"reason": reason})
        return incident

    def reopen(self, incident: Incident, *, actor: str, why: str) -> None:
        incident.state = "open"
        incident.phases["resolution"] = None
        incident.clear_since = None
        self.add_event(incident, "reopened", why, actor=actor)


__all__ = ["INCIDENTS_FILENAME", "IncidentStore", "MAX_RESOLVED", "incidents_dir", "incidents_path"]
