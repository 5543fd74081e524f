"""What the platform recorded about one model, read once per assessment.

Every probe of :mod:`.probes` reads from here, so an assessment opens each store once: the registry
(versions, aliases, alias history), the run store (the model's pipeline runs and their steps,
reproductions), the evaluation store (evaluations, verdicts, the newest report), the dataset store, the
feature registry, the workspace's SLO file and the monitor's state, the alert store, the continuous loop's
state, the staged rollout's state and the manual attestations (:mod:`.manual`). Nothing here writes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from yarnit.data import Datasets
from yarnit.evaluation import EvaluationReport, EvaluationStore, StoredEvaluation
from yarnit.registry import AliasEvent, ModelRegistry, ModelVersion
from yarnit.storage import Workspace
from yarnit.training import RunStore
from yarnit.training.runs import Run, StepRecord

from .manual import Attestation, attestations

_REF = re.compile(r"^([a-z][a-z0-9_.-]{0,62}):v([0-9]{1,10})$")
RUN_LIMIT = 50
EVALUATION_LIMIT = 50


@dataclass
class Records:
    """One model's records in one workspace (loaded lazily, each once)."""

    ws: Workspace
    model: str
    _cache: dict[str, Any] = field(default_factory=dict)

    def _once(self, key: str, load: Any) -> Any:
        if key not in self._cache:
            self._cache[key] = load()
        return self._cache[key]

    # -- registry ------------------------------------------------------------------------------------
    @property
    def registry(self) -> ModelRegistry:
        return self._once("registry", lambda: ModelRegistry(self.ws))

    @property
    def versions(self) -> list[ModelVersion]:
        """Every version, oldest first (raises ModelNotFound for an unknown model)."""
        return self._once("versions", lambda: self.registry.versions(self.model))

    @property
    def aliases(self) -> dict[str, int]:
        return self._once("aliases", lambda: self.registry.aliases(self.model))

    @property
    def history(self) -> list[AliasEvent]:
        return self._once("history", lambda: self.registry.history(self.model))

    @property
    def production(self) -> ModelVersion | None:
        number = self.aliases.get("production")
        return next((v for v in self.versions if v.version == number), None)

    @property
    def latest(self) -> ModelVersion | None:
        return self.production or (self.versions[-1] if self.versions else None)

    @property
    def parts(self) -> list[Records]:
        """The models the latest version bundles (a parameter naming ``NAME:vN``, as the ranker's click model)."""
        def load() -> list[Records]:
            found: list[Records] = []
            latest = self.latest
            for value in (latest.params.values() if latest is not None else ()):
                m = _REF.match(value) if isinstance(value, str) else None
                if m and m.group(1) != self.model and self.registry.exists(m.group(1)):
                    found.append(Records(self.ws, m.group(1)))
            return found
        return self._once("parts", load)

    # -- runs ----------------------------------------------------------------------------------------
    @property
    def pipelines(self) -> list[str]:
        """The pipelines whose runs registered this model's versions."""
        def load() -> list[str]:
            store = RunStore(self.ws)
            names: list[str] = []
            for v in self.versions:
                if v.run_id:
                    try:
                        names.append(store.get(v.run_id).pipeline)
                    except Exception:  # noqa: BLE001 - a purged run: the version still counts, its pipeline not
                        continue
            return list(dict.fromkeys(names))
        return self._once("pipelines", load)

    @property
    def runs(self) -> list[Run]:
        """The newest runs of this model's pipelines (reproductions included), newest first."""
        def load() -> list[Run]:
            store = RunStore(self.ws)
            found = [r for p in self.pipelines for r in store.list(p, limit=RUN_LIMIT)]
            return sorted(found, key=lambda r: r.started_at, reverse=True)
        return self._once("runs", load)

    def steps(self, run_id: str) -> list[StepRecord]:
        return self._once(f"steps:{run_id}", lambda: RunStore(self.ws).steps(run_id))

    def step(self, run: Run, name: str) -> StepRecord | None:
        return next((s for s in self.steps(run.id) if s.step == name), None)

    def runs_with_step(self, name: str, states: tuple[str, ...] = ("succeeded", "cached")
                       ) -> list[tuple[Run, StepRecord]]:
        out = []
        for run in self.runs:
            step = self.step(run, name)
            if step is not None and step.state in states:
                out.append((run, step))
        return out

    # -- evaluations ---------------------------------------------------------------------------------
    @property
    def evaluations(self) -> list[StoredEvaluation]:
        """Newest first."""
        return self._once("evaluations", lambda: EvaluationStore(self.ws).list(self.model, limit=EVALUATION_LIMIT))

    def report(self, evaluation_id: str) -> EvaluationReport:
        return self._once(f"report:{evaluation_id}", lambda: EvaluationStore(self.ws).report(evaluation_id))

    @property
    def newest_report(self) -> tuple[StoredEvaluation, EvaluationReport] | None:
        if not self.evaluations:
            return None
        newest = self.evaluations[0]
        return newest, self.report(newest.id)

    # -- data ----------------------------------------------------------------------------------------
    @property
    def datasets(self) -> list[Any]:
        """The dataset versions the latest version was trained on."""
        def load() -> list[Any]:
            store = Datasets(self.ws)
            latest = self.latest
            out = []
            for vid in (latest.dataset_version_ids if latest is not None else ()):
                try:
                    out.append(store.get_by_id(vid))
                except Exception:  # noqa: BLE001 - a purged version is evidence of retention, not of a schema
                    continue
            return out
        return self._once("datasets", load)

    @property
    def feature_views(self) -> list[Any]:
        from yarnit.features import FeatureRegistry

        return self._once("views", lambda: FeatureRegistry(self.ws).list())

    # -- monitoring, loop, rollout -------------------------------------------------------------------
    @property
    def slos(self) -> list[Any]:
        """The SLOs of the workspace's SLO file that name this model or no model (those cover every model)."""
        def load() -> list[Any]:
            from yarnit.monitoring.slo import load_slo_file
            from yarnit.monitoring.workspace import slo_path

            path = slo_path(self.ws.home)
            if not path.exists():
                return []
            return [s for s in load_slo_file(path).slos if s.model in (None, self.model)]
        return self._once("slos", load)

    @property
    def monitor_state(self) -> dict[str, Any]:
        """The monitor's newest statuses by SLO id (empty when the monitor never ran)."""
        def load() -> dict[str, Any]:
            from yarnit.monitoring.runner import read_state

            state = read_state(self.ws.home) or {}
            return {"at": state.get("at"), "slos": {e.get("id"): e for e in state.get("slos") or []
                                                    if isinstance(e, dict)}}
        return self._once("monitor", load)

    def evaluated_slos(self, *kinds: str) -> list[tuple[Any, dict[str, Any]]]:
        """The model's SLOs of these SLI kinds that the monitor has evaluated, with their newest status."""
        statuses = self.monitor_state["slos"]
        return [(s, statuses[s.id]) for s in self.slos if s.sli in kinds and s.id in statuses]

    @property
    def alerts(self) -> list[Any]:
        def load() -> list[Any]:
            from yarnit.monitoring.alerts import AlertStore, alerts_path
            from yarnit.monitoring.workspace import monitoring_dir

            path = alerts_path(monitoring_dir(self.ws.home))
            if not path.exists():
                return []
            return [a for a in AlertStore.open(path).alerts if a.model in (None, self.model)]
        return self._once("alerts", load)

    @property
    def loop(self) -> dict[str, Any]:
        from yarnit.continuous.loop import load_state

        return self._once("loop", lambda: load_state(self.ws.home, self.model))

    @property
    def rollout(self) -> dict[str, Any] | None:
        from yarnit.continuous.rollout import RolloutController

        return self._once("rollout", lambda: RolloutController(self.ws, self.model).load())

    @property
    def manual(self) -> dict[str, Attestation]:
        """The newest manual attestation per test."""
        return self._once("manual", lambda: {a.test_id: a for a in attestations(self.ws, self.model)})


__all__ = ["Records"]
