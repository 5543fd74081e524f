"""The monitor: one run reads what is new, evaluates every SLO, turns alert changes into alerts and sends them.

:meth:`Monitor.run_once` does, in order:

1. ``yarnit.monitoring.traffic.update`` and ``yarnit.monitoring.quality.update``
   (new prediction-log segments into drift windows; new labels into quality
   windows), each only if its module is installed; a missing module is
   reported as ``missing``, a failing one as ``error``, and the run goes on;
   then the ``monitoring`` retention class (:mod:`.retention`) removes the
   summaries older than its policy (reported under ``modules.retention``);
2. every SLO of the workspace's SLO file through
   :class:`~yarnit.monitoring.workspace.WorkspaceSLISource` and a
   :class:`~yarnit.monitoring.burn.BurnRateMonitor` whose "what was firing"
   is the set of open alerts in the :class:`~yarnit.monitoring.alerts.AlertStore`;
   an SLO whose source fails is reported with its error, the others go on;
3. each fired/cleared transition opens or resolves an alert (a page still
   firing only refreshes its evidence), and the store is saved with the
   notifications queued in the same atomic write;
4. the outbox is delivered to the sinks (bounded in time; failures counted);
5. the latest status of every SLO is written atomically to
   ``monitoring/slo-status.json``, which ``/metrics``, ``GET /api/slos`` and
   ``yarnit alerts list`` read: nothing computes an SLO on a request path;
6. each module of :data:`POST_ALERT_MODULES` (``yarnit.incidents``: alerts
   open or attach to incidents) gets the alerts, after they were saved and
   sent (and before the state file, which carries their reports under
   ``hooks``), so a failing hook (reported as ``error``) never delays or
   loses an alert.

**Restarts.** The alert store is the monitor's memory of what fires: a new
process reads the open alerts and compares the new evaluation with them, so an
alert open before the restart is not opened (or paged) again, and a
transition decided but not sent before a crash is still in the outbox. The
counts are not memory: each source recomputes them from its own checkpoint or
records.

:meth:`Monitor.follow` runs every ``interval_s`` seconds of the injected
clock until its ``stop`` event is set (the CLI sets it on SIGTERM/SIGINT):
with a :class:`~yarnit.core.clock.SimulatedClock`, a test moves time and the
monitor runs.
"""

from __future__ import annotations

import fcntl
import importlib
import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from yarnit.core.atomic import UNSYNCED_OPS, atomic_write_text
from yarnit.core.clock import Clock
from yarnit.core.errors import YarnitError

from . import slo_history
from .alerts import AlertStore, Notification, Sink, alerts_path, build_sinks, deliver
from .burn import BurnRateMonitor, SLOStatus
from .policy import shared_source
from .slo import SinkSpec, SLOFile, format_duration
from .workspace import WorkspaceSLISource, monitoring_dir

log = logging.getLogger("yarnit.monitoring")

STATE_FILENAME = "slo-status.json"
STATE_VERSION = 1
UPDATE_MODULES = ("traffic", "quality")
#: Modules whose ``process_alerts(workspace, alerts, *, clock, counts)`` runs after the alerts are saved and sent
#: (incidents open and attach); a missing one is skipped, a failing one reported: alerting never waits on them.
POST_ALERT_MODULES = ("yarnit.incidents",)
#: Alerts whose ``slo_id`` starts with this were raised by the continuous loop (data checks, held labels,
#: failed runs): they have no SLO in the SLO file and the loop resolves them, so the monitor leaves them alone.
LOOP_ALERT_PREFIX = "loop:"
#: The ``monitoring`` retention class runs at most this often per monitor (its policies are counted in days).
RETENTION_EVERY_S = 86_400
DEFAULT_SINKS = (SinkSpec(type="log", name="log"), SinkSpec(type="file", name="file", path="alerts.jsonl"))


def state_path(home: str | Path) -> Path:
    """The runner's latest SLO statuses (read by /metrics, /api/slos and the CLI)."""
    return monitoring_dir(home) / STATE_FILENAME


def read_state(home: str | Path) -> dict[str, Any] | None:
    """The runner's state file, or None when the monitor has not run (or the file is unreadable)."""
    try:
        data = json.loads(state_path(home).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) and data.get("version") == STATE_VERSION else None


def status_entry(status: SLOStatus, active: dict[str, bool]) -> dict[str, Any]:
    """One SLO in the state file: its status plus burn rate per window and what fires."""
    burn: dict[str, float | None] = {format_duration(status.period.window_s): status.period.burn_rate}
    for a in status.alerts:
        burn[format_duration(a.long.window_s)] = a.long.burn_rate
        burn[format_duration(a.short.window_s)] = a.short.burn_rate
    return {**status.to_dict(), "id": status.slo.id, "burn_rates": burn, "firing": active, "error": None}


class Monitor:
    """Evaluates a workspace's SLOs, keeps its alerts and sends them to ``sinks``.

    ``sinks`` defaults to the SLO file's ``alerts.sinks``, or a log and a file
    sink (``monitoring/alerts.jsonl``) when the file names none.
    """

    def __init__(self, workspace: Any, spec: SLOFile, *, clock: Clock | None = None,
                 sinks: Sequence[Sink] | None = None, deadline_s: float = 10.0,
                 actions: Mapping[str, Callable[..., Any]] | None = None) -> None:
        self.workspace = workspace
        self.actions = actions  # emergency actions by name for the hooks (None: yarnit.continuous.actions)
        self.spec = spec
        self.clock = clock or workspace.clock
        self.dir = monitoring_dir(workspace.home)
        self.sinks = list(sinks) if sinks is not None else build_sinks(spec.sinks or DEFAULT_SINKS, self.dir)
        self.deadline_s = deadline_s
        # Kept between runs: the prediction-log source then holds its counts in memory and reads only new
        # segments instead of reloading its checkpoint each run (a new Monitor, as after a restart, reloads it).
        # On the workspace's own clock it is the one the release gate of this process counts with
        # (policy.shared_source): one pass brings both up to date.
        self.source: Any = (shared_source(workspace, spec) if self.clock is workspace.clock
                            else WorkspaceSLISource(workspace, spec, clock=self.clock))
        self._retained: tuple[int, Any] | None = None  # (policy days, cutoff) of this monitor's last retention run

    @property
    def alerts_path(self) -> Path:
        return alerts_path(self.dir)

    def run_once(self) -> dict[str, Any]:
        """One pass: update the windows, evaluate every SLO, open/resolve alerts, send them, write the state.

        Two monitors on one workspace take turns (an exclusive ``flock`` on
        ``monitoring/monitor.lock``): the alert store is read, changed and
        written by one of them at a time.
        """
        self.dir.mkdir(parents=True, exist_ok=True)
        with (self.dir / "monitor.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, and by the kernel if killed
            return self._run()

    def _run(self) -> dict[str, Any]:
        from yarnit.serving.predlog import shared_log_view

        # every SLO of one log, at one instant: one listing of the log, and its new bytes decoded once for the
        # traffic summaries, the quality join and the SLI counts
        with shared_log_view(), self.source.one_read():
            return self._pass()

    def _pass(self) -> dict[str, Any]:
        started = _monotonic()
        at = self.clock.now()
        modules = {name: self._update(name) for name in UPDATE_MODULES}
        for name, outcome in modules.items():
            if outcome.get("state") == "ok":  # the sources need not read the same log again in this pass
                self.source.updated(name, outcome["report"], at.timestamp())
        modules["retention"] = self._retention()
        store = AlertStore.open(self.alerts_path)
        sink_names = [s.name for s in self.sinks]
        source = self.source
        entries: list[dict[str, Any]] = []
        transitions: list[dict[str, Any]] = []
        opened = resolved = 0
        for slo in self.spec.slos:
            monitor = BurnRateMonitor(slo, self.clock, _active=store.active(slo.id))
            try:
                monitor.refresh(source)
            except (YarnitError, ImportError, OSError) as exc:
                message = _error_text(exc)
                log.error("SLO %s: cannot count its events: %s", slo.id, message)
                entries.append({"slo": slo.name, "id": slo.id, "service": slo.service, "sli": slo.sli,
                                "model": slo.model, "objective": float(slo.objective),
                                "window": format_duration(slo.window_s), "at": at.isoformat(), "state": "error",
                                "error": message, "budget_remaining": None, "burn_rates": {},
                                "firing": store.active(slo.id), "alerts": []})
                continue
            status = monitor.evaluate()
            for change in monitor.history:
                transitions.append(change.to_dict())
                if change.change == "cleared":
                    resolved += store.resolve(slo, change.alert, status, sinks=sink_names) is not None
            active = monitor.active()
            for kind, on in active.items():
                if on:
                    opened += store.fire(slo, kind, status, clock=self.clock, sinks=sink_names)[1]
            entries.append(status_entry(status, dict(active)))
        known = {slo.id for slo in self.spec.slos}
        for alert in [a for a in store.alerts if a.state == "firing" and a.slo_id not in known
                      and not a.slo_id.startswith(LOOP_ALERT_PREFIX)]:
            # Its SLO left the file: nothing will ever clear it, so it is resolved now (and said so). Alerts the
            # continuous loop raised (``loop:…``) have no SLO in the file: the loop resolves them itself.
            alert.state, alert.ended_at, alert.updated_at = "resolved", at.isoformat(), at.isoformat()
            alert.evidence = {**alert.evidence, "resolved_because": "the SLO is no longer in the SLO file"}
            store.outbox.extend(Notification(alert.id, "resolved", name) for name in sink_names)
            resolved += 1
        store.save()  # decisions and their notifications, in one atomic write, before anything is sent
        delivery = deliver(store, self.sinks, deadline_s=self.deadline_s, monotonic=_monotonic)
        store.save()
        hooks = {name.rsplit(".", 1)[-1]: self._post_alert(name, store) for name in POST_ALERT_MODULES}
        state = {"version": STATE_VERSION, "service": self.spec.service, "at": at.isoformat(),
                 "slos": entries, "modules": modules, "hooks": hooks, "sources": _jsonable(source.reports()),
                 "alerts": {"opened": opened, "resolved": resolved,
                            "firing": sum(a.state == "firing" for a in store.alerts),
                            "store_recovered": store.recovered},
                 "delivery": delivery.__dict__, "sinks": {k: v.__dict__ for k, v in store.stats.items()},
                 "duration_ms": round((_monotonic() - started) * 1000, 1)}  # real time this run took
        # rewritten every pass from what the stores hold: atomic (never torn), not synced to disk; not indented,
        # so json's C encoder writes it (with an indent json encodes in Python: a tenth of a month's monitor CPU)
        atomic_write_text(state_path(self.workspace.home), json.dumps(state, default=str), mode=0o644,
                          ops=UNSYNCED_OPS)
        slo_history.record(self.workspace.home, at, entries)  # hourly points: the dashboard's budget-over-time
        slo_history.record_drift(self.workspace, at)  # each closed day's drift, once: the dashboard's drift-over-time
        return {**state, "transitions": transitions}

    def _update(self, name: str) -> dict[str, Any]:
        update = _optional_function(f"yarnit.monitoring.{name}", "update")
        if isinstance(update, dict):
            return update
        try:
            return {"state": "ok", "report": _jsonable(update(self.workspace, clock=self.clock))}
        except (YarnitError, OSError, ValueError) as exc:
            log.error("monitoring %s update failed: %s", name, _error_text(exc))
            return {"state": "error", "error": _error_text(exc)}

    def _post_alert(self, module_name: str, store: AlertStore) -> dict[str, Any]:
        process = _optional_function(module_name, "process_alerts")
        if isinstance(process, dict):
            return process
        slos = {slo.id: slo for slo in self.spec.slos}
        until_s = self.clock.now().timestamp()

        def counts(slo_id: str) -> Any:  # the per-minute counts this run evaluated (the source keeps them)
            return self.source.counts(slos[slo_id], until_s=until_s) if slo_id in slos else None

        try:
            report = process(self.workspace, list(store.alerts), clock=self.clock, counts=counts,
                             actions=self.actions)
            return {"state": "ok", "report": _jsonable(report)}
        except Exception as exc:  # noqa: BLE001 - a hook never stops the monitor: its alerts are already sent
            log.error("monitoring hook %s failed: %s", module_name, _error_text(exc))
            return {"state": "error", "error": _error_text(exc)}

    def _retention(self) -> dict[str, Any]:
        """The ``monitoring`` retention class applied to the summaries the updates just wrote (bounded files)."""
        from .retention import expire_monitoring, monitoring_cutoff

        try:
            cutoff, days = monitoring_cutoff(self.workspace)
            last = self._retained
            if last is not None and last[0] == days and (cutoff - last[1]).total_seconds() < RETENTION_EVERY_S:
                # ran less than a day ago under the same policy: nothing can have aged past it by more than a day
                return {"state": "ok", "report": {"max_age_days": days, "older_than": last[1].isoformat(),
                                                  "removed": [], "next_at": (last[1] + timedelta(
                                                      seconds=RETENTION_EVERY_S)).isoformat()}}
            removed = expire_monitoring(self.workspace, cutoff)
            self._retained = (days, cutoff)
        except (YarnitError, OSError, ValueError) as exc:
            log.error("monitoring retention failed: %s", _error_text(exc))
            return {"state": "error", "error": _error_text(exc)}
        return {"state": "ok", "report": {"max_age_days": days, "older_than": cutoff.isoformat(), "removed": removed}}

    def follow(self, interval_s: float, *, stop: threading.Event, poll_s: float = 1.0, max_runs: int | None = None,
               on_run: Callable[[dict[str, Any]], None] | None = None) -> int:
        """Run now and then every ``interval_s`` seconds of the monitor's clock until ``stop`` is set; runs done.

        ``poll_s`` bounds each real wait, so a simulated clock moved by another
        thread (or ``stop``) is noticed within it.
        """
        runs = 0
        next_at = self.clock.now()
        step = timedelta(seconds=interval_s)
        while not stop.is_set():
            now = self.clock.now()
            if now >= next_at:
                try:
                    report = self.run_once()
                except (YarnitError, OSError) as exc:  # a full disk or a lost database: say so, try next time
                    log.error("monitor run failed: %s", _error_text(exc))
                    report = {"error": _error_text(exc), "at": now.isoformat()}
                runs += 1
                if on_run is not None:
                    on_run(report)
                if max_runs is not None and runs >= max_runs:
                    break
                while next_at <= now:  # missed intervals are skipped, not run back to back
                    next_at += step
            remaining = (next_at - self.clock.now()).total_seconds()
            stop.wait(max(0.0, min(poll_s, remaining)))
        return runs


def _optional_function(module_name: str, name: str) -> Callable[..., Any] | dict[str, Any]:
    """Function ``name`` of an optional module, or the ``missing`` report when the module or function is absent."""
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        return {"state": "missing", "detail": f"{module_name} is not installed; skipped"}
    function: Callable[..., Any] | None = getattr(module, name, None)
    if function is None:
        return {"state": "missing", "detail": f"{module_name} has no {name}(); skipped"}
    return function


def _monotonic() -> float:
    import time

    return time.monotonic()  # bounds real time spent sending, not domain time


def _error_text(exc: BaseException) -> str:
    return str(exc)[:500] if isinstance(exc, YarnitError) else f"{type(exc).__name__}: {str(exc)[:480]}"


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


__all__ = ["DEFAULT_SINKS", "LOOP_ALERT_PREFIX", "Monitor", "POST_ALERT_MODULES", "STATE_FILENAME", "read_state", "state_path", "status_entry"]
