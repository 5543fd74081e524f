"""Synthetic SLI event streams, minute by minute, for burn-rate tests (yarnit's evaluator and promtool's).

A scenario is ``history`` (steady traffic before the clock starts, so every
window is full) and ``segments`` (per-minute good/total counts). The yarnit
side replays it on a :class:`SimulatedClock`: at minute ``m`` the counts of
minute ``m - 1`` are added, then the monitor evaluates. Minute 0 is the
first minute of the first segment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from yarnit.core.clock import SimulatedClock, utc
from yarnit.monitoring import SLO, BurnRateMonitor, SLOStatus

START = utc(2026, 3, 1)


@dataclass(frozen=True)
class Segment:
    """``minutes`` minutes with ``total`` events a minute, ``good`` of them good."""

    minutes: int
    good: int
    total: int


@dataclass
class Trace:
    """What the monitor said at each evaluated minute (1 … n)."""

    statuses: dict[int, SLOStatus] = field(default_factory=dict)
    monitor: BurnRateMonitor | None = None

    def minutes(self, alert: str) -> list[int]:
        """Minutes at which ``alert`` ('page', 'ticket', 'no_data' or a pair 'page:1h') was firing."""
        out = []
        for m, status in self.statuses.items():
            if alert == "no_data":
                on = status.no_data
            elif ":" in alert:
                severity, long = alert.split(":")
                on = any(a.firing for a in status.alerts
                         if a.pair.severity == severity and _fmt(a.pair.long_s) == long)
            else:
                on = status.firing(alert)  # type: ignore[arg-type]
            if on:
                out.append(m)
        return out

    def first(self, alert: str) -> int | None:
        found = self.minutes(alert)
        return found[0] if found else None


def _fmt(seconds: int) -> str:
    from yarnit.monitoring import format_duration

    return format_duration(seconds)


def run_scenario(slo: SLO, segments: list[Segment], *, history: Segment | None = None,
                 evaluate_from: int = 1) -> Trace:
    """Replay ``segments`` minute by minute on a simulated clock; evaluate from minute ``evaluate_from``."""
    clock = SimulatedClock(START)
    monitor = BurnRateMonitor(slo, clock)
    t0 = START.timestamp()
    if history is not None:
        monitor.counts.add_span(t0 - history.minutes * 60, t0, good_per_bucket=history.good,
                                total_per_bucket=history.total)
    trace = Trace(monitor=monitor)
    minute = 0
    for seg in segments:
        for _ in range(seg.minutes):
            monitor.counts.add(t0 + minute * 60, good=seg.good, total=seg.total)
            minute += 1
            clock.set(START + timedelta(minutes=minute))
            if minute >= evaluate_from:
                trace.statuses[minute] = monitor.evaluate()
    return trace


# --- the same scenario as a promtool rule unit test -------------------------------------------------------------

BAD_SERIES = 'yarnit_serving_requests_total{model="ctr",served_by="fallback"}'
GOOD_SERIES = 'yarnit_serving_requests_total{model="ctr",served_by="model"}'
PROMETHEUS = {"errors": 'yarnit_serving_requests_total{model="ctr",served_by!="model"}',
              "total": 'yarnit_serving_requests_total{model="ctr"}'}


def counter_values(increments: list[tuple[int, int]]) -> str:
    """promtool notation for a counter starting at 0 that rises by ``inc`` for ``n`` minutes, run after run."""
    tokens, value = ["0"], 0
    for inc, n in increments:
        if n <= 0:
            continue
        tokens.append(f"{value + inc}+{inc}x{n - 1}")
        value += inc * n
    return " ".join(tokens)


def promtool_test(slo: SLO, trace: Trace, segments: list[Segment], history: Segment | None,
                  minutes: list[int]) -> dict:
    """A ``promtool test rules`` case: the scenario as two counters, expecting at ``minutes`` what yarnit said."""
    from yarnit.monitoring.rules import alert_annotations, alert_labels, no_data_alert_name

    runs = ([history] if history else []) + segments
    offset = history.minutes if history else 0
    bad = counter_values([(s.total - s.good, s.minutes) for s in runs])
    good = counter_values([(s.good, s.minutes) for s in runs])
    checks = []
    for m in minutes:
        status = trace.statuses[m]
        burn = [{"exp_labels": alert_labels(slo, sev), "exp_annotations": alert_annotations(slo, sev)}
                for sev in ("page", "ticket") if status.firing(sev)]  # type: ignore[arg-type]
        nodata = ([{"exp_labels": alert_labels(slo, "no_data"), "exp_annotations": alert_annotations(slo, "no_data")}]
                  if status.no_data else [])
        checks.append({"eval_time": f"{offset + m}m", "alertname": slo.alert_name, "exp_alerts": burn})
        checks.append({"eval_time": f"{offset + m}m", "alertname": no_data_alert_name(slo), "exp_alerts": nodata})
    return {"interval": "1m", "input_series": [{"series": BAD_SERIES, "values": bad},
                                                {"series": GOOD_SERIES, "values": good}],
            "alert_rule_test": checks}


def transition_minutes(trace: Trace) -> list[int]:
    """Every minute where page, ticket or no-data changed, the minute before it, and the last minute."""
    keys = sorted(trace.statuses)
    out = {keys[-1]}
    previous = None
    for m in keys:
        s = trace.statuses[m]
        now = (s.firing("page"), s.firing("ticket"), s.no_data)
        if previous is not None and now != previous:
            out |= {m, m - 1} & set(keys)
        previous = now
    return sorted(out)
