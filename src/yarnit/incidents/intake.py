"""Alerts become incidents: open or attach, phases from the evidence, impact, triage and mitigation policies.

:func:`process_alerts` is called by the monitor after every run
(:mod:`yarnit.monitoring.runner`, its post-alert hook) with the alert store's
records, and is idempotent: an alert already attached is only followed
(its evidence refreshes the impact; its resolution goes on the timeline once).

**Grouping.** A new alert attaches to the incident of the same model (or of
the same service, for an alert without a model) if that incident is active, or
was resolved less than ``grouping_window`` before the alert started, in which
case it is reopened: a flapping SLO is one incident, not ten. Otherwise it
opens an incident, whose severity comes from the alert (page → SEV2, a page
whose SLO has spent its whole budget → SEV1, ticket → SEV3, no data → SEV4;
configurable) and only ever rises.

**Phases.** *Detection* is the first alert's start. *Outage start* is the
first bad minute: with the SLO's per-minute counts (the monitor passes
``counts``), the earliest minute burning budget (error ratio above the error
budget) in the run of bad minutes, gaps of at most the firing pair's short
window allowed, that ends at detection, inside the firing pair's long window;
without counts it is estimated from the evidence windows, assuming the errors
since the start came at the short window's rate (``long_bad / short_bad ·
short_s``), and the event says ``estimated``. *Mitigation* is the first
action that worked, or the moment every alert had cleared. *Resolution*: a
person (``yarnit incidents resolve``), or ``incident:auto`` once every alert
has been clear for ``resolve_after``.

**Impact** per SLO: bad events since the outage start (the SLO period's bad
count now minus what it held before the outage) and the share of the
period's error budget they spent.

**Mitigation policies** (:mod:`.config`): the first time an alert matching a
policy is seen on an open incident, its action is run on the alert's model
with actor ``incident:<id>`` (``auto: false``: suggested on the timeline only).
Actions come from ``actions`` (a mapping of name to callable, as tests pass)
or, lazily, from :mod:`yarnit.continuous.actions`. An action that raises or
is missing is recorded (``mitigation_failed``) and retried on the next run up
to ``max_attempts``; it never stops the run.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from yarnit.core.clock import Clock
from yarnit.core.errors import YarnitError

from .config import IncidentConfig, MitigationPolicy, load_config
from .models import Incident, worse
from .store import IncidentStore
from .triage import triage

log = logging.getLogger("yarnit.incidents")

ACTIONS_MODULE = "yarnit.continuous.actions"
ActionFn = Callable[..., Any]
CountsFn = Callable[[str], Any]  # slo id -> EventCounts (or None)


def _dt(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _window_s(text: Any) -> int | None:
    from yarnit.monitoring.slo import parse_duration

    try:
        return parse_duration(text, "window")
    except (YarnitError, ValueError):
        return None


def _firing_pair(alert: Mapping[str, Any]) -> dict[str, Any] | None:
    pairs = [p for p in alert.get("evidence", {}).get("pairs", []) if isinstance(p, dict)]
    mine = [p for p in pairs if p.get("severity") == alert.get("severity") and p.get("firing")]
    mine = mine or [p for p in pairs if p.get("firing")] or [p for p in pairs if p.get("severity") == alert.get(
        "severity")]
    return min(mine, key=lambda p: _window_s(p["long"]["window"]) or 0) if mine else None


def outage_start(alert: Mapping[str, Any], counts: Any = None) -> tuple[datetime, str]:
    """(first bad minute, how it was found: ``counts`` or ``estimated``) for one alert (see the module doc)."""
    detected = _dt(alert["started_at"])
    evidence = alert.get("evidence", {})
    window = evidence.get("window")
    if isinstance(window, dict) and window.get("start") and "pairs" not in evidence:  # a loop alert: its data's
        return min(detected, _dt(window["start"])), "evidence"  # window is when the bad data began
    if alert.get("alert") == "no_data":
        window = _window_s(evidence.get("no_data_window", {}).get("window")) or 3600
        return detected - timedelta(seconds=window), "estimated"
    pair = _firing_pair(alert)
    if pair is None:
        return detected, "estimated"
    long_s = _window_s(pair["long"]["window"]) or 3600
    short_s = _window_s(pair["short"]["window"]) or 300
    objective = float(evidence.get("objective", 0.999))
    budget = 1 - (objective / 100 if objective > 1 else objective)
    if counts is not None:
        at_s = detected.timestamp()
        bad = [(k, good, total) for k, good, total in counts.buckets()
               if at_s - long_s <= k * counts.bucket_s < at_s and total and (total - good) > budget * total]
        if bad:
            first = bad[-1][0]
            for k, _g, _t in reversed(bad[:-1]):
                if (first - k) * counts.bucket_s > max(short_s, 300):
                    break
                first = k
            return datetime.fromtimestamp(first * counts.bucket_s, tz=timezone.utc), "counts"
    long_bad = pair["long"]["total"] - pair["long"]["good"]
    short_bad = pair["short"]["total"] - pair["short"]["good"]
    if short_bad <= 0 or long_bad <= 0:
        return detected, "estimated"
    seconds = min(max(short_s * long_bad / short_bad, 60.0), float(long_s))
    at = _dt(evidence.get("at", alert["started_at"])) - timedelta(seconds=seconds)
    return datetime.fromtimestamp(math.floor(at.timestamp() / 60) * 60, tz=timezone.utc), "estimated"


def _bad_since(counts: Any, start: datetime, end: datetime) -> int | None:
    if counts is None:
        return None
    lo, hi = start.timestamp(), end.timestamp()
    return sum(total - good for k, good, total in counts.buckets() if lo <= k * counts.bucket_s < hi)


def _alert_dict(alert: Any) -> dict[str, Any]:
    return alert.to_dict() if hasattr(alert, "to_dict") else dict(alert)


def _order(alert: Mapping[str, Any]) -> tuple[str, int, str, str, str, str]:
    """Oldest first; of alerts fired together the page first (it names the incident), then by name and SLO.

    The id comes last: its tail is random, and as the tie-break it made two runs of the same seed name an
    incident after different alerts (two loop tickets fire in the same simulated millisecond).
    """
    rank = {"page": 0, "ticket": 1, "no_data": 2}.get(str(alert.get("alert")), 3)
    return (alert["started_at"], rank, str(alert.get("alert_name") or ""), str(alert.get("slo_id") or ""),
            str(alert.get("summary") or ""), alert["id"])


def _severity(alert: Mapping[str, Any], config: IncidentConfig) -> str:
    kind = alert.get("alert", "ticket")
    budget = alert.get("evidence", {}).get("budget_remaining")
    if kind == "page" and isinstance(budget, (int, float)) and budget <= 0:
        return config.severity["page_budget_exhausted"]
    return config.severity.get(kind, "SEV3")


#: Actions whose target comes from the alert that called for them: applied once per alert, not per incident.
PER_ALERT_ACTIONS = frozenset({"remove_bad_data"})


def resolve_action(name: str, actions: Mapping[str, ActionFn] | None) -> ActionFn:
    """The callable for action ``name``: from ``actions`` if given, else from :mod:`yarnit.continuous.actions`."""
    if actions is not None:
        if name not in actions:
            raise LookupError(f"action {name!r} is not among the given actions ({', '.join(sorted(actions))})")
        return actions[name]
    try:
        module = importlib.import_module(ACTIONS_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name not in (ACTIONS_MODULE, "yarnit.continuous"):
            raise
        raise LookupError(f"action {name!r} is unavailable: {ACTIONS_MODULE} is not installed") from None
    fn = getattr(module, name, None)
    if not callable(fn):
        raise LookupError(f"{ACTIONS_MODULE} has no action {name!r}")
    return fn


class Intake:
    """One pass of alerts into a locked store (what :func:`process_alerts` runs)."""

    def __init__(self, ws: Any, store: IncidentStore, *, config: IncidentConfig, now: datetime,
                 actions: Mapping[str, ActionFn] | None, counts: CountsFn | None,
                 slo_params: Mapping[str, Mapping[str, Any]], actor: str) -> None:
        self.ws, self.store, self.config, self.now = ws, store, config, now
        self.actions, self.counts, self.slo_params, self.actor = actions, counts, slo_params, actor
        self.report: dict[str, Any] = {"opened": [], "attached": [], "alerts_resolved": 0, "reopened": [],
                                       "mitigations": [], "suggested": [], "failed": [], "auto_resolved": [],
                                       "errors": []}

    def _counts(self, slo_id: str) -> Any:
        if self.counts is None:
            return None
        try:
            return self.counts(slo_id)
        except (YarnitError, OSError, LookupError, ValueError) as exc:
            self.report["errors"].append(f"counts of {slo_id}: {str(exc)[:200]}")
            return None

    def run(self, alerts: Iterable[Any]) -> dict[str, Any]:
        by_alert = {aid: inc for inc in self.store.incidents for aid in inc.alerts}
        window = timedelta(seconds=self.config.grouping_window_s)
        for alert in sorted((_alert_dict(a) for a in alerts), key=_order):
            incident = by_alert.get(alert["id"])
            if incident is not None:
                self._follow(incident, alert)
                continue
            if alert["state"] == "resolved" and _dt(alert["ended_at"] or alert["updated_at"]) < self.now - window:
                continue  # history from before incidents were kept: not a new incident
            incident = self._group(alert, reopen=alert["alert"] in self.config.open_for)
            if incident is None:
                if alert["alert"] not in self.config.open_for:
                    continue  # this kind only joins an active incident
                incident = self._open(alert)
            by_alert[alert["id"]] = incident
            self._attach(incident, alert)
        for incident in [i for i in self.store.incidents if i.state != "resolved"]:
            self._mitigate(incident)
            self._settle(incident)
        for incident in self.store.incidents:
            self._revert(incident)
        return self.report

    def _cause_cleared(self, incident: Incident, policy_name: str) -> bool:
        """Whether every alert of ``incident`` that the policy acts on has been clear for ``resolve_after``.

        A mitigation is undone when what called for it is over, not when the whole incident is: a fall-back
        makes the availability SLO burn by design, and waiting for that alert to clear would keep the
        fallback on for ever (the shop served by the heuristic long after the inputs came back).
        """
        if incident.state == "resolved":
            return True
        policy = next((p for p in self.config.policies if p.name == policy_name.split(":", 1)[0]), None)
        causes = [a for a in incident.alerts.values()
                  if policy is None or policy.matches(a, self.slo_params.get(a["slo_id"], {}))]
        if not causes or any(a["state"] == "firing" for a in causes):
            return False
        ended = [_dt(a["ended_at"]) for a in causes if a.get("ended_at")]
        return bool(ended) and max(ended) <= self.now - timedelta(seconds=self.config.resolve_after_s)

    def _revert(self, incident: Incident) -> None:
        """A mitigation whose cause is over is undone (``revert_on_resolve``), audited, on the incident's timeline.

        Its cause is over when the incident resolved, or when every alert the policy acts on has been clear for
        ``resolve_after`` (:meth:`_cause_cleared`). Not while another incident's cause still holds the same
        mitigation on the same model (its own end undoes it then); a failed reversal is retried on the next run.
        """
        for name, record in incident.mitigations.items():
            revert = record.get("revert")
            if record.get("state") != "ok" or not isinstance(revert, dict) or revert.get("state") != "pending":
                continue
            if not self._cause_cleared(incident, name):
                continue
            model = record.get("model")
            holders = [i.id for i in self.store.incidents if i is not incident and any(
                r.get("state") == "ok" and r.get("action") == record["action"] and r.get("model") == model
                and isinstance(r.get("revert"), dict) and not self._cause_cleared(i, pname)
                for pname, r in i.mitigations.items())]
            if holders:
                continue
            actor = f"incident:{incident.id}"
            why = "resolved" if incident.state == "resolved" else "its cause cleared"
            ok, result = run_action(self.ws, revert["action"], model, actions=self.actions, actor=actor,
                                    reason=f"incident {incident.id} {why}: undo {record['action']} "
                                           f"(policy {name}, revert_on_resolve)")
            data = {"policy": name, "action": revert["action"], "undoes": record["action"], "model": model,
                    "result": result}
            if ok:
                revert["state"] = "done"
                record["state"], record["attempts"] = "reverted", 0  # a reopened incident may mitigate again
                self.store.add_event(incident, "mitigation_reverted",
                                     f"{revert['action']} on {model}: done (undoes {record['action']}, policy {name})",
                                     actor=actor, data=data)
                self.report.setdefault("reverted", []).append({"incident": incident.id, **data})
            else:
                self.store.add_event(incident, "mitigation_failed",
                                     f"{revert['action']} on {model} failed: {result.get('error')}"[:500],
                                     actor=actor, data=data)
                self.report["failed"].append({"incident": incident.id, **data, "error": result.get("error")})

    # -- grouping ---------------------------------------------------------------------------------
    def _key(self, alert: Mapping[str, Any]) -> str:
        return f"model:{alert['model']}" if alert.get("model") else f"service:{alert['service']}"

    def _group(self, alert: Mapping[str, Any], *, reopen: bool) -> Incident | None:
        key, started = self._key(alert), _dt(alert["started_at"])
        window = timedelta(seconds=self.config.grouping_window_s)
        for incident in sorted(self.store.incidents, key=lambda i: i.opened_at, reverse=True):
            if incident.key != key:
                continue
            if incident.state != "resolved":
                return incident
            resolved = incident.phase_at("resolution")
            if reopen and resolved is not None and started - resolved <= window:
                self.store.reopen(incident, actor=self.actor,
                                  why=f"alert {alert['alert_name']} fired {started.isoformat()}, within "
                                      f"{self.config.grouping_window_s // 60} min of the resolution")
                self.report["reopened"].append(incident.id)
                return incident
            return None
        return None

    def _open(self, alert: Mapping[str, Any]) -> Incident:
        subject = alert.get("model") or alert["service"]
        title = f"{alert['slo']} ({alert['sli']}) {alert['alert']} on {subject}"
        incident = self.store.create(title=title, severity=_severity(alert, self.config), service=alert["service"],
                                     models=[alert["model"]] if alert.get("model") else [], actor=self.actor,
                                     detail={"alert": alert["id"]})
        self.report["opened"].append(incident.id)
        return incident

    def _attach(self, incident: Incident, alert: dict[str, Any]) -> None:
        first = not incident.alerts
        start, how = outage_start(alert, self._counts(alert["slo_id"]))
        incident.alerts[alert["id"]] = {"slo_id": alert["slo_id"], "slo": alert["slo"], "sli": alert["sli"],
                                        "alert": alert["alert"], "alert_name": alert["alert_name"],
                                        "model": alert.get("model"), "severity": alert["severity"],
                                        "state": "firing", "started_at": alert["started_at"], "ended_at": None,
                                        "outage_start": start.isoformat(), "outage_start_from": how,
                                        "runbook": alert.get("runbook", ""), "summary": alert.get("summary", ""),
                                        "evidence": _kept_evidence(alert)}
        if not first:
            self.report["attached"].append(incident.id)
        self.store.add_event(incident, "alert_fired" if first else "alert_attached",
                             f"{alert['alert_name']} {alert['alert']} fired: {alert.get('summary', '')}"[:500],
                             actor="monitor", at=alert["started_at"],
                             data={"alert": alert["id"], "slo": alert["slo"], "sli": alert["sli"],
                                   "runbook": alert.get("runbook", "")})
        if incident.clear_since is not None:
            incident.clear_since = None
        severity = worse(incident.severity, _severity(alert, self.config))
        self.store.set_severity(incident, severity, actor=self.actor, reason=f"alert {alert['alert_name']} "
                                f"{alert['alert']}")
        detected = incident.phase_at("detection")
        if detected is None or _dt(alert["started_at"]) < detected:
            incident.phases["detection"] = alert["started_at"]
        earlier = incident.phase_at("outage_start")
        if earlier is None or start < earlier:
            incident.phases["outage_start"] = start.isoformat()
            self.store.add_event(incident, "outage_start",
                                 f"first bad minute {start.isoformat()} ({how} from {alert['slo']})",
                                 actor="monitor", at=start.isoformat(), data={"from": how, "alert": alert["id"]})
        self._impact(incident, alert, start)
        new_model = alert.get("model") and alert["model"] not in incident.models
        if new_model:
            incident.models.append(alert["model"])
        if first or new_model or earlier is None or start < earlier:
            self._triage(incident)
        if alert["state"] == "resolved":
            self._follow(incident, alert)

    def _follow(self, incident: Incident, alert: dict[str, Any]) -> None:
        record = incident.alerts[alert["id"]]
        self._impact(incident, alert, _dt(record["outage_start"]))
        if alert["state"] == "resolved" and record["state"] != "resolved":
            record["state"], record["ended_at"] = "resolved", alert["ended_at"]
            self.store.add_event(incident, "alert_resolved", f"{alert['alert_name']} {alert['alert']} resolved",
                                 actor="monitor", at=alert["ended_at"], data={"alert": alert["id"]})
            self.report["alerts_resolved"] += 1

    # -- impact -----------------------------------------------------------------------------------
    def _impact(self, incident: Incident, alert: Mapping[str, Any], start: datetime) -> None:
        ev = alert.get("evidence", {})
        period = ev.get("period") or {}
        if not isinstance(period.get("total"), int):
            return
        bad = period["total"] - period["good"]
        entry = incident.impact.get(alert["slo_id"])
        if entry is None:
            before = _bad_since(self._counts(alert["slo_id"]), start, _dt(ev.get("at", alert["started_at"])))
            if before is None:
                pair = _firing_pair(alert)
                before = (pair["long"]["total"] - pair["long"]["good"]) if pair else 0
            objective = float(ev.get("objective", 0.999))
            entry = incident.impact[alert["slo_id"]] = {
                "slo": alert["slo"], "sli": alert["sli"], "window": ev.get("window"),
                "error_budget": 1 - (objective / 100 if objective > 1 else objective),
                "baseline_bad": max(0, bad - min(before, bad)), "at": None,
                "budget_remaining_at_detection": ev.get("budget_remaining")}
        if entry["at"] is None or str(ev.get("at", "")) >= str(entry["at"]):
            entry.update(at=ev.get("at"), bad=bad, total=period["total"], budget_remaining=ev.get("budget_remaining"))
            affected = max(0, bad - entry["baseline_bad"])
            entry["bad_events"] = affected
            budget_events = entry["error_budget"] * period["total"]
            entry["budget_spent"] = affected / budget_events if budget_events else None
            share = self.config.postmortem_budget_share
            if not incident.postmortem_required and (entry["budget_spent"] or 0) > share:
                incident.postmortem_required = True
                self.store.add_event(incident, "postmortem_required",
                                     f"{entry['slo']}: {entry['budget_spent']:.0%} of the error budget spent "
                                     f"(more than {share:.0%}): the error-budget policy requires a postmortem",
                                     actor=self.actor, data={"slo": entry["slo"],
                                                             "budget_spent": entry["budget_spent"]})

    def _triage(self, incident: Incident) -> None:
        start, detected = incident.phase_at("outage_start"), incident.phase_at("detection")
        if start is None or detected is None:
            return
        try:
            items = triage(self.ws, models=incident.models, outage_start=start, detected_at=detected,
                           lookback_s=self.config.lookback_s, fault_files=self.config.fault_files)
        except (YarnitError, OSError, ValueError) as exc:  # a lost database: the incident still opens
            self.report["errors"].append(f"triage of {incident.id}: {str(exc)[:200]}")
            self.store.add_event(incident, "triage", f"triage failed: {str(exc)[:200]}", actor=self.actor)
            return
        except Exception as exc:  # noqa: BLE001 - e.g. SQLAlchemy's OperationalError: say so, keep the incident
            self.report["errors"].append(f"triage of {incident.id}: {type(exc).__name__}")
            self.store.add_event(incident, "triage", f"triage failed: {type(exc).__name__}", actor=self.actor)
            return
        incident.triage = items
        top = items[0]["summary"] if items else "no change recorded in the lookback window"
        self.store.add_event(incident, "triage", f"triage listed {len(items)} change(s); first: {top}"[:500],
                             actor=self.actor, data={"count": len(items),
                                                     "first": items[0]["id"] if items else None})

    # -- mitigation -------------------------------------------------------------------------------
    def _mitigate(self, incident: Incident) -> None:
        if incident.state == "resolved":
            return
        for alert_id, alert in list(incident.alerts.items()):
            if alert["state"] != "firing":
                continue
            params = self.slo_params.get(alert["slo_id"], {})
            for policy in self.config.policies:
                if policy.matches(alert, params):
                    self._apply(incident, alert_id, alert, policy)

    def _apply(self, incident: Incident, alert_id: str, alert: Mapping[str, Any], policy: MitigationPolicy) -> None:
        # An action that takes its target from the alert (remove_bad_data: the alert's window) runs once per
        # alert: a second bad day joining an open incident is a second window to remove, not the same one.
        key = f"{policy.name}:{alert_id}" if policy.action in PER_ALERT_ACTIONS else policy.name
        record = incident.mitigations.setdefault(key, {"action": policy.action, "attempts": 0,
                                                       "state": None, "model": alert.get("model")})
        if record["state"] in ("ok", "suggested") or record["attempts"] >= policy.max_attempts:
            return
        model = alert.get("model")
        data = {"policy": policy.name, "action": policy.action, "model": model, "alert": alert_id}
        if not policy.auto:
            record["state"] = "suggested"
            self.store.add_event(incident, "mitigation_suggested",
                                 f"policy {policy.name} suggests {policy.action} on {model} (auto: false); run it "
                                 f"with: yarnit incidents mitigate {incident.id} --action {policy.action}",
                                 actor=f"incident:{incident.id}", data=data)
            self.report["suggested"].append({"incident": incident.id, **data})
            return
        actor = f"incident:{incident.id}"
        reason = f"policy {policy.name}: {alert['alert_name']} {alert['alert']} ({alert['slo']})"
        record["attempts"] += 1
        ok, result = run_action(self.ws, policy.action, model, actions=self.actions, actor=actor, reason=reason,
                                alert=alert)
        record["state"], record["result"] = ("ok" if ok else "failed"), result
        if ok and policy.reversal:
            record["revert"] = {"action": policy.reversal, "state": "pending"}
        if ok:
            self.store.add_event(incident, "mitigation", f"{policy.action} on {model}: done (policy {policy.name})",
                                 actor=actor, data={**data, "result": result})
            self.store.mark_mitigated(incident, self.store.now(), actor=actor,
                                      why=f"mitigated by {policy.action} on {model}")
            self.report["mitigations"].append({"incident": incident.id, **data})
        else:
            self.store.add_event(incident, "mitigation_failed",
                                 f"{policy.action} on {model} failed (attempt {record['attempts']} of "
                                 f"{policy.max_attempts}): {result.get('error')}"[:500], actor=actor,
                                 data={**data, "result": result})
            self.report["failed"].append({"incident": incident.id, **data, "error": result.get("error")})

    def _settle(self, incident: Incident) -> None:
        """All alerts clear: mitigated then (if not before); clear for ``resolve_after``: resolved."""
        records = list(incident.alerts.values())
        if not records or any(a["state"] != "resolved" for a in records):
            return
        cleared = max(a["ended_at"] for a in records if a["ended_at"])
        if incident.clear_since is None:
            incident.clear_since = cleared
            self.store.mark_mitigated(incident, cleared, actor="monitor", why="every alert has cleared")
        after = self.config.resolve_after_s
        if after and incident.state != "resolved" and self.now - _dt(incident.clear_since) >= timedelta(seconds=after):
            at = (_dt(incident.clear_since) + timedelta(seconds=after)).isoformat()
            self.store.resolve(incident.id, actor="incident:auto", at=at,
                               reason=f"every alert clear for {after // 60} min")
            self.report["auto_resolved"].append(incident.id)


def _kept_evidence(alert: Mapping[str, Any]) -> dict[str, Any]:
    """What an action may need of an alert's evidence (``remove_bad_data``: the dataset and window)."""
    ev = alert.get("evidence") or {}
    return {k: ev[k] for k in ("day", "check", "dataset", "window") if k in ev}


def _data_args(alert: Mapping[str, Any] | None) -> dict[str, Any]:
    """``remove_bad_data``'s dataset and window from the alert's evidence; InvalidInput naming what is missing."""
    from yarnit.core.errors import InvalidInput

    ev = (alert or {}).get("evidence") or {}
    window = ev.get("window") or {}
    if not ev.get("dataset") or not window.get("start") or not window.get("end"):
        raise InvalidInput("remove_bad_data needs the alert's evidence to name a dataset and a window "
                           "{start, end}; this alert's does not. Run it by hand: yarnit emergency remove-bad-data "
                           "DATASET --start S --end E --reason '…'")
    return {"start": window["start"], "end": window["end"], "time_column": window.get("time_column")}


def run_action(ws: Any, name: str, model: str | None, *, actions: Mapping[str, ActionFn] | None, actor: str,
               reason: str, alert: Mapping[str, Any] | None = None) -> tuple[bool, dict[str, Any]]:
    """Run action ``name`` on ``model``: (worked, JSON-able result or ``{"error": …}``); never raises.

    ``remove_bad_data`` acts on the dataset and window of the ``alert``'s evidence, not on the model.
    """
    if not model:
        return False, {"error": "the alert names no model to act on"}
    try:
        fn = resolve_action(name, actions)
        if name == "remove_bad_data":
            args = _data_args(alert)
            result = fn(ws, (alert or {})["evidence"]["dataset"], actor=actor, reason=reason, **args)
        else:
            result = fn(ws, model, actor=actor, reason=reason)
        return True, json.loads(json.dumps(result if result is not None else {}, default=str))
    except Exception as exc:  # noqa: BLE001 - the boundary around an action: record it, never crash the monitor
        message = str(exc)[:300] if isinstance(exc, (YarnitError, LookupError)) else f"{type(exc).__name__}: " \
                                                                                     f"{str(exc)[:280]}"
        log.error("incident action %s on %s failed: %s", name, model, message)
        return False, {"error": message}


def _slo_params(home: Any) -> dict[str, Mapping[str, Any]]:
    from yarnit.monitoring.workspace import load_workspace_slos

    try:
        spec = load_workspace_slos(home)
    except (YarnitError, OSError):
        return {}
    return {} if spec is None else {s.id: dict(s.params) for s in spec.slos}


def process_alerts(ws: Any, alerts: Iterable[Any], *, clock: Clock | None = None,
                   config: IncidentConfig | None = None, actions: Mapping[str, ActionFn] | None = None,
                   counts: CountsFn | None = None, actor: str = "monitor") -> dict[str, Any]:
    """Open, attach, follow, mitigate and settle incidents from the monitor's ``alerts``; a JSON-able report.

    ``counts(slo_id)`` gives an SLO's per-minute event counts (the monitor's
    source), for the outage start to the minute; ``actions`` maps action names
    to callables (default: :mod:`yarnit.continuous.actions`).
    """
    clock = clock or ws.clock
    config = config or load_config(ws.home)
    with IncidentStore.locked(ws.home, clock) as store:
        intake = Intake(ws, store, config=config, now=clock.now(), actions=actions, counts=counts,
                        slo_params=_slo_params(ws.home), actor=actor)
        report = intake.run(alerts)
        report["active"] = sum(i.state != "resolved" for i in store.incidents)
        report["store_recovered"] = store.recovered
    return report


def mitigate(ws: Any, incident_id: str, action: str, *, actor: str, model: str | None = None,
             actions: Mapping[str, ActionFn] | None = None, reason: str = "") -> dict[str, Any]:
    """Run ``action`` for an incident by hand (a suggested mitigation); recorded on its timeline either way."""
    clock = ws.clock
    with IncidentStore.locked(ws.home, clock) as store:
        incident = store.get(incident_id)
        target = model or (incident.models[0] if incident.models else None)
        why = reason or f"incident {incident.id}: {incident.title}"
        ok, result = run_action(ws, action, target, actions=actions, actor=actor, reason=why)
        data = {"action": action, "model": target, "result": result, "by": actor}
        if ok:
            store.add_event(incident, "mitigation", f"{action} on {target}: done", actor=actor, data=data)
            if incident.state == "open":
                store.mark_mitigated(incident, store.now(), actor=actor, why=f"mitigated by {action} on {target}")
        else:
            store.add_event(incident, "mitigation_failed", f"{action} on {target} failed: {result['error']}"[:500],
                            actor=actor, data=data)
        return {"incident": incident.id, "ok": ok, **data}


__all__ = ["ACTIONS_MODULE", "Intake", "mitigate", "outage_start", "process_alerts", "resolve_action", "run_action"]
