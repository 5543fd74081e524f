"""The continuous loop (``yarnit loop run``): new data → quarantine → label join → train → gate → register → rollout.

What the loop promises, and how:

* **Every step is a recorded pipeline run with lineage.** A day comes in
  through ``yarnit-loop-day`` (label join, quarantine, label completeness:
  :mod:`.loop_steps`); a training window is assembled by
  ``yarnit-loop-window``; training, evaluation, the gate and registration are
  the click model's own pipeline (``yarnit-ctr`` with ``source=dataset``,
  ``warm_start=true``: the logistic and LightGBM trainers continue from
  production's model, see :mod:`yarnit.training.trainers`). The loop adds no
  hidden step: ``yarnit runs list`` shows everything it did, and a failed run
  is a failed run, so the ``pipeline_success`` SLI counts loop failures.
* **Label completeness gates training.** A training window is trained only
  when every one of its days has complete labels (:func:`.loop_steps.labels`);
  a day with late clicks is re-joined on later ticks until its labels arrive
  (or ``max_label_wait_h`` passes: then it is skipped, with an alert).
* **One loop per workspace and model** (:class:`LoopLease`): an exclusive
  ``flock`` on ``continuous/loop-<model>.lock`` under the home, plus a holder
  file with a heartbeat. A second loop is refused with the holder named; the
  kernel drops the lock of a dead process, so a killed loop's lease ends with
  it (the heartbeat only tells ``yarnit loop status`` whether the holder is
  alive). This is a single-host lease; loops on several hosts sharing a
  PostgreSQL store would need a lease in the store (a known gap).
* **Crash-safe progress.** The state (each day's phase, the run it is in, its
  results, and on a simulated clock the clock) is one JSON file written
  atomically *before* each run starts (the run is created first, then
  recorded, then executed), so a ``kill -9`` anywhere restarts where it was:
  a run that was in flight is resumed (:meth:`PipelineRunner.resume`), a
  finished one is read back. Datasets are content-addressed and the register
  step reuses a version with the same bytes, so a replay adds no version.
* **Catch-up in priority order (CH7-R15).** The book asks for a priority
  order without fixing one. The loop's: first the days of the *newest*
  window, newest first (ingest is cheap and the serving model's freshness
  matters most), then the older days (backfill: every day is still
  quarantined, label-joined and recorded, oldest first); then it trains only
  the newest trainable window. An older window that becomes trainable after
  a newer one was trained is *superseded* (recorded, not trained): its data
  is inside the newer window, and a model of older data could never replace
  a fresher production. A tick starts at most ``max_runs_per_tick`` runs.
* **Failures are retried, then alerted, never promoted.** A failed run
  (other than refused input: blocking anomalies, a bad parameter) is
  retried on a later tick after ``backoff_s * 2**(n-1)`` of the loop's clock
  (a new run: the failed one stays failed in the record, and cached steps are
  reused), up to ``max_attempts``; then the day is ``failed``, an alert opens
  in the monitor's alert store, and nothing moves.
* **Promotion.** With staged rollouts asked for (``LoopConfig.rollout``, a
  :class:`~yarnit.continuous.rollout.RolloutConfig` as a dict, ``{}`` for its
  defaults; ``yarnit loop run --rollout``) and a production version to judge a
  canary against, the ctr run registers without promoting and a staged
  rollout starts for a blessed version (the loop steps active rollouts each
  tick; a version trained while one is running waits for none: it is
  registered, and its rollout is not started, saying why). Otherwise — no
  rollout asked for, or the model's first version, which has no baseline —
  the ctr register step promotes as pipelines do, behind the error-budget
  release gate. Either way the loop first asks
  :func:`yarnit.continuous.actions.training_frozen` (when that module exists):
  a frozen model trains nothing, its days wait.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from yarnit.core.atomic import atomic_write_bytes
from yarnit.core.errors import InvalidInput, YarnitError
from yarnit.core.ids import check_name
from yarnit.core.jsonfile import state_json
from yarnit.storage import Workspace
from yarnit.training import Pipeline, PipelineRunner, RunStore
from yarnit.training.runner import check_run
from yarnit.training.runs import detect_code_version

from .data_checks import day_window
from .loop_alerts import data_alerts, label_alert, removed_windows
from .loop_lease import LoopLease, continuous_dir
from .loop_steps import (
    LOG_CLOSE_H,
    closes_at,
    day_pipeline,
    window_pipeline,
    world_days,
)

STATE_VERSION = 1
Progress = Callable[[str], None]

# phases of a day: in → (waiting_labels →) ready → window → train → done | superseded | failed | skipped | short
FINAL = frozenset({"done", "superseded", "failed", "skipped"})


@dataclass(frozen=True)
class LoopConfig:
    """What the loop does each tick. ``pipeline`` overrides go to the ctr pipeline (e.g. trainer, bootstrap)."""

    model: str = "ctr"
    dataset: str = "yarnit-impressions"
    window_days: int = 3  # days per training window; the last one is the holdout
    min_window_days: int = 2  # fewer days available: the day waits (``short``)
    log_close_h: float = LOG_CLOSE_H
    max_label_wait_h: float = 7 * 24.0
    max_runs_per_tick: int = 6
    max_attempts: int = 3
    backoff_s: float = 3600.0
    day: dict[str, Any] = field(default_factory=dict)  # overrides of yarnit-loop-day (flood_factor …)
    pipeline: dict[str, Any] = field(default_factory=dict)  # overrides of yarnit-ctr
    rollout: dict[str, Any] | None = None  # staged rollouts: the RolloutController's config (None: promote directly)

    def __post_init__(self) -> None:
        check_name("Model", self.model)
        if not 1 <= self.min_window_days <= self.window_days:
            raise InvalidInput(f"min_window_days must be in [1, window_days={self.window_days}]; "
                               f"got {self.min_window_days}.")
        for key in ("max_runs_per_tick", "max_attempts"):
            if getattr(self, key) < 1:
                raise InvalidInput(f"Loop {key} must be at least 1; got {getattr(self, key)}.")
        _rollout_config(self.rollout)  # a bad rollout setting fails here, not days later at the first rollout


# --- the state ---------------------------------------------------------------------------------------------------
@dataclass
class DayState:
    day: str
    phase: str = "in"
    ingest_run: str | None = None
    checked_at: str | None = None  # the as_of of the last label join
    clean: dict[str, Any] | None = None
    quarantine: dict[str, Any] | None = None
    label: dict[str, Any] | None = None
    window_run: str | None = None
    window: dict[str, Any] | None = None
    train_run: str | None = None
    failed_runs: list[str] = field(default_factory=list)
    next_attempt_at: str | None = None
    version: int | None = None
    promoted: bool | None = None
    decision: str | None = None
    rollout: dict[str, Any] | None = None
    note: str | None = None
    checks: dict[str, Any] | None = None  # the day's data checks (yarnit.continuous.data_checks)
    retrain: list[str] | None = None  # retrain requests (remove_bad_data) this day's training answers


def state_path(home: str | Path, model: str) -> Path:
    return continuous_dir(home) / f"loop-{model}.json"


def load_state(home: str | Path, model: str) -> dict[str, Any]:
    path = state_path(home, model)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"version": STATE_VERSION, "model": model, "world": None, "clock": None, "ticks": 0, "runs": 0,
                "days": {}, "trained_through": None}
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"The loop state {str(path)!r} is unreadable ({exc}); move it aside to start over "
                           "(every finished run is in: yarnit runs list).") from None
    if data.get("version") != STATE_VERSION:
        raise InvalidInput(f"The loop state {str(path)!r} is of version {data.get('version')!r}, not {STATE_VERSION}.")
    return data


# --- the loop ------------------------------------------------------------------------------------------------------
def _frozen(ws: Workspace, model: str) -> str | None:
    try:
        from yarnit.continuous.actions import training_frozen  # type: ignore[attr-defined]
    except ImportError:
        return None
    reason = training_frozen(ws, model)
    return str(reason) if reason else None


def _rollout_config(config: dict[str, Any] | None) -> Any:
    """``config`` as the rollout module's RolloutConfig (checked: unknown keys are named), or as given without it."""
    try:
        from yarnit.continuous.rollout import RolloutConfig  # type: ignore[attr-defined]
    except ImportError:
        return config
    return None if config is None else RolloutConfig.from_dict(config)


def _rollout_controller() -> Any:
    try:
        from yarnit.continuous.rollout import RolloutController  # type: ignore[attr-defined]
    except ImportError:
        return None
    return RolloutController


class ContinuousLoop:
    """The loop of one model over a written world's days; call :meth:`tick` (one bounded pass) or :meth:`run`.

    ``pipelines`` replaces the built-in pipelines by name (``day``, ``window``, ``train``): tests hand in a
    ctr pipeline with a failing step; ``runner`` builds the :class:`PipelineRunner` (e.g. with a sleep on the
    loop's clock for in-run retries).
    """

    def __init__(self, ws: Workspace, world: str | Path, config: LoopConfig | None = None, *,
                 pipelines: dict[str, Pipeline] | None = None, progress: Progress | None = None) -> None:
        self.ws = ws
        self.world = str(Path(world).resolve())
        self.config = config or LoopConfig()
        self.progress = progress or (lambda message: None)
        self.pipelines = {"day": day_pipeline(), "window": window_pipeline()} | (pipelines or {})
        # a run's source says how to resume or reproduce it: the built-in ctr pipeline by name (yarnit runs
        # resume works on it); the loop's own pipelines are resumed by the loop
        self.sources = {"day": f"loop:{self.config.model}", "window": f"loop:{self.config.model}",
                        "train": f"loop:{self.config.model}"}
        if "train" not in self.pipelines:
            from yarnit.recipes.ctr import ctr_pipeline

            self.pipelines["train"] = ctr_pipeline()
            self.sources["train"] = "builtin:yarnit-ctr"
        self.runs = RunStore(ws)
        self.code_version = detect_code_version()
        self.runner = PipelineRunner(ws, sleep=lambda s: None)  # in-run retries: the loop's own backoff is on its clock
        self.lease = LoopLease(ws.home, self.config.model, clock=ws.clock)
        self._tick_start = 0
        self.state = load_state(ws.home, self.config.model)
        self._saved: bytes | None = None
        if self.state["world"] not in (None, self.world):
            raise InvalidInput(f"This workspace's loop of {self.config.model!r} reads the world {self.state['world']!r}, "
                               f"not {self.world!r}. Use that world, or another YARNIT_HOME.")
        self.state["world"] = self.world

    # -- persistence ---------------------------------------------------------------------------------------------
    def save(self) -> None:
        if hasattr(self.ws.clock, "advance"):  # a simulated clock: a restart continues from here
            self.state["clock"] = self.ws.clock.now().isoformat()
        text = state_json(self.state)
        if text != self._saved:  # a tick that changed nothing writes nothing
            atomic_write_bytes(state_path(self.ws.home, self.config.model), text)
            self._saved = text

    def day(self, day: date) -> DayState:
        raw = self.state["days"].get(day.isoformat())
        return DayState(**raw) if raw else DayState(day.isoformat())

    def put(self, state: DayState) -> None:
        self.state["days"][state.day] = asdict(state)
        self.save()

    # -- running one pipeline run, crash-safely ----------------------------------------------------------------------
    def _execute(self, kind: str, state: DayState, attr: str, config: dict[str, Any]) -> Any:
        """Run (or resume, or read back) the ``kind`` run of ``state`` recorded in ``attr``; returns the result."""
        pipeline = self.pipelines[kind]
        run_id = getattr(state, attr)
        if run_id is not None:
            run = self.runs.get(run_id)
            if run.state == "succeeded":
                from yarnit.training.runner import RunResult

                return RunResult(run, self.runs.steps(run.id), self.ws)
            if run.state == "failed":
                if run_id not in state.failed_runs:
                    state.failed_runs.append(run_id)
                run_id = None
            else:  # running or interrupted: its process died (kill -9) in the middle; continue it
                self.progress(f"{state.day}: resuming {pipeline.name} run {run_id}")
                return self.runner.resume(run_id, pipeline)
        overrides = check_run(pipeline, config)
        run = self.runs.start(pipeline.name, overrides, source=self.sources.get(kind, f"loop:{self.config.model}"), seed=0,
                              code_version=self.code_version,
                              lease_s=self.runner.lease_s)
        setattr(state, attr, run.id)
        self.state["runs"] = int(self.state.get("runs", 0)) + 1
        self.state.setdefault("sequence", []).append([kind, state.day])  # the catch-up order, as it happened
        self.state["sequence"] = self.state["sequence"][-1000:]
        self.put(state)  # recorded before it executes: a kill from here on resumes this very run
        self.progress(f"{state.day}: {pipeline.name} run {run.id}")
        return self.runner.resume(run.id, pipeline)

    def _attempt(self, kind: str, state: DayState, attr: str, config: dict[str, Any]) -> Any | None:
        """:meth:`_execute`, with failures counted, backed off on the clock, and alerted when exhausted."""
        try:
            return self._execute(kind, state, attr, config)
        except YarnitError as exc:
            run_id = getattr(state, attr)
            if run_id and run_id not in state.failed_runs:
                state.failed_runs.append(run_id)
            setattr(state, attr, None)
            n = len(state.failed_runs)
            # bad data or a bad config (validation's blocking anomalies, a refused parameter) gives the same
            # answer on the same inputs: it is not retried
            permanent = isinstance(getattr(exc, "cause", exc), InvalidInput)
            state.note = (f"{kind} failed (attempt {n} of {self.config.max_attempts}"
                          f"{', not retried: the same inputs give the same answer' if permanent else ''}): {exc}")[:2000]
            if n >= self.config.max_attempts or permanent:
                state.phase = "failed"
                state.next_attempt_at = None
                self._alert(state, kind, str(exc))
            else:
                wait = self.config.backoff_s * 2 ** (n - 1)
                state.next_attempt_at = (self.ws.clock.now() + timedelta(seconds=wait)).isoformat()
            self.put(state)
            self.progress(f"{state.day}: {state.note}")
            return None

    def _due(self, state: DayState) -> bool:
        return state.next_attempt_at is None or datetime.fromisoformat(state.next_attempt_at) <= self.ws.clock.now()

    # -- one tick ------------------------------------------------------------------------------------------------
    def tick(self) -> dict[str, Any]:
        """One bounded pass in priority order (CH7-R15): the newest window's days, its training, then backfill.

        Takes the lease for the pass unless :meth:`run` holds it (a second loop is refused, naming the holder).
        """
        if self.lease._fd is None:
            with self.lease:
                return self._tick()
        return self._tick()

    def _tick(self) -> dict[str, Any]:
        now = self.ws.clock.now()
        self._tick_start = int(self.state.get("runs", 0))
        available = [d for d in world_days(self.world) if closes_at(d, self.config.log_close_h) <= now]
        fresh, backfill = self._ingest_order(available)
        for day in fresh:
            if self._budget_left():
                self._ingest(day, now)
        self._mark_superseded(available)
        self._after_removal(available)
        target = self._trainable(available)
        if target is not None and self._budget_left():
            self._train(target, available)
        elif self._budget_left():
            self._retrain(available)
        for day in backfill:
            if self._budget_left():
                self._ingest(day, now)
        self._mark_superseded(available)
        self._step_rollouts()
        self._sync_dependents()
        self.state["ticks"] = int(self.state.get("ticks", 0)) + 1
        self.state["last_tick"] = now.isoformat()
        self.save()
        return self.status()

    def _budget_left(self) -> bool:
        return int(self.state.get("runs", 0)) - self._tick_start < self.config.max_runs_per_tick

    def _ingest_order(self, available: list[date]) -> tuple[list[date], list[date]]:
        """Pending days: the newest window's, newest first (freshness); then the older ones, oldest first."""
        pending = [d for d in available if self.day(d).phase in ("in", "waiting_labels")]
        if not pending:
            return [], []
        newest = max(available)
        window = {newest - timedelta(days=k) for k in range(self.config.window_days)}
        return sorted((d for d in pending if d in window), reverse=True), sorted(d for d in pending if d not in window)

    def _reference_rate(self, day: date) -> float | None:
        rates = sorted(float(s["label"]["rate"]) for k, s in self.state["days"].items()
                       if k != day.isoformat() and s.get("label") and s["label"].get("complete"))
        return rates[len(rates) // 2] if rates else None

    def _ingest(self, day: date, now: datetime) -> None:
        state = self.day(day)
        if state.phase == "waiting_labels" and state.checked_at == now.isoformat():
            return
        if not self._due(state):
            return
        config = {"world": self.world, "day": day.isoformat(), "as_of": now.isoformat(),
                  "dataset": self.config.dataset, "reference_rate": self._reference_rate(day), **self.config.day}
        if state.checked_at != now.isoformat() and state.ingest_run is not None:
            run = self.runs.get(state.ingest_run)
            if run.config.get("as_of") != now.isoformat():
                state.ingest_run = None  # an earlier check: join again as of now
        result = self._attempt("day", state, "ingest_run", config)
        if result is None:
            return
        state.checked_at = now.isoformat()
        state.clean = result.value("quarantine", "clean")
        state.quarantine = result.value("quarantine", "quarantine")
        state.label = result.value("labels", "report")
        try:
            state.checks = result.value("checks", "report")
        except (KeyError, YarnitError):  # a day run of before the checks step
            state.checks = None
        state.failed_runs, state.next_attempt_at = [], None
        data_alerts(self.ws, self.config.model, state.day, state.checks, state.clean)
        if state.label["complete"]:
            state.phase, state.note = "ready", state.label["note"]
            label_alert(self.ws, self.config.model, state.day, state.label, held=False, window=day_window(day))
        elif now - closes_at(day, self.config.log_close_h) >= timedelta(hours=self.config.max_label_wait_h):
            state.phase = "skipped"
            state.note = f"labels still incomplete after {self.config.max_label_wait_h:g} h: {state.label['note']}"
            self._alert(state, "labels", state.note)
        else:
            state.phase, state.note = "waiting_labels", state.label["note"]
            label_alert(self.ws, self.config.model, state.day, state.label, held=True, window=day_window(day))
        self.put(state)

    def _window_of(self, day: date, available: list[date]) -> list[date]:
        first = min(available) if available else day
        return [d for d in (day - timedelta(days=k) for k in range(self.config.window_days - 1, -1, -1)) if d >= first]

    def _trainable(self, available: list[date]) -> date | None:
        """The newest day whose whole window has complete labels, if it still needs training."""
        through = self.state.get("trained_through")
        for day in sorted(available, reverse=True):
            state = self.day(day)
            if state.phase in FINAL or (through and day.isoformat() <= through):
                continue
            if state.phase not in ("ready", "window", "train"):
                continue
            window = self._window_of(day, available)
            if len(window) < self.config.min_window_days:
                continue
            if all(self.day(d).phase not in ("in", "waiting_labels", "skipped") for d in window) and self._due(state):
                return day
        return None

    def _mark_superseded(self, available: list[date]) -> None:
        through = self.state.get("trained_through")
        if not through:
            return
        for day in available:
            state = self.day(day)
            if day.isoformat() <= through and state.phase in ("ready", "window", "train") and not state.retrain:
                state.phase, state.note = "superseded", f"its data is in the window trained through {through}"
                self.put(state)

    def _train(self, day: date, available: list[date]) -> None:
        state = self.day(day)
        frozen = _frozen(self.ws, self.config.model)
        if frozen:
            if state.note != f"training frozen: {frozen}":
                state.note = f"training frozen: {frozen}"
                self.put(state)
            self.progress(f"{day}: training of {self.config.model} is frozen ({frozen}); the day waits")
            return
        from yarnit.evaluation.validity import start_validity_workers

        start_validity_workers()  # the ctr run's validity check forks from it: started, it imports while we train
        window = self._window_of(day, available)
        if state.phase == "ready":
            state.phase = "window"
            self.put(state)
        if state.phase == "window":
            if not self._budget_left():
                return
            daily = [self.day(d).clean["id"] for d in window]  # type: ignore[index]
            removed = removed_windows(self.ws, (self.config.dataset, f"{self.config.dataset}-daily"))
            result = self._attempt("window", state, "window_run", {
                "dataset": self.config.dataset, "daily": daily, "window": f"{window[0]}..{window[-1]}",
                "removed": removed})
            if result is None:
                return
            state.window = result.value("assemble", "window")
            state.phase, state.failed_runs, state.next_attempt_at = "train", [], None
            self.put(state)
        if not self._budget_left() and state.train_run is None:
            return
        controller = self._staged_rollouts()
        removed = removed_windows(self.ws, (self.config.dataset, f"{self.config.dataset}-daily"))
        config = {"source": "dataset", "dataset": self.config.dataset, "dataset_version": state.window["version"],
                  "model": self.config.model, "warm_start": True, "promote": controller is None,
                  **({"removed": [list(map(str, w)) for w in removed]} if removed else {}), **self.config.pipeline}
        result = self._attempt("train", state, "train_run", config)
        if result is None:
            return
        out = result.value("register", "model_version")
        state.version, state.promoted, state.decision = out["version"], out["promoted"], out["summary"]
        if controller is not None and out["blessed"]:
            state.rollout = self._start_rollout(controller, out["version"])
        state.phase, state.failed_runs, state.next_attempt_at = "done", [], None
        self.state["trained_through"] = max(day.isoformat(), self.state.get("trained_through") or "")
        self._answer_retrains(state, available, out["version"])
        self.put(state)
        self.progress(f"{day}: {out['summary']}")

    def _answer_retrains(self, state: DayState, available: list[date], version: int) -> None:
        """A model trained without the removed data answers this day's retrain requests, and those of a failed
        retrain before it (its window left the same removed data out)."""
        failed = [self.day(d) for d in available if d.isoformat() != state.day and self.day(d).retrain
                  and self.day(d).phase == "failed"]
        for holder in [state, *failed]:
            if not holder.retrain:
                continue
            from yarnit.continuous.actions import complete_retrain  # only with retrains: the module may be absent

            for request in holder.retrain:
                complete_retrain(self.ws, request, actor=f"loop:{self.config.model}",
                                 note=f"retrained as version {version} on {state.window['ref']}")
            if holder is state:
                state.note = f"retrained for {', '.join(holder.retrain)}"
            holder.retrain = None
            if holder is not state:
                self.put(holder)

    def _after_removal(self, available: list[date]) -> None:
        """New removed windows (``remove_bad_data``): a failed day whose window they touch is tried again."""
        removed = removed_windows(self.ws, (self.config.dataset, f"{self.config.dataset}-daily"))
        if removed == self.state.get("removed_seen", []):
            return
        self.state["removed_seen"] = removed
        touched = {str(start)[:10] for _col, start, _end in removed}
        for day in available:
            state = self.day(day)
            if state.phase == "failed" and touched & {d.isoformat() for d in self._window_of(day, available)}:
                state.phase, state.window_run, state.train_run, state.failed_runs = "ready", None, None, []
                state.note = f"tried again without the removed data {removed}"
                self.put(state)

    def _retrain(self, available: list[date]) -> None:
        """Answer pending retrain requests (``remove_bad_data``): the newest trained window again, without them."""
        from yarnit.continuous.actions import pending_retrains

        busy = [d for d in available if self.day(d).retrain and self.day(d).phase != "failed"]
        if busy:  # a retrain under way (a failed one is not tried again every tick: the next window answers it)
            if self._due(self.day(busy[-1])):
                self._train(busy[-1], available)
            return
        through = self.state.get("trained_through")
        pending = pending_retrains(self.ws, self.config.model)
        if not pending or not through or _frozen(self.ws, self.config.model):
            return
        state = self.day(date.fromisoformat(through))
        if state.phase != "done":
            return
        state.retrain = [r["id"] for r in pending]
        state.phase, state.window_run, state.train_run, state.window = "window", None, None, None
        state.note = f"retraining without removed data for {', '.join(state.retrain)}"
        self.put(state)
        self._train(date.fromisoformat(through), available)

    # -- rollouts (when asked for and yarnit.continuous.rollout exists) -----------------------------------------------
    def _staged_rollouts(self) -> Any:
        """The rollout controller class when this version goes through a staged rollout, else None (promote)."""
        from yarnit.registry import ModelRegistry

        if self.config.rollout is None:
            return None
        controller = _rollout_controller()
        if controller is None or "production" not in ModelRegistry(self.ws).aliases(self.config.model):
            return None  # the first version has no baseline to judge a canary against: it is promoted directly
        return controller

    def _controller(self, controller: Any) -> Any:
        return controller(self.ws, self.config.model, clock=self.ws.clock, config=_rollout_config(self.config.rollout))

    def _start_rollout(self, controller: Any, version: int) -> dict[str, Any]:
        from yarnit.registry import ModelRegistry

        halt = ModelRegistry(self.ws).release_refusal(self.config.model, version, "production")
        if halt is not None:
            return {"started": False, "why": f"releases are halted: {halt}"}
        try:
            rollout = self._controller(controller)
            started = rollout.start(version, actor=f"loop:{self.config.model}")
        except YarnitError as exc:
            return {"started": False, "why": str(exc)}
        return {"started": True, "rollout": started if isinstance(started, dict) else str(started)}

    def _step_rollouts(self) -> None:
        controller = _rollout_controller()
        if controller is None or not any((s.get("rollout") or {}).get("started") for s in self.state["days"].values()):
            return
        try:
            result = self._controller(controller).step()
        except YarnitError as exc:
            self.progress(f"rollout step: {exc}")
            return
        self.state["last_rollout_step"] = result if isinstance(result, dict) else str(result)

    def _sync_dependents(self) -> None:
        """Models that read this one are evaluated with each new version of it (book ch. 15, case 6)."""
        from .dependencies import ModelDependencies

        try:
            outcomes = ModelDependencies(self.ws).sync(upstream=self.config.model)
        except YarnitError as exc:
            self.progress(f"dependents: {exc}")
            return
        if outcomes:
            self.state["dependents"] = outcomes[-20:]

    # -- alerts -------------------------------------------------------------------------------------------------------
    def _alert(self, state: DayState, kind: str, why: str) -> None:
        """An open ticket in the monitor's alert store (where ``yarnit alerts`` and incidents read alerts)."""
        from yarnit.core.ids import new_id
        from yarnit.monitoring.alerts import Alert, AlertStore, alerts_path
        from yarnit.monitoring.workspace import monitoring_dir

        if kind == "labels":  # the held-labels ticket: the day is no longer waiting, it was given up
            from .loop_alerts import open_alert, update_alert

            held = open_alert(self.ws, f"loop:{self.config.model}:labels")
            if held is not None:
                update_alert(self.ws, held["slo_id"], {
                    "waiting": [d for d in held["evidence"].get("waiting") or [] if d != state.day],
                    "skipped": sorted({*(held["evidence"].get("skipped") or []), state.day})}, resolve=False,
                    because="")
        store = AlertStore.open(alerts_path(monitoring_dir(self.ws.home)))
        now = self.ws.clock.now().isoformat()
        slo_id = f"loop:{self.config.model}:{kind}"
        summary = (f"The continuous loop of {self.config.model} gave up on {state.day} ({kind}) after "
                   f"{len(state.failed_runs)} failed run(s); nothing was promoted. {why}")[:1000]
        open_ = store.open_alert(slo_id, "ticket")
        if open_ is not None:
            open_.updated_at, open_.summary = now, summary
            open_.evidence = open_.evidence | {"days": [*open_.evidence.get("days", []), state.day]}
        else:
            store.alerts.append(Alert(
                id=new_id("alert", self.ws.clock), slo_id=slo_id, service=f"yarnit-loop-{self.config.model}",
                slo=f"loop {kind}", sli="pipeline_success", model=self.config.model, alert="ticket",
                alert_name=f"YarnitLoop{kind.capitalize()}Failed", severity="ticket", state="firing",
                started_at=now, updated_at=now, ended_at=None, summary=summary,
                runbook="yarnit loop status; yarnit runs show RUN; fix the cause, then yarnit runs resume RUN",
                evidence={"days": [state.day], "failed_runs": list(state.failed_runs)}))
        store.save()

    # -- running ------------------------------------------------------------------------------------------------------
    def run(self, *, ticks: int | None = None, until: datetime | None = None, interval_s: float = 3600.0,
            sleep: Callable[[float], None] | None = None) -> dict[str, Any]:
        """Tick, then advance a simulated clock (or ``sleep`` on a real one) by ``interval_s``, until done.

        Holds the lease for the whole run. Stops after ``ticks`` ticks or once the clock passes ``until``.
        """
        if interval_s <= 0:
            raise InvalidInput(f"The loop's interval must be positive; got {interval_s} s (e.g. --interval 1h).")
        with self.lease:
            done = 0
            while True:
                self.tick()
                self.lease.beat()
                done += 1
                if ticks is not None and done >= ticks:
                    break
                if until is not None and self.ws.clock.now() + timedelta(seconds=interval_s) > until:
                    break
                if hasattr(self.ws.clock, "advance"):
                    self.ws.clock.advance(interval_s)
                    self.save()
                else:
                    (sleep or _real_sleep)(interval_s)
        return self.status()

    def status(self) -> dict[str, Any]:
        return loop_status(self.ws.home, self.config.model, lease=self.lease, state=self.state)


def _real_sleep(seconds: float) -> None:
    import time

    time.sleep(seconds)  # the real clock's wait between ticks; a simulated clock advances instead


def loop_status(home: str | Path, model: str, *, lease: LoopLease | None = None,
                state: dict[str, Any] | None = None, clock: Any = None) -> dict[str, Any]:
    """The loop's progress: days by phase, each day's outcome, and who holds the lease."""
    state = state if state is not None else load_state(home, model)
    lease = lease or LoopLease(home, model, clock=clock)
    days = [{"day": k, **{f: v for f, v in s.items() if f != "day"}} for k, s in sorted(state["days"].items())]
    phases: dict[str, int] = {}
    for d in days:
        phases[d["phase"]] = phases.get(d["phase"], 0) + 1
    held = lease._fd is not None or lease.held_elsewhere()
    return {"model": model, "world": state.get("world"), "clock": state.get("clock"), "ticks": state.get("ticks", 0),
            "last_tick": state.get("last_tick"), "runs": state.get("runs", 0),
            "trained_through": state.get("trained_through"), "phases": phases,
            "quarantined": sum(int((d.get("quarantine") or {}).get("rows", 0)) for d in days),
            "versions": [d["version"] for d in days if d.get("version") is not None],
            "lease": {"held": held, "holder": lease.holder() if held else None}, "days": days}


__all__ = ["ContinuousLoop", "DayState", "LoopConfig", "LoopLease", "continuous_dir",
           "load_state", "loop_status", "state_path"]
