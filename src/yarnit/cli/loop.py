"""``yarnit loop …``: the continuous loop of a model over a written world's days.

* ``yarnit loop run --world DIR [--once] [--interval 1h]`` ticks on the real
  clock until stopped (``--once``: one tick);
* ``yarnit loop run --world DIR --days N`` runs N simulated days from the
  world's first day (or from where a previous, maybe killed, run stopped:
  the simulated clock is part of the loop's saved state);
* ``yarnit loop status [--json]`` shows each day's phase, quarantined rows,
  versions and who holds the loop's lease.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from yarnit.core.errors import InvalidInput

from .common import JSON_OPTION, cli_errors, console, emit

app = typer.Typer(help="The continuous loop: data → quarantine → label join → train → gate → register → rollout.",
                  no_args_is_help=True)


def _render(status: dict[str, Any]) -> None:
    lease = status["lease"]
    holder = lease.get("holder") or {}
    console.print(f"loop of {status['model']} over {status['world']}: {status['ticks']} ticks, {status['runs']} runs, "
                  f"trained through {status['trained_through'] or '—'}, clock {status['clock'] or 'real'}; lease "
                  + (f"held by pid {holder.get('pid')} on {holder.get('host')}" if lease["held"] else "free"))
    table = Table("day", "phase", "quarantined", "label rate", "version", "promoted", "note")
    for d in status["days"]:
        q = d.get("quarantine") or {}
        label = d.get("label") or {}
        table.add_row(d["day"], d["phase"], ", ".join(f"{k} {v}" for k, v in (q.get("reasons") or {}).items()) or "0",
                      "" if label.get("rate") is None else f"{label['rate']:.4f}",
                      "" if d.get("version") is None else f"v{d['version']}",
                      "" if d.get("promoted") is None else str(d["promoted"]), (d.get("note") or "")[:70])
    console.print(table)


@app.command("run")
@cli_errors
def run(world: Path = typer.Option(..., "--world", help="A world written by: yarnit world generate --out DIR"),
        model: str = typer.Option("ctr", "--model", help="Registered model name."),
        once: bool = typer.Option(False, "--once", help="One tick, then stop."),
        interval: str = typer.Option("1h", "--interval", help="Time between ticks (e.g. 30m, 1h, 6h)."),
        days: int | None = typer.Option(None, "--days", min=1, max=3660,
                                        help="Run this many days on a simulated clock from the world's first day."),
        window_days: int = typer.Option(3, "--window-days", min=1, max=365, help="Days per training window."),
        settings: list[str] = typer.Option([], "--set", help="Override of the click model's pipeline: key=value."),
        day_settings: list[str] = typer.Option([], "--day-set",
                                               help="Override of the day pipeline (flood_factor …): key=value."),
        rollout: bool = typer.Option(False, "--rollout",
                                     help="Release each blessed version through a staged rollout (yarnit rollout) "
                                          "instead of promoting it; the model's first version is promoted."),
        rollout_settings: list[str] = typer.Option([], "--rollout-set",
                                                   help="Rollout setting (stages, bake_s, min_requests …): key=value; "
                                                        "implies --rollout."),
        as_json: bool = JSON_OPTION) -> None:
    """Run the loop: each tick takes in new days, quarantines bad rows, waits for labels, trains, gates, promotes."""
    from yarnit.continuous.loop import ContinuousLoop, LoopConfig, load_state
    from yarnit.continuous.loop_steps import closes_at, world_days
    from yarnit.core.clock import SimulatedClock
    from yarnit.core.settings import load_settings
    from yarnit.monitoring.slo import parse_duration
    from yarnit.storage import open_workspace

    from .pipelines import parse_settings

    interval_s = parse_duration(interval, "--interval")
    config = LoopConfig(model=model, window_days=window_days, min_window_days=min(2, window_days),
                        pipeline=parse_settings(settings), day=parse_settings(day_settings),
                        rollout=parse_settings(rollout_settings) if rollout or rollout_settings else None)
    env = load_settings()
    until = None
    clock = None
    if days is not None:
        state = load_state(env.home, model)
        found = world_days(str(world))
        if not found:
            raise InvalidInput(f"The world {str(world)!r} holds no days.")
        start = closes_at(found[0], config.log_close_h)
        saved = state.get("clock")
        from datetime import datetime

        clock = SimulatedClock(datetime.fromisoformat(saved) if saved else start)
        until = start + timedelta(days=days)
    ws = open_workspace(env, clock)
    quiet = as_json
    loop = ContinuousLoop(ws, world, config, progress=None if quiet else lambda m: console.print(f"  {m}"))
    if once:
        status = loop.run(ticks=1, interval_s=interval_s)
    elif until is not None:
        status = loop.run(until=until, interval_s=interval_s) if ws.clock.now() <= until else loop.status()
    else:
        status = loop.run(interval_s=interval_s)
    emit(status, as_json, lambda: _render(status))


@app.command("status")
@cli_errors
def status(model: str = typer.Option("ctr", "--model", help="Registered model name."),
           as_json: bool = JSON_OPTION) -> None:
    """Each day's phase, what was quarantined, which versions were trained and promoted, and the lease."""
    from yarnit.continuous.loop import loop_status, state_path
    from yarnit.core.settings import load_settings

    env = load_settings()
    if not state_path(env.home, model).exists():
        raise InvalidInput(f"No loop of model {model!r} has run in {str(env.home)!r}. Start one with: "
                           "yarnit loop run --world DIR")
    result = loop_status(env.home, model)
    emit(result, as_json, lambda: _render(result))
