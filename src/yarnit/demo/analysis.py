"""The operate demo's report: what each fault cost and how the platform caught it, from two months' records.

For each injected fault of the faulted month:

* **detected at**: the first alert (page or ticket; "no data" is not a
  detection) of a detector that can see the fault's class, raised in the
  fault's window or within two days after it. The detectors are named by
  what they watch, not by the fault: a serving fault is seen by the serving
  SLIs (inputs, availability, latency, quality), a data fault by the loop's
  data checks (``data_validation``), a label fault by label completeness.
  Failing that, any page or ticket the clean month did not raise on the same
  SLO counts, and the row says so. Time to detect is from the window's start.
* **action**: the first mitigation an incident holding that alert ran
  (its policy and action), and when; **recovered at**: when that incident
  resolved, else when the alert ended.
* **impact**: true clicks per impression and true revenue (what shoppers did,
  logged or not) over the fault's days, against the same days of the clean
  month: the same seed, the same shoppers, no fault.

The targets of the issue are judged here too: every fault detected in time,
no page in the clean month, no failed request, and the wall time.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

DETECTORS: dict[str, frozenset[str]] = {
    "serving": frozenset({"input_completeness", "serving_availability", "serving_latency", "prediction_quality"}),
    "data": frozenset({"data_validation"}),
    "labels": frozenset({"label_completeness"}),
}
DETECTION_HORIZON = timedelta(days=2)
WALL_TARGET_S = 180.0


def _t(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _hours(a: datetime | None, b: datetime | None) -> float | None:
    return None if a is None or b is None else round((b - a).total_seconds() / 3600.0, 2)


def _alerts(run: dict[str, Any]) -> list[dict[str, Any]]:
    """Pages and tickets (not no-data), oldest first."""
    out = [a for a in run["alerts"] if a.get("alert") in ("page", "ticket")]
    return sorted(out, key=lambda a: a["started_at"])


def _detection(fault: dict[str, Any], kind: str, faulted: dict[str, Any], clean: dict[str, Any]
               ) -> tuple[dict[str, Any] | None, bool]:
    opens, closes = _t(fault["start"]), _t(fault["end"])
    assert opens is not None and closes is not None
    horizon = closes + DETECTION_HORIZON
    inside = [a for a in _alerts(faulted) if opens <= _t(a["started_at"]) <= horizon]  # type: ignore[operator]
    expected = [a for a in inside if a.get("sli") in DETECTORS[kind]]
    if expected:
        return expected[0], True
    clean_slos = {a["slo_id"] for a in _alerts(clean)}
    other = [a for a in inside if a["slo_id"] not in clean_slos]
    return (other[0], False) if other else (None, False)


def _incident_of(alert: dict[str, Any] | None, run: dict[str, Any]) -> dict[str, Any] | None:
    if alert is None:
        return None
    for incident in run["incidents"]:
        if alert["id"] in incident.get("alerts", {}):
            return incident
    return None


def _mitigation(incident: dict[str, Any] | None, alert_id: str | None, after: datetime
                ) -> tuple[str | None, datetime | None]:
    """The mitigation the detecting alert called for; else the incident's first one after the detection."""
    if incident is None:
        return None, None
    done = [e for e in incident.get("events", []) if e.get("kind") == "mitigation" and _t(e.get("at")) is not None]
    mine = [e for e in done if (e.get("data") or {}).get("alert") == alert_id]
    later = [e for e in done if _t(e["at"]) >= after]  # type: ignore[operator]
    for event in mine or later:
        data = event.get("data") or {}
        return str(data.get("action") or event.get("summary", "")[:60]), _t(event["at"])
    return None, None


def _window_days(fault: dict[str, Any], until: datetime | None) -> set[str]:
    opens, closes = _t(fault["start"]), _t(fault["end"])
    assert opens is not None and closes is not None
    last = max(closes, until or closes)
    days, day = set(), opens.date()
    while day <= last.date():
        days.add(day.isoformat())
        day += timedelta(days=1)
    return days


def _impact(days: set[str], faulted: dict[str, Any], clean: dict[str, Any]) -> dict[str, float | None]:
    def totals(run: dict[str, Any]) -> tuple[float | None, float]:
        rows = [d for d in run["daily"] if d["day"] in days and d["ctr"] is not None]
        if not rows:
            return None, 0.0
        return sum(d["ctr"] for d in rows) / len(rows), sum(d["revenue"] for d in rows)

    ctr_f, rev_f = totals(faulted)
    ctr_c, rev_c = totals(clean)
    return {"ctr_faulted": ctr_f, "ctr_clean": ctr_c,
            "ctr_impact_pct": None if not ctr_f or not ctr_c else round(100.0 * (ctr_f / ctr_c - 1.0), 1),
            "revenue_faulted": round(rev_f, 2), "revenue_clean": round(rev_c, 2),
            "revenue_impact_pct": None if not rev_c else round(100.0 * (rev_f / rev_c - 1.0), 1)}


def fault_rows(config: Any, faulted: dict[str, Any], clean: dict[str, Any]) -> list[dict[str, Any]]:
    from .operate import TTD_TARGET_H

    rows = []
    for (spec, kind, story), fault in zip(config.faults, faulted["faults"], strict=True):
        alert, expected = _detection(fault, kind, faulted, clean)
        opens = _t(fault["start"])
        assert opens is not None
        detected = _t(alert["started_at"]) if alert else None
        incident = _incident_of(alert, faulted)
        action, mitigated = _mitigation(incident, alert["id"] if alert else None, detected or opens)
        recovered = _t(incident.get("phases", {}).get("resolution")) if incident else None
        if recovered is None and alert is not None:
            recovered = _t(alert.get("ended_at"))
        ttd = _hours(opens, detected)
        target = TTD_TARGET_H[kind]
        detected_by = None if alert is None else (
            f"{alert['slo']} ({alert['alert']})" + ("" if expected else ", not a detector of this class"))
        rows.append({
            "name": fault["name"], "story": story, "class": kind, "spec": spec, "injected_at": fault["start"],
            "ended_at": fault["end"], "detected_at": None if detected is None else detected.isoformat(),
            "ttd_h": ttd, "target_h": target, "detected_by": detected_by, "action": action,
            "mitigated_at": None if mitigated is None else mitigated.isoformat(),
            "recovered_at": None if recovered is None else recovered.isoformat(),
            "incident": None if incident is None else incident["id"],
            **_impact(_window_days(fault, recovered), faulted, clean),
            "met": ttd is not None and ttd <= target,
        })
    return rows


def _failed(run: dict[str, Any]) -> tuple[int, int]:
    """(failed requests, those outside every fault's window: not the fault's own refusals)."""
    windows = [(_t(f["start"]), _t(f["end"])) for f in run["faults"]]
    failures = run.get("failures", [])
    outside = sum(1 for at, _who in failures if not any(a <= _t(at) <= b for a, b in windows))  # type: ignore[operator]
    return len(failures), outside


def _promotions(run: dict[str, Any]) -> int:
    """Moves of production made by a staged rollout (the audit's actor is the rollout)."""
    return sum(1 for e in run.get("audit", []) if e.get("alias") == "production"
               and str(e.get("actor", "")).startswith("rollout:") and e.get("action") != "rollback")


def _answered(run: dict[str, Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for day in run["daily"]:
        for who, n in day["answered_by"].items():
            out[who] = out.get(who, 0) + n
    return out


def served_pages(answered: dict[str, int]) -> dict[str, dict[str, int]]:
    """``answered_by`` totals grouped by the model a page was sent to: each model's pages by who answered them.

    >>> served_pages({"ctr:v1": 8, "yarnit-ranker:v1": 2, "HTTP 503 (yarnit-ranker)": 1, "HTTP 422": 1})
    {'ctr': {'ctr:v1': 8, 'HTTP 422': 1}, 'yarnit-ranker': {'yarnit-ranker:v1': 2, 'HTTP 503 (yarnit-ranker)': 1}}
    """
    out: dict[str, dict[str, int]] = {}
    for who, n in answered.items():
        model = "yarnit-ranker" if who.startswith("yarnit-ranker") or who.endswith("(yarnit-ranker)") else "ctr"
        out.setdefault(model, {})[who] = out.get(model, {}).get(who, 0) + n
    return dict(sorted(out.items()))


def _ranker(run: dict[str, Any]) -> dict[str, Any]:
    """The ranker's side of a month: pages per model and answerer, fallbacks and failures, re-pins and holds."""
    pages = served_pages(_answered(run))
    ranker = pages.get("yarnit-ranker", {})
    total = sum(sum(v.values()) for v in pages.values())
    not_model = {who: n for who, n in ranker.items() if "(" in who or who.startswith("HTTP") or "heuristic" in who}
    return {"pages": pages, "share": round(sum(ranker.values()) / total, 4) if total else None,
            "fallbacks": not_model, "repins": run.get("ranker_repins", [])}


def _events(run: dict[str, Any], name: str) -> list[dict[str, Any]]:
    events = [{"at": f["start"], "run": name, "kind": "fault", "text": f"{f['spec']} injected (until {f['end']})"}
              for f in run["faults"]]
    for a in _alerts(run):
        events.append({"at": a["started_at"], "run": name, "kind": "alert",
                       "text": f"{a['alert']} {a['slo']}: {a.get('summary', '')}"[:300]})
    for incident in run["incidents"]:
        for e in incident.get("events", []):
            if e.get("kind") in ("opened", "mitigation", "mitigation_reverted", "resolved"):
                kind = "incident" if e["kind"] in ("opened", "resolved") else "action"
                events.append({"at": e["at"], "run": name, "kind": kind,
                               "text": f"{incident['id']}: {e.get('summary', '')}"[:300]})
    for rollout in run["rollouts"]:
        for d in rollout.get("decisions", []):
            if d.get("action") not in ("hold",):
                events.append({"at": d.get("at"), "run": name, "kind": "rollout",
                               "text": f"v{rollout.get('canary_version')}: {d.get('action')} {d.get('reason', '')}"[:300]})
    for r in run.get("ranker_repins", []):
        what = f"re-pinned to ctr:v{r['ctr']} as yarnit-ranker:v{r.get('new_ranker')}" if r["action"] == "re-pinned" \
            else f"{r['action']} on ctr:v{r['pinned']} (ctr:v{r['ctr']}: {r.get('reason', '')})"
        events.append({"at": r["at"], "run": name, "kind": "rollout", "text": f"yarnit-ranker v{r['ranker']} {what}"[:300]})
    return sorted((e for e in events if e["at"]), key=lambda e: e["at"])


def _daily(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    pages: dict[str, int] = {}
    tickets: dict[str, int] = {}
    for a in _alerts(run):
        day = a["started_at"][:10]
        (pages if a["alert"] == "page" else tickets)[day] = (pages if a["alert"] == "page" else tickets).get(day, 0) + 1
    keys = ("ctr", "revenue", "sessions", "requests", "answered_by", "production", "ranker_production")
    return {d["day"]: {**{k: d.get(k) for k in keys},
                       "pages": pages.get(d["day"], 0), "tickets": tickets.get(d["day"], 0)} for d in run["daily"]}


def build_report(faulted: dict[str, Any], clean: dict[str, Any], config: Any, *, elapsed_s: float) -> dict[str, Any]:
    """The report (the contract :mod:`yarnit.demo.report` renders) from the two months' records."""
    faults = fault_rows(config, faulted, clean)
    clean_pages = sum(1 for a in _alerts(clean) if a["alert"] == "page")
    failed = {"faulted": _failed(faulted), "clean": _failed(clean)}
    detected = sum(1 for f in faults if f["detected_at"] is not None)
    in_time = sum(1 for f in faults if f["met"])
    targets = [
        {"name": "every injected fault detected", "value": f"{detected}/{len(faults)}",
         "target": f"{len(faults)}/{len(faults)}", "met": detected == len(faults)},
        {"name": "time to detect: serving ≤ 2 h, data and labels ≤ 1 day", "value": f"{in_time}/{len(faults)} in time",
         "target": f"{len(faults)}/{len(faults)}", "met": in_time == len(faults)},
        {"name": "pages in the clean month (same seed, no fault)", "value": str(clean_pages), "target": "0",
         "met": clean_pages == 0},
        {"name": "failed requests not explained by an injected fault (rollouts, rollbacks, fallbacks)",
         "value": f"{failed['faulted'][1]} faulted ({failed['faulted'][0]} in all, the rest inside a fault's window), "
                  f"{failed['clean'][0]} clean", "target": "0",
         "met": failed["faulted"][1] == 0 and failed["clean"][0] == 0},
        {"name": "wall time of both months on this machine", "value": f"{elapsed_s:.0f} s" + (
            "" if getattr(config, "durable", True) else " (scratch workspaces: atomic writes, no fsync)"),
         "target": f"≤ {WALL_TARGET_S:.0f} s", "met": elapsed_s <= WALL_TARGET_S},
        {"name": "staged rollouts that reached production (daily retraining)",
         "value": f"{_promotions(faulted)} faulted, {_promotions(clean)} clean", "target": "≥ 1 each",
         "met": _promotions(faulted) >= 1 and _promotions(clean) >= 1},
        {"name": "platform steps that raised (loop, monitor)",
         "value": str(len(faulted["hook_errors"]) + len(clean["hook_errors"])), "target": "0",
         "met": not faulted["hook_errors"] and not clean["hook_errors"]},
    ]
    daily_f, daily_c = _daily(faulted), _daily(clean)
    return {
        "title": f"yarnit operate demo: {config.days} days of YarnIt, seed {config.seed}",
        "seed": config.seed, "days": config.days, "start": faulted["start"], "elapsed_s": round(elapsed_s, 1),
        "durable": bool(getattr(config, "durable", True)),
        "generated_at": faulted["end"], "faults": faults, "targets": targets,
        "daily": [{"day": day, "faulted": daily_f[day], "clean": daily_c.get(day, {})} for day in sorted(daily_f)],
        "events": _events(faulted, "faulted") + _events(clean, "clean"),
        "answered_by": {"faulted": _answered(faulted), "clean": _answered(clean)},
        "ranker": {"share_configured": getattr(config, "ranker_share", 0.0), "faulted": _ranker(faulted),
                   "clean": _ranker(clean)},
        "incidents": [{"id": i["id"], "title": i["title"], "severity": i["severity"], "opened_at": i["opened_at"],
                       "resolved_at": i.get("phases", {}).get("resolution"), "postmortem": i.get("postmortem")}
                      for i in faulted["incidents"]],
        "clean_alerts": [{k: a.get(k) for k in ("slo", "alert", "started_at", "ended_at")} for a in _alerts(clean)],
        "timings_s": {"faulted": faulted.get("timings"), "clean": clean.get("timings")},
        "hook_errors": {"faulted": faulted["hook_errors"][:20], "clean": clean["hook_errors"][:20]},
    }


__all__ = ["DETECTORS", "build_report", "fault_rows", "served_pages"]
