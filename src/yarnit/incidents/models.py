"""The nouns of incident response: an incident, its timeline events, severities, states, roles and phases.

An :class:`Incident` is opened by an alert (or several, grouped on one model
or service), has a severity (``SEV1`` most severe … ``SEV4``), a state
(``open`` → ``mitigated`` → ``resolved``; ``acked`` is a flag, not a state:
someone has taken it), the models and data it affects, the people in its
roles (book CH11-R1: incident commander, communications, operations, planning)
and a timeline of typed :class:`Event` records, append-only.

The book's phases (CH11-R2) are times on the incident, each set once by the
event that establishes it: ``trigger`` (the change that caused it, once
someone identifies it), ``outage_start`` (the first bad minute, from the
alert's counts), ``detection`` (the first alert), ``mitigation`` (the first
action that worked, or the alerts clearing) and ``resolution``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

from yarnit.core.errors import InvalidInput, NotFound

SEVERITIES = ("SEV1", "SEV2", "SEV3", "SEV4")  # SEV1 is the most severe
STATES = ("open", "mitigated", "resolved")
ROLES = ("commander", "communications", "operations", "planning")
PHASES = ("trigger", "outage_start", "detection", "mitigation", "resolution")
EVENT_KINDS = ("opened", "alert_fired", "alert_attached", "alert_resolved", "outage_start", "trigger", "triage",
               "mitigation", "mitigation_failed", "mitigation_suggested", "mitigated", "acked", "assigned",
               "unassigned", "note", "severity", "reopened", "resolved", "postmortem_required")
State = Literal["open", "mitigated", "resolved"]
MAX_EVENTS = 2_000  # per incident; the oldest notes go first beyond it (phase events are always kept)
MAX_TEXT = 4_000


class IncidentNotFound(NotFound):
    def __init__(self, incident_id: str) -> None:
        super().__init__(f"No incident {incident_id[:80]!r} in this workspace. See the incidents with: "
                         "yarnit incidents list --state all")
        self.incident_id = incident_id


def check_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidInput(f"Unknown incident role {role[:40]!r}; valid roles: {', '.join(ROLES)} (CH11-R1: "
                           "incident commander, communications lead, operations lead, planning lead).")
    return role


def check_severity(severity: str) -> str:
    value = severity.upper()
    if value not in SEVERITIES:
        raise InvalidInput(f"Unknown severity {severity[:20]!r}; valid: {', '.join(SEVERITIES)} (SEV1 is the most "
                           "severe).")
    return value


def worse(a: str, b: str) -> str:
    """The more severe of two severities."""
    return min(a, b, key=SEVERITIES.index)


@dataclass
class Event:
    """One entry on an incident's timeline."""

    seq: int
    at: str  # ISO-8601, UTC, from the workspace clock
    kind: str  # one of EVENT_KINDS
    actor: str  # who: user:NAME, token:NAME, monitor, incident:<id> for automatic mitigations
    summary: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Incident:
    """One incident: what it is about, who works on it, and everything that happened, in order."""

    id: str
    title: str
    severity: str
    state: str
    service: str
    opened_at: str
    updated_at: str
    models: list[str] = field(default_factory=list)
    data: list[str] = field(default_factory=list)  # datasets, feature views named by triage or by people
    alerts: dict[str, dict[str, Any]] = field(default_factory=dict)  # alert id -> {slo_id, alert, state, ...}
    roles: dict[str, str] = field(default_factory=dict)  # role -> who
    acked_by: str | None = None
    acked_at: str | None = None
    phases: dict[str, str | None] = field(default_factory=lambda: dict.fromkeys(PHASES))
    trigger: dict[str, Any] | None = None  # the change named as the cause (a triage item), once known
    triage: list[dict[str, Any]] = field(default_factory=list)
    impact: dict[str, dict[str, Any]] = field(default_factory=dict)  # slo id -> counted impact
    mitigations: dict[str, dict[str, Any]] = field(default_factory=dict)  # policy name -> attempts, last result
    clear_since: str | None = None  # every attached alert resolved since then
    postmortem_required: bool = False  # it spent more than the error-budget policy's share of a budget
    events: list[Event] = field(default_factory=list)

    @property
    def key(self) -> str:
        """What alerts group on: the first affected model, else the service."""
        return f"model:{self.models[0]}" if self.models else f"service:{self.service}"

    def phase_at(self, phase: str) -> datetime | None:
        value = self.phases.get(phase)
        return datetime.fromisoformat(value) if value else None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["acked"] = self.acked_by is not None
        return out

    def plain(self) -> dict[str, Any]:
        """:meth:`to_dict` without the deep copy (events stay :class:`Event` objects): for serializing at once."""
        out = {name: getattr(self, name) for name in self.__dataclass_fields__}
        out["acked"] = self.acked_by is not None
        return out

    def summary(self) -> dict[str, Any]:
        """The short form ``list`` shows."""
        return {"id": self.id, "title": self.title, "severity": self.severity, "state": self.state,
                "acked": self.acked_by is not None, "models": list(self.models), "service": self.service,
                "opened_at": self.opened_at, "updated_at": self.updated_at,
                "alerts": len(self.alerts), "commander": self.roles.get("commander"),
                "postmortem_required": self.postmortem_required,
                "detection": self.phases.get("detection"), "resolution": self.phases.get("resolution")}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Incident:
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        fields["events"] = [Event(**e) for e in data.get("events", [])]
        phases = dict.fromkeys(PHASES)
        phases.update(data.get("phases") or {})
        fields["phases"] = phases
        return cls(**fields)


__all__ = ["EVENT_KINDS", "Event", "Incident", "IncidentNotFound", "MAX_EVENTS", "MAX_TEXT", "PHASES", "ROLES",
           "SEVERITIES", "STATES", "check_role", "check_severity", "worse"]
