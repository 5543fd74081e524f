"""``yarnit monitor run [--follow]``: evaluate the workspace's SLOs, open and resolve alerts, send them.

Once by default; with ``--follow`` every ``--interval`` until SIGTERM or
SIGINT (Ctrl-C), which end it cleanly after the current run. A run still going
``--stop-timeout`` after the signal (30 s by default: an orchestrator's grace
period; a starved run can take minutes, an alert sink up to retries × timeout)
is abandoned, and a second signal abandons it at once. That is safe because a
run writes nothing half-way (atomic files, transactions), the same property
that lets ``kill -9`` stop it: the state stays the previous run's and the next
start redoes the abandoned one. It lowers its
own CPU priority (``--nice 10`` by default): a server beside it on the same
cores is scheduled first (see docs/benchmarks.md for what that buys). The SLO file is
the workspace's (``$YARNIT_HOME/slos.yaml``, written by ``yarnit slo apply``);
alert sinks come from its ``alerts.sinks`` plus ``--webhook`` and
``--alertmanager``.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from typing import Any

import typer
from rich.table import Table

from .common import JSON_OPTION, cli_errors, console, emit, plain, workspace
from .monitor import app


def parse_interval(text: str, option: str = "--interval", least_s: float = 1.0) -> float:
    """Seconds in ``30s``, ``1m``, ``5m``, ``1h`` (at least ``least_s``, at most a day)."""
    from yarnit.core.errors import InvalidInput

    units = {"s": 1, "m": 60, "h": 3600}
    value = text.strip().lower()
    number, unit = (value[:-1], value[-1]) if value and value[-1] in units else (value, "s")
    try:
        seconds = float(number) * units[unit]
    except ValueError:
        seconds = -1.0
    if not least_s <= seconds <= 86400:
        raise InvalidInput(f"{option} must be a duration from {least_s:g}s to 24h such as 30s, 1m or 5m, "
                           f"got {text!r}.")
    return seconds


class _Abandon(BaseException):
    """Raised in the main thread to abandon a run (a BaseException, so no ``except Exception`` keeps it)."""


def load_spec(home: Any) -> Any:
    from yarnit.core.errors import ConfigError
    from yarnit.monitoring.workspace import load_workspace_slos, slo_path

    spec = load_workspace_slos(home)
    if spec is None:
        raise ConfigError(f"No SLO file is applied to this workspace ({slo_path(home)} does not exist): write one "
                          "and run yarnit slo apply FILE.")
    return spec


@app.command("run")
@cli_errors
def run(follow: bool = typer.Option(False, "--follow", help="Keep running every --interval until SIGTERM/Ctrl-C."),
        interval: str = typer.Option("60s", "--interval", help="Time between runs with --follow (e.g. 30s, 1m)."),
        webhook: list[str] = typer.Option([], "--webhook", help="Also send alerts to this webhook URL (repeatable)."),
        alertmanager: list[str] = typer.Option([], "--alertmanager",
                                               help="Also send alerts to this Alertmanager (base URL; repeatable)."),
        nice: int = typer.Option(10, "--nice", min=0, max=19,
                                 help="Lower this process's CPU priority by this much (0: unchanged), so that a "
                                      "server on the same cores keeps its latency."),
        stop_timeout: str = typer.Option("30s", "--stop-timeout",
                                         help="With --follow: how long a run may go on after SIGTERM/Ctrl-C "
                                              "before it is abandoned (0s: at once; a second signal too)."),
        as_json: bool = JSON_OPTION) -> None:
    """Evaluate every SLO of the workspace, open/resolve alerts and send them to the sinks."""
    from yarnit.monitoring.alerts import build_sinks
    from yarnit.monitoring.runner import DEFAULT_SINKS, Monitor
    from yarnit.monitoring.slo import parse_sink
    from yarnit.monitoring.workspace import monitoring_dir

    seconds = parse_interval(interval)
    grace_s = parse_interval(stop_timeout, "--stop-timeout", 0.0)
    if nice:
        import os

        os.nice(nice)  # monitoring is batch work: the scheduler gives the serving process the core first
    ws = workspace()
    try:
        spec = load_spec(ws.home)
        specs = list(spec.sinks or DEFAULT_SINKS)
        for i, url in enumerate(webhook):
            specs.append(parse_sink({"type": "webhook", "url": url}, f"--webhook {i + 1}",
                                    default_name=f"cli-webhook-{i + 1}"))
        for i, url in enumerate(alertmanager):
            specs.append(parse_sink({"type": "alertmanager", "url": url}, f"--alertmanager {i + 1}",
                                    default_name=f"cli-alertmanager-{i + 1}"))
        monitor = Monitor(ws, spec, sinks=build_sinks(specs, monitoring_dir(ws.home)))
        if not follow:
            report = monitor.run_once()
            emit(report, as_json, lambda: _human(report))
            return
        stop, done = threading.Event(), threading.Event()
        timers: list[threading.Timer] = []

        def _signal_main(signum: int) -> None:
            if not done.is_set():
                signal.pthread_kill(threading.main_thread().ident or 0, signum)

        def _stop(signum: int, _frame: Any) -> None:
            if done.is_set():  # follow() has returned: nothing left to abandon
                return
            if stop.is_set():  # the second signal, or the grace period's end: abandon the run now
                raise _Abandon
            stop.set()
            # a run in progress gets grace_s to finish; then the main thread gets this signal again (a real one,
            # so that a blocking read, an alert sink's, returns EINTR at once) and this handler abandons the run
            timer = threading.Timer(grace_s, _signal_main, (signum,))
            timer.daemon = True
            timers.append(timer)
            timer.start()

        previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}

        def on_run(report: dict[str, Any]) -> None:
            if as_json:  # one JSON document per line per run: a stream a reader can follow
                sys.stdout.write(json.dumps(report, default=str) + "\n")
                sys.stdout.flush()
            else:
                _human(report)

        runs, abandoned = 0, False
        try:
            runs = monitor.follow(seconds, stop=stop, on_run=on_run)
        except _Abandon:
            abandoned = True
        finally:
            done.set()
            for timer in timers:  # joined: a signal a timer sent reaches this handler, never the restored default
                timer.cancel()
                timer.join()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if abandoned:
            print(f"monitor: the run in progress was abandoned (a second stop signal, or still going {grace_s:g} s "
                  "after the first); it wrote nothing half-way, and the next start redoes it", file=sys.stderr,
                  flush=True)
        elif not as_json:
            console.print(f"monitor stopped after {runs} run(s)")
    finally:
        ws.close()


def _human(report: dict[str, Any]) -> None:
    if "slos" not in report:
        console.print(f"monitor run failed: {report.get('error')}")
        return
    table = Table("slo", "sli", "state", "budget left", "burn rates", "firing", title=f"{report['service']} at "
                  f"{report['at']}")
    for s in report["slos"]:
        left = s.get("budget_remaining")
        burns = ", ".join(f"{w} {'-' if b is None else f'{b:.2f}x'}" for w, b in (s.get("burn_rates") or {}).items())
        firing = ", ".join(k for k, on in (s.get("firing") or {}).items() if on) or "-"
        table.add_row(s["slo"], s["sli"], s["state"] if not s.get("error") else f"error: {s['error']}",
                      "no data" if left is None else f"{left:.1%}", burns, firing)
    console.print(table)
    for name, module in report.get("modules", {}).items():
        if module.get("state") != "ok":
            console.print(f"{name}: {module.get('state')} ({module.get('detail') or module.get('error')})")
    removed = ((report.get("modules", {}).get("retention") or {}).get("report") or {}).get("removed")
    if removed:
        console.print(plain(f"retention: removed {len(removed)} monitoring item(s) older than "
                            f"{report['modules']['retention']['report']['older_than']}"))
    alerts, delivery = report["alerts"], report["delivery"]
    console.print(f"alerts: {alerts['opened']} opened, {alerts['resolved']} resolved, {alerts['firing']} firing; "
                  f"notifications: {delivery['sent']} sent, {delivery['failed']} failed, {delivery['pending']} "
                  f"pending, {delivery['dropped']} dropped")


__all__ = ["parse_interval", "run"]
