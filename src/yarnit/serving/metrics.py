"""Prometheus export of the serving counters, read at scrape time (book table 9-1).

The request path only bumps plain dict counters (no locks, no label lookups);
this collector turns them into metric families when ``/metrics`` is scraped.
Register it on the app's registry: ``registry.register(ServingCollector(service))``.
Series labelled by version are kept for the loaded versions, the versions that answered since the last
scrape and the three newest; older ones are dropped (``ServingStats.prune_versions``), so a process that
hot-swaps all year exports a bounded number of series.

| metric | labels |
|---|---|
| ``yarnit_serving_requests_total`` | model, version, alias, served_by, code |
| ``yarnit_serving_request_duration_seconds`` (histogram) | model, version |
| ``yarnit_serving_instances_total`` | model, version, served_by |
| ``yarnit_serving_shed_total`` | model, reason |
| ``yarnit_serving_fallbacks_total`` | model, served_by, reason |
| ``yarnit_serving_cache_hits_total`` / ``_misses_total`` | model, version |
| ``yarnit_serving_model_age_seconds`` | model, alias, version |
| ``yarnit_serving_model_version`` | model, alias |
| ``yarnit_serving_model_info`` | model, alias, version, path (linear-onnx, tree-onnx, lightgbm-onnx, native) |
| ``yarnit_serving_breaker_open`` | model, alias, version |
| ``yarnit_serving_swaps_total`` | model, alias, outcome |
| ``yarnit_serving_alias_unservable`` | model, alias, version |
| ``yarnit_serving_in_flight``, ``yarnit_serving_queue_waiting`` | |
| ``yarnit_serving_offloaded_total``, ``yarnit_serving_offload_timeouts_total``, ``yarnit_serving_pool_busy`` | |
| ``yarnit_serving_online_feature_defaults_total`` | model, feature, reason |
| ``yarnit_serving_input_imputations_total`` | model, feature, reason (missing, out_of_range) |
| ``yarnit_serving_shadow_total`` | model, version, outcome |
| ``yarnit_prediction_log_records_total`` | state (enqueued, flushed, dropped, lost) |
| ``yarnit_prediction_log_flushed_seq``, ``yarnit_prediction_log_queue_depth`` | |
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from .runtime import SERVED_ALIASES

if TYPE_CHECKING:
    from .runtime import ModelRuntime
    from .service import InferenceService


class ServingCollector(Collector):
    """Exports an :class:`~yarnit.serving.service.InferenceService`'s counters."""

    def __init__(self, service: InferenceService) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        from .service import LATENCY_BUCKETS_S

        service = self.service
        stats = service.stats
        stats.prune_versions(loaded_versions(service.runtime))
        yield _counter("yarnit_serving_requests", "Data-plane requests by model, version, alias, answering "
                       "path and HTTP status code", ["model", "version", "alias", "served_by", "code"],
                       stats.requests)
        histogram = HistogramMetricFamily("yarnit_serving_request_duration_seconds",
                                          "Data-plane request latency by model and version",
                                          labels=["model", "version"])
        for (model, version), h in list(stats.latency.items()):
            cumulative, buckets = 0, []
            counts = list(h.counts)
            for bound, n in zip(LATENCY_BUCKETS_S, counts, strict=False):
                cumulative += n
                buckets.append((repr(bound), cumulative))
            buckets.append(("+Inf", cumulative + counts[-1]))
            histogram.add_metric([model, version], buckets, h.total)
        yield histogram
        yield _counter("yarnit_serving_instances", "Instances scored, by model, version and answering path",
                       ["model", "version", "served_by"], stats.instances)
        shed = dict(stats.shed)
        yield _counter("yarnit_serving_shed", "Requests shed by admission control (503 + Retry-After)",
                       ["model", "reason"], shed)
        yield _counter("yarnit_serving_fallbacks", "Requests answered by a fallback path, and why",
                       ["model", "served_by", "reason"], stats.fallbacks)
        yield _counter("yarnit_serving_cache_hits", "Instances answered from the prediction cache",
                       ["model", "version"], stats.cache_hits)
        yield _counter("yarnit_serving_cache_misses", "Instances scored because the cache had no entry",
                       ["model", "version"], stats.cache_misses)
        yield _counter("yarnit_serving_shadow", "Shadow scoring jobs by outcome (scored, error, dropped)",
                       ["model", "version", "outcome"], stats.shadow)
        yield _counter("yarnit_serving_online_feature_defaults",
                       "Online feature values replaced by their default (missing, stale, error)",
                       ["model", "feature", "reason"], service.features.defaults_total)
        yield _counter("yarnit_serving_input_imputations",
                       "Request values replaced by the training default their model's signature declares "
                       "(reason: missing, out_of_range)",
                       ["model", "feature", "reason"], service.inputs.imputed_total)
        yield from self._models()
        admission = service.admission
        in_flight = GaugeMetricFamily("yarnit_serving_in_flight", "Admitted requests not yet answered")
        in_flight.add_metric([], admission.in_flight)
        yield in_flight
        waiting = GaugeMetricFamily("yarnit_serving_queue_waiting", "Admitted requests waiting for their turn")
        waiting.add_metric([], admission.waiting)
        yield waiting
        pool = service.admission.pool
        offloaded = CounterMetricFamily("yarnit_serving_offloaded", "Requests scored on the scoring pool (off the "
                                        "event loop): slow or uncompiled models and large batches")
        offloaded.add_metric([], pool.offloaded)
        yield offloaded
        timeouts = CounterMetricFamily("yarnit_serving_offload_timeouts", "Offloaded scorings abandoned at their "
                                       "deadline (the fallback answered)")
        timeouts.add_metric([], pool.timeouts)
        yield timeouts
        busy = GaugeMetricFamily("yarnit_serving_pool_busy", "Scoring-pool threads holding a call (a timed-out "
                                 "call holds its thread until it returns)")
        busy.add_metric([], pool.busy)
        yield busy
        if service.log is not None:
            s = service.log.stats()
            records = CounterMetricFamily("yarnit_prediction_log_records",
                                          "Prediction-log records by state; 'flushed' are durable (fsynced)",
                                          labels=["state"])
            for state, value in (("enqueued", s.enqueued), ("flushed", s.flushed_records),
                                 ("dropped", s.dropped), ("lost", s.lost)):
                records.add_metric([state], value)
            yield records
            seq = GaugeMetricFamily("yarnit_prediction_log_flushed_seq",
                                    "Highest record sequence number acknowledged as durable")
            seq.add_metric([], s.flushed_seq)
            yield seq
            depth = GaugeMetricFamily("yarnit_prediction_log_queue_depth", "Records waiting to be written")
            depth.add_metric([], s.queue_depth)
            yield depth

    def _loaded(self) -> Iterator[tuple[str, str, Any]]:
        return _loaded_models(self.service.runtime)

    def _models(self) -> Iterator[Metric]:
        service = self.service
        now = service.clock.now()
        age = GaugeMetricFamily("yarnit_serving_model_age_seconds",
                                "Seconds since the served version was registered (model staleness)",
                                labels=["model", "alias", "version"])
        version_gauge = GaugeMetricFamily("yarnit_serving_model_version", "Version served per model and alias",
                                          labels=["model", "alias"])
        info = GaugeMetricFamily("yarnit_serving_model_info", "Loaded versions and their scoring path",
                                 labels=["model", "alias", "version", "path"])
        breaker = GaugeMetricFamily("yarnit_serving_breaker_open", "1 while a version's circuit breaker is open",
                                    labels=["model", "alias", "version"])
        for model, alias, loaded in self._loaded():
            version = str(loaded.version.version)
            age.add_metric([model, alias, version], (now - loaded.version.created_at).total_seconds())
            version_gauge.add_metric([model, alias], loaded.version.version)
            info.add_metric([model, alias, version, loaded.path], 1)
            breaker.add_metric([model, alias, version], 1 if loaded.breaker.state == "open" else 0)
        yield age
        yield version_gauge
        yield info
        yield breaker
        unservable = GaugeMetricFamily("yarnit_serving_alias_unservable",
                                       "1 while the version an alias names cannot be served by this process "
                                       "(failed to load or validate; retried with backoff)",
                                       labels=["model", "alias", "version"])
        for item in service.runtime.unservable():
            unservable.add_metric([item.model, item.alias, str(item.version)], 1)
        yield unservable
        swaps: dict[tuple[str, str, str], int] = {}
        for event in list(service.runtime.swaps):
            key = (event.model, event.alias, event.outcome)
            swaps[key] = swaps.get(key, 0) + 1
        yield _counter("yarnit_serving_swaps", "Alias changes seen by the runtime (swapped, rejected, removed)",
                       ["model", "alias", "outcome"], swaps)


def _loaded_models(runtime: ModelRuntime) -> Iterator[tuple[str, str, Any]]:
    """(model, alias, loaded version) for every alias this process has a version loaded for."""
    for model, state in runtime.states().items():
        for alias in (*SERVED_ALIASES, "previous"):
            loaded = state.loaded(alias)
            if loaded is not None:
                yield model, alias, loaded


def loaded_versions(runtime: ModelRuntime) -> dict[str, set[str]]:
    """model → the versions (as label strings) an alias or the previous production version has loaded."""
    out: dict[str, set[str]] = {}
    for model, _alias, loaded in _loaded_models(runtime):
        out.setdefault(model, set()).add(str(loaded.version.version))
    return out


def _counter(name: str, documentation: str, labels: list[str], table: dict[tuple[str, ...], int]) -> Metric:
    family = CounterMetricFamily(name, documentation, labels=labels)
    for key, value in list(table.items()):
        family.add_metric(list(key), value)
    return family


__all__ = ["ServingCollector", "loaded_versions"]
