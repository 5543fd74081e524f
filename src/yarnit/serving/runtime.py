"""The serving runtime: loaded model versions per alias, validated, hot-swapped atomically.

For each model it serves, the runtime holds one immutable :class:`ModelState`:
the loaded versions behind ``production``, ``canary``, ``shadow`` and
``fallback``, plus the *previous* production version. A request reads the
state once and uses it to the end, so no request ever sees a mix of versions.

When an alias moves (seen by a watcher thread every ``refresh_s`` seconds, or
at once by :meth:`ModelRuntime.refresh`), the new version is loaded beside
the old one (artifact sha256-verified by the registry), compiled to the ONNX
fast path where possible (and checked against the native model), and
validated on golden requests. Only then is a new state swapped in with one
reference assignment. A version that fails is not swapped in: the old one
keeps serving, an alert is raised, and the failure is not retried until the
alias moves again. A rollback to a version still in memory (the previous
production version always is) is a pointer switch with no load at all.

Golden requests come from the version's signature: ``"golden": [{"instance":
{...}, "prediction": 0.12}, ...]`` (``prediction`` optional, compared within
``golden_tolerance``, default 1e-6). Every version is also probed with a row
built from its declared inputs and with an empty row: scores must be finite
and within [0, 1].

A *ranking* model (signature ``"output": "ranking"``, e.g. ``yarnit-ranker``)
answers one slate per instance instead of a probability. It is loaded without
a request-time transform or compilation, and validated on its golden requests
(``{"instance": {...}, "items": [...]}``, ranked without exploration so the
answer is deterministic) and the same probe rows: every slate must be well
formed (distinct string items, at most ``k``, finite scores, propensities in
(0, 1]) and, where the signature records them, the golden items must match.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from yarnit.core.clock import Clock
from yarnit.core.errors import NotFound, YarnitError
from yarnit.features import get_transform
from yarnit.registry import AliasEvent, ModelRegistry, ModelVersion, Predictor, rollback_candidates
from yarnit.storage import ChangeWatcher

from .compiled import CompileResult, compile_predictor
from .errors import VersionRejected
from .fallback import CircuitBreaker, HeuristicFallback
from .onlinefeatures import FeatureSpec

log = logging.getLogger("yarnit.serving.runtime")

MAX_INSTANCES = 10_000
_MAX_MISSING = 1024  # remembered unknown model names (answered 404 without a registry read)
SERVED_ALIASES = ("production", "canary", "shadow", "fallback")
_EXAMPLE_VALUES = {"string": "", "str": "", "double": 0.0, "float": 0.0, "int": 0, "integer": 0, "bool": False,
                   "boolean": False}


@dataclass(frozen=True)
class BreakerSettings:
    failures_to_open: int = 3
    cooldown_s: float = 5.0


@dataclass(frozen=True)
class LoadedModel:
    """One model version in memory, ready to score."""

    version: ModelVersion
    predictor: Predictor  # the compiled fast path when it passed its check, else the native model
    native: Predictor
    loaded_at: datetime
    transform: Callable[[dict[str, Any]], dict[str, Any]] | None
    features: tuple[FeatureSpec, ...]
    pii: frozenset[str]
    compile: CompileResult
    breaker: CircuitBreaker

    def score(self, instances: list[dict[str, Any]]) -> np.ndarray:
        """Probabilities for ``instances`` (request-time transform applied first, as in training)."""
        rows = [self.transform(i) for i in instances] if self.transform is not None else instances
        return np.asarray(self.predictor.predict_proba(rows), dtype=np.float64)

    @property
    def is_ranking(self) -> bool:
        """A ranking model answers slates (``rank``), not probabilities."""
        return self.version.signature.get("output") == "ranking"

    def rank(self, instances: list[dict[str, Any]], *, explore: bool = True) -> list[dict[str, Any]]:
        """One slate per instance (ranking models only)."""
        slates: list[dict[str, Any]] = self.predictor.rank(instances, explore=explore)  # type: ignore[attr-defined]
        return slates

    @property
    def path(self) -> str:
        return self.compile.kind


@dataclass(frozen=True)
class ModelState:
    """Everything one request of ``model`` needs, swapped as a whole."""

    model: str
    production: LoadedModel | None
    previous: LoadedModel | None = None
    canary: LoadedModel | None = None
    shadow: LoadedModel | None = None
    fallback: LoadedModel | None = None
    intended: Mapping[str, int] = field(default_factory=dict)  # alias → version the registry names
    heuristic: HeuristicFallback = field(default_factory=HeuristicFallback)

    def loaded(self, alias: str) -> LoadedModel | None:
        return getattr(self, alias) if alias in (*SERVED_ALIASES, "previous") else None


@dataclass(frozen=True)
class SwapEvent:
    """One attempted change of what an alias serves."""

    model: str
    alias: str
    from_version: int | None
    to_version: int | None
    outcome: str  # "swapped" | "rejected" | "removed"
    reason: str
    at: datetime
    load_s: float = 0.0


def rollback_target(history: Sequence[AliasEvent], current: int) -> int | None:
    """The version a rollback of an alias would go to (the registry's stack semantics)."""
    candidates = rollback_candidates(history, current)
    return candidates[0] if candidates else None


class ModelRuntime:
    """Holds a :class:`ModelState` per model; loads, validates and swaps versions."""

    def __init__(self, registry: ModelRegistry, clock: Clock, *, refresh_s: float = 0.25, compile: bool = True,
                 breaker: BreakerSettings | None = None,
                 on_alert: Callable[[str], None] | None = None,
                 wrap_predictor: Callable[[ModelVersion, Predictor], Predictor] | None = None) -> None:
        self.registry = registry
        self.wrap_predictor = wrap_predictor  # a seam for fault injection (chaos tests, the world's faults)
        self.clock = clock
        self.refresh_s = refresh_s
        self.compile = compile
        self.breaker = breaker or BreakerSettings()
        self.on_alert = on_alert
        self.swaps: deque[SwapEvent] = deque(maxlen=1000)
        self.alerts: deque[str] = deque(maxlen=1000)
        self.listeners: list[Callable[[SwapEvent], None]] = []
        self._states: dict[str, ModelState] = {}
        self._loaded: dict[tuple[str, int], LoadedModel] = {}
        self._rejected: dict[tuple[str, int], str] = {}
        self._missing: dict[str, tuple[float, YarnitError]] = {}
        self._lock = threading.RLock()
        # re-reads the aliases only when something was committed: they cannot have moved otherwise
        self._watcher = ChangeWatcher("yarnit-runtime-watch", registry.ws.metadata, refresh_s, self._reread)

    # -- the request path ---------------------------------------------------------------
    def state(self, model: str) -> ModelState:
        """The current state of ``model`` (loaded on first use; no I/O afterwards unless refresh_s is 0)."""
        state = self._states.get(model)
        if state is not None and self.refresh_s > 0:
            return state
        return self._ensure(model)

    def preload(self) -> dict[str, str]:
        """Load every model that has a production version, before the server takes traffic.

        Without it the first request of each model pays the load (a ranker bundle
        takes seconds), and when that request is scored off the event loop its
        deadline runs out and the fallback answers. Returns ``{model: outcome}``;
        a model that fails to load is reported and served by its fallback chain.
        """
        outcomes: dict[str, str] = {}
        for row in self.registry.list_models():
            name = row["name"]
            if "production" not in row["aliases"]:
                continue
            try:
                state = self.state(name)
            except YarnitError as exc:
                outcomes[name] = f"failed: {exc}"
                log.warning("preloading %s failed: %s", name, exc)
                continue
            loaded = state.production
            outcomes[name] = f"v{loaded.version.version} ({loaded.path})" if loaded is not None else "not loaded"
        return outcomes

    def current(self, model: str, alias: str = "production") -> LoadedModel:
        """The loaded version behind ``alias`` (raises NotFound-family errors when there is none)."""
        loaded = self.state(model).loaded(alias)
        if loaded is None:
            raise NotFound(
                f"Model {model!r} has no loaded version behind {alias!r}. Check its aliases with: "
                f"yarnit models show {model}"
            )
        return loaded

    def ready(self) -> dict[str, int]:
        """``{"model@alias": version}`` for everything loaded."""
        out: dict[str, int] = {}
        for name, state in self._states.items():
            for alias in (*SERVED_ALIASES, "previous"):
                loaded = state.loaded(alias)
                if loaded is not None:
                    out[f"{name}@{alias}"] = loaded.version.version
        return out

    def states(self) -> dict[str, ModelState]:
        return dict(self._states)

    def loaded_state(self, model: str) -> ModelState | None:
        """The state of ``model`` if it is loaded, else None; no copy and no I/O (for the request path)."""
        return self._states.get(model)

    # -- loading and swapping -----------------------------------------------------------
    def _ensure(self, model: str) -> ModelState:
        with self._lock:
            state = self._states.get(model)
            if state is not None and self.refresh_s > 0:
                return state
            missing = self._missing.get(model)
            if missing is not None and self.refresh_s > 0 and \
                    self.clock.monotonic() - missing[0] < max(self.refresh_s, 1.0):
                raise missing[1].with_traceback(None)  # a fresh traceback each time, not one that grows
            try:
                self.refresh(model)
            except NotFound as exc:
                if len(self._missing) >= _MAX_MISSING:  # names are client input: never let them grow memory
                    self._missing.clear()
                self._missing[model] = (self.clock.monotonic(), exc.with_traceback(None))
                raise
            self._missing.pop(model, None)
            self._watcher.start()
            return self._states[model]

    def refresh(self, model: str | None = None) -> list[SwapEvent]:
        """Re-read aliases (of one model, or of all served models) and swap what moved."""
        events: list[SwapEvent] = []
        with self._lock:
            for name in [model] if model is not None else list(self._states):
                events.extend(self._refresh_one(name))
        for event in events:
            for listener in self.listeners:
                try:
                    listener(event)
                except Exception:  # a metrics listener must not break a swap
                    log.exception("swap listener failed")
        return events

    def _refresh_one(self, model: str) -> list[SwapEvent]:
        aliases = self.registry.aliases(model)
        if not aliases and not self.registry.exists(model):
            from yarnit.registry import ModelNotFound

            raise ModelNotFound(model)
        if "production" not in aliases:
            from yarnit.registry import AliasNotFound

            if model not in self._states:
                raise AliasNotFound(model, "production")
        old = self._states.get(model)
        if old is not None and dict(old.intended) == aliases:
            return []
        events: list[SwapEvent] = []
        chosen: dict[str, LoadedModel | None] = {}
        for alias in SERVED_ALIASES:
            current = old.loaded(alias) if old is not None else None
            number = aliases.get(alias)
            if number is None:
                chosen[alias] = None
                if current is not None:
                    events.append(self._event(model, alias, current.version.version, None, "removed", "alias unset"))
                continue
            if current is not None and current.version.version == number:
                chosen[alias] = current
                continue
            loaded, event = self._load_checked(model, alias, number, current)
            chosen[alias] = loaded if loaded is not None else current
            if event is not None:
                events.append(event)
        production = chosen["production"]
        previous = old.previous if old is not None else None
        old_production = old.production if old is not None else None
        if production is not None and (old_production is None or production is not old_production):
            previous = self._previous_for(model, production.version.version, old_production)
        elif production is None and previous is None and aliases.get("production") is not None:
            # The production version cannot load: the version before it is the next best answer.
            previous = self._previous_for(model, aliases["production"], None)
        heuristic = self._heuristic(model, aliases.get("production"), old)
        state = ModelState(model, production, previous, chosen["canary"], chosen["shadow"], chosen["fallback"],
                           dict(aliases), heuristic)
        self._states[model] = state  # the swap: one reference assignment
        self._forget_unused()
        return events

    def _previous_for(self, model: str, production: int,
                      old_production: LoadedModel | None) -> LoadedModel | None:
        target = rollback_target(self.registry.history(model, "production"), production)
        if target is None:
            return None
        if old_production is not None and old_production.version.version == target:
            return old_production
        loaded, _event = self._load_checked(model, "previous", target, None, quiet=True)
        return loaded

    def _heuristic(self, model: str, production: int | None, old: ModelState | None) -> HeuristicFallback:
        if production is None:
            return old.heuristic if old is not None else HeuristicFallback()
        try:
            version = self.registry.get(model, production)
        except YarnitError:
            return old.heuristic if old is not None else HeuristicFallback()
        return HeuristicFallback.for_version(version.signature, version.metrics)

    def _load_checked(self, model: str, alias: str, number: int, current: LoadedModel | None, *,
                      quiet: bool = False) -> tuple[LoadedModel | None, SwapEvent | None]:
        key = (model, number)
        cached = self._loaded.get(key)
        from_version = current.version.version if current is not None else None
        if cached is not None:
            if quiet:
                return cached, None
            return cached, self._event(model, alias, from_version, number, "swapped", "already in memory")
        if key in self._rejected:
            return None, None
        started = self.clock.monotonic()
        try:
            version = self.registry.get(model, number)
            loaded = self.load_version(version)
        except Exception as exc:  # any failure keeps the old version serving
            reason = str(exc) if isinstance(exc, YarnitError) else f"{type(exc).__name__}: {exc}"
            self._rejected[key] = reason
            if quiet:
                log.info("could not load %s v%d as %s: %s", model, number, alias, reason)
                return None, None
            keeps = f"v{from_version} keeps serving" if from_version else "no version of it is loaded"
            message = f"{model} v{number} was not swapped in as {alias!r} ({keeps}): {reason}"
            self._alert(message)
            return None, self._event(model, alias, from_version, number, "rejected", reason)
        self._loaded[key] = loaded
        elapsed = self.clock.monotonic() - started
        return loaded, self._event(model, alias, from_version, number, "swapped", "validated", elapsed)

    def load_version(self, version: ModelVersion) -> LoadedModel:
        """Load, compile and validate ``version``; raises :class:`VersionRejected` if it fails a check."""
        native = self.registry.load(version)  # verifies the artifact's sha256
        if self.wrap_predictor is not None:
            native = self.wrap_predictor(version, native)
        if version.signature.get("output") == "ranking":
            return self._load_ranking(version, native)
        transform_name = version.signature.get("transform")
        transform = get_transform(transform_name) if transform_name else None
        features = FeatureSpec.from_signature(version.signature)
        golden = _golden(version.signature)
        probes = [g[0] for g in golden] + example_rows(version.signature, features)
        compiled = CompileResult(None, "native", "compilation disabled")
        if self.compile:
            rows = [transform(p) for p in probes] if transform is not None else probes
            compiled = compile_predictor(native, rows)
            if compiled.compiled is None:
                log.info("%s serves natively: %s", version.ref, compiled.reason)
        breaker = CircuitBreaker(self.clock, failures_to_open=self.breaker.failures_to_open,
                                 cooldown_s=self.breaker.cooldown_s)
        loaded = LoadedModel(version, compiled.compiled or native, native, self.clock.now(), transform, features,
                             frozenset(str(p) for p in version.signature.get("pii", []) or []), compiled, breaker)
        _validate(loaded, golden, probes, float(version.signature.get("golden_tolerance", 1e-6)))
        return loaded

    def _load_ranking(self, version: ModelVersion, native: Predictor) -> LoadedModel:
        """A ranking model: no transform, no compilation; its golden slates must come out right."""
        if not callable(getattr(native, "rank", None)):
            raise VersionRejected(version.ref, "its signature says output 'ranking', but its artifact cannot rank "
                                               f"({type(native).__name__} has no rank())")
        breaker = CircuitBreaker(self.clock, failures_to_open=self.breaker.failures_to_open,
                                 cooldown_s=self.breaker.cooldown_s)
        features = FeatureSpec.from_signature(version.signature)  # e.g. the shopper history it reads online
        loaded = LoadedModel(version, native, native, self.clock.now(), None, features,
                             frozenset(str(p) for p in version.signature.get("pii", []) or []),
                             CompileResult(None, "native", "ranking models are not compiled"), breaker)
        _validate_ranking(loaded)
        return loaded

    def _forget_unused(self) -> None:
        used = {id(m) for s in self._states.values() for m in
                (s.production, s.previous, s.canary, s.shadow, s.fallback) if m is not None}
        for key, loaded in list(self._loaded.items()):
            if id(loaded) not in used:
                del self._loaded[key]

    def _event(self, model: str, alias: str, from_version: int | None, to_version: int | None, outcome: str,
               reason: str, load_s: float = 0.0) -> SwapEvent:
        event = SwapEvent(model, alias, from_version, to_version, outcome, reason, self.clock.now(), load_s)
        self.swaps.append(event)
        if outcome == "swapped":
            log.info("%s: %s now serves v%s (was %s)", model, alias, to_version, from_version)
        return event

    def _alert(self, message: str) -> None:
        self.alerts.append(message)
        log.error("serving alert: %s", message)
        if self.on_alert is not None:
            try:
                self.on_alert(message)
            except Exception:
                log.exception("alert hook failed")

    # -- the watcher -------------------------------------------------------------------
    def _reread(self) -> bool:
        try:
            self.refresh()
        except Exception as exc:  # the registry being down must not stop serving what is loaded
            log.warning("alias refresh failed; serving what is loaded: %s", exc)
            return False
        return True

    def close(self) -> None:
        """Stop the watcher thread (loaded versions keep answering)."""
        self._watcher.close()


def _golden(signature: Mapping[str, Any]) -> list[tuple[dict[str, Any], float | None]]:
    out: list[tuple[dict[str, Any], float | None]] = []
    for item in signature.get("golden", []) or []:
        if isinstance(item, Mapping) and isinstance(item.get("instance"), Mapping):
            expected = item.get("prediction")
            out.append((dict(item["instance"]), float(expected) if expected is not None else None))
    return out


def example_rows(signature: Mapping[str, Any], features: Sequence[FeatureSpec]) -> list[dict[str, Any]]:
    """Probe rows for a version: one with every declared input at a neutral value, and an empty one."""
    inputs = signature.get("inputs", {}) or {}
    row = {name: _EXAMPLE_VALUES.get(str(kind), 0.0) for name, kind in inputs.items()} \
        if isinstance(inputs, Mapping) else {}
    for spec in features:
        row[spec.name] = spec.default
    return [row, {}]


def _validate(loaded: LoadedModel, golden: list[tuple[dict[str, Any], float | None]],
              probes: list[dict[str, Any]], tolerance: float) -> None:
    try:
        scores = loaded.score([dict(p) for p in probes])
    except Exception as exc:
        raise VersionRejected(loaded.version.ref, f"scoring a golden request raised {type(exc).__name__}: {exc}") \
            from exc
    if scores.shape != (len(probes),):
        raise VersionRejected(loaded.version.ref,
                              f"{len(probes)} golden requests gave {scores.shape} scores, not one each")
    if not np.all(np.isfinite(scores)) or np.any(scores < 0.0) or np.any(scores > 1.0):
        raise VersionRejected(loaded.version.ref, f"golden requests gave scores outside [0, 1]: {scores.tolist()}")
    for (instance, expected), got in zip(golden, scores[: len(golden)], strict=True):
        if expected is not None and not math.isclose(float(got), expected, rel_tol=0.0, abs_tol=tolerance):
            raise VersionRejected(
                loaded.version.ref,
                f"golden request {instance!r} scored {float(got):.9f}, expected {expected:.9f} ± {tolerance:g}",
            )


def check_slates(ref: str, instances: Sequence[Mapping[str, Any]], slates: Any) -> list[dict[str, Any]]:
    """``slates`` if it is one well-formed slate per instance, else :class:`VersionRejected` saying what is wrong."""
    if not isinstance(slates, list) or len(slates) != len(instances):
        raise VersionRejected(ref, f"{len(instances)} requests gave {len(slates) if isinstance(slates, list) else 0} "
                                   "slates, not one each")
    for instance, slate in zip(instances, slates, strict=True):
        items = slate.get("items") if isinstance(slate, Mapping) else None
        scores = slate.get("scores") if isinstance(slate, Mapping) else None
        propensities = slate.get("propensities") if isinstance(slate, Mapping) else None
        k = instance.get("k", 10)
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items) \
                or len(set(items)) != len(items) or (isinstance(k, int) and len(items) > k):
            raise VersionRejected(ref, f"slate items must be at most k distinct strings; got {items!r}"[:300])
        if not isinstance(scores, list) or len(scores) != len(items) or not all(
                isinstance(v, float | int) and math.isfinite(v) for v in scores):
            raise VersionRejected(ref, f"slate scores must be one finite number per item; got {scores!r}"[:300])
        if not isinstance(propensities, list) or len(propensities) != len(items) or not all(
                isinstance(v, float | int) and 0.0 < v <= 1.0 for v in propensities):
            raise VersionRejected(ref, f"slate propensities must be in (0, 1], one per item; got "
                                       f"{propensities!r}"[:300])
        if not isinstance(slate.get("explored"), bool):
            raise VersionRejected(ref, "each slate must say whether it was explored (a boolean)")
    return slates


def _validate_ranking(loaded: LoadedModel) -> None:
    ref = loaded.version.ref
    golden = [(dict(g["instance"]), g.get("items")) for g in loaded.version.signature.get("golden", []) or []
              if isinstance(g, Mapping) and isinstance(g.get("instance"), Mapping)]
    inputs = loaded.version.signature.get("inputs", {}) or {}
    probe = {name: _EXAMPLE_VALUES.get(str(kind), "") for name, kind in inputs.items() if name != "k"} \
        if isinstance(inputs, Mapping) else {}
    instances = [g[0] for g in golden] + [probe, {}]
    try:
        slates = loaded.rank([dict(i) for i in instances], explore=False)
    except Exception as exc:
        raise VersionRejected(ref, f"ranking a golden request raised {type(exc).__name__}: {exc}") from exc
    check_slates(ref, instances, slates)
    for (instance, expected), slate in zip(golden, slates, strict=False):
        if expected is not None and list(slate["items"]) != list(expected):
            raise VersionRejected(ref, f"golden request {instance!r} ranked {slate['items'][:5]}…, expected "
                                       f"{list(expected)[:5]}…"[:400])


__all__ = [
    "MAX_INSTANCES",
    "SERVED_ALIASES",
    "BreakerSettings",
    "LoadedModel",
    "ModelRuntime",
    "ModelState",
    "SwapEvent",
    "check_slates",
    "example_rows",
    "rollback_target",
]
