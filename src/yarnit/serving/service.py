"""InferenceService: one request from instances to an answer that names who answered.

It puts the serving parts together in the order a request meets them:
routing (sticky canary split) → online features (missing/stale policy) →
prediction cache → the model (compiled fast path) → the fallback chain
(previous version, ``fallback`` alias, heuristic) → shadow scoring in the
background → metrics and the prediction log. Admission control (the bounded
queue and the fast 503) sits in front, in the protocol layer, because it is
about the event loop that receives requests.

Every :class:`Prediction` says which model and version answered and by which
path: ``model`` (the version the request was routed to), ``previous`` (the
previous production version, or production when a canary failed) or
``fallback`` (the ``fallback`` alias or the heuristic table).
"""

from __future__ import annotations

import bisect
import itertools
import logging
import math
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from yarnit.core.clock import Clock
from yarnit.core.errors import InvalidInput
from yarnit.registry import ModelRegistry
from yarnit.storage import Workspace

from .admission import INLINE_BUDGET_MS, AdmissionController, AdmissionLimits
from .cache import PredictionCache, instance_key
from .errors import NoAnswer, VersionRejected
from .inputs import InputGuard
from .onlinefeatures import FeatureSource, OnlineFeatures
from .predlog import LogPolicy, PredictionLog
from .router import Router, ShadowScorer, TrafficPolicyStore
from .runtime import (
    BreakerSettings,
    LoadedModel,
    ModelRuntime,
    ModelState,
    check_class_probabilities,
    check_slates,
)

log = logging.getLogger("yarnit.serving")

#: retired versions of a model whose counters /metrics keeps, the newest by number (:meth:`ServingStats.prune_versions`)
RETIRED_VERSIONS_KEPT = 3
LATENCY_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
SERVED_BY = ("model", "previous", "fallback")


@dataclass(frozen=True)
class ServingOptions:
    """Keyword-only knobs of the data plane, with production defaults."""

    refresh_s: float = 0.25  # how often aliases are re-read (0: on every request; tests)
    compile: bool = True  # ONNX fast path for linear and tree models
    max_in_flight: int = 4096  # admitted requests; more are shed with 503 (many clients are not overload)
    max_queue_delay_ms: float | None = 20.0  # shed when those waiting would hold a new request longer
    turn_budget_ms: float = 0.1  # HTTP fast lane: scoring per loop turn before the rest waits for the next
    # a request expected to score within this (a compiled model's per-row cost timed at load) is scored on the
    # event loop; a longer one goes to the scoring pool, so it cannot hold the other clients' answers
    inline_budget_ms: float = INLINE_BUDGET_MS
    deadline_ms: float = 500.0  # per-request budget (a client may ask for less)
    retry_after_s: int = 1
    max_body_bytes: int = 16 << 20  # over it: 413
    read_timeout_s: float = 10.0  # a request's headers and body must arrive within this, else 408 and closed
    max_connections_per_client: int = 256  # open connections per client address (per server process)
    max_instances: int = 10_000
    cache_entries: int = 10_000  # 0 disables the prediction cache
    cache_max_batch: int = 1_000  # bigger requests bypass it (they would only evict the small ones' hot rows)
    shadow_queue: int = 1_000
    log_dir: Path | None = None  # default: $YARNIT_HOME/prediction_log
    log_queue: int = 100_000
    log_flush_interval_s: float = 0.05
    log_fsync: bool = True
    log_instances: bool = True
    log_aggregate_window_s: float = 10.0  # shed and rejected requests: one count record per reason and window
    log_retention_s: float | None = 30 * 86400.0  # segments older than this are deleted as the log rotates
    log_max_bytes: int | None = 8 << 30  # and the oldest segments too while the log is larger than this
    key_field: str | None = "user_id"  # instance field used as routing key when no key is sent
    breaker_failures: int = 3
    breaker_cooldown_s: float = 5.0
    load_timeout_s: float = 300.0  # loading and warming a model on its first request (not charged to it)
    feature_log_sample_rate: float = 0.01  # share of served online-feature rows kept for skew checks
    # A staging server (yarnit loadtest): serve exactly these (model, version) pairs as production, and nothing
    # else; traffic policies (canary share, the emergency switch) and the log's lineage are then not read or
    # written, since the server takes no real traffic.
    pinned: tuple[tuple[str, int], ...] = ()


@dataclass
class Prediction:
    """Scores plus who produced them (book ch. 8: every response carries the model version)."""

    values: list[float]
    model_name: str
    model_version: int  # 0 when the heuristic answered
    served_by: str  # "model" | "previous" | "fallback"
    alias: str  # "production" | "canary" | "previous" | "fallback" | "heuristic"
    request_id: str
    reason: str | None = None  # why a fallback answered: error, timeout, circuit_open, not_loaded, no_model, forced
    cache_hits: int = 0
    feature_defaults: dict[str, int] = field(default_factory=dict)
    answered_by: LoadedModel | None = field(default=None, repr=False)
    kind: str = "probability"  # "ranking": ``values`` holds one slate per instance (items, scores, propensities)
    routed: str = "production"  # the alias the router chose ("production" | "canary"), whoever answered
    # kind "class" (a classifier with named classes): each instance's most likely class; ``values`` holds its
    # probability, so whatever reads the scores (the log, monitoring, canary analysis) reads numbers as before
    classes: list[str] | None = None


class ModelOutputInvalid(RuntimeError):
    """A model returned scores that are not finite probabilities (a model fault, not a client one)."""


class _Histogram:
    __slots__ = ("counts", "total", "count")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS_S) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(LATENCY_BUCKETS_S, value)] += 1
        self.total += value
        self.count += 1


def retired_versions(seen: Mapping[str, set[str]], loaded: Mapping[str, set[str]], answered: set[tuple[str, str]],
                     keep_newest: int = RETIRED_VERSIONS_KEPT) -> set[tuple[str, str]]:
    """The (model, version) pairs of ``seen`` (model → versions with counters) whose counters can be forgotten.

    Kept: the versions ``loaded`` (model → versions an alias names), those that ``answered`` since the last
    prune (a traffic policy may route to a version no alias names) and each model's ``keep_newest`` newest
    (by number). Every series labelled by version goes by this rule, so a process that hot-swaps all year
    exports a bounded number of them (:meth:`ServingStats.prune_versions`, the data plane's
    ``yarnit_predictions_total``).
    """
    forget: set[tuple[str, str]] = set()
    for model, versions in seen.items():
        newest = sorted(versions, key=lambda v: (len(v), v))[-keep_newest:] if keep_newest > 0 else []
        keep = set(newest) | loaded.get(model, set()) | {v for v in versions if (model, v) in answered}
        forget |= {(model, v) for v in versions - keep}
    return forget


class ServingStats:
    """Plain counters updated on the request path; exported at scrape time by ServingCollector."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, str, str, str], int] = {}
        self.latency: dict[tuple[str, str], _Histogram] = {}
        self.shed: dict[tuple[str, str], int] = {}
        self.fallbacks: dict[tuple[str, str, str], int] = {}
        self.cache_hits: dict[tuple[str, str], int] = {}
        self.cache_misses: dict[tuple[str, str], int] = {}
        self.instances: dict[tuple[str, str, str], int] = {}
        self.shadow: dict[tuple[str, str, str], int] = {}
        #: requests :meth:`InferenceService.record` has finished (counted, and their log record queued): a
        #: client that moves a simulated clock between requests waits for it (:meth:`wait_recorded`)
        self.recorded = 0
        self._recorded_changed = threading.Condition(threading.Lock())
        self._pruned_totals: dict[tuple[str, str], int] = {}  # requests per (model, version) at the last prune
        self._prune_lock = threading.Lock()  # two scrapes at once

    def count_recorded(self) -> None:
        """One more request finished: wake whoever waits in :meth:`wait_recorded`."""
        with self._recorded_changed:
            self.recorded += 1
            self._recorded_changed.notify_all()

    def wait_recorded(self, n: int, timeout_s: float) -> int:
        """Block until ``recorded`` reaches ``n`` or ``timeout_s`` real seconds pass; return ``recorded``.

        A condition, not a polling loop: the demo's shop waits for every page it was answered, and a sleep
        loop there woke thousands of times a second, taking the GIL from the very server thread it waited for.
        """
        with self._recorded_changed:
            self._recorded_changed.wait_for(lambda: self.recorded >= n, timeout=timeout_s)
            return self.recorded

    @staticmethod
    def bump(table: dict[Any, int], key: Any, n: int = 1) -> None:
        table[key] = table.get(key, 0) + n

    def prune_versions(self, loaded: Mapping[str, set[str]], keep_newest: int = RETIRED_VERSIONS_KEPT) -> list[str]:
        """Forget the counters of retired versions; return them as ``model:vN``.

        A version is kept while it is loaded (``loaded``: model → versions an alias names), while it answered
        a request since the previous call (a traffic policy may route to a version no alias names), and while
        it is one of its model's ``keep_newest`` newest. Without this, a process that hot-swaps exported about
        23 series per version it ever served (the 30-minute soak: 57 → 1,323), for as long as it ran. A
        forgotten version that serves again restarts its counters at zero, which Prometheus reads as a reset.
        Called at scrape time, off the request path (which only bumps, and may re-create a key meanwhile).
        """
        with self._prune_lock:
            return self._prune(loaded, keep_newest)

    def _prune(self, loaded: Mapping[str, set[str]], keep_newest: int) -> list[str]:
        tables: tuple[dict[Any, Any], ...] = (self.requests, self.latency, self.instances, self.cache_hits,
                                              self.cache_misses, self.shadow)
        totals: dict[tuple[str, str], int] = {}
        for key, value in list(self.requests.items()):
            totals[key[:2]] = totals.get(key[:2], 0) + value
        seen: dict[str, set[str]] = {}
        for table in tables:
            for key in list(table):
                if key[1]:
                    seen.setdefault(key[0], set()).add(key[1])
        answered = {k for k, v in totals.items() if v != self._pruned_totals.get(k, 0)}
        forget = retired_versions(seen, loaded, answered, keep_newest)
        if forget:
            for table in tables:
                for key in [k for k in list(table) if (k[0], k[1]) in forget]:
                    table.pop(key, None)
        self._pruned_totals = {k: v for k, v in totals.items() if k not in forget}
        return sorted(f"{model}:v{version}" for model, version in forget)

    def observe_latency(self, model: str, version: str, seconds: float) -> None:
        histogram = self.latency.get((model, version))
        if histogram is None:
            histogram = self.latency[(model, version)] = _Histogram()
        histogram.observe(seconds)


def validate_instances(instances: Any, max_instances: int) -> list[dict[str, Any]]:
    """Check the v1 ``instances`` value and return clean rows (``null`` values dropped = missing).

    Values must be strings, booleans or finite numbers; anything else is the
    client's error (422), never a 500.
    """
    if not isinstance(instances, list):
        raise InvalidInput(f"'instances' must be a list of objects; got {type(instances).__name__}. "
                           'Send {"instances": [{"feature": value, ...}]}.')
    if not instances:
        raise InvalidInput('\'instances\' is empty; send at least one instance, e.g. {"instances": [{...}]}.')
    if len(instances) > max_instances:
        raise InvalidInput(f"'instances' has {len(instances)} items; at most {max_instances} per request. "
                           "Split the batch.")
    rows: list[dict[str, Any]] = []
    for index, instance in enumerate(instances):
        if not isinstance(instance, dict):
            raise InvalidInput(f"instances[{index}] must be an object of feature values; got "
                               f"{type(instance).__name__}.")
        row: dict[str, Any] = {}
        for key, value in instance.items():
            if value is None:
                continue
            kind = type(value)
            if kind is float:
                if not math.isfinite(value):
                    raise InvalidInput(f"instances[{index}].{key} is {value}; values must be finite numbers.")
            elif kind is int:
                if not -(2**63) <= value < 2**63:
                    raise InvalidInput(f"instances[{index}].{key} is an integer too large to score "
                                       f"({str(value)[:30]}…); send it as a float or a string.")
            elif kind is list and key == "candidates":
                value = _candidates(value, index)
            elif kind is not str and kind is not bool:
                raise InvalidInput(f"instances[{index}].{key} is a {kind.__name__}; feature values must be "
                                   "strings, numbers, booleans or null.")
            row[key] = value
        rows.append(row)
    return rows


MAX_CANDIDATES = 1000


def _without_candidates(instances: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Instances for a probability model: ``candidates`` (for ranking models) is ignored like any unused field."""
    if not any("candidates" in i for i in instances):
        return instances
    return [{k: v for k, v in i.items() if k != "candidates"} for i in instances]


def _candidates(values: list[Any], index: int) -> list[Any]:
    """A ranking request's ``candidates``: product ids, or flat objects of product values (with product_id)."""
    if len(values) > MAX_CANDIDATES:
        raise InvalidInput(f"instances[{index}].candidates has {len(values)} items; at most {MAX_CANDIDATES}.")
    out: list[Any] = []
    for j, candidate in enumerate(values):
        if type(candidate) is dict:
            if not isinstance(candidate.get("product_id"), str):
                raise InvalidInput(f"instances[{index}].candidates[{j}] needs a string product_id.")
            out.append(validate_instances([candidate], 1)[0])
        elif type(candidate) is str:
            out.append(candidate)
        else:
            raise InvalidInput(f"instances[{index}].candidates[{j}] is a {type(candidate).__name__}; send product "
                               "ids or objects such as {\"product_id\": \"p000042\", \"in_stock\": true}.")
    return out


def _lineage_recorder(workspace: Workspace) -> Any:
    from yarnit.data import Lineage  # local: the data domain imports the registry, as serving does

    return Lineage(workspace).prediction_log_recorder()


class InferenceService:
    """Scores requests for any registered model; see the module docstring for the path a request takes."""

    def __init__(self, runtime: ModelRuntime, clock: Clock, *, options: ServingOptions | None = None,
                 prediction_log: PredictionLog | None = None, router: Router | None = None,
                 feature_source: FeatureSource | None = None) -> None:
        self.runtime = runtime
        self.clock = clock
        self.options = options or ServingOptions()
        self.log = prediction_log
        self.router = router or Router()
        self.features = OnlineFeatures(feature_source, clock)
        self.cache = PredictionCache(self.options.cache_entries)
        self.shadow = ShadowScorer(max_queue=self.options.shadow_queue)
        self.admission = AdmissionController(clock, AdmissionLimits(
            max_in_flight=self.options.max_in_flight, max_queue_delay_ms=self.options.max_queue_delay_ms,
            deadline_s=self.options.deadline_ms / 1000.0,
            retry_after_s=self.options.retry_after_s, inline_budget_ms=self.options.inline_budget_ms))
        self.stats = ServingStats()
        self.inputs = InputGuard()
        self._chains: dict[str, tuple[ModelState, list[tuple[LoadedModel, str, str]],
                                      list[tuple[LoadedModel, str, str]]]] = {}
        self._ids = itertools.count(1)
        self._id_prefix = f"req_{os.getpid():x}{os.urandom(3).hex()}_"
        self.closed = False

    @classmethod
    def for_workspace(cls, workspace: Workspace, options: ServingOptions | None = None, *,
                      feature_source: FeatureSource | None = None) -> InferenceService:
        """A service over ``workspace``: its registry, clock, HMAC key and prediction-log directory."""
        opts = options or ServingOptions()
        staging = bool(opts.pinned)
        runtime = ModelRuntime(ModelRegistry(workspace), workspace.clock, refresh_s=opts.refresh_s,
                               compile=opts.compile,
                               breaker=BreakerSettings(opts.breaker_failures, opts.breaker_cooldown_s),
                               pins=dict(opts.pinned) if staging else None)
        key = workspace.settings.hmac_key
        policy = LogPolicy(hmac_key=key.encode("utf-8") if key else None, log_instances=opts.log_instances)
        prediction_log = PredictionLog(opts.log_dir or workspace.home / "prediction_log", workspace.clock,
                                       policy=policy, max_queue=opts.log_queue,
                                       flush_interval_s=opts.log_flush_interval_s, fsync=opts.log_fsync,
                                       on_segment=None if staging else _lineage_recorder(workspace),
                                       aggregate_window_s=opts.log_aggregate_window_s,
                                       retention_s=opts.log_retention_s, max_total_bytes=opts.log_max_bytes)
        # The traffic policy lives in the database, so every worker process (and a restart) agrees on it.
        router = Router() if staging else Router(TrafficPolicyStore(workspace), refresh_s=opts.refresh_s)
        return cls(runtime, workspace.clock, options=opts, prediction_log=prediction_log, router=router,
                   feature_source=feature_source)

    def load_pending(self, model: str) -> Callable[[], ModelState] | None:
        """What to run before scoring ``model`` off the event loop if a load may be due, else None.

        A model not loaded yet (or, with ``refresh_s`` 0, whose aliases may have
        moved) loads and warms first, so the load is not charged to the first
        request's deadline (that request then got the fallback on a slow machine).
        """
        if self.runtime.loaded_state(model) is not None and self.runtime.refresh_s > 0:
            return None
        return lambda: self.runtime.state(model)

    # -- ids and keys -----------------------------------------------------------------
    def new_request_id(self) -> str:
        return f"{self._id_prefix}{next(self._ids):x}"

    def routing_key(self, key: str | None, instances: Sequence[Mapping[str, Any]]) -> str | None:
        if key is not None:
            return key
        field_name = self.options.key_field
        if field_name and instances:
            value = instances[0].get(field_name)
            if value is not None:
                return str(value)
        return None

    # -- scoring ---------------------------------------------------------------------
    def predict(self, model: str, instances: list[dict[str, Any]], *, key: str | None = None,
                request_id: str | None = None, deadline_at_s: float | None = None) -> Prediction:
        """Score validated ``instances`` with the version routed to, falling back down the chain.

        Raises NotFound for an unknown model and InvalidInput for instances the
        model rejects as the client's error; every other failure is answered by
        the next link of the chain, down to the heuristic the version declares.
        When that has no answer to give (no prior declared, or a constant for a
        request whose deadline ran out) it raises :class:`NoAnswer` (503).
        """
        request_id = request_id or self.new_request_id()
        before = self.clock.monotonic()
        state = self.runtime.state(model)
        if deadline_at_s is not None:
            deadline_at_s += self.clock.monotonic() - before  # a cold load is not charged to the request
        routing_key = self.routing_key(key, instances)
        chosen = "production"  # the alias the router chose (the forced fall-back counts on production's side)
        try:
            reason: str | None = None
            forced = self.router.forced_fallback(model)
            if forced and (state.fallback is not None or state.heuristic.available):
                # The emergency fall-back switch (yarnit.continuous.actions.fall_back): the declared fallback
                # answers, labelled as one (served_by "fallback", reason "forced"), so availability SLOs count it.
                routed, reason = None, "forced"
                chain = [(state.fallback, "fallback", "fallback")] if state.fallback is not None else []
            else:
                # (Also when the switch is on but this process has not loaded the ``fallback`` alias's version yet
                # and no heuristic is declared: the versions it routes to answer, named, for the moment it takes
                # to load, rather than a 503 caused by the switch itself.)
                alias = self.router.choose(model, routing_key, has_canary=state.canary is not None)
                chosen = alias
                routed = state.canary if alias == "canary" else state.production
                if routed is None or state.behind(alias):
                    reason = "not_loaded"  # the routed version failed to load or validate (an older one may stand in)
                chain = self._chain_of(state, alias)
            checked_by = routed or (chain[0][0] if chain else None)
            if checked_by is not None:  # the routed version's input contract (serving/inputs.py; rejects are 422)
                instances = self.inputs.conform(model, checked_by.version.id, checked_by.version.signature, instances)
            for loaded, served_by, label in chain:
                if not loaded.breaker.allows():
                    reason = reason or "circuit_open"
                    continue
                if deadline_at_s is not None and self.clock.monotonic() >= deadline_at_s:
                    reason = reason or "timeout"
                    break
                classes: list[str] | None = None
                try:
                    if loaded.is_ranking:  # slates: no probability check, no prediction cache
                        values, hits, defaults = self._ranked(model, loaded, instances)
                    elif loaded.is_classifier:
                        values, classes, hits, defaults = self._classified(model, loaded, instances)
                    else:
                        values, hits, defaults = self._score(model, loaded, instances)
                except InvalidInput:
                    raise  # the client's instances are wrong for this model: a 4xx, not a model fault
                except Exception as exc:
                    loaded.breaker.record_failure()
                    reason = reason or "error"
                    log.warning("%s failed for request %s: %s: %s", loaded.version.ref, request_id,
                                type(exc).__name__, exc)
                    continue
                if deadline_at_s is not None and self.clock.monotonic() > deadline_at_s:
                    # Late: the client asked for an answer by the deadline, and there is no
                    # budget left for another model, so the heuristic answers this one and the
                    # breaker steers the next requests away from the slow version.
                    loaded.breaker.record_failure()
                    reason = "timeout"
                    break
                loaded.breaker.record_success()
                prediction = Prediction(values, model, loaded.version.version, served_by, label, request_id,
                                        reason if served_by != "model" else None, hits, defaults, loaded,
                                        "ranking" if loaded.is_ranking else "class" if classes is not None
                                        else "probability", chosen, classes)
                self._shadow(state, prediction, instances, routing_key)
                return prediction
            prediction = self._heuristic(state, instances, request_id, reason or "no_model")
            prediction.routed = chosen
            self._shadow(state, prediction, instances, routing_key)
            return prediction
        except Exception as exc:
            # A failure with no answer is logged under the alias the request was routed to (``routed`` in
            # the prediction log), so a canary that fails with a 5xx is judged against the canary.
            exc.routed = chosen  # type: ignore[attr-defined]
            raise

    @staticmethod
    def _heuristic(state: ModelState, instances: list[dict[str, Any]], request_id: str, reason: str) -> Prediction:
        """The declared heuristic's answer, or :class:`NoAnswer` (503) when it has none to give.

        A late request gets the heuristic only when its answer depends on the
        instance (a per-slice table, popular items): a constant for every row of
        a batch that could not be scored in time is no answer (see
        :attr:`HeuristicFallback.per_instance`).
        """
        heuristic, model = state.heuristic, state.model
        if heuristic.ranking:  # a ranking model's universal fallback: popular items
            return Prediction(heuristic.rank(instances), model, 0, "fallback", "heuristic", request_id, reason,
                              kind="ranking")
        if reason == "timeout" and not heuristic.per_instance:
            raise NoAnswer(model, reason, "its fallback is one constant, which is no answer for a request its "
                                          "model could not score in time" if heuristic.available else
                           "its version declares no fallback prior")
        if not heuristic.answers(instances):
            raise NoAnswer(model, reason, "its version declares no fallback prior (no 'fallback' in its signature, "
                                          "no base rate in its metrics)" if not heuristic.available else
                           f"its fallback table has no prior for some values of {heuristic.key!r} and no default")
        return Prediction(heuristic.predict(instances), model, 0, "fallback", "heuristic", request_id, reason)

    def _chain_of(self, state: ModelState, alias: str) -> list[tuple[LoadedModel, str, str]]:
        """:meth:`_chain`, built once per state (a state is swapped as a whole, never changed in place).

        One entry per model, replaced when its state is, so no swapped-out model stays referenced for long.
        """
        cached = self._chains.get(state.model)
        if cached is None or cached[0] is not state:
            cached = self._chains[state.model] = (state, self._chain(state, "production"),
                                                   self._chain(state, "canary"))
        return cached[2] if alias == "canary" else cached[1]

    @staticmethod
    def _chain(state: ModelState, alias: str) -> list[tuple[LoadedModel, str, str]]:
        chain: list[tuple[LoadedModel | None, str, str]] = []
        # A version standing in for one its alias names but that could not load answers as "previous".
        if alias == "canary":
            chain.append((state.canary, "previous" if state.behind("canary") else "model", "canary"))
            chain.append((state.production, "previous", "production"))
        else:
            chain.append((state.production, "previous" if state.behind("production") else "model", "production"))
        chain.append((state.previous, "previous", "previous"))
        chain.append((state.fallback, "fallback", "fallback"))
        seen: set[int] = set()
        out: list[tuple[LoadedModel, str, str]] = []
        for loaded, served_by, label in chain:
            if loaded is not None and id(loaded) not in seen:
                seen.add(id(loaded))
                out.append((loaded, served_by, label))
        return out

    def _enriched(self, model: str, loaded: LoadedModel,
                  instances: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, int]]:
        """``instances`` with the online features ``loaded`` declares, and how many defaults each feature took."""
        defaults: dict[str, int] = {}
        if not loaded.features:
            return instances, defaults
        rows, report = self.features.enrich(model, loaded.features, instances)
        for (feature, _reason), n in report.defaults.items():
            defaults[feature] = defaults.get(feature, 0) + n
        return rows, defaults

    def _ranked(self, model: str, loaded: LoadedModel,
                instances: list[dict[str, Any]]) -> tuple[list[Any], int, dict[str, int]]:
        """Slates for ``instances``, after the online features the ranker declares (e.g. shopper history)."""
        rows, defaults = self._enriched(model, loaded, instances)
        try:
            return check_slates(loaded.version.ref, instances, loaded.rank(rows)), 0, defaults
        except VersionRejected as exc:  # a malformed answer is a model fault: the chain answers instead
            raise ModelOutputInvalid(exc.reason) from None

    def _classified(self, model: str, loaded: LoadedModel, instances: list[dict[str, Any]]
                    ) -> tuple[list[float], list[str], int, dict[str, int]]:
        """Each instance's most likely class and its probability, behind the prediction cache.

        A cache entry is (class index, probability), keyed like a score by the version and the row: a class
        model and a probability model never share a version id, so the two kinds of entry never meet.
        """
        rows, defaults = self._enriched(model, loaded, _without_candidates(instances))
        use_cache = self.cache.enabled and len(rows) <= self.options.cache_max_batch
        keys = [instance_key(loaded.version.id, r) for r in rows] if use_cache else [None] * len(rows)
        out: list[Any] = [self.cache.get(k) if k is not None else None for k in keys]
        missing = [i for i, v in enumerate(out) if v is None]
        if missing:
            proba = loaded.classify([rows[i] for i in missing])
            try:
                check_class_probabilities(loaded.version.ref, len(missing), len(loaded.classes), proba)
            except VersionRejected as exc:  # a model fault: the chain answers instead
                raise ModelOutputInvalid(exc.reason) from None
            best = proba.argmax(axis=1)
            for i, index, row in zip(missing, best.tolist(), proba, strict=True):
                out[i] = entry = (index, float(row[index]))
                if keys[i] is not None:
                    self.cache.put(keys[i], entry)
        hits = self._count_cache(model, loaded, len(rows) - len(missing), len(missing)) if use_cache else 0
        names = loaded.classes
        return [p for _i, p in out], [names[i] for i, _p in out], hits, defaults

    def _score(self, model: str, loaded: LoadedModel,
               instances: list[dict[str, Any]]) -> tuple[list[float], int, dict[str, int]]:
        rows, defaults = self._enriched(model, loaded, _without_candidates(instances))
        if not self.cache.enabled or len(rows) > self.options.cache_max_batch:
            values = self._checked(loaded, loaded.score(rows))
            return values, 0, defaults
        version_id = loaded.version.id
        keys = [instance_key(version_id, r) for r in rows]
        out: list[float | None] = [self.cache.get(k) if k is not None else None for k in keys]
        missing = [i for i, v in enumerate(out) if v is None]
        hits = len(rows) - len(missing)
        if missing:
            scored = self._checked(loaded, loaded.score([rows[i] for i in missing]))
            for i, value in zip(missing, scored, strict=True):
                out[i] = value
                k = keys[i]
                if k is not None:
                    self.cache.put(k, value)
        self._count_cache(model, loaded, hits, len(missing))
        return out, hits, defaults  # type: ignore[return-value]

    def _count_cache(self, model: str, loaded: LoadedModel, hits: int, misses: int) -> int:
        """Count a request's cache hits and misses (``yarnit_serving_cache_*_total``); returns ``hits``."""
        label = (model, str(loaded.version.version))
        if hits:
            ServingStats.bump(self.stats.cache_hits, label, hits)
        if misses:
            ServingStats.bump(self.stats.cache_misses, label, misses)
        return hits

    @staticmethod
    def _checked(loaded: LoadedModel, scores: np.ndarray) -> list[float]:
        if scores.ndim != 1:
            raise ModelOutputInvalid(f"{loaded.version.ref} returned scores of shape {scores.shape}")
        values: list[float] = scores.tolist()
        # NaN fails both comparisons. For a few values a Python loop beats numpy's per-call overhead.
        ok = all(0.0 <= v <= 1.0 for v in values) if len(values) <= 64 else \
            bool(np.all((scores >= 0.0) & (scores <= 1.0)))
        if not ok:
            raise ModelOutputInvalid(f"{loaded.version.ref} returned scores that are not probabilities")
        return values

    def _shadow(self, state: ModelState, prediction: Prediction, instances: list[dict[str, Any]],
                routing_key: str | None) -> None:
        shadow = state.shadow
        if shadow is None or shadow is prediction.answered_by or not self.router.policy(state.model).shadow:
            return
        model = state.model

        def job() -> None:
            started = self.clock.monotonic()
            status, values, error = 200, None, None
            try:
                values, _hits, _defaults = self._score_uncached(model, shadow, instances)
                outcome = "scored"
            except Exception as exc:
                status, error, outcome = 500, f"{type(exc).__name__}: {exc}", "error"
            ServingStats.bump(self.stats.shadow, (model, str(shadow.version.version), outcome))
            if self.log is not None:
                self.log.append({
                    "request_id": prediction.request_id, "time": self.clock.now(), "role": "shadow",
                    "model": model, "version": shadow.version.version, "alias": "shadow", "served_by": "shadow",
                    "status": status, "latency_ms": (self.clock.monotonic() - started) * 1000.0,
                    "instances": instances, "pii": sorted(shadow.pii), "predictions": values, "error": error,
                    "key": routing_key, "primary_version": prediction.model_version,
                })

        if not self.shadow.submit(job):
            ServingStats.bump(self.stats.shadow, (model, str(shadow.version.version), "dropped"))

    def _score_uncached(self, model: str, loaded: LoadedModel,
                        instances: list[dict[str, Any]]) -> tuple[list[float], int, dict[str, int]]:
        if loaded.is_ranking:
            return self._ranked(model, loaded, instances)
        rows = _without_candidates(instances)
        if loaded.features:
            rows, _report = self.features.enrich(model, loaded.features, rows)
        if loaded.is_classifier:  # shadow: the most likely class's probability, uncached (the class is not logged)
            proba = check_class_probabilities(loaded.version.ref, len(rows), len(loaded.classes), loaded.classify(rows))
            return proba.max(axis=1).tolist(), 0, {}
        return self._checked(loaded, loaded.score(rows)), 0, {}

    # -- accounting -------------------------------------------------------------------
    def record(self, *, request_id: str, protocol: str, model: str, status: int, latency_s: float,
               prediction: Prediction | None = None, instances: list[dict[str, Any]] | None = None,
               error: str | None = None, key: str | None = None, routed: str | None = None) -> None:
        """Count the request and write it to the prediction log (every outcome, not only 200s).

        ``routed`` is the alias the router chose for a request that failed without an answer (the
        ``routed`` attribute :meth:`predict` puts on its exception); an answer carries its own.
        """
        try:
            self._record(request_id=request_id, protocol=protocol, model=model, status=status, latency_s=latency_s,
                         prediction=prediction, instances=instances, error=error, key=key, routed=routed)
        finally:
            self.stats.count_recorded()  # last: the request's time and latency are taken, its record is queued

    def _record(self, *, request_id: str, protocol: str, model: str, status: int, latency_s: float,
                prediction: Prediction | None, instances: list[dict[str, Any]] | None, error: str | None,
                key: str | None, routed: str | None) -> None:
        stats = self.stats
        if prediction is not None:
            version = str(prediction.model_version)
            served_by, alias = prediction.served_by, prediction.alias
            ServingStats.bump(stats.instances, (model, version, served_by), len(prediction.values))
            if served_by != "model":
                ServingStats.bump(stats.fallbacks, (model, served_by, prediction.reason or "unknown"))
        else:
            version, served_by, alias = "", "none", ""
        ServingStats.bump(stats.requests, (model, version, alias, served_by, str(status)))
        stats.observe_latency(model, version, latency_s)
        if status == 503 and prediction is None:
            ServingStats.bump(stats.shed, (model, error or "overloaded"))
        if self.log is None:
            return
        record: dict[str, Any] = {
            "request_id": request_id, "time": self.clock.now(), "role": "primary", "protocol": protocol,
            "model": model, "status": status, "latency_ms": latency_s * 1000.0, "key": key,
        }
        if prediction is not None:
            answered = prediction.answered_by
            record.update(version=prediction.model_version, alias=prediction.alias, served_by=served_by,
                          routed=prediction.routed, reason=prediction.reason, predictions=prediction.values,
                          feature_defaults=prediction.feature_defaults or None,
                          pii=sorted(answered.pii) if answered is not None else ())
            if prediction.classes is not None:
                record["classes"] = prediction.classes
        elif routed is not None:
            record["routed"] = routed
        if instances is not None:
            record["instances"] = instances
            if prediction is None or prediction.answered_by is None:
                # refused or failed before a version answered: still log without what any version declares
                # personal (its ``signature["pii"]``), not only the policy's default fields
                record["pii"] = sorted(self.runtime.declared_pii(model))
        if error is not None:
            record["error"] = error
        self.log.append(record)

    def close(self) -> None:
        """Stop background work and flush the prediction log (call on shutdown)."""
        if self.closed:
            return
        self.closed = True
        self.admission.closed = True
        self.runtime.close()
        self.router.close()
        self.shadow.close()
        self.admission.pool.close()
        if self.log is not None:
            self.log.close()
        close_source = getattr(self.features.source, "close", None)
        if close_source is not None:  # e.g. the feature store source writes its sampled skew log
            close_source()


__all__ = [
    "LATENCY_BUCKETS_S",
    "SERVED_BY",
    "InferenceService",
    "ModelOutputInvalid",
    "Prediction",
    "ServingOptions",
    "ServingStats",
    "validate_instances",
]
