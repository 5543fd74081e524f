"""The 30-day operate demo: YarnIt's shoppers served over HTTP while the platform runs itself, twice.

One *run* is a whole month of the shop on a fresh workspace:

* the world's shoppers ask the real HTTP data plane (``POST
  /v1/models/ctr:predict``, one request per page) to rank their candidates;
  a seeded tenth of the pages go to ``POST /v1/models/yarnit-ranker:predict``
  instead, the ranking bundle pinning the production click model, re-pinned
  when ``ctr`` gets a new production version (:meth:`_Month._repin_ranker`).
  The server's clock is the world's :class:`~yarnit.core.clock.SimulatedClock`,
  moved to each page's time before its request, so the prediction log, the
  monitor, the loop and every audit record carry simulated time, and
  delayed labels join their predictions as they would in production;
* every simulated hour: the labels that arrived by then are ingested, the
  continuous loop ticks (a day's log is read once it closes at 06:00 the
  next day: quarantine, label join and completeness, data checks, training,
  the gate, a staged rollout), and the monitor runs (SLOs, burn-rate alerts,
  incidents and their mitigation policies). The server then re-reads aliases
  and traffic policies, as its watcher would;
* nothing in a run knows which faults were injected: detection and
  mitigation are the platform's own.

:func:`run_operate` runs the faulted month and the same seed without faults
side by side (one process each, so two cores finish both in the time of one)
and :mod:`yarnit.demo.analysis` turns both into the report: for each fault,
when it was injected, detected (by which alert), mitigated (by which action)
and over, and what it cost in clicks and revenue against the clean month.
"""

from __future__ import annotations

import gc
import json
import logging
import queue
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
import yaml

from yarnit.core.errors import InvalidInput
from yarnit.world import HttpRanker

Progress = Callable[[str], None]

#: The faults of the demo: the three stories of ch. 11 and ch. 15 case 5, each opening at noon of its day.
DEMO_FAULTS: tuple[tuple[str, str, str], ...] = (
    ("biased_loss@8+12,language=es,events=all", "data",
     "ch. 11 story 1: searching but not finding (a silent loss of the Spanish-language logs)"),
    ("partner_lookup@12+12:12", "serving", "ch. 11 story 2: suddenly useless partners (partner features empty)"),
    ("stockout@16+12:48,top_n=20", "data", "ch. 11 story 3: recommending what is out of stock"),
    ("click_log_outage@22+12", "labels", "ch. 15 case 5: clicks arrive two days late"),
)
#: The ranking service the shop also serves (a bundle pinning the production click model; ``recipes/ranker.py``).
RANKER = "yarnit-ranker"
#: How the bootstrap trains its recommenders and packages the first ranker: two days, the cheap recommenders
#: (no matrix factorization), a one-day closed loop against popularity of a small world. The same ranker config
#: packages every re-pin (:meth:`_Month._repin_ranker`).
RANKER_RECS: dict[str, Any] = {"days": 2, "recommenders": ["popular", "content", "browsing", "cross_sell"],
                               "golden_users": 4}
RANKER_RECS_SESSIONS = 500
RANKER_PIPELINE: dict[str, Any] = {"golden_users": 4, "loop_days": 1, "loop_sessions": 200}
#: Real seconds the shop waits for the server to finish a request it was answered before moving the clock.
SETTLE_S = 10.0
#: Time to detect a fault of each class (RELIABILITY.md and the issue): hours.
TTD_TARGET_H = {"serving": 2.0, "data": 24.0, "labels": 24.0}

#: The demo's SLOs: the example file's kinds, with the input check the partner story needs.
DEMO_SLOS: dict[str, Any] = {
    "service": "yarnit-shop",
    "alerts": {"sinks": [{"type": "file", "path": "alerts.jsonl"}]},
    "slos": [
        # a 7-day window: an outage's fallback answers spend the budget and halt releases for a week, not a month
        {"name": "ctr-availability", "sli": "serving_availability", "model": "ctr", "objective": 99.0,
         "window": "7d", "alerting": {"no_data_window": "1d"}, "description": "Pages ranked by the model (not a fallback, not an error)."},
        {"name": "ctr-latency", "sli": "serving_latency", "model": "ctr", "objective": 99.0, "window": "28d",
         "params": {"threshold_ms": 500}, "alerting": {"no_data_window": "1d"}, "description": "Pages ranked within 500 ms."},
        {"name": "ctr-inputs", "sli": "input_completeness", "model": "ctr", "objective": 99.0, "window": "28d",
         "alerting": {"no_data_window": "1d"}, "description": "Served rows whose features were all present."},
        {"name": "ctr-labels", "sli": "label_completeness", "model": "ctr", "target": 0.95, "window": "28d",
         "params": {"label_delay": "32h"}, "alerting": {"page": []},
         "description": "Predictions whose click label arrived within 32 h (the day's log closes at 06:00 the "
                        "next day)."},
        {"name": "ctr-model-fresh", "sli": "model_freshness", "model": "ctr", "objective": 95.0, "window": "28d",
         "params": {"max_age": "4d"}, "alerting": {"page": []},
         "description": "Minutes in which production was at most 4 days old."},
    ],
}


@dataclass(frozen=True)
class OperateConfig:
    """What the demo simulates. ``faults``: (spec, class, story) triples; empty for a clean month only."""

    days: int = 30
    seed: int = 0
    sessions_per_day: int = 500
    n_users: int = 3000
    faults: tuple[tuple[str, str, str], ...] = DEMO_FAULTS
    rollout: bool = True
    bootstrap_days: int = 3
    # the share of the shop's pages ranked by yarnit-ranker (picked by a seeded hash of the page's session id;
    # the rest are scored by the click model ctr); 0: the click model alone, no ranker trained. A tenth: every
    # page the ranker takes is one the click model's canary analysis does not see, and at a fifth its stages
    # waited hours longer for their samples (10 days, seed 0: 2 and 6 staged rollouts reached production without
    # the ranker, 0 and 1 at a fifth, 2 and 5 at a tenth; docs/design.md, h41)
    ranker_share: float = 0.1
    # the two months' workspaces are scratch (the next demo replaces them): their writes stay atomic against a
    # killed process but are not fsynced (core.atomic.set_durable), as a throwaway database runs with fsync off.
    # 720 simulated hours write hourly state (loop, lease, monitor windows, SLO history, SQLite commits, the
    # prediction log): some 17,000 fsyncs a month, each a few ms of waiting in minutes of real time. True (the CLI's
    # --durable) syncs every write as a production workspace does, and measures that.
    durable: bool = False
    # c=0.1: the value the pipeline's own tune step finds best on this shop's days (the default 1.0 overfits a
    # small shop's few thousand rows a day); fairness by site language is measured on every candidate (about
    # no CPU at 50 resamples: the evaluate step's CPU did not move; docs/design.md, h34)
    pipeline: dict[str, Any] = field(default_factory=lambda: {
        "bootstrap_resamples": 50, "golden_rows": 500, "slices": ["device"], "fairness_groups": ["language"],
        "trainer_params": {"c": 0.1}})

    def __post_init__(self) -> None:
        if isinstance(self.ranker_share, bool) or not 0.0 <= float(self.ranker_share) <= 1.0:
            raise InvalidInput(f"ranker_share is the share of pages yarnit-ranker ranks, in [0, 1]; got "
                               f"{self.ranker_share!r}.")
        if not 10 <= self.days <= 60:
            raise InvalidInput(f"The operate demo simulates 10 to 60 days (a week of history before the first "
                               f"fault, and days for it to recover); got --days {self.days}.")
        from yarnit.world.faults import parse_fault

        for spec, kind, _story in self.faults:
            fault = parse_fault(spec)
            if kind not in TTD_TARGET_H:
                raise InvalidInput(f"Fault {spec!r}: class must be one of {sorted(TTD_TARGET_H)}, got {kind!r}.")
            if fault.day >= self.days - 1:
                raise InvalidInput(f"Fault {spec!r} starts on day {fault.day}; with --days {self.days} it needs a "
                                   "day after it to be seen. Use more days.")


def run_operate(root: str | Path, config: OperateConfig | None = None, *, progress: Progress = lambda _m: None,
                parallel: bool = True) -> dict[str, Any]:
    """Run the faulted and the clean month (in two processes when ``parallel``); return the report."""
    from .analysis import build_report

    config = config or OperateConfig()
    root = prepare_out(Path(root))
    started = time.monotonic()
    jobs = {"faulted": (str(root / "faulted"), config, True), "clean": (str(root / "clean"), config, False)}
    if parallel:
        context = get_context("spawn")  # a clean interpreter each: no server thread or lock crosses a fork
        with context.Manager() as manager, ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
            messages = manager.Queue()
            futures = {name: pool.submit(simulate, *args, None, messages, name) for name, args in jobs.items()}
            while not all(f.done() for f in futures.values()):
                try:
                    progress(messages.get(timeout=0.5))
                except queue.Empty:
                    continue
            runs = {name: future.result() for name, future in futures.items()}
            for name, run in runs.items():
                progress(f"{name} month done in {run['elapsed_s']:.0f} s")
    else:
        runs = {}
        for name, args in jobs.items():
            runs[name] = simulate(*args, progress=lambda m, n=name: progress(f"{n}: {m}"))
    report = build_report(runs["faulted"], runs["clean"], config, elapsed_s=time.monotonic() - started)
    (root / "report.json").write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
    from .report import render_html

    (root / "report.html").write_text(render_html(report), encoding="utf-8")
    return report


def prepare_out(root: Path) -> Path:
    """An empty ``root`` for the two workspaces: a previous demo's output there is replaced, anything else refused."""
    import shutil

    if root.exists():
        if not root.is_dir():
            raise InvalidInput(f"{root} is a file; the demo needs a directory for its two workspaces (--out DIR).")
        entries = {p.name for p in root.iterdir()}
        if entries and not entries <= {"faulted", "clean", "report.json", "report.html"}:
            raise InvalidInput(f"{root} holds files that are not a previous demo's ({sorted(entries)[:5]}): the demo "
                               "would not delete them. Pick another directory with --out DIR.")
        shutil.rmtree(root)
    root.mkdir(parents=True)
    return root


# -- one month ---------------------------------------------------------------------------------------------------------
def simulate(home: str, config: OperateConfig, with_faults: bool, progress: Progress | None = None,
             messages: Any = None, label: str = "") -> dict[str, Any]:
    """One month on a fresh workspace under ``home``; what happened, as plain data (it crosses processes).

    Progress goes to ``progress``, or as ``"<label>: <message>"`` to the queue ``messages`` (another process).
    """
    from yarnit.core.atomic import set_durable

    logging.getLogger("yarnit").setLevel(logging.WARNING)
    if progress is None:
        progress = (lambda m: messages.put(f"{label}: {m}")) if messages is not None else (lambda _m: None)
    started, cpu = time.monotonic(), time.process_time()
    was_durable = set_durable(config.durable)  # before the workspace opens: its SQLite connections read it
    try:
        month = _Month(Path(home), config, with_faults, progress)
        try:
            month.run()
        finally:
            month.close()
    finally:
        set_durable(was_durable)
    month.timings["total_cpu"] = time.process_time() - cpu  # this process (the validity children are apart)
    return month.record(time.monotonic() - started)


class _Month:
    def __init__(self, home: Path, config: OperateConfig, with_faults: bool, progress: Progress) -> None:
        from yarnit.core.clock import SimulatedClock
        from yarnit.core.settings import Settings
        from yarnit.storage import open_workspace
        from yarnit.world import WorldConfig
        from yarnit.world.faults import parse_fault

        self.config, self.progress, self.with_faults = config, progress, with_faults
        self.home = home
        faults = tuple(parse_fault(spec) for spec, _k, _s in config.faults) if with_faults else ()
        self.world_config = WorldConfig(seed=config.seed, sessions_per_day=config.sessions_per_day,
                                        n_users=config.n_users, faults=faults)
        self.start = self.world_config.start
        self.clock = SimulatedClock(self.start)
        self.ws = open_workspace(Settings.for_home(home / "home"), self.clock)
        self.world_dir = home / "world"
        self.pending_labels = pd.DataFrame()
        self.daily: list[dict[str, Any]] = []
        self.next_hour = self.start + timedelta(hours=1)
        self.app: Any = None
        self.server: Any = None
        self.ranker: Any = None
        self.hook_errors: list[str] = []
        self._settle_offset = 0  # requests the shop sent that the server never finished (see _settle)
        self.timings: dict[str, float] = {}  # real seconds per part of the month (where a slow demo spends it)
        self._timings_before: dict[str, float] = {}
        self._hourly_thread_cpu = 0.0  # this thread's CPU-s in the hourly steps (apart from the world's)
        self.world_faults = [f.to_dict(self.start) for f in faults]
        self.repins: list[dict[str, Any]] = []  # the ranker's re-pins and holds (see _repin_ranker)
        self.repins_seen: set[int] = set()
        self.pins: dict[int, int] = {}  # ranker version → the ctr version it pins (see _repin_ranker)

    # -- set-up --------------------------------------------------------------------------------------------------------
    def _bootstrap(self) -> None:
        """The first click model, trained on the shop's own world ranked by popularity (its catalog: a model
        of another seed's catalog would make every later window a price drift the validation step blocks)."""
        from yarnit.recipes import ctr_pipeline
        from yarnit.training import PipelineRunner

        self.progress("training the first model")
        PipelineRunner(self.ws).run(
            ctr_pipeline(), config={"days": self.config.bootstrap_days, "world_seed": self.config.seed,
                                    "sessions_per_day": self.config.sessions_per_day, **self.config.pipeline},
            seed=self.config.seed, source="builtin:yarnit-ctr")
        if self.config.ranker_share > 0:
            self._bootstrap_ranker()
        (self.ws.home / "slos.yaml").write_text(yaml.safe_dump(DEMO_SLOS, sort_keys=False), encoding="utf-8")
        (self.world_dir / "impressions").mkdir(parents=True)  # a written world, with no day in it yet
        (self.world_dir / "faults.json").write_text(json.dumps(self.world_faults, indent=1), encoding="utf-8")
        # triage lists the faults the world recorded (the simulation's ground truth, named as such)
        (self.ws.home / "incidents.yaml").write_text(yaml.safe_dump(
            {"fault_files": [str(self.world_dir / "faults.json")]}), encoding="utf-8")

    def _bootstrap_ranker(self) -> None:
        """The first ``yarnit-ranker``: recommenders of the shop's own world, packaged with the first click model
        (its pipeline promotes it when its checks pass), and its declared dependency on ``ctr``, so every new
        click model is evaluated inside the ranker (``continuous/dependencies.py``) before the ranker is re-pinned."""
        from yarnit.continuous.dependencies import ModelDependencies
        from yarnit.recipes import ranker_pipeline, recs_pipeline
        from yarnit.training import PipelineRunner

        self.progress("training the recommenders and packaging the first ranker")
        runner = PipelineRunner(self.ws)
        # at least RANKER_RECS_SESSIONS a day: the recommenders' gate wants 20 shoppers seen on both sides of the
        # holdout, which a smaller shop's two days do not have (the shop's pages bring their own candidates: the
        # recommenders only generate candidates for pages that bring none, and the fallback's popular list)
        sessions = max(self.config.sessions_per_day, RANKER_RECS_SESSIONS)
        runner.run(recs_pipeline(), config={"world_seed": self.config.seed, "n_users": self.config.n_users,
                                            "sessions_per_day": sessions, **RANKER_RECS},
                   seed=self.config.seed, source="builtin:yarnit-recs")
        runner.run(ranker_pipeline(), config={**RANKER_PIPELINE, "loop_seed": self.config.seed + 11},
                   seed=self.config.seed, source="builtin:yarnit-ranker")
        ModelDependencies(self.ws).declare(RANKER, "ctr", actor="demo", reason="the ranker packages the production "
                                           "click model: each new one is evaluated inside it before it is re-pinned")

    def _repin_ranker(self) -> None:
        """When ``ctr`` has a production version the ranker does not pin yet, re-pin the ranker to it, or hold it.

        The triple (that ctr version, the ranker's production version, the ctr run's holdout) is the dependency
        evaluation the loop's tick syncs (read here, or evaluated now when the tick has not); a regressed or
        unevaluable triple holds the ranker on the click model it pins, until the next production ctr. A passing
        one runs the ``yarnit-ranker`` pipeline: it packages the production parts, checks and promotes them.
        Only the production ctr counts here: a newer candidate still in its canary is not what the ranker would
        package, so a regression of it must not hold the ranker (it holds the candidate's own rollout, if any).
        """
        from yarnit.continuous.dependencies import ModelDependencies
        from yarnit.core.errors import YarnitError
        from yarnit.recipes import ranker_pipeline
        from yarnit.registry import ModelRegistry
        from yarnit.training import PipelineRunner

        registry = ModelRegistry(self.ws)
        # every hour, two alias rows; the versions behind them are read only when there is something to decide (a
        # version's pin never changes: it is remembered per ranker version, not decoded from its signature hourly)
        ctr_now = registry.aliases("ctr").get("production")
        ranker_now = registry.aliases(RANKER).get("production")
        if ctr_now is not None and ranker_now is not None and (ctr_now == self.pins.get(ranker_now)
                                                               or ctr_now in self.repins_seen):
            return
        ctr = registry.resolve("ctr", "production")  # an alias missing: its error, as every hour before
        ranker = registry.resolve(RANKER, "production")
        pinned = self.pins.setdefault(ranker.version, int(ranker.signature["lineage"]["click_model"]["version"]))
        if ctr.version == pinned or ctr.version in self.repins_seen:
            return
        self.repins_seen.add(ctr.version)
        at = self.clock.now().isoformat()
        event: dict[str, Any] = {"at": at, "ctr": ctr.version, "ranker": ranker.version, "pinned": pinned}
        deps = ModelDependencies(self.ws)
        dependency = next(d for d in deps.of(RANKER) if d.upstream == "ctr")
        try:
            triple = deps.evaluate(dependency, ctr.version, ranker.version, trigger="alias:production")
        except YarnitError as exc:
            self.repins.append(event | {"action": "held", "reason": f"not evaluable: {exc}"[:300]})
            return
        event |= {"auc": triple.value, "baseline_auc": triple.baseline_value}
        if triple.regressed:
            self.repins.append(event | {"action": "held", "reason": "; ".join(triple.reasons)[:300]})
            return
        result = PipelineRunner(self.ws).run(ranker_pipeline(), config={**RANKER_PIPELINE,
                                                                        "loop_seed": self.config.seed + 11},
                                             seed=self.config.seed, source="builtin:yarnit-ranker")
        out = result.value("register", "model_version")
        self.repins.append(event | {"action": "re-pinned" if out.get("promoted") else "not promoted",
                                    "new_ranker": out.get("version"), "reason": str(out.get("decision", ""))[:300]})

    def run(self, days: int | None = None) -> None:
        from yarnit.api import create_app
        from yarnit.api.server import BackgroundServer
        from yarnit.continuous.loop import ContinuousLoop, LoopConfig
        from yarnit.monitoring.runner import Monitor
        from yarnit.monitoring.slo import load_slo_file
        from yarnit.serving import ServingOptions
        from yarnit.world import World

        from yarnit.evaluation.validity import start_validity_workers

        start_validity_workers()  # its imports overlap the first training instead of delaying its validity check
        self._timed("bootstrap", self._bootstrap)
        # a small shop's canary sees a few pages an hour: two stages, each held until it has 20 requests
        rollout = {"stages": [25, 50], "bake_s": 2 * 3600.0, "min_requests": 20, "min_samples": 20,
                   "deadline_s": 24 * 3600.0} if self.config.rollout else None
        self.loop = ContinuousLoop(self.ws, self.world_dir, LoopConfig(pipeline=self.config.pipeline,
                                                                       rollout=rollout))
        self.monitor = Monitor(self.ws, load_slo_file(self.ws.home / "slos.yaml"))
        # generous deadlines: a page answered late by a busy laptop is not a fault the demo injected. The shop is
        # the server's only client, one page at a time: a page scored on the event loop holds up nobody, so the
        # inline budget is wide (the per-row cost timed at load varies with the host's load, and a page sent to
        # the scoring pool costs two thread hand-overs more, for the same answer). No prediction cache: every row
        # of a page carries its page's time, so no row is ever asked twice and a page only paid for 30 keys
        self.app = create_app(self.ws, refresh_s=3600.0,
                              serving=ServingOptions(deadline_ms=10_000, inline_budget_ms=1_000.0, cache_entries=0))
        # what the month set up so far (libraries, the first model, the app) lives as long as the month: out of the
        # collector's full passes, as a server process does before it takes traffic (api.server.prepare_for_traffic)
        gc.collect()
        gc.freeze()
        with BackgroundServer(self.app) as server:
            self.server = server
            self.ranker = _ShopRanker(server.url, "ctr", chunk=self.world_config.n_candidates, id_prefix="shop",
                                      before_request=self._before_request, on_error="popularity")
            self.ranker.clock = self.clock
            self.ranker.route(self.config.ranker_share, self.config.seed, self.world_config.slate_size)
            try:
                began = time.thread_time()
                for partition in World(self.world_config, ranker=self.ranker).run(days or self.config.days):
                    self._day_done(partition)
                # the world and the shop's side of each page, on this thread (its hourly steps are counted apart)
                self.timings["world_shop_cpu"] = time.thread_time() - began - self._hourly_thread_cpu
                # a day and a half more: the last day's log closes, is checked and trained on
                self._settle()
                self._advance_to(self.clock.now() + timedelta(hours=36))
                self.timings.update(_serving_threads_cpu())
            finally:
                self.ranker.close()

    def close(self) -> None:
        if self.app is not None:
            self.app.state.serving.close()
        self.ws.close()

    # -- time --------------------------------------------------------------------------------------------------------
    def _before_request(self, chunk: list[dict[str, Any]]) -> None:
        at = datetime.fromisoformat(str(chunk[0]["event_time"]).replace(" ", "T"))
        self._settle()
        self._advance_to(at)

    def _settle(self) -> None:
        """Wait until the server has finished every request the shop was answered (bounded: SETTLE_S real
        seconds), so the clock never moves while a request is in flight.

        The data plane finishes a request after its answer is sent: it measures the latency and stamps the
        log record then, on the injected clock. Moving the simulated clock to the next page before that
        (the shop's thread can run first on a busy or starved CPU) gave the record a later time and a
        "latency" of the simulated minutes between two pages: the latency SLO burned and its spent budget
        halted every release, on a machine that was only slow. In the simulated world a request takes no
        simulated time, whatever the host's load.
        """
        if self.server is None or self.ranker is None:
            return
        stats = self.app.state.serving.stats
        expected = self.ranker.requests + self._settle_offset
        if stats.recorded >= expected:
            return
        done = stats.wait_recorded(expected, SETTLE_S)
        if done < expected:  # a request the server never saw (the connection failed): go on
            self._settle_offset += done - expected

    def _advance_to(self, at: datetime) -> None:
        while self.next_hour <= at:
            self._set(self.next_hour)
            self._hourly()
            self.next_hour += timedelta(hours=1)
        self._set(at)

    def _set(self, at: datetime) -> None:
        delta = (at - self.clock.now()).total_seconds()
        if delta > 0:  # pages of an extra block of sessions may start earlier: the clock never runs back
            self.clock.advance(delta)

    def _hourly(self) -> None:
        now = self.clock.now()
        log = self.app.state.serving.log
        if log is not None:  # what was served before the hour is on disk when the hour's monitor reads the log
            log.flush()  # (its writer drains every 50 ms of real time: a fast pass would race it)
        steps: list[tuple[str, Callable[[], Any]]] = [("labels", lambda: self._ingest_labels(now)),
                                                      ("loop", self.loop.tick)]
        if self.config.ranker_share > 0:
            steps.append(("ranker", self._repin_ranker))
        began = time.thread_time()
        for name, step in (*steps, ("monitor", self.monitor.run_once)):
            try:
                self._timed(name, step)
            except Exception as exc:  # noqa: BLE001 - recorded and reported; a month goes on, as production does
                self.hook_errors.append(f"{now.isoformat()} {name}: {type(exc).__name__}: {exc}"[:500])
        self._timed("serving_refresh", self._refresh_serving)
        self._hourly_thread_cpu += time.thread_time() - began

    def _refresh_serving(self) -> None:
        serving = self.app.state.serving
        serving.runtime.refresh()  # what the server's watcher does every refresh_s, at a deterministic point
        serving.router.refresh()

    def _timed(self, name: str, step: Callable[[], Any]) -> None:
        """Run ``step``, adding its real seconds to ``timings[name]`` and the process's CPU-s to ``name_cpu``."""
        began, cpu = time.monotonic(), time.process_time()
        try:
            step()
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.monotonic() - began
            self.timings[f"{name}_cpu"] = self.timings.get(f"{name}_cpu", 0.0) + time.process_time() - cpu

    def _ingest_labels(self, now: datetime) -> None:
        from yarnit.monitoring import quality

        if self.pending_labels.empty:
            return
        due = self.pending_labels["arrival_time"] <= pd.Timestamp(now)
        if not due.any():
            return
        path = self.home / "labels-due.parquet"
        self.pending_labels[due].to_parquet(path)
        quality.ingest_labels(self.ws, path)
        path.unlink()
        self.pending_labels = self.pending_labels[~due].reset_index(drop=True)

    # -- each day ------------------------------------------------------------------------------------------------------
    def _day_done(self, partition: Any) -> None:
        from yarnit.world import request_labels
        from yarnit.world.writer import write_partition

        write_partition(self.world_dir, partition)
        labels = request_labels(partition.impressions, partition.labels, unshown=self.ranker.unshown)
        self.pending_labels = pd.concat([self.pending_labels, labels], ignore_index=True)
        truth = partition.truth[partition.truth["source"] == ""]
        spent = {k: round(v - self._timings_before.get(k, 0.0), 2) for k, v in self.timings.items()}
        self._timings_before = dict(self.timings)
        self.daily.append({
            "day": partition.day.isoformat(), "real_s": spent, "ctr": float(truth["clicked"].mean()) if len(truth) else None,
            "revenue": _revenue(truth, partition.catalog), "sessions": int(truth["session_id"].nunique()),
            "requests": self.ranker.requests - sum(d["requests"] for d in self.daily),
            "answered_by": dict(self.ranker.answered_by), "production": self._production(),
            "ranker_production": self._ranker_production() if self.config.ranker_share > 0 else None,
            "faults": [f.spec() for f in partition.faults]})
        self.ranker.answered_by = {}
        self.progress(f"{partition.day}: ctr {self.daily[-1]['ctr']:.4f}, production {self.daily[-1]['production']} "
                      f"(real s: {', '.join(f'{k} {v:.1f}' for k, v in spent.items())})")

    def _production(self) -> str | None:
        from yarnit.registry import ModelRegistry

        version = ModelRegistry(self.ws).aliases("ctr").get("production")
        return f"ctr:v{version}" if version else None

    def _ranker_production(self) -> str | None:
        """``yarnit-ranker:vN (ctr:vM)``: the ranker's production version and the click model it pins."""
        from yarnit.registry import AliasNotFound, ModelNotFound, ModelRegistry

        try:
            version = ModelRegistry(self.ws).resolve(RANKER, "production")
        except (AliasNotFound, ModelNotFound):
            return None
        return f"{version.ref} (ctr:v{version.signature['lineage']['click_model']['version']})"

    # -- what happened -----------------------------------------------------------------------------------------------
    def record(self, elapsed_s: float) -> dict[str, Any]:
        from yarnit.incidents.store import IncidentStore
        from yarnit.monitoring.alerts import AlertStore, alerts_path
        from yarnit.monitoring.workspace import monitoring_dir

        alerts = [a.to_dict() for a in AlertStore.open(alerts_path(monitoring_dir(self.ws.home))).alerts]
        from yarnit.incidents.postmortem import render_postmortem

        incidents = [asdict(i) | {"postmortem": render_postmortem(i)}
                     for i in IncidentStore.open(self.ws.home, self.clock).incidents]
        failures = [list(f) for f in getattr(self.ranker, "failures", [])]
        return {"faults": self.world_faults, "daily": self.daily, "failures": failures, "alerts": alerts, "incidents": incidents,
                "rollouts": _rollouts(self.ws.home), "audit": _audit(self.ws), "loop": self.loop.status(),
                "ranker_repins": self.repins,
                "hook_errors": self.hook_errors, "timings": self.timings, "elapsed_s": elapsed_s, "start": self.start.isoformat(),
                "end": self.clock.now().isoformat(), "home": str(self.ws.home)}


class _ShopRanker(HttpRanker):
    """The shop's side of the data plane: each page goes to the click model ``ctr`` or, for a fixed share of pages
    (:meth:`route`), to the ranking service ``yarnit-ranker``, on the same keep-alive connection to one server.

    A ranker page is one request ``{user_id, query, …, k, candidates}`` answered by a slate; the world orders the
    page by it (the slate first, in its order; the other in-stock candidates after it, out-of-stock ones last). A
    failed request of either model shows the page in popularity order (``on_error="popularity"``) and is counted
    and remembered with its time (a fault's own, or unexplained). ``answered_by`` names who answered each page:
    ``ctr:v3``, ``yarnit-ranker:v2``, ``… (fallback)``, ``HTTP 503`` or ``HTTP 503 (yarnit-ranker)``. A ranker
    page's impressions carry the ranker's version and no request id: its log record is one slate, not one
    prediction per candidate, so no click label is keyed to it.
    """

    clock: Any = None

    def route(self, share: float, seed: int, slate_size: int) -> None:
        """Send ``share`` of the pages to ``yarnit-ranker``: those whose seeded hash of the session id falls below it
        (the same pages in the faulted and the clean month, whatever the models answer)."""
        self.share, self.seed, self.slate_size = float(share), int(seed), int(slate_size)
        self.ranker_url = f"/v1/models/{RANKER}:predict"
        self.ranker_sessions: dict[str, str] = {}  # session id → the version that ranked its page, this day

    def _to_ranker(self, session_id: str) -> bool:
        import zlib

        share = getattr(self, "share", 0.0)
        return share > 0 and zlib.crc32(f"{self.seed}/{session_id}".encode()) < share * 2 ** 32

    def _answer(self, request_id: str, chunk: list[dict[str, Any]], rows: pd.DataFrame) -> tuple[list[float], bool]:
        session = str(chunk[0].get("session_id", ""))
        if not self._to_ranker(session):
            return super()._answer(request_id, chunk, rows)
        from yarnit.world.traffic import SLATE_PRODUCT_FIELDS, SLATE_REQUEST_FIELDS

        first = chunk[0]
        page = {**{f: first[f] for f in SLATE_REQUEST_FIELDS if f in first}, "k": self.slate_size,
                "candidates": [{f: row[f] for f in SLATE_PRODUCT_FIELDS if f in row} for row in chunk]}
        status, answer = self.client.post_json(self.ranker_url, {"instances": [page]}, {"x-request-id": request_id})
        if status != 200:
            self._count(f"HTTP {status} ({RANKER})")
            return rows["product_clicks_7d"].astype(float).tolist(), False
        body = orjson.loads(answer)
        version = int(body["model_version"])
        who = f"{RANKER}:v{version}" if version else f"{RANKER}:heuristic"
        served_by = str(body.get("served_by", "model"))
        self._count(who if version == 0 or served_by == "model" else f"{who} ({served_by})")
        self.ranker_sessions[session] = who
        items = body["predictions"][0]["items"]
        place = {str(row["product_id"]): j for j, row in enumerate(chunk)}
        scores = [0.0 if row.get("in_stock", True) is not False else -1.0 for row in chunk]
        for rank, item in enumerate(items):  # a fallback's popular items may not all be candidates of this page
            if (j := place.get(str(item))) is not None:
                scores[j] = 2.0 + len(items) - rank
        return scores, False

    def annotate_impressions(self, impressions: pd.DataFrame) -> pd.DataFrame:
        out = super().annotate_impressions(impressions)
        ranked = getattr(self, "ranker_sessions", None)
        if ranked:  # the day's impressions carry ctr's version; a ranker page carries the ranker's
            version = out["session_id"].astype(str).map(ranked)
            out["model_version"] = version.where(version.notna(), out["model_version"]).astype(str)
            self.ranker_sessions = {}
        return out

    def _count(self, who: str) -> None:
        super()._count(who)
        if who.startswith("HTTP") and self.clock is not None:
            self.__dict__.setdefault("failures", []).append((self.clock.now().isoformat(), who))


#: The server's threads whose CPU a month reports (``timings``), by thread name prefix: the HTTP server (its event
#: loop: parsing, the fast lane, pages scored inline), the scoring pool (pages offloaded, such as the ranker's) and
#: the prediction log's writer.
SERVING_THREADS = {"yarnit-server": "server_thread_cpu", "yarnit-score-": "scoring_pool_cpu",
                   "yarnit-predlog": "log_writer_cpu"}


def _serving_threads_cpu() -> dict[str, float]:
    """CPU-s so far of the serving threads still running in this process, by :data:`SERVING_THREADS` key.

    Read from each thread's own CPU clock (POSIX), so the HTTP server's share of a month, which no step's timer
    sees, is reported apart from the world and the shop's. Empty where thread clocks are not available.
    """
    import threading

    out: dict[str, float] = {}
    if not hasattr(time, "pthread_getcpuclockid"):
        return out
    for thread in threading.enumerate():
        key = next((k for p, k in SERVING_THREADS.items() if thread.name.startswith(p)), None)
        if key is None or thread.ident is None:
            continue
        try:
            seconds = time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
        except OSError:  # the thread ended meanwhile
            continue
        out[key] = out.get(key, 0.0) + seconds
    return out


def _revenue(truth: pd.DataFrame, catalog: pd.DataFrame) -> float:
    """True revenue of the day's purchases (list price less discount, one unit each), in USD: what shoppers
    bought, whether or not the logs kept it."""
    bought = truth.loc[truth["purchased"] == 1, ["product_id"]]
    if bought.empty:  # mapping an empty string column gives an empty string column, whose sum is ''
        return 0.0
    prices = catalog.drop_duplicates("product_id").set_index("product_id")
    net = prices["price_usd"] * (1.0 - prices["discount"].fillna(0.0))
    return float(bought["product_id"].map(net).fillna(0.0).sum())


def _rollouts(home: Path) -> list[dict[str, Any]]:
    directory = home / "continuous" / "rollouts"
    out = []
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        try:
            out.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return out


def _audit(ws: Any) -> list[dict[str, Any]]:
    from yarnit.registry import ModelRegistry

    registry = ModelRegistry(ws)
    try:
        history = registry.history("ctr")
    except Exception:  # noqa: BLE001 - an empty registry has no history
        return []
    return [h.to_dict() for h in history]


__all__ = ["DEMO_FAULTS", "DEMO_SLOS", "TTD_TARGET_H", "OperateConfig", "prepare_out", "run_operate", "simulate"]
