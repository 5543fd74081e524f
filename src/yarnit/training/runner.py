"""The pipeline runner: records, caches, retries, times out and resumes steps.

* **Records.** Every run and step goes to the metadata store: state,
  start/end, inputs, outputs, logs, wall and CPU time, peak memory, rows and
  rows/s (training throughput, the ch. 7 alert signal).
* **Caches.** A step's cache key hashes the pipeline and step names, the
  step's code, its merged config, the run seed and its input entries. A hit
  reuses the stored outputs, so rerunning an unchanged pipeline does no work.
* **Resumes.** Outputs are committed step by step. ``resume`` reruns a failed
  or killed run from its first unfinished step and reuses the rest.
* **Retries** transient failures with exponential backoff, and **times out**
  steps that run too long.
* **Holds a lease.** While a run is alive a heartbeat thread renews its
  ``heartbeat_at`` every ``lease_s / 4`` seconds; a run whose process was
  killed reads as ``interrupted`` once its lease expires (``yarnit runs list``).
"""

from __future__ import annotations

import os
import resource
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from yarnit.core.atomic import pid_alive
from yarnit.core.errors import Conflict, InvalidInput, Unavailable, YarnitError
from yarnit.core.hashing import sha256_json
from yarnit.storage import Workspace, insert_ignore
from yarnit.storage.schema import step_cache

from .params import check_config
from .pipeline import Pipeline, Step
from .runs import DEFAULT_LEASE_S, Run, RunStore, StepRecord, detect_code_version
from .values import entry_available, load_value, store_value

Progress = Callable[[str, str], None]  # (step name, state)


class TransientStepError(YarnitError):
    """Raise from a step to ask for a retry (a flaky source, a busy service)."""


class StepFailed(YarnitError):
    def __init__(self, run_id: str, step: str, attempts: int, cause: BaseException) -> None:
        super().__init__(
            f"Step {step!r} of run {run_id} failed after {attempts} attempt(s): {type(cause).__name__}: "
            f"{str(cause).rstrip('.')}. "
            f"Fix the cause, then resume from this step with: yarnit runs resume {run_id}"
        )
        self.run_id, self.step, self.attempts, self.cause = run_id, step, attempts, cause


class StepTimedOut(YarnitError, TimeoutError):
    def __init__(self, step: str, timeout_s: float) -> None:
        super().__init__(f"Step {step!r} ran longer than its timeout of {timeout_s:g} s.")


TRANSIENT = (TransientStepError, Unavailable, ConnectionError, TimeoutError)


@dataclass
class StepContext:
    """What a step function receives as its first argument."""

    workspace: Workspace
    run_id: str
    pipeline: str
    step: str
    config: dict[str, Any]
    seed: int
    dask_client: Any = None
    logs: list[str] = field(default_factory=list)
    rows: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict)

    def log(self, message: str) -> None:
        """Append a line to the step's log (never put personal data here)."""
        self.logs.append(message)

    def count_rows(self, rows: int) -> None:
        """Declare how many rows the step processed (gives rows/s: training throughput)."""
        self.rows = int(rows)

    def metric(self, name: str, value: Any) -> None:
        """Record a run-level metric (shown by ``yarnit runs show``)."""
        self.metrics[name] = value


@dataclass(frozen=True)
class RunResult:
    run: Run
    steps: list[StepRecord]
    workspace: Workspace

    @property
    def id(self) -> str:
        return self.run.id

    def entry(self, step: str, output: str) -> dict[str, Any]:
        for record in self.steps:
            if record.step == step and record.outputs is not None:
                return dict(record.outputs[output])
        raise InvalidInput(f"Run {self.run.id} has no output {step}.{output}.")

    def value(self, step: str, output: str) -> Any:
        return load_value(self.workspace.artifacts, self.entry(step, output))


def merged_config(pipeline: Pipeline, step: Step, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Pipeline defaults < step defaults < run overrides (``key`` for all steps, ``step.key`` for one)."""
    config = {**pipeline.config, **step.config}
    config.update({k: v for k, v in overrides.items() if "." not in k})
    prefix = f"{step.name}."
    config.update({k[len(prefix):]: v for k, v in overrides.items() if k.startswith(prefix)})
    return config


def check_run(pipeline: Pipeline, config: Mapping[str, Any] | None, *, dask: bool = False) -> dict[str, Any]:
    """Refuse a run before anything is recorded or started: a broken graph, an unknown parameter or a bad
    value, or Dask that no step of this configuration can use. Returns the checked overrides."""
    pipeline.order()
    checked = check_config(pipeline, config or {})
    if dask:
        users = [s for s in pipeline.steps if s.dask is not None]
        if not users:
            raise InvalidInput(f"Pipeline {pipeline.name!r} has no step that can run on Dask; run it without --dask.")
        for step in users:
            step.dask(merged_config(pipeline, step, checked))
    return checked


def _call(fn: Callable[[], dict[str, Any]], step: str, timeout_s: float | None) -> dict[str, Any]:
    if timeout_s is None:
        return fn()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed back to the runner's thread
            box["error"] = exc

    # The step runs in a daemon thread; after a timeout it is abandoned (Python
    # threads cannot be killed) and dies with the process.
    worker = threading.Thread(target=target, name=f"step-{step}", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        raise StepTimedOut(step, timeout_s)
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


class _Heartbeat:
    """Renews a run's lease every ``interval_s`` seconds in a daemon thread until the run ends."""

    def __init__(self, runs: RunStore, run_id: str, interval_s: float) -> None:
        self.runs, self.run_id, self.interval_s = runs, run_id, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-{run_id}", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.runs.beat(self.run_id)
            except SQLAlchemyError:  # a busy store: the next beat retries; only a whole lease of misses shows
                continue


def _lineage(workspace: Workspace) -> Any:
    from yarnit.data import Lineage  # local: yarnit.data imports the registry, which imports nothing from here

    return Lineage(workspace)


class PipelineRunner:
    """Runs pipelines in a workspace.

    ``lease_s`` is how long (workspace clock) a run counts as alive after its
    last heartbeat; ``heartbeat_s`` how often (seconds) the runner renews it
    (default: a quarter of the lease).
    """

    def __init__(self, workspace: Workspace, *, sleep: Callable[[float], None] = time.sleep,
                 dask_client: Any = None, lease_s: float = DEFAULT_LEASE_S, heartbeat_s: float | None = None) -> None:
        self.ws = workspace
        self.runs = RunStore(workspace)
        self.sleep = sleep
        self.dask_client = dask_client
        self.lease_s = lease_s
        self.heartbeat_s = heartbeat_s if heartbeat_s is not None else lease_s / 4

    def run(self, pipeline: Pipeline, *, config: Mapping[str, Any] | None = None, seed: int = 0,
            source: str | None = None, force: bool = False, progress: Progress | None = None,
            reproduces: str | None = None, reuse: Mapping[str, dict[str, Any]] | None = None) -> RunResult:
        """Start a new run of ``pipeline`` and execute it.

        ``force`` ignores the step cache; ``reuse`` hands recorded outputs to
        the named steps instead of running them (reproduction pins data).
        """
        overrides = check_run(pipeline, config, dask=self.dask_client is not None)  # before recording anything
        run = self.runs.start(pipeline.name, overrides, code_version=detect_code_version(),
                              source=source or f"python:{pipeline.name}", seed=seed, reproduces=reproduces,
                              lease_s=self.lease_s)
        for step, outputs in (reuse or {}).items():
            self.runs.step_started(run.id, step, attempts=0, cache_key=None, inputs={})
            self.runs.step_finished(run.id, step, state="cached", outputs=outputs,
                                    logs=[f"outputs reused from run {reproduces} (reproduction)"])
        return self._execute(run, pipeline, force=force, progress=progress)

    def resume(self, run_id: str, pipeline: Pipeline, *, progress: Progress | None = None) -> RunResult:
        """Continue a failed or killed run from its first unfinished step."""
        run = self.runs.get(run_id)
        if run.pipeline != pipeline.name:
            raise InvalidInput(f"Run {run_id} is of pipeline {run.pipeline!r}, not {pipeline.name!r}.")
        if run.state == "succeeded":
            raise Conflict(f"Run {run_id} already succeeded; nothing to resume. Start a new run instead.")
        owner, host = run.environment.get("pid"), run.environment.get("host")
        if run.state == "running" and host == socket.gethostname() and isinstance(owner, int) \
                and owner != os.getpid() and pid_alive(owner):
            raise Conflict(f"Run {run_id} is still running in process {owner}; wait for it or stop it first.")
        if run.state == "running" and host != socket.gethostname():  # its lease is fresh: it may be alive there
            raise Conflict(
                f"Run {run_id} is running on host {host!r} (last heartbeat {run.heartbeat_at}); resume it once "
                f"its lease of {run.lease_s or DEFAULT_LEASE_S:g} s has expired and it shows as interrupted."
            )
        check_run(pipeline, run.config, dask=self.dask_client is not None)
        run = self.runs.reopen(run_id, lease_s=self.lease_s)
        return self._execute(run, pipeline, force=False, progress=progress)

    # ------------------------------------------------------------------
    def _execute(self, run: Run, pipeline: Pipeline, *, force: bool, progress: Progress | None) -> RunResult:
        entries: dict[str, dict[str, Any]] = {}
        metrics: dict[str, Any] = dict(run.metrics)
        seed = run.seed or 0
        try:
            with _Heartbeat(self.runs, run.id, self.heartbeat_s):
                self._steps(run, pipeline, entries, seed, force, metrics, progress)
        except StepFailed as failure:
            self.runs.finish(run.id, "failed", metrics, error=str(failure))
            raise
        except BaseException as exc:
            self.runs.finish(run.id, "failed", metrics, error=f"{type(exc).__name__}: {exc}")
            raise
        final = self.runs.finish(run.id, "succeeded", metrics)
        return RunResult(final, self.runs.steps(run.id), self.ws)

    def _steps(self, run: Run, pipeline: Pipeline, entries: dict[str, dict[str, Any]], seed: int, force: bool,
               metrics: dict[str, Any], progress: Progress | None) -> None:
        for step in pipeline.order():
            previous = self.runs.step(run.id, step.name)
            if previous is not None and previous.state in ("succeeded", "cached") and previous.outputs \
                    and all(entry_available(self.ws.artifacts, e) for e in previous.outputs.values()):
                entries[step.name] = previous.outputs
                if progress:
                    progress(step.name, "done earlier")
                continue
            entries[step.name] = self._run_step(run, pipeline, step, entries, seed, force, metrics, progress)

    def _run_step(self, run: Run, pipeline: Pipeline, step: Step, entries: dict[str, dict[str, Any]], seed: int,
                  force: bool, metrics: dict[str, Any], progress: Progress | None) -> dict[str, Any]:
        config = merged_config(pipeline, step, run.config)
        inputs = {param: entries[src.split(".")[0]][src.split(".", 1)[1]] for param, src in step.inputs.items()}
        _lineage(self.ws).record_run_inputs(run.id, inputs)  # versions another run made, read by this one
        client = self.dask_client if step.dask is not None else None
        # the backend is part of the key where it can change the outputs (a model trained on Dask differs)
        backend = {"backend": "dask"} if client is not None else {}
        key = sha256_json({"pipeline": pipeline.name, "step": step.name, "code": step.code_version(),
                           "config": config, "seed": seed,
                           "inputs": {p: e["sha256"] for p, e in sorted(inputs.items())}} | backend)
        if step.cacheable and not force:
            cached = self._cached(key)
            if cached is not None:
                self.runs.step_started(run.id, step.name, attempts=0, cache_key=key, inputs=inputs)
                self.runs.step_finished(run.id, step.name, state="cached", outputs=cached,
                                        logs=["outputs reused from the step cache"])
                if progress:
                    progress(step.name, "cached")
                return cached
        attempts = 0
        while True:
            attempts += 1
            self.runs.step_started(run.id, step.name, attempts=attempts, cache_key=key, inputs=inputs)
            if progress:
                progress(step.name, "running" if attempts == 1 else f"retry {attempts - 1}")
            ctx = StepContext(self.ws, run.id, pipeline.name, step.name, config, seed, client)
            wall0, cpu0 = time.perf_counter(), time.process_time()
            try:
                values = _call(lambda: self._invoke(step, ctx, inputs), step.name, step.timeout_s)
                outputs = self._store_outputs(step, values)
            except BaseException as exc:
                wall = time.perf_counter() - wall0
                retry = isinstance(exc, TRANSIENT) and attempts <= step.retries
                self.runs.step_finished(run.id, step.name, state="failed", error=f"{type(exc).__name__}: {exc}",
                                        logs=ctx.logs, wall_s=wall, cpu_s=time.process_time() - cpu0)
                if retry:
                    self.sleep(step.backoff_s * 2 ** (attempts - 1))
                    continue
                if progress:
                    progress(step.name, "failed")
                metrics.update(ctx.metrics)  # what a failing check measured is the record of why (golden.correct)
                if isinstance(exc, Exception):
                    raise StepFailed(run.id, step.name, attempts, exc) from exc
                raise
            wall = time.perf_counter() - wall0
            rows_per_s = ctx.rows / wall if ctx.rows and wall > 0 else None
            with self.ws.metadata.begin() as conn:  # the step's record and its cache entry: one transaction
                self.runs.step_finished(
                    run.id, step.name, state="succeeded", outputs=outputs, logs=ctx.logs, wall_s=wall,
                    cpu_s=time.process_time() - cpu0,
                    peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                    rows=ctx.rows, rows_per_s=rows_per_s, conn=conn,
                )
                if step.cacheable:
                    conn.execute(insert_ignore(conn, step_cache).values(
                        cache_key=key, pipeline=pipeline.name, step=step.name, outputs=outputs, run_id=run.id,
                        created_at=self.ws.clock.now()))
            metrics.update(ctx.metrics)
            if rows_per_s is not None:
                metrics[f"{step.name}.rows_per_s"] = rows_per_s
            if progress:
                progress(step.name, "done")
            return outputs

    def _invoke(self, step: Step, ctx: StepContext, inputs: dict[str, dict[str, Any]]) -> dict[str, Any]:
        kwargs = {param: load_value(self.ws.artifacts, entry) for param, entry in inputs.items()}
        values = step.fn(ctx, **kwargs)
        if not isinstance(values, dict) or set(values) != set(step.outputs):
            got = sorted(values) if isinstance(values, dict) else type(values).__name__
            raise InvalidInput(
                f"Step {step.name!r} must return a dict with exactly the outputs {sorted(step.outputs)}; got {got}."
            )
        return values

    def _store_outputs(self, step: Step, values: dict[str, Any]) -> dict[str, Any]:
        return {name: store_value(self.ws.artifacts, kind, values[name]) for name, kind in step.outputs.items()}

    def _cached(self, key: str) -> dict[str, Any] | None:
        with self.ws.metadata.begin() as conn:
            row = conn.execute(select(step_cache.c.outputs).where(step_cache.c.cache_key == key)).first()
        if row is None:
            return None
        outputs: dict[str, Any] = row[0]
        if not all(entry_available(self.ws.artifacts, e) for e in outputs.values()):
            return None  # an artifact was purged (e.g. a deletion request): recompute
        return outputs


__all__ = ["PipelineRunner", "check_run", "RunResult", "StepContext", "StepFailed", "StepTimedOut", "TransientStepError",
           "merged_config"]
