"""``yarnit capacity MODEL``: replicas for the model's peak with N+2 redundancy (monitoring/capacity.py)."""

from __future__ import annotations

import os
from datetime import datetime, timezone

import typer
from rich.table import Table

from yarnit.core.errors import InvalidInput

from .common import JSON_OPTION, cli_errors, console, emit, plain, workspace


def _epoch(text: str, what: str) -> float | None:
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{what} {text!r} is not a date or time (e.g. 2026-03-01 or 2026-03-01T12:00Z).") from None
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()


@cli_errors
def capacity(model: str,
             replica_rps: float = typer.Option(0.0, "--replica-rps", help="Requests/s one replica serves within "
                                               "its latency SLO (a load test's or benchmark's figure)."),
             measure_s: float = typer.Option(0.0, "--measure-s", help="Instead, measure it: drive a real yarnit "
                                             "serve open-loop (the C generator), ramping the rate until the latency "
                                             "SLO breaks, for at most this many seconds (>= 1)."),
             connections: int = typer.Option(32, "--connections", help="The generator's connections."),
             workers: int = typer.Option(1, "--workers", help="Measure yarnit serve --workers N: the plan takes "
                                         "the measured requests/s over N as one replica's (one process's)."),
             latency_ms: float = typer.Option(0.0, "--latency-ms", help="p99 objective of the measured run (ms). "
                                              "Unset: the tightest threshold_ms of a serving_latency SLO for the "
                                              "model in the workspace's slos.yaml, else 100 ms."),
             headroom: float = typer.Option(1.25, help="Capacity kept above the forecast peak (1.25: replicas run "
                                            "at most 80 % of what they sustain)."),
             redundancy: int = typer.Option(2, help="Spare replicas beyond the peak's (2: N+2)."),
             horizon_days: float = typer.Option(30.0, "--horizon-days", help="Forecast the growth this far ahead."),
             spike: float = typer.Option(1.0, help="Multiply the forecast peak (a known event: 3 for a conference "
                                         "that triples traffic)."),
             since: str = typer.Option("", help="Only traffic from this time (ISO 8601)."),
             until: str = typer.Option("", help="Only traffic before this time (ISO 8601)."),
             as_json: bool = JSON_OPTION) -> None:
    """Replicas MODEL needs for its forecast peak: N+2 redundancy and a headroom factor, with every input."""
    import orjson

    from yarnit.evaluation.validity import golden_requests
    from yarnit.loadtest.inputs import hard_inputs
    from yarnit.monitoring.capacity import latency_objective, measure_replica_capacity, plan_capacity, traffic_profile
    from yarnit.monitoring.workspace import prediction_log_dir
    from yarnit.registry import ModelRegistry

    if (replica_rps > 0) == (measure_s > 0):
        raise InvalidInput("Give the per-replica throughput as exactly one of --replica-rps R (a load test's figure) "
                           "or --measure-s S (measure one replica now).")
    if workers != 1 and measure_s <= 0:
        raise InvalidInput("--workers N says how many worker processes a measured run starts; give --measure-s S "
                           "with it.")
    with workspace() as ws:
        profile = traffic_profile(prediction_log_dir(ws.home), model, since_s=_epoch(since, "--since"),
                                  until_s=_epoch(until, "--until"))
        measurement = None
        source = "--replica-rps"
        if measure_s > 0:
            version = ModelRegistry(ws).resolve(model, "production")
            objective, objective_source = latency_objective(ws.home, model, latency_ms or None)
            # the version's golden requests, then the heaviest distinct ones production served (the log)
            rows = [orjson.dumps(g, option=orjson.OPT_SORT_KEYS) for g in golden_requests(version.signature)]
            rows += [r for r in hard_inputs(prediction_log_dir(ws.home), model, 200).rows if r not in rows]
            measurement = measure_replica_capacity(ws.home, model, rows, seconds=measure_s, latency_ms=objective,
                                                   latency_source=objective_source, workers=workers,
                                                   connections=connections)
            replica_rps = float(measurement["rps_per_worker"])
            best = measurement["steps"][measurement["best_step"]]
            source = (f"measured open-loop at the latency SLO (p99 <= {objective:g} ms, {objective_source}): "
                      f"step {measurement['best_step'] + 1} of {len(measurement['steps'])} ({best['phase']}, "
                      f"{best['offered_rps']:.4g} req/s offered), {version.ref}" +
                      (f", {workers} workers: {measurement['rps']:.4g} req/s in all" if workers > 1 else "") +
                      (", a lower bound: no step broke the SLO within --measure-s" if measurement["lower_bound"]
                       else ""))
        plan = plan_capacity(profile, replica_rps=replica_rps, replica_rps_source=source, headroom=headroom,
                             redundancy=redundancy, horizon_days=horizon_days, spike=spike, measurement=measurement)
    data = plan.to_dict()

    def human() -> None:
        t = plan.traffic
        table = Table("input", "value", title=f"capacity plan for {model}")
        rows = [
            ("observed", f"{t.requests} requests over {t.hours} h ({t.first_hour} … {t.last_hour})"),
            ("peak hour", f"{t.peak_rps:.4g} req/s at {t.peak_hour}"),
            ("mean", f"{t.mean_rps:.4g} req/s (peak-to-mean {t.peak_to_mean or 0:.2f})"),
            ("growth", f"{t.growth_per_day * 100:+.2f} %/day over {t.whole_days} whole day(s)"),
            ("forecast", f"peak {plan.forecast_peak_rps:.4g} req/s in {plan.horizon_days:g} days (spike ×{plan.spike:g})"),
            ("per replica", f"{plan.replica_rps:.4g} req/s ({plan.replica_rps_source})"),
            ("headroom", f"×{plan.headroom:g}"),
        ]
        if measurement is not None:
            best = measurement["steps"][measurement["best_step"]]
            latency = (f"p50 {best['p50_ms']:.2f} ms, p99 {best['p99_ms']:.2f} ms at {best['offered_rps']:.4g} req/s "
                       f"offered (objective p99 <= {measurement['latency_objective_ms']:g} ms: "
                       f"{measurement['latency_source']})")
            rows.append(("measured latency", latency))
        for name, value in rows:
            table.add_row(name, plain(value))
        console.print(table)
        console.print(f"replicas: {plan.replicas} = {plan.replicas_for_peak} for the peak + {plan.redundancy} "
                      f"(N+{plan.redundancy}); autoscaler {plan.hpa_min_replicas}..{plan.hpa_max_replicas}: "
                      f"{data['deploy']}")
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        console.print(f"one host: {data['serve']}  ({plan.serve_workers} worker processes carry the forecast "
                      f"peak; give them ≥ {plan.serve_workers} cores"
                      + (f", this host has {cpus}" if plan.serve_workers > cpus else "")
                      + (f"; the peak needs {plan.replicas_for_peak} processes: split them over hosts"
                         if plan.replicas_for_peak > plan.serve_workers else "") + ")")
        if measurement is not None:
            steps = Table("step", "phase", "offered req/s", "achieved req/s", "p50 ms", "p99 ms", "errors", "SLO",
                          title=f"measured run: {measurement['step_s']:g} s steps, {measurement['workers']} "
                                f"worker(s), {measurement['connections']} connections")
            for k, step in enumerate(measurement["steps"]):
                mark = "pass" if step["passed"] else "FAIL"
                steps.add_row(str(k + 1), step["phase"], f"{step['offered_rps']:.4g}", f"{step['achieved_rps']:.4g}",
                              "-" if step["p50_ms"] is None else f"{step['p50_ms']:.2f}",
                              "-" if step["p99_ms"] is None else f"{step['p99_ms']:.2f}",
                              f"{step['errors']}/{step['sent']}",
                              mark + (" ← the figure" if k == measurement["best_step"] else ""))
            console.print(steps)
        for note in t.notes:
            console.print(plain(f"note: {note}"))

    emit(data, as_json, human)


__all__ = ["capacity"]
