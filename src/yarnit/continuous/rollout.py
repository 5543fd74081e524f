"""Staged rollouts: a canary ramped up stage by stage, judged against production in the same window.

A rollout of version V of a model (:class:`RolloutController`):

1. ``start(V)`` points the ``canary`` alias at V (through the registry's
   release gate: a spent error budget refuses it) and sets the canary's
   traffic share to the first stage (:class:`~yarnit.serving.router.TrafficPolicyStore`,
   which asks the gate again before every raise).
2. each ``step()`` reads the prediction log for the current stage's window
   (from the moment the stage began to now) and splits the model's requests
   into **canary** and **baseline** by the alias the router chose (a canary
   request that failed over to production, logged as production answering
   ``previous``, counts against the canary). The baseline is production's traffic *in the same window* (CH10-R4:
   a stable baseline that lives alongside the canary, never last week's
   history). It judges (:mod:`.canary`): error rate (critical; Flagger's
   success-rate bound, default 99 %), fallback rate, latency (Mann-Whitney),
   the prediction distribution (KS) and, if labels have been joined
   (:mod:`yarnit.monitoring.quality`), CTR by version. Then it decides:

   * **roll back** after ``threshold`` failing judgements in a stage (Flagger's
     threshold, default 1): canary share to 0 (never refused by the gate), the
     canary alias moved back to the production version; production never
     stopped serving;
   * **hold** while a declared upstream model's new version makes the canary
     regress (:mod:`.dependencies`: the reason names the triple), while the stage's bake time or minimum canary requests are not
     reached, when the judgement is marginal, or when there is no data (a
     canary without traffic holds and says so: no data is never a pass), or
     when the error-budget gate refuses the next raise; with a
     ``deadline_s`` (Flagger's progressDeadline; off by default), a stage
     held that long without a pass is rolled back instead;
   * **advance** to the next stage when the judgement passes, the bake time
     has elapsed and the canary has served ``min_requests`` in the stage;
   * **promote** after the last stage below 100 % passes (a stage of 100 %
     means promotion: there would be no baseline left to compare with): the
     registry points ``production`` at V (gated), the canary share goes back
     to 0 and the rollout ends.

   With stages ``[5, 25, 50, 100]`` and a step every ``bake``, the shortest
   promotion is ``bake × 3`` (Flagger: interval × maxWeight / stepWeight,
   maxWeight being the last analysed weight); a failure is rolled back within
   ``bake × threshold`` of the moment the canary had ``min_samples`` requests.

With ``loadtest`` in the config (off by default), a **load-test stage** comes first (book ch. 15 case 4):
``start(V)`` points nothing at V yet, and each ``step()`` holds until ``yarnit loadtest`` has recorded a
passing result for V measured against the current production version (a drill with an injected delay
does not count; ``loadtest_max_age_s`` bounds its age), then points the canary at V and sends it the
first stage's share. A failing latest result holds too, and says why; ``deadline_s`` ends a rollout that
waited that long.

Every decision (holds included) is a row of the workspace audit log: actor
``rollout:<id>``, action ``rollout.<decision>``, the verdict and scores as
detail. The state is one JSON file per model under
``$YARNIT_HOME/continuous/rollouts/``, written atomically after each decision
and held under an exclusive ``flock`` during a step, so a killed controller
resumes where it was: each step first re-applies the saved stage's share (a
crash between changing the share and saving the state heals: an advance
raises the share, then saves; the start saves, then sets it) and finishes a
promotion that reached the registry. One rollout per model at a time: a
second ``start`` while one runs is refused, naming it.

Bounded: a step keeps at most ``max_samples`` latencies and
predictions per side (evenly thinned).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import re
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from yarnit.core.atomic import atomic_write_text
from yarnit.core.clock import Clock
from yarnit.core.errors import Conflict, InvalidInput, NotFound
from yarnit.core.ids import new_id
from yarnit.loadtest import LoadTestStore
from yarnit.monitoring.predlog_source import is_client_error, record_time
from yarnit.monitoring.workspace import prediction_log_dir
from yarnit.registry import ModelRegistry
from yarnit.serving.errors import CanaryHalted
from yarnit.serving.predlog import read_segment, segment_paths
from yarnit.serving.router import TrafficPolicyStore

from . import canary as judge
from .dependencies import ModelDependencies

STATE_VERSION = 1
RUNNING, PROMOTED, ROLLED_BACK, ABORTED = "running", "promoted", "rolled_back", "aborted"
DEFAULT_STAGES: tuple[float, ...] = (1.0, 5.0, 25.0, 50.0, 100.0)
SHADOW = 0.0  # a first stage of 0 %: the canary scores a copy of production's requests, answers none
MAX_DECISIONS = 50  # decisions kept in the state file (the audit log keeps them all)
LOADTEST = "loadtest"  # the state's ``awaiting``: the load-test stage, before the first canary stage
_MODEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class RolloutConfig:
    """How a rollout ramps and judges. ``stages`` are canary shares in %, increasing; 100 means promotion."""

    stages: tuple[float, ...] = DEFAULT_STAGES
    bake_s: float = 1800.0
    min_requests: int = 500
    threshold: int = 1  # failing judgements in a stage before rolling back
    success_rate: float = 0.99  # Flagger's request-success-rate bound on the canary
    latency_tolerance: float = 0.25
    confidence: float = 0.98
    prediction_tolerance: float = 0.2  # KS statistic the predictions may move by
    min_samples: int = judge.MIN_SAMPLES
    pass_score: float = 95.0
    marginal: float = 75.0
    max_samples: int = 20_000
    deadline_s: float | None = None  # a stage held this long without a pass is rolled back (Flagger's progressDeadline)
    # A load-test stage before the first one: the canary gets no traffic until ``yarnit loadtest`` has passed
    # for this version against the production version (not a drill with an injected delay), at most
    # ``loadtest_max_age_s`` old when set. Off by default.
    loadtest: bool = False
    loadtest_max_age_s: float | None = None

    def __post_init__(self) -> None:
        stages = tuple(float(s) for s in self.stages)
        if not stages:
            raise InvalidInput("A rollout needs at least one stage (canary shares in %, e.g. 1,5,25,50,100).")
        if any(not math.isfinite(s) or not (0 < s <= 100 or (i == 0 and s == SHADOW)) for i, s in enumerate(stages)):
            raise InvalidInput(f"Stages are canary shares in (0, 100] %, optionally after a first 'shadow' stage "
                               f"(0); got {list(stages)}.")
        if any(b <= a for a, b in zip(stages, stages[1:], strict=False)):
            raise InvalidInput(f"Stages must increase; got {list(stages)}.")
        if stages[0] >= 100:
            raise InvalidInput("The first stage must send less than 100 % to the canary (100 % means promotion).")
        object.__setattr__(self, "stages", stages)
        if not (math.isfinite(self.bake_s) and self.bake_s >= 0):
            raise InvalidInput(f"The bake time must be >= 0 seconds; got {self.bake_s}.")
        if self.min_requests < 0 or self.threshold < 1 or self.min_samples < 1 or self.max_samples < 100:
            raise InvalidInput("min_requests must be >= 0, threshold >= 1, min_samples >= 1 and max_samples >= 100.")
        if not 0 < self.success_rate <= 1:
            raise InvalidInput(f"success_rate is a fraction in (0, 1]; got {self.success_rate}.")
        judge.Thresholds(self.pass_score, self.marginal)  # validates
        if self.loadtest_max_age_s is not None and not (math.isfinite(self.loadtest_max_age_s)
                                                        and self.loadtest_max_age_s > 0):
            raise InvalidInput(f"The load test's maximum age must be > 0 seconds; got {self.loadtest_max_age_s}.")
        if self.deadline_s is not None and not (math.isfinite(self.deadline_s) and self.deadline_s > self.bake_s):
            raise InvalidInput(f"The progress deadline ({self.deadline_s} s) must be longer than the bake time "
                               f"({self.bake_s:g} s).")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RolloutConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise InvalidInput(f"Unknown rollout settings: {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}.")
        values = dict(data)
        if "stages" in values:
            values["stages"] = tuple(values["stages"])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"stages": list(self.stages)}

    def metrics(self) -> list[judge.MetricSpec]:
        c, n = self.confidence, self.min_samples
        return [
            judge.MetricSpec("error_rate", kind="rate", group="errors", critical=True, confidence=c, min_samples=n,
                             max_rate=round(1.0 - self.success_rate, 12)),
            judge.MetricSpec("fallback_rate", kind="rate", group="errors", confidence=c, min_samples=n),
            judge.MetricSpec("latency_ms", kind="latency", group="latency", confidence=c, min_samples=n,
                             tolerance=self.latency_tolerance),
            judge.MetricSpec("predictions", kind="distribution", group="quality", direction="either", required=False,
                             confidence=c, min_samples=n, tolerance=self.prediction_tolerance),
            # online quality: critical once labels exist (a significant CTR drop beyond tolerance fails the canary)
            judge.MetricSpec("ctr", kind="rate", group="quality", direction="decrease", required=False, critical=True,
                             confidence=c, min_samples=n, tolerance=self.latency_tolerance),
        ]


def parse_duration(text: str) -> float:
    """``30m``, ``2h``, ``90s``, ``1d`` or plain seconds → seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", str(text))
    if not match:
        raise InvalidInput(f"Cannot read the duration {text!r}: use e.g. 90s, 30m, 2h or 1d.")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


def parse_stages(text: str) -> tuple[float, ...]:
    """``1,5,25,50,100`` → (1.0, 5.0, 25.0, 50.0, 100.0); ``shadow`` (first) is 0."""
    try:
        return tuple(SHADOW if part.strip().lower() == "shadow" else float(part.strip().rstrip("%"))
                     for part in str(text).split(",") if part.strip())
    except ValueError:
        raise InvalidInput(f"Cannot read the stages {text!r}: give canary shares in %, e.g. 1,5,25,50,100.") from None


@dataclass
class Side:
    """What one side (canary or baseline) did in a window."""

    requests: int = 0
    errors: int = 0  # not answered 200 by the model itself (5xx, shed, fallback)
    answered: int = 0  # 200s
    fallbacks: int = 0  # 200s answered by a fallback or a previous version
    latencies: list[float] = field(default_factory=list)
    predictions: list[float] = field(default_factory=list)
    versions: dict[str, int] = field(default_factory=dict)


def _thin(values: list[float], limit: int) -> list[float]:
    if len(values) <= limit:
        return values
    step = len(values) / limit
    return [values[int(i * step)] for i in range(limit)]


def _routed(record: Mapping[str, Any]) -> str:
    """The alias the router chose for a request.

    ``routed`` when the data plane logs it; else the alias that answered, except
    that production answering as ``previous`` is a canary request that failed
    over to production (the data plane's chain for a canary route is canary,
    then production labelled ``previous``). A request that failed without any
    answer carries no alias (the routing key is pseudonymised in the log, so
    its bucket cannot be recomputed) and counts on the baseline side.
    """
    routed = record.get("routed")
    if routed in ("canary", "production"):
        return str(routed)
    alias = record.get("alias")
    if alias == "canary" or (alias == "production" and record.get("served_by") == "previous"):
        return "canary"
    return "production"


def gather(log_dir: Path, model: str, *, start_s: float, end_s: float, max_samples: int = 20_000,
           shadow_version: int | None = None) -> tuple[Side, Side]:
    """(canary, baseline) of ``model``'s requests with a time in ``[start_s, end_s]``, split as the router did.

    With ``shadow_version`` the canary side is that version's shadow scores (``role: shadow``) instead.
    """
    canary, baseline = Side(), Side()
    segments = segment_paths(log_dir)
    for path in segments:
        try:
            records = _records_since(path, start_s)
        except FileNotFoundError:  # pruned meanwhile
            continue
        for record in records:
            role = record.get("role")
            is_shadow = shadow_version is not None and role == "shadow" and record.get("version") == shadow_version
            if (role != "primary" and not is_shadow) or record.get("model") != model:
                continue
            at = record_time(record)
            if at is None or not start_s <= at <= end_s:
                continue
            status = record.get("status")
            if not isinstance(status, int) or isinstance(status, bool) or is_client_error(status):
                continue
            side = canary if is_shadow or _routed(record) == "canary" else baseline
            side.requests += 1
            served_by = "model" if is_shadow else record.get("served_by")
            if status != 200 or served_by != "model":
                side.errors += 1
            if status == 200:
                side.answered += 1
                if served_by != "model":
                    side.fallbacks += 1
                latency = record.get("latency_ms")
                if isinstance(latency, (int, float)) and not isinstance(latency, bool) and math.isfinite(latency):
                    side.latencies.append(float(latency))
                preds = record.get("predictions")
                if isinstance(preds, list):
                    side.predictions.extend(float(p) for p in preds[:10]
                                            if isinstance(p, (int, float)) and not isinstance(p, bool))
                version = str(record.get("version"))
                side.versions[version] = side.versions.get(version, 0) + 1
    for side in (canary, baseline):
        side.latencies = _thin(side.latencies, max_samples)
        side.predictions = _thin(side.predictions, max_samples)
    return canary, baseline


#: (segment path, inode) -> its complete chunks read so far: (start offset, end offset, latest record time).
#: Segments only grow (an erasure rewrites one under a new inode), so a chunk read once never changes: a step
#: re-reads only the chunks that reach its stage's start, not the whole log every hour.
_CHUNKS: dict[tuple[str, int], list[tuple[int, int, float]]] = {}
_CHUNK_BYTES = 1 << 20


#: What :func:`gather` reads of a record: the rest (features, request ids of candidates...) is not kept.
_GATHERED = ("request_id", "time", "role", "model", "version", "status", "routed", "alias", "served_by",
             "latency_ms", "predictions")
#: (segment path, inode, start, end) -> the records of that complete chunk, as :func:`_slim` keeps them. A stage's
#: window reaches back hours: without this every step parsed all of its chunks' JSON again (the most of a step).
_PARSED: OrderedDict[tuple[str, int, int, int], list[dict[str, Any]]] = OrderedDict()
_PARSED_CHUNKS = 128  # at most 128 MB of log, kept as a small fraction of that


def _slim(record: dict[str, Any]) -> dict[str, Any]:
    out = {k: record[k] for k in _GATHERED if k in record}
    predictions = out.get("predictions")
    if isinstance(predictions, list) and len(predictions) > 10:
        out["predictions"] = predictions[:10]  # gather reads the first ten
    return out


def _chunk(path: Path, inode: int, begin: int, end: int) -> list[dict[str, Any]]:
    key = (str(path), inode, begin, end)
    kept = _PARSED.get(key)
    if kept is None:
        kept = _PARSED[key] = [_slim(r) for r in read_segment(path, begin, max_bytes=end - begin).records]
        while len(_PARSED) > _PARSED_CHUNKS:
            _PARSED.popitem(last=False)
    else:
        _PARSED.move_to_end(key)
    return kept


def _records_since(path: Path, start_s: float) -> list[dict[str, Any]]:
    """The records of one segment (what :func:`gather` reads of them), skipping whole chunks whose every record is
    older than ``start_s``."""
    stat = path.stat()
    key = (str(path), stat.st_ino)
    chunks = _CHUNKS.get(key)
    if chunks is None or (chunks and chunks[-1][1] > stat.st_size):
        chunks = _CHUNKS[key] = []
    out: list[dict[str, Any]] = []
    for begin, end, latest in chunks:
        if latest >= start_s:
            out.extend(_chunk(path, stat.st_ino, begin, end))
    offset = chunks[-1][1] if chunks else 0
    while offset < stat.st_size:
        read = read_segment(path, offset, max_bytes=_CHUNK_BYTES)
        if read.end == offset:  # a line longer than a chunk, or a torn tail: read the rest at once, uncached
            out.extend(_slim(r) for r in read_segment(path, offset).records)
            break
        times = [t for t in (record_time(r) for r in read.records) if t is not None]
        chunks.append((offset, read.end, max(times) if times else math.inf))
        if not times or max(times) >= start_s:
            slim = [_slim(r) for r in read.records]
            _PARSED[(str(path), stat.st_ino, offset, read.end)] = slim
            out.extend(slim)
        offset = read.end
    while len(_PARSED) > _PARSED_CHUNKS:
        _PARSED.popitem(last=False)
    if len(_CHUNKS) > 4096:  # segments come and go; forget the oldest entries
        for stale in list(_CHUNKS)[:1024]:
            _CHUNKS.pop(stale, None)
    return out


def _ctr(workspace: Any, model: str, version: int, start_s: float, end_s: float) -> tuple[int, int] | None:
    """(clicks, labelled) of ``version`` over the hours overlapping the window, if labels were joined."""
    from yarnit.monitoring.quality_store import HOUR_S, QualityStore, quality_db_path

    path = quality_db_path(workspace.home)
    if not Path(path).is_file():
        return None
    store = QualityStore(path)
    try:
        merged = store.merged(model, start_hour=math.floor(start_s / HOUR_S), end_hour=math.floor(end_s / HOUR_S) + 1,
                              version=str(version), slice_="")  # parse this version's whole-traffic hours only
    finally:
        store.close()
    summary = merged.get((str(version), ""))
    return (0, 0) if summary is None else (int(summary.positives), int(summary.labelled))


def _loadtest_hint(model: str, version: int) -> str:
    return f"run: yarnit loadtest {model} --version {version} --rps R --duration D"


def _stage_name(share: float) -> str:
    return "shadow" if share == SHADOW else f"{share:g}%"


def _jsonable(value: Any) -> Any:
    """NaN and infinities as None (JSON has neither), recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def rollouts_dir(home: str | Path) -> Path:
    return Path(home) / "continuous" / "rollouts"


class RolloutController:
    """The staged rollout of one model (see the module docstring)."""

    def __init__(self, ws: Any, model: str, *, clock: Clock | None = None,
                 config: RolloutConfig | None = None) -> None:
        if not isinstance(model, str) or not _MODEL.match(model):
            raise InvalidInput(f"Not a model name: {model!r}.")
        self.ws = ws
        self.model = model
        self.clock = clock or ws.clock
        self.config = config
        self.registry = ModelRegistry(ws)
        self.traffic = TrafficPolicyStore(ws)
        self.path = rollouts_dir(ws.home) / f"{model}.json"

    # -- state --------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)  # released when the process dies (kill -9 included)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def load(self) -> dict[str, Any] | None:
        """The saved state of this model's latest rollout, or None."""
        try:
            state = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise Conflict(f"The rollout state {self.path} cannot be read ({exc}); move it aside to start over "
                           "(the audit log keeps every decision).") from None
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            raise Conflict(f"The rollout state {self.path} is not a state this yarnit writes; move it aside.")
        return state

    def _save(self, state: dict[str, Any]) -> None:
        state["updated_at"] = self.clock.now().isoformat()
        atomic_write_text(self.path, json.dumps(_jsonable(state), indent=1, sort_keys=True), mode=0o600)

    def _audit(self, state: dict[str, Any], action: str, detail: Mapping[str, Any]) -> None:
        from yarnit.storage.schema import audit_log

        with self.ws.metadata.begin() as conn:
            conn.execute(insert(audit_log).values(
                at=self.clock.now(), actor=f"rollout:{state['id']}", action=f"rollout.{action}",
                subject=f"model:{self.model}",
                detail=_jsonable({"model": self.model, "version": state["canary_version"],
                                  "baseline_version": state["baseline_version"], **detail})))

    def _running(self) -> dict[str, Any]:
        state = self.load()
        if state is None:
            raise NotFound(f"No rollout of {self.model} was started: yarnit rollout start {self.model} --version V.")
        return state

    # -- commands -----------------------------------------------------------------------------------
    def start(self, version: int, actor: str, *, reason: str = "", require_blessing: bool = False) -> dict[str, Any]:
        """Point the canary at ``version`` and send it the first stage's share; refused while one runs."""
        config = self.config or RolloutConfig()
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise InvalidInput(f"The version must be a positive integer; got {version!r}.")
        with self._locked():
            current = self.load()
            if current is not None and current.get("status") == RUNNING:
                raise Conflict(f"A rollout of {self.model} is already running ({current['id']}: v"
                               f"{current['canary_version']} at stage {current['stage_index'] + 1} of "
                               f"{len(current['config']['stages'])}); wait for it or abort it: "
                               f"yarnit rollout abort {self.model} --reason '…'.")
            aliases = self.registry.aliases(self.model)
            if "production" not in aliases:
                raise Conflict(f"{self.model} has no production version to compare a canary with: promote one "
                               "first (yarnit models promote).")
            baseline = aliases["production"]
            if version == baseline:
                raise InvalidInput(f"{self.model} v{version} is already in production: nothing to roll out.")
            self.registry.get(self.model, version)  # NotFound names the model and version
            rollout_id = new_id("rollout", self.clock)
            now = self.clock.now()
            state: dict[str, Any] = {
                "version": STATE_VERSION, "id": rollout_id, "model": self.model, "canary_version": version,
                "baseline_version": baseline, "status": RUNNING, "stage_index": 0,
                "stage_started_at": now.isoformat(), "started_at": now.isoformat(), "started_by": actor,
                "failed_checks": 0, "config": config.to_dict(), "decisions": [], "last": None,
            }
            why = f"started by {actor}" + (f": {reason}" if reason else "")
            if config.loadtest:  # the load-test stage: nothing routes to the version until a load test passed
                state.update(awaiting=LOADTEST, require_blessing=require_blessing, start_reason=reason)
                self._decide(state, "start", f"v{version} waits for a passing load test against production "
                             f"v{baseline} before its canary ({_loadtest_hint(self.model, version)}), {why}", None)
                return self._report(state)
            self._begin_canary(state, config, require_blessing=require_blessing,
                               reason=reason or f"staged rollout started by {actor}")
            self._decide(state, "start", f"v{version} canary at {_stage_name(config.stages[0])} (baseline v{baseline}), "
                         + why, None)
            return self._report(state)

    def _begin_canary(self, state: dict[str, Any], config: RolloutConfig, *, require_blessing: bool,
                      reason: str) -> None:
        """Point the canary (and, for a shadow stage, the shadow) alias at the version; send the first share."""
        who, version = f"rollout:{state['id']}", state["canary_version"]
        aliases = self.registry.aliases(self.model)
        self.registry.promote(self.model, version, alias="canary", actor=who, require_blessing=require_blessing,
                              reason=reason)
        if config.stages[0] == SHADOW:
            state["shadow_before"] = {"alias": aliases.get("shadow"), "policy": self.traffic.get(self.model).shadow}
            self.registry.set_alias(self.model, "shadow", version, actor=who, action="set",
                                    reason=f"rollout {state['id']}: shadow stage")
        state.pop("awaiting", None)
        state["stage_started_at"] = self.clock.now().isoformat()
        self._save(state)  # before the share: a crash now resumes by applying it
        self._apply_share(state, config.stages[0])

    def _loadtest_stage(self, state: dict[str, Any], config: RolloutConfig) -> dict[str, Any]:
        """The load-test stage: hold until a passing load test of the version exists, then start the canary."""
        version, baseline = state["canary_version"], state["baseline_version"]
        now = self.clock.now()
        elapsed = (now - datetime.fromisoformat(state["stage_started_at"])).total_seconds()
        found = None
        for result in LoadTestStore(self.ws).history(self.model, version, limit=50):
            if result.get("injected_delay_ms") or result.get("baseline_version") != baseline:
                continue  # a drill, or measured against another production version
            age = (now - datetime.fromisoformat(result["created_at"])).total_seconds()
            if config.loadtest_max_age_s is not None and age > config.loadtest_max_age_s:
                continue
            found = result
            break
        figures = {"loadtest": None if found is None else found["id"], "elapsed_s": elapsed}
        if found is not None and found.get("passed"):
            try:
                self._begin_canary(state, config, require_blessing=bool(state.get("require_blessing")),
                                   reason=state.get("start_reason") or f"staged rollout {state['id']}: load test "
                                   f"{found['id']} passed")
            except Conflict as exc:  # the release gate (a spent budget, no blessing): hold and say why
                return self._decide(state, "hold", f"the load test {found['id']} passed, but the canary cannot "
                                    f"start: {exc}", None, gate_refusal=str(exc), **figures)
            state["loadtest"] = {"id": found["id"], "reason": found["reason"]}
            return self._decide(state, "advance", f"load test {found['id']} passed ({found['reason']}): canary at "
                                f"{_stage_name(config.stages[0])}", None, **figures)
        if config.deadline_s is not None and elapsed >= config.deadline_s:
            return self._end(state, ABORTED, "abort", f"progress deadline: no passing load test within "
                             f"{config.deadline_s:g} s", None, **figures)
        if found is None:
            age = "" if config.loadtest_max_age_s is None else f" in the last {config.loadtest_max_age_s:g} s"
            return self._decide(state, "hold", f"no load test of v{version} against production v{baseline}{age} "
                                f"yet: {_loadtest_hint(self.model, version)}", None, **figures)
        return self._decide(state, "hold", f"the latest load test of v{version} ({found['id']}) failed: "
                            f"{found['reason']}; the canary starts only after a passing one", None, **figures)

    def step(self) -> dict[str, Any]:
        """One evaluation of the current stage: hold, advance, promote or roll back (audited)."""
        with self._locked():
            state = self._running()
            if state["status"] != RUNNING:
                return self._report(state) | {"action": "none",
                                              "reason": f"the rollout {state['id']} is {state['status']}"}
            config = RolloutConfig.from_dict(state["config"])
            aliases = self.registry.aliases(self.model)
            if state.get("awaiting") == LOADTEST:
                if aliases.get("production") != state["baseline_version"]:
                    return self._end(state, ABORTED, "abort", f"production was moved from v{state['baseline_version']}"
                                     f" to v{aliases.get('production')} before the canary started", None)
                return self._loadtest_stage(state, config)
            if aliases.get("production") == state["canary_version"]:  # a promotion reached the registry; finish it
                return self._finish_promotion(state, config, None, "promotion completed after a restart")
            if aliases.get("production") != state["baseline_version"]:  # an emergency rollback, a manual promote
                return self._end(state, ABORTED, "abort", f"production was moved from v{state['baseline_version']} "
                                 f"to v{aliases.get('production')} outside the rollout: its baseline is gone", None)
            if aliases.get("canary") != state["canary_version"]:
                return self._end(state, ABORTED, "abort", f"the canary alias was moved to "
                                 f"v{aliases.get('canary')} outside the rollout", None)
            held = ModelDependencies(self.ws).hold_reason(self.model, state["canary_version"])
            state["dependency_hold"] = held
            if held is not None:  # the canary regresses with an upstream model's new version: no raise
                return self._decide(state, "hold", f"held by a model dependency: {held}", None, dependency_hold=held)
            share = self._stage_share(state, config)
            try:
                self._apply_share(state, share)
            except Conflict as exc:  # the error-budget gate refuses the raise: hold, say why
                return self._decide(state, "hold", f"the error-budget gate refuses {share:g}%: {exc}", None,
                                    gate_refusal=str(exc))
            now = self.clock.now()
            start = datetime.fromisoformat(state["stage_started_at"])
            judged, canary_side, baseline_side = self.analyse(state, config, start.timestamp(), now.timestamp(), share)
            elapsed = (now - start).total_seconds()
            figures = {"stage": state["stage_index"] + 1, "share": share, "elapsed_s": elapsed,
                       "canary_requests": canary_side.requests, "baseline_requests": baseline_side.requests}
            if judged.decision == "fail":
                state["failed_checks"] += 1
                if state["failed_checks"] >= config.threshold:
                    return self._roll_back(state, f"canary analysis failed ({judged.reason})", judged, figures)
                return self._decide(state, "hold", f"failed check {state['failed_checks']} of {config.threshold}: "
                                    f"{judged.reason}", judged, **figures)
            passing = judged.decision == "pass" and canary_side.requests >= config.min_requests
            if config.deadline_s is not None and elapsed >= config.deadline_s and not passing:
                return self._roll_back(state, f"progress deadline: stage {state['stage_index'] + 1} held "
                                       f"{elapsed:g} s (deadline {config.deadline_s:g} s) without a pass: "
                                       f"{judged.reason}", judged, figures)
            if canary_side.requests == 0:
                return self._decide(state, "hold", f"the canary got no traffic in this stage ({elapsed:g} s at "
                                    f"{_stage_name(share)}): no data is not a pass", judged, **figures)
            if judged.decision == "nodata":
                return self._decide(state, "hold", f"not enough data: {judged.reason}", judged, **figures)
            if judged.decision == "marginal":
                return self._decide(state, "hold", f"marginal: {judged.reason}", judged, **figures)
            if elapsed < config.bake_s or canary_side.requests < config.min_requests:
                return self._decide(state, "hold", f"baking: {elapsed:g} of {config.bake_s:g} s, "
                                    f"{canary_side.requests} of {config.min_requests} canary requests "
                                    f"({judged.reason})", judged, **figures)
            return self._advance(state, config, judged, figures)

    def abort(self, *, actor: str, reason: str) -> dict[str, Any]:
        """Stop the running rollout: canary share 0, canary alias back to production's version (audited)."""
        if not reason.strip():
            raise InvalidInput("Aborting a rollout needs a reason for the audit trail (--reason '…').")
        with self._locked():
            state = self._running()
            if state["status"] != RUNNING:
                raise Conflict(f"The rollout {state['id']} of {self.model} is already {state['status']}.")
            return self._end(state, ABORTED, "abort", f"aborted by {actor}: {reason}", None)

    def status(self) -> dict[str, Any]:
        """The rollout's state, the traffic share in force and the last canary analysis."""
        return self._report(self._running())

    # -- analysis -----------------------------------------------------------------------------------
    def analyse(self, state: Mapping[str, Any], config: RolloutConfig, start_s: float, end_s: float,
                share: float) -> tuple[judge.Judgement, Side, Side]:
        c, b = gather(prediction_log_dir(self.ws.home), self.model, start_s=start_s, end_s=end_s,
                      max_samples=config.max_samples,
                      shadow_version=state["canary_version"] if share == SHADOW else None)
        specs = {s.name: s for s in config.metrics()}
        results = [
            judge.proportions(b.errors, b.requests, c.errors, c.requests, specs["error_rate"]),
            judge.proportions(b.fallbacks, b.answered, c.fallbacks, c.answered, specs["fallback_rate"]),
            judge.mann_whitney(b.latencies, c.latencies, specs["latency_ms"]),
            judge.distribution(b.predictions, c.predictions, specs["predictions"]),
        ]
        ctr_b = _ctr(self.ws, self.model, state["baseline_version"], start_s, end_s)
        ctr_c = _ctr(self.ws, self.model, state["canary_version"], start_s, end_s)
        if ctr_b is not None and ctr_c is not None:
            results.append(judge.proportions(ctr_b[0], ctr_b[1], ctr_c[0], ctr_c[1], specs["ctr"]))
        else:
            results.append(judge._result(specs["ctr"], judge.NODATA, "no labels joined (yarnit monitor quality)"))
        judged = judge.score(results, thresholds=judge.Thresholds(config.pass_score, config.marginal))
        return judged, c, b

    # -- decisions ----------------------------------------------------------------------------------
    def _stage_share(self, state: Mapping[str, Any], config: RolloutConfig) -> float:
        return float(config.stages[state["stage_index"]])

    def _apply_share(self, state: dict[str, Any], share: float) -> None:
        policy = self.traffic.get(self.model)
        who, why = f"rollout:{state['id']}", f"rollout stage {state['stage_index'] + 1}: {_stage_name(share)}"
        if share == SHADOW:
            if policy.canary_percent != 0 or not policy.shadow:
                self.traffic.set(self.model, canary_percent=0.0, shadow=True, actor=who, reason=why)
            return
        self._leave_shadow(state)
        if policy.canary_percent != share:
            self.traffic.set(self.model, canary_percent=share, actor=who, reason=why)

    def _leave_shadow(self, state: dict[str, Any]) -> None:
        """Put the shadow alias and the shadow switch back as they were before a shadow stage (once)."""
        before = state.get("shadow_before")
        if not before or state.get("shadow_restored"):
            return
        who = f"rollout:{state['id']}"
        if before["alias"] is not None and self.registry.aliases(self.model).get("shadow") != before["alias"]:
            self.registry.set_alias(self.model, "shadow", before["alias"], actor=who, action="set",
                                    reason=f"rollout {state['id']}: shadow stage over")
        # with no shadow alias before, the switch goes off so the rolled-out version stops scoring copies
        shadow = bool(before["policy"]) if before["alias"] is not None else False
        self.traffic.set(self.model, shadow=shadow, actor=who, reason=f"rollout {state['id']}: shadow stage over")
        state["shadow_restored"] = True

    def _advance(self, state: dict[str, Any], config: RolloutConfig, judged: judge.Judgement,
                 figures: dict[str, Any]) -> dict[str, Any]:
        nxt = state["stage_index"] + 1
        if nxt >= len(config.stages) or config.stages[nxt] >= 100:
            return self._finish_promotion(state, config, judged, f"stage {state['stage_index'] + 1} passed "
                                          f"({judged.reason})", **figures)
        share = float(config.stages[nxt])
        try:  # the share first (the gate may refuse it), then the state: a crash in between is healed by the
            # next step, which sets the saved stage's share again (lowering is never refused) and judges it anew
            staged = state | {"stage_index": nxt}
            self._apply_share(staged, share)
        except CanaryHalted as exc:
            return self._decide(state, "hold", f"passed, but the error-budget gate halts the raise to {share:g}%: "
                                f"{exc.why}", judged, gate_refusal=exc.why, **figures)
        state.update(stage_index=nxt, stage_started_at=self.clock.now().isoformat(), failed_checks=0,
                     shadow_restored=bool(staged.get("shadow_restored")))
        return self._decide(state, "advance", f"stage {nxt} passed ({judged.reason}): canary to {share:g}%",
                            judged, **figures)

    def _finish_promotion(self, state: dict[str, Any], config: RolloutConfig, judged: judge.Judgement | None,
                          why: str, **figures: Any) -> dict[str, Any]:
        who = f"rollout:{state['id']}"
        if self.registry.aliases(self.model).get("production") != state["canary_version"]:
            try:
                self.registry.promote(self.model, state["canary_version"], actor=who,
                                      reason=f"staged rollout {state['id']}: {why}")
            except Conflict as exc:  # the release gate (a spent budget) or a refused promotion: hold
                return self._decide(state, "hold", f"passed, but the promotion is refused: {exc}", judged,
                                    gate_refusal=str(exc), **figures)
        self._leave_shadow(state)
        self.traffic.set(self.model, canary_percent=0.0, actor=who, reason=f"rollout {state['id']} promoted")
        state["status"] = PROMOTED
        return self._decide(state, "promote", f"v{state['canary_version']} promoted to production: {why}", judged,
                            **figures)

    def _roll_back(self, state: dict[str, Any], why: str, judged: judge.Judgement | None,
                   figures: dict[str, Any]) -> dict[str, Any]:
        return self._end(state, ROLLED_BACK, "rollback", why, judged, **figures)

    def _end(self, state: dict[str, Any], status: str, action: str, why: str, judged: judge.Judgement | None,
             **figures: Any) -> dict[str, Any]:
        who = f"rollout:{state['id']}"
        if state.get("awaiting") == LOADTEST:  # the canary never started: no share or alias of ours to take back
            state["status"] = status
            return self._decide(state, action, why, judged, **figures)
        # One pointer switch takes the canary's traffic away (lowering is never refused by the gate) …
        self.traffic.set(self.model, canary_percent=0.0, actor=who, reason=f"rollout {state['id']} {action}: {why}"[:500])
        self._leave_shadow(state)
        # … then the canary alias goes back to what production serves, so nothing routes to the bad version.
        production = self.registry.aliases(self.model).get("production")
        canary = self.registry.aliases(self.model).get("canary")
        if production is not None and canary not in (None, production):
            self.registry.set_alias(self.model, "canary", production, actor=who, action="rollback",
                                    reason=f"rollout {state['id']} {action}"[:500])
        state["status"] = status
        return self._decide(state, action, why, judged, **figures)

    def _decide(self, state: dict[str, Any], action: str, why: str, judged: judge.Judgement | None,
                **figures: Any) -> dict[str, Any]:
        now = self.clock.now().isoformat()
        decision = {"at": now, "action": action, "reason": why, "stage": state["stage_index"] + 1,
                    "score": None if judged is None else judged.score,
                    "verdict": None if judged is None else judged.decision} | figures
        state["decisions"] = (state.get("decisions") or [])[-(MAX_DECISIONS - 1):] + [decision]
        if judged is not None:
            state["last"] = {"at": now, **judged.to_dict()}
        self._save(state)
        self._audit(state, action, {"reason": why, **figures,
                                    "analysis": None if judged is None else judged.to_dict()})
        return self._report(state) | {"action": action, "reason": why}

    def _report(self, state: Mapping[str, Any]) -> dict[str, Any]:
        config = state["config"]
        index = state["stage_index"]
        return _jsonable({
            "id": state["id"], "model": state["model"], "status": state["status"],
            "canary_version": state["canary_version"], "baseline_version": state["baseline_version"],
            "stage": index + 1, "stages": config["stages"], "stage_share": config["stages"][index],
            "stage_started_at": state["stage_started_at"], "started_at": state["started_at"],
            "started_by": state["started_by"], "failed_checks": state["failed_checks"],
            "canary_percent": self.traffic.get(self.model).canary_percent, "aliases": self.registry.aliases(self.model),
            "config": config, "analysis": state.get("last"), "decisions": state.get("decisions", [])[-10:],
            "dependency_hold": state.get("dependency_hold"),
            "awaiting": state.get("awaiting"), "loadtest": state.get("loadtest"),
            "updated_at": state.get("updated_at"),
        })


def active_rollouts(home: str | Path) -> list[str]:
    """Models with a running rollout (for the loop and the dashboard)."""
    out = []
    for path in sorted(rollouts_dir(home).glob("*.json")):
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError):
            continue
        if isinstance(state, dict) and state.get("status") == RUNNING:
            out.append(path.stem)
    return out


__all__ = ["ABORTED", "DEFAULT_STAGES", "PROMOTED", "ROLLED_BACK", "RUNNING", "SHADOW", "RolloutConfig", "RolloutController",
           "Side", "active_rollouts", "gather", "parse_duration", "parse_stages", "rollouts_dir"]

