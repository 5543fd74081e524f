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
             measure_s: float = typer.Option(0.0, "--measure-s", help="Instead, measure it: run one yarnit serve "
                                             "process for this many seconds with the version's golden requests."),
             concurrency: int = typer.Option(4, "--concurrency", help="Clients of the measured run."),
             workers: int = typer.Option(1, "--workers", help="Measure yarnit serve --workers N: the plan takes "
                                         "the measured requests/s over N as one replica's (one process's)."),
             latency_slo_ms: float = typer.Option(0.0, "--latency-slo-ms", help="p99 the measured run must keep "
                                                  "(0: not checked)."),
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
    from yarnit.evaluation.validity import golden_requests
    from yarnit.monitoring.capacity import measure_replica_rps, plan_capacity, traffic_profile
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
            measurement = measure_replica_rps(ws.home, model, golden_requests(version.signature), seconds=measure_s,
                                              concurrency=concurrency, latency_slo_ms=latency_slo_ms or None,
                                              workers=workers)
            replica_rps = float(measurement["rps_per_worker"])
            source = f"measured: {measure_s:g} s, {concurrency} clients, {version.ref}" + (
                f", {workers} workers: {measurement['rps']:.4g} req/s in all" if workers > 1 else "")
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
            rows.append(("measured latency", f"p50 {measurement['p50_ms']:.2f} ms, p99 {measurement['p99_ms']:.2f} ms"
                         + ("" if measurement["within_slo"] is None else
                            " (within SLO)" if measurement["within_slo"] else " (OVER the latency SLO)")))
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
        for note in t.notes:
            console.print(plain(f"note: {note}"))

    emit(data, as_json, human)


__all__ = ["capacity"]
