"""The serving runtime: loaded model versions per alias, validated, hot-swapped atomically.

For each model it serves, the runtime holds one immutable :class:`ModelState`:
the loaded versions behind ``production``, ``canary``, ``shadow`` and
``fallback``, plus the *previous* production version. A request reads the
state once and uses it to the end, so no request ever sees a mix of versions.

When an alias moves (seen by a watcher thread every ``refresh_s`` seconds, or
at once by :meth:`ModelRuntime.refresh`), the new version is loaded beside
the old one (artifact sha256-verified by the registry), compiled to the ONNX
fast path where possible (and checked against the native model), and
validated on golden requests, then *warmed*: a first inference on its probe
rows (the signature's ``probe`` instances, real requests kept from the
holdout), so that no request pays for first-touch costs (lazy imports, ONNX
session set-up, page faults). Only then is a new state swapped in with one
reference assignment; every path goes through this (:meth:`ModelRuntime.preload`
before a server takes traffic, the watcher's hot swap, a canary), and
:attr:`LoadedModel.warm_up` records the warm-up.

A version that fails is not swapped in: the old one keeps serving and an
alert is raised. It is tried again at once when the model's aliases move, and
otherwise after a backoff (``retry``: 1 s, doubling up to 5 min, on the
injected clock), since the cause may be fixed meanwhile (an artifact
restored). While an alias's version cannot be served, :meth:`ModelRuntime.unservable`
names it (a metric, ``yarnit_serving_alias_unservable``) and
:meth:`ModelRuntime.readiness` says not ready when it is production's. A
rollback to a version still in memory (the previous production version always
is) is a pointer switch with no load at all.

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

A *classifier* with named classes (signature ``"output": "class"`` and
``"classes": [...]``, e.g. ``yarnit-intent``) answers each instance's most
likely class and its probability. Its predictor gives one row of class
probabilities per instance (``class_probabilities``), in the order of the
signature's classes. It is loaded without a transform or compilation, and
validated on its golden requests (``{"instance": {...}, "class": "how_to"}``)
and the probe rows: each row must be finite, within [0, 1] and sum to 1, and
an artifact that names its classes must name the signature's, in order.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
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
class RetrySettings:
    """Backoff of a version that failed to load: ``first_s``, doubling up to ``max_s`` (injected clock)."""

    first_s: float = 1.0
    max_s: float = 300.0

    def delay_s(self, attempts: int) -> float:
        return float(min(self.max_s, self.first_s * 2.0 ** max(0, attempts - 1)))


@dataclass(frozen=True)
class WarmUp:
    """The first inference a version ran, on its probe rows, before it took traffic."""

    rows: int
    seconds: float


@dataclass
class Unservable:
    """An alias whose version failed to load or validate: why, how often, and when it is tried again."""

    model: str
    alias: str
    version: int
    reason: str
    attempts: int
    retry_at_s: float  # on the runtime clock's monotonic time


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
    warm_up: WarmUp | None = None  # set before the version takes traffic

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
    def is_classifier(self) -> bool:
        """A classifier with named classes answers a class and its probability (``classify``)."""
        return self.version.signature.get("output") == "class"

    @property
    def classes(self) -> tuple[str, ...]:
        """The class names a classifier answers with, as its signature records them (empty otherwise)."""
        classes = self.version.signature.get("classes")
        return tuple(str(c) for c in classes) if isinstance(classes, list) else ()

    def classify(self, instances: list[dict[str, Any]]) -> np.ndarray:
        """Class probabilities, one row per instance in the order of :attr:`classes` (classifiers only)."""
        rows = [self.transform(i) for i in instances] if self.transform is not None else instances
        proba = self.predictor.class_probabilities(rows)  # type: ignore[attr-defined]
        return np.asarray(proba, dtype=np.float64)

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
    # aliases served by another version than the registry names (the named one failed to load)
    stand_ins: frozenset[str] = field(init=False, default=frozenset())

    def __post_init__(self) -> None:
        stand_ins = frozenset(alias for alias in SERVED_ALIASES if (loaded := self.loaded(alias)) is not None
                              and self.intended.get(alias, loaded.version.version) != loaded.version.version)
        object.__setattr__(self, "stand_ins", stand_ins)  # computed once per state, read per request

    def loaded(self, alias: str) -> LoadedModel | None:
        return getattr(self, alias) if alias in (*SERVED_ALIASES, "previous") else None

    def behind(self, alias: str) -> bool:
        """Whether ``alias`` is served by an older version than the registry names (the named one failed to load)."""
        return alias in self.stand_ins


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
                 wrap_predictor: Callable[[ModelVersion, Predictor], Predictor] | None = None,
                 retry: RetrySettings | None = None, pins: Mapping[str, int] | None = None) -> None:
        self.registry = registry
        # A staging server (yarnit loadtest) serves exactly these versions as production, whatever the aliases
        # say, and no other model: no canary, shadow, fallback alias or previous version to fall back to.
        self.pins = dict(pins) if pins is not None else None
        self.wrap_predictor = wrap_predictor  # a seam for fault injection (chaos tests, the world's faults)
        self.clock = clock
        self.refresh_s = refresh_s
        self.compile = compile
        self.breaker = breaker or BreakerSettings()
        self.retry = retry or RetrySettings()
        self.on_alert = on_alert
        self.swaps: deque[SwapEvent] = deque(maxlen=1000)
        self.alerts: deque[str] = deque(maxlen=1000)
        self.listeners: list[Callable[[SwapEvent], None]] = []
        self._states: dict[str, ModelState] = {}
        self._loaded: dict[tuple[str, int], LoadedModel] = {}
        self._rejected: dict[tuple[str, int], Unservable] = {}
        self._missing: dict[str, tuple[float, YarnitError]] = {}
        self._lock = threading.RLock()
        # re-reads the aliases only when something was committed: they cannot have moved otherwise
        self._watcher = ChangeWatcher("yarnit-runtime-watch", registry.ws.metadata, refresh_s, self._reread)
        self._watching = False

    # -- the request path ---------------------------------------------------------------
    def state(self, model: str) -> ModelState:
        """The current state of ``model`` (loaded on first use; no I/O afterwards unless refresh_s is 0)."""
        state = self._states.get(model)
        if state is not None and self.refresh_s > 0:
            if not self._watching:  # preloaded, then asked for by a request: keep its aliases fresh from now on
                self.watch()
            return state
        return self._ensure(model)

    def watch(self) -> None:
        """Start the watcher thread that re-reads aliases every ``refresh_s`` (idempotent; servers call it)."""
        self._watching = True
        self._watcher.start()

    def preload(self) -> dict[str, str]:
        """Load and warm every model that has a production version, before the server takes traffic.

        Without it the first request of each model pays the load (a ranker bundle
        takes seconds; on a fresh machine the first import of the scoring
        libraries alone took over 5 s), and when that request is scored off the
        event loop its deadline runs out and the fallback answers. Returns
        ``{model: outcome}``; a model that fails to load is reported, served by
        its fallback chain, and not ready (:meth:`readiness`). It starts no
        thread: :meth:`watch` (or the first request) does.
        """
        outcomes: dict[str, str] = {}
        names = list(self.pins) if self.pins is not None else \
            [row["name"] for row in self.registry.list_models() if "production" in row["aliases"]]
        for name in names:
            try:
                state = self._states.get(name) or self._ensure(name, watch=False)
            except Exception as exc:  # reported, and readiness says so; the server still starts
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

    def unservable(self) -> list[Unservable]:
        """Aliases whose version the registry names but this process cannot serve (until a retry succeeds)."""
        out = []
        for name, state in list(self._states.items()):
            for alias in SERVED_ALIASES:
                number = state.intended.get(alias)
                loaded = state.loaded(alias)
                if number is None or (loaded is not None and loaded.version.version == number):
                    continue
                found = self._rejected.get((name, number))
                out.append(found if found is not None else
                           Unservable(name, alias, number, "not loaded", 0, self.clock.monotonic()))
        return out

    def serves_production(self, model: str) -> tuple[bool, str]:
        """Whether ``model``'s production alias is served by its own version, loaded and warmed; else why not
        (in words safe to send to clients)."""
        state = self._states.get(model)
        if state is None:
            return False, f"{model} is not loaded"
        number = state.intended.get("production")
        loaded = state.production
        if number is None:
            return False, f"{model} has no production version"
        if loaded is None or loaded.version.version != number:
            found = self._rejected.get((model, number))
            serving = f"v{loaded.version.version} serves instead" if loaded is not None else "nothing serves it"
            # Said to clients: the reason itself (which may name server paths) stays in the alerts and the log.
            why = f": it failed to load or validate {found.attempts} time(s); the server's alerts say why" \
                if found is not None else ""
            return False, f"{model} production v{number} cannot be served ({serving}){why}"
        if loaded.warm_up is None:
            return False, f"{model} v{number} is not warmed up yet"
        return True, f"v{number}"

    def readiness(self) -> dict[str, str]:
        """``{model: why not}`` for every loaded model whose production is not served by its own version."""
        problems = {}
        for name, state in list(self._states.items()):
            if "production" not in state.intended:  # not served any more: nothing to be ready for
                continue
            ok, why = self.serves_production(name)
            if not ok:
                problems[name] = why
        return problems

    def declared_pii(self, model: str) -> frozenset[str]:
        """The personal fields the loaded versions of ``model`` declare (of every loaded model when none of
        ``model`` is loaded): what a request that no version answered is logged without."""
        loaded = list(self._loaded.items())  # one C-level copy: safe against a concurrent load
        own = [m.pii for (name, _), m in loaded if name == model]
        return frozenset().union(*(own or [m.pii for _, m in loaded]))

    def loaded_state(self, model: str) -> ModelState | None:
        """The state of ``model`` if it is loaded, else None; no copy and no I/O (for the request path)."""
        return self._states.get(model)

    # -- loading and swapping -----------------------------------------------------------
    def _ensure(self, model: str, *, watch: bool = True) -> ModelState:
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
            if watch:
                self.watch()
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
        if self.pins is not None:
            if model not in self.pins:
                raise NotFound(f"This staging server serves only {', '.join(sorted(self.pins))}; "
                               f"not {model!r}.")
            aliases = {"production": self.pins[model]}
        else:
            aliases = self.registry.aliases(model)
        if not aliases and not self.registry.exists(model):
            from yarnit.registry import ModelNotFound

            raise ModelNotFound(model)
        if "production" not in aliases:
            from yarnit.registry import AliasNotFound

            if model not in self._states:
                raise AliasNotFound(model, "production")
        old = self._states.get(model)
        if old is None or dict(old.intended) != aliases:
            self._forget_rejections(model)  # the aliases moved: what failed before gets a fresh try now
        elif not self._retry_due(model):
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
        if self.pins is not None:  # pinned: a failure of the version is to be seen, not hidden by another one
            previous = None
        elif production is not None and (old_production is None or production is not old_production):
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

    def _forget_rejections(self, model: str) -> None:
        for key in [k for k in self._rejected if k[0] == model]:
            del self._rejected[key]

    def _retry_due(self, model: str) -> bool:
        now = self.clock.monotonic()
        return any(r.model == model and r.alias in SERVED_ALIASES and now >= r.retry_at_s
                   for r in self._rejected.values())

    def retry_pending(self) -> bool:
        """Whether some served alias waits for a retry (the watcher then re-reads even if nothing committed)."""
        return any(r.alias in SERVED_ALIASES for r in self._rejected.values())

    def _load_checked(self, model: str, alias: str, number: int, current: LoadedModel | None, *,
                      quiet: bool = False) -> tuple[LoadedModel | None, SwapEvent | None]:
        key = (model, number)
        cached = self._loaded.get(key)
        from_version = current.version.version if current is not None else None
        if cached is not None:
            if quiet:
                return cached, None
            return cached, self._event(model, alias, from_version, number, "swapped", "already in memory")
        rejected = self._rejected.get(key)
        if rejected is not None and self.clock.monotonic() < rejected.retry_at_s:
            return None, None  # backing off
        started = self.clock.monotonic()
        try:
            version = self.registry.get(model, number)
            loaded = self.warm(self.load_version(version))
        except Exception as exc:  # any failure keeps the old version serving
            reason = str(exc) if isinstance(exc, YarnitError) else f"{type(exc).__name__}: {exc}"
            attempts = rejected.attempts + 1 if rejected is not None else 1
            delay = self.retry.delay_s(attempts)
            self._rejected[key] = Unservable(model, alias, number, reason, attempts, self.clock.monotonic() + delay)
            if quiet:
                log.info("could not load %s v%d as %s: %s", model, number, alias, reason)
                return None, None
            keeps = f"v{from_version} keeps serving" if from_version else "no version of it is loaded"
            again = f" (attempt {attempts}; next try in {delay:g} s or when its aliases move)" if attempts > 1 \
                else f" (next try in {delay:g} s or when its aliases move)"
            message = f"{model} v{number} was not swapped in as {alias!r} ({keeps}): {reason}{again}"
            self._alert(message)
            return None, self._event(model, alias, from_version, number, "rejected", reason)
        self._rejected.pop(key, None)
        self._loaded[key] = loaded
        elapsed = self.clock.monotonic() - started
        return loaded, self._event(model, alias, from_version, number, "swapped", "validated and warmed", elapsed)

    def warm(self, loaded: LoadedModel) -> LoadedModel:
        """``loaded`` after a first inference on its probe rows; :class:`VersionRejected` if that fails.

        The rows are the signature's ``probe`` instances (else the validation
        probe rows), with each declared online feature at its default, scored
        the way a request is (transform, compiled path; slates without
        exploration for a ranking model).
        """
        rows = warm_up_rows(loaded.version.signature, loaded.features)
        if not loaded.is_ranking:  # as serving does: candidates are for ranking models
            rows = [{k: v for k, v in r.items() if k != "candidates"} for r in rows]
        ref = loaded.version.ref
        started = self.clock.monotonic()
        try:
            if loaded.is_ranking:
                check_slates(ref, rows, loaded.rank([dict(r) for r in rows], explore=False))
            elif loaded.is_classifier:
                check_class_probabilities(ref, len(rows), len(loaded.classes), loaded.classify([dict(r) for r in rows]))
            else:
                scores = loaded.score([dict(r) for r in rows])
                if scores.shape != (len(rows),) or not np.all(np.isfinite(scores)) or np.any(scores < 0.0) \
                        or np.any(scores > 1.0):
                    raise VersionRejected(ref, f"its warm-up on {len(rows)} probe rows gave scores that are not one "
                                               f"probability each: {scores.ravel()[:5].tolist()}…")
        except VersionRejected:
            raise
        except Exception as exc:
            raise VersionRejected(ref, f"its warm-up inference on {len(rows)} probe rows raised "
                                       f"{type(exc).__name__}: {exc}") from exc
        return replace(loaded, warm_up=WarmUp(len(rows), self.clock.monotonic() - started))

    def load_version(self, version: ModelVersion) -> LoadedModel:
        """Load, compile and validate ``version``; raises :class:`VersionRejected` if it fails a check."""
        native = self.registry.load(version)  # verifies the artifact's sha256
        if self.wrap_predictor is not None:
            native = self.wrap_predictor(version, native)
        if version.signature.get("output") == "ranking":
            return self._load_ranking(version, native)
        if version.signature.get("output") == "class":
            return self._load_classifier(version, native)
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
        click = self._compile_ranker_click(version, native)
        # the bundle itself is not compiled (recommenders, rules, slates): admission must not score it inline by
        # a compiled row cost, so its result stays "native" and only names what its click model does
        compiled = CompileResult(None, "native", "ranking models are not compiled; click model: "
                                 + (click.kind if click.compiled is not None else f"native ({click.reason})"))
        loaded = LoadedModel(version, native, native, self.clock.now(), None, features,
                             frozenset(str(p) for p in version.signature.get("pii", []) or []), compiled, breaker)
        try:
            _validate_ranking(loaded)
        except VersionRejected:
            if getattr(native, "fast_click", None) is None:
                raise
            native.fast_click = None  # the golden slates decide: the native click model, then check again
            log.info("%s: its golden slates differ with the compiled click model; it scores natively", version.ref)
            loaded = replace(loaded, compile=CompileResult(None, "native", "ranking models are not compiled; click "
                                                           "model: native (golden slates differ when compiled)"))
            _validate_ranking(loaded)
        return loaded

    def _compile_ranker_click(self, version: ModelVersion, native: Any) -> CompileResult:
        """A ranking bundle's click model, compiled for the data plane's page-sized calls when it compiles and
        agrees with the native one on the bundle's own catalog (a 30-candidate page of the demo's ranker: 1.10 ms
        CPU natively, 0.58 ms compiled); the bundle scores natively otherwise."""
        click = getattr(getattr(native, "click", None), "predictor", None)
        probes = getattr(native, "click_probe_rows", None)
        if not self.compile or click is None or not callable(probes) or not hasattr(native, "fast_click"):
            return CompileResult(None, "native", "compilation disabled or no click model in the bundle")
        try:
            result = compile_predictor(click, probes())
        except Exception as exc:  # a converter gap must never stop a model from serving
            log.info("%s: its click model serves natively: %s: %s", version.ref, type(exc).__name__, exc)
            return CompileResult(None, "native", f"click model not compiled: {type(exc).__name__}")
        if result.compiled is None:
            log.info("%s: its click model serves natively: %s", version.ref, result.reason)
            return result
        native.fast_click = result.compiled
        return result

    def _load_classifier(self, version: ModelVersion, native: Predictor) -> LoadedModel:
        """A classifier with named classes: no transform, no compilation; its classes must match the artifact's."""
        classes = version.signature.get("classes")
        if not isinstance(classes, list) or len(classes) < 2 or not all(isinstance(c, str) and c for c in classes) \
                or len(set(classes)) != len(classes):
            raise VersionRejected(version.ref, "its signature says output 'class' but 'classes' is not a list of at "
                                               f"least two distinct names: {classes!r}"[:300])
        if not callable(getattr(native, "class_probabilities", None)):
            raise VersionRejected(version.ref, "its signature says output 'class', but its artifact gives no class "
                                               f"probabilities ({type(native).__name__} has no class_probabilities())")
        own = getattr(native, "classes", None)
        if own is not None and [str(c) for c in own] != classes:
            raise VersionRejected(version.ref, f"its artifact's classes {list(own)!r} are not its signature's "
                                               f"{classes!r}"[:300])
        breaker = CircuitBreaker(self.clock, failures_to_open=self.breaker.failures_to_open,
                                 cooldown_s=self.breaker.cooldown_s)
        loaded = LoadedModel(version, native, native, self.clock.now(), None, FeatureSpec.from_signature(
            version.signature), frozenset(str(p) for p in version.signature.get("pii", []) or []),
            CompileResult(None, "native", "classifiers are not compiled"), breaker)
        _validate_classifier(loaded)
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
        # A version waiting for its retry: re-read next round too, even if nothing was committed.
        return not self.retry_pending()

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


WARM_UP_ROWS = 64


def warm_up_rows(signature: Mapping[str, Any], features: Sequence[FeatureSpec]) -> list[dict[str, Any]]:
    """The rows a version's first inference runs on: its probe instances (nulls dropped, as a request's are),
    each declared online feature at its default; the validation's example rows when it has no probe."""
    rows = []
    probes = signature.get("probe")
    for probe in (probes if isinstance(probes, list) else [])[:WARM_UP_ROWS]:
        if isinstance(probe, Mapping):
            row = {str(k): v for k, v in probe.items() if v is not None}
            for spec in features:
                row.setdefault(spec.name, spec.default)
            rows.append(row)
    if rows:
        return rows
    return ranking_example_rows(signature) if signature.get("output") == "ranking" else \
        example_rows(signature, features)


def ranking_example_rows(signature: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A ranking model's probe rows: every declared input but ``k`` at a neutral value, and an empty one."""
    inputs = signature.get("inputs", {}) or {}
    probe = {name: _EXAMPLE_VALUES.get(str(kind), "") for name, kind in inputs.items() if name != "k"} \
        if isinstance(inputs, Mapping) else {}
    return [probe, {}]


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


def check_class_probabilities(ref: str, rows: int, classes: int, proba: np.ndarray) -> np.ndarray:
    """``proba`` if it is one row of ``classes`` probabilities summing to 1 per instance, else
    :class:`VersionRejected` saying what is wrong."""
    if proba.shape != (rows, classes):
        raise VersionRejected(ref, f"{rows} requests gave class probabilities of shape {proba.shape}, not "
                                   f"({rows}, {classes})")
    if not np.all(np.isfinite(proba)) or np.any(proba < 0.0) or np.any(proba > 1.0) \
            or not np.allclose(proba.sum(axis=1), 1.0, rtol=0.0, atol=1e-6):
        raise VersionRejected(ref, f"class probabilities must be in [0, 1] and sum to 1 per row; got "
                                   f"{proba[:2].tolist()}"[:300])
    return proba


def _validate_classifier(loaded: LoadedModel) -> None:
    ref, classes = loaded.version.ref, loaded.classes
    golden = [(dict(g["instance"]), g.get("class")) for g in loaded.version.signature.get("golden", []) or []
              if isinstance(g, Mapping) and isinstance(g.get("instance"), Mapping)]
    instances = [g[0] for g in golden] + example_rows(loaded.version.signature, loaded.features)
    try:
        proba = loaded.classify([dict(i) for i in instances])
    except Exception as exc:
        raise VersionRejected(ref, f"classifying a golden request raised {type(exc).__name__}: {exc}") from exc
    check_class_probabilities(ref, len(instances), len(classes), proba)
    for (instance, expected), row in zip(golden, proba, strict=False):
        got = classes[int(np.argmax(row))]
        if expected is not None and got != expected:
            raise VersionRejected(ref, f"golden request {instance!r} was classified {got!r}, expected "
                                       f"{expected!r}"[:400])


def _validate_ranking(loaded: LoadedModel) -> None:
    ref = loaded.version.ref
    golden = [(dict(g["instance"]), g.get("items")) for g in loaded.version.signature.get("golden", []) or []
              if isinstance(g, Mapping) and isinstance(g.get("instance"), Mapping)]
    instances = [g[0] for g in golden] + ranking_example_rows(loaded.version.signature)
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
    "RetrySettings",
    "SwapEvent",
    "Unservable",
    "WarmUp",
    "check_class_probabilities",
    "check_slates",
    "example_rows",
    "rollback_target",
    "warm_up_rows",
]
