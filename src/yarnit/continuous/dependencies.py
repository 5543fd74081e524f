"""Model-on-model dependencies: a consumer re-evaluated on every new upstream version (book ch. 15, case 6).

Dialpad's ASR feeds many NLP models; a new ASR version silently degraded them until a regression sandbox
evaluated every (ASR version, NLP version, dataset version) triple. YarnIt's case is ``yarnit-ranker``,
which packages the production click model ``ctr``: a new click model can make the ranker worse even when
the click model itself passed its own gate (its gate compares click models, not rankings).

* ``declare(consumer, upstream)`` records that ``consumer`` reads ``upstream``'s output (table
  ``model_dependencies``, migration 0016). It is refused unless the consumer's artifact format knows how to
  take another upstream version (:data:`_CONSUMERS`; today the ranker bundle) and its newest version really
  pins that upstream: a declaration that nothing checks would be a false comfort.
* :meth:`ModelDependencies.sync` finds the upstream versions that matter: the one behind the dependency's
  alias (an alias move) and the newest registered one (a registration). For each of them, and for the
  consumer's ``production`` and ``canary`` versions, it evaluates every triple that has no row yet. So the
  triple is evaluated after a registration or an alias move, on the next sync. A sync runs from the loop's
  tick, from every rollout step of the consumer, and from ``yarnit models deps NAME --evaluate``. Polling
  the registry, not a hook inside it, keeps the registry below this layer. It also covers writers that
  bypass it: a restore, or SQL typed by hand.
* One triple's evaluation (:meth:`evaluate`) composes the consumer version with the upstream version.
  The ranker's bundle is re-pinned with that click model's bytes, as the next ``yarnit-ranker`` run would
  package it. The result is scored on the dataset version's rows (the upstream run's holdout days when
  it recorded them) against the consumer's production version as it serves today. It goes through the
  evaluation machinery: :class:`~yarnit.evaluation.ReportBuilder` (AUC with paired differences and
  intervals, NDCG@k per session), one stored report (``evaluations``), and the change gate
  ``auc_vs_production`` with the dependency's ``max_regression`` (default 0.01, the standard gate's).
  The verdict is attached to the report, and the triple's row (``dependency_evaluations``, unique per
  triple) says whether it regressed and why.
* :meth:`hold_reason` is what a rollout of the consumer asks before every step. Its canary version is
  checked against each upstream version that matters. A regressed triple holds the rollout, and so does
  a triple that could not be evaluated (no data is never a pass). The hold names the triple and the
  figures.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import and_, delete, insert, select

from yarnit.core.errors import Conflict, InvalidInput, NotFound
from yarnit.core.hashing import sha256_bytes
from yarnit.core.ids import new_id
from yarnit.registry import AliasNotFound, ArtifactFormat, ModelNotFound, ModelRegistry, ModelVersion
from yarnit.registry.service import check_alias
from yarnit.storage.schema import aliases, dependency_evaluations, model_dependencies, model_versions

DEFAULT_MAX_REGRESSION = 0.01  # the standard gates' auc_vs_production margin (evaluation.standard_gates)
GATE_METRIC = "auc"
LABEL = "clicked"
GROUP = "session_id"
MAX_ROWS = 200_000  # rows scored per triple (a fixed sample of bigger datasets)

# Consumer artifact formats that can take another upstream version: the class offers
# ``with_upstream(bytes, upstream_version, upstream_bytes) -> bytes``, ``from_bytes``, ``upstream`` (the pinned
# {name, version, sha256}) and ``score_frame(frame)``. A fixed table, like the registry's composite loaders.
_CONSUMERS: dict[ArtifactFormat, tuple[str, str]] = {
    ArtifactFormat.RANKER: ("yarnit.recipes.ranker", "RankingModel"),
}


@dataclass(frozen=True)
class Dependency:
    """``consumer`` reads ``upstream``'s output; the version behind ``alias`` is the one it is packaged with."""

    consumer: str
    upstream: str
    alias: str
    dataset: str | None
    max_regression: float
    declared_at: datetime
    declared_by: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__) | {"declared_at": self.declared_at.isoformat()}


@dataclass(frozen=True)
class TripleEvaluation:
    """One (upstream version, consumer version, dataset version) evaluation and its verdict."""

    id: str
    consumer: str
    consumer_version: int
    upstream: str
    upstream_version: int
    dataset_version_id: str
    evaluation_id: str
    baseline_version: int | None
    metric: str
    value: float | None
    baseline_value: float | None
    max_regression: float
    regressed: bool
    reasons: list[str]
    trigger: str
    created_at: datetime

    @property
    def triple(self) -> str:
        return f"({self.upstream}:v{self.upstream_version}, {self.consumer}:v{self.consumer_version}, " \
               f"{self.dataset_version_id})"

    def to_dict(self) -> dict[str, Any]:
        delta = None if self.value is None or self.baseline_value is None else self.value - self.baseline_value
        return dict(self.__dict__) | {"created_at": self.created_at.isoformat(), "delta": delta}


def _consumer_class(version: ModelVersion) -> Any:
    found = _CONSUMERS.get(version.artifact_format)
    if found is None:
        known = ", ".join(f.value for f in _CONSUMERS)
        raise InvalidInput(f"{version.ref} is a {version.artifact_format.value!r} artifact, which cannot take "
                           f"another upstream version to be re-evaluated with; consumer formats: {known}.")
    module, name = found
    return getattr(importlib.import_module(module), name)


class ModelDependencies:
    """Declared dependencies between models and the evaluations of their triples (see the module docstring)."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.registry = ModelRegistry(ws)
        # while one sync runs: evaluation frames by (dataset version id, holdout start) and scores by (bundle
        # sha256, dataset version id, holdout start). The same bytes on the same rows score the same, so a
        # hit changes no figure; it is dropped when the sync ends (a new sync reads what is there then).
        self._frames: dict[tuple[str, str | None], Any] | None = None
        self._scores: dict[tuple[str, str, str | None], np.ndarray] | None = None

    # -- declarations ---------------------------------------------------------------------------------
    def declare(self, consumer: str, upstream: str, *, actor: str, alias: str = "production",
                dataset: str | None = None, max_regression: float = DEFAULT_MAX_REGRESSION,
                reason: str = "") -> Dependency:
        """Record that ``consumer`` reads ``upstream``; refused when nothing could check it."""
        if consumer == upstream:
            raise InvalidInput(f"A model cannot depend on itself ({consumer!r}); name the upstream model with --on.")
        check_alias(alias)
        if isinstance(max_regression, bool) or not 0.0 <= float(max_regression) <= 1.0:
            raise InvalidInput(f"max_regression is the allowed drop in {GATE_METRIC}, in [0, 1]; got "
                               f"{max_regression!r}.")
        versions = self.registry.versions(consumer)  # ModelNotFound names the model
        self.registry.versions(upstream)
        newest = versions[-1]
        cls = _consumer_class(newest)
        pinned = cls.from_bytes(self.ws.artifacts.get_bytes(newest.artifact_sha256)).upstream
        if pinned["name"] != upstream:
            raise InvalidInput(f"{newest.ref} reads {pinned['name']!r}, not {upstream!r}: declare "
                               f"yarnit models depend {consumer} --on {pinned['name']}.")
        if dataset is not None:
            from yarnit.data import Datasets

            Datasets(self.ws).resolve(dataset)  # refused now rather than at the first new upstream version
        row = {"consumer": consumer, "upstream": upstream, "alias": alias, "dataset": dataset,
               "max_regression": float(max_regression), "declared_at": self.ws.clock.now(), "declared_by": actor,
               "reason": reason}
        with self.ws.metadata.begin() as conn:
            conn.execute(delete(model_dependencies).where(and_(model_dependencies.c.consumer == consumer,
                                                               model_dependencies.c.upstream == upstream)))
            conn.execute(insert(model_dependencies).values(**row))
        return Dependency(**row)

    def remove(self, consumer: str, upstream: str) -> None:
        with self.ws.metadata.begin() as conn:
            gone = conn.execute(delete(model_dependencies).where(and_(
                model_dependencies.c.consumer == consumer, model_dependencies.c.upstream == upstream))).rowcount
        if not gone:
            raise NotFound(f"{consumer!r} declares no dependency on {upstream!r}; see: yarnit models deps {consumer}")

    def of(self, consumer: str) -> list[Dependency]:
        """What ``consumer`` reads."""
        return self._select(model_dependencies.c.consumer == consumer)

    def dependents(self, upstream: str) -> list[Dependency]:
        """Who reads ``upstream``."""
        return self._select(model_dependencies.c.upstream == upstream)

    def all(self) -> list[Dependency]:
        return self._select(None)

    def _select(self, where: Any) -> list[Dependency]:
        query = select(model_dependencies)
        if where is not None:
            query = query.where(where)
        with self.ws.metadata.begin() as conn:
            rows = conn.execute(query.order_by(model_dependencies.c.consumer,
                                               model_dependencies.c.upstream)).mappings().all()
        return [Dependency(**dict(r)) for r in rows]

    # -- evaluations ------------------------------------------------------------------------------------
    def evaluations(self, consumer: str, *, upstream: str | None = None, consumer_version: int | None = None,
                    limit: int = 50) -> list[TripleEvaluation]:
        """Triple evaluations of ``consumer``, newest first."""
        query = select(dependency_evaluations).where(dependency_evaluations.c.consumer == consumer)
        if upstream is not None:
            query = query.where(dependency_evaluations.c.upstream == upstream)
        if consumer_version is not None:
            query = query.where(dependency_evaluations.c.consumer_version == consumer_version)
        query = query.order_by(dependency_evaluations.c.created_at.desc(), dependency_evaluations.c.id.desc())
        with self.ws.metadata.begin() as conn:
            rows = conn.execute(query.limit(max(1, int(limit)))).mappings().all()
        return [TripleEvaluation(**(dict(r) | {"reasons": list(r["reasons"] or [])})) for r in rows]

    def _recorded(self, consumer: str, consumer_version: int, upstream: str, upstream_version: int,
                  dataset_version_id: str) -> TripleEvaluation | None:
        found = [e for e in self.evaluations(consumer, upstream=upstream, consumer_version=consumer_version,
                                             limit=1000)
                 if e.upstream_version == upstream_version and e.dataset_version_id == dataset_version_id]
        return found[0] if found else None

    def _dataset(self, dependency: Dependency, upstream: ModelVersion) -> Any:
        from yarnit.data import Datasets

        datasets = Datasets(self.ws)
        if dependency.dataset:
            return datasets.resolve(dependency.dataset)
        if not upstream.dataset_version_ids:
            raise InvalidInput(f"{upstream.ref} records no dataset to evaluate {dependency.consumer} on; declare "
                               f"one: yarnit models depend {dependency.consumer} --on {dependency.upstream} "
                               "--dataset NAME[:vN].")
        return datasets.get_by_id(upstream.dataset_version_ids[0])

    def evaluate(self, dependency: Dependency, upstream_version: int, consumer_version: int, *,
                 trigger: str) -> TripleEvaluation:
        """Evaluate one triple (or return its recorded evaluation: a triple is evaluated once)."""
        from yarnit.data.restricted import compliant_outputs, restrictions_of
        from yarnit.evaluation import (
            Bootstrap,
            Distribution,
            EvaluationStore,
            Gate,
            ReportBuilder,
            holdout_start,
            judge,
            time_ordered_holdout,
        )
        from yarnit.evaluation.fairness import read_evaluation_frame

        upstream = self.registry.get(dependency.upstream, upstream_version)
        consumer = self.registry.get(dependency.consumer, consumer_version)
        dataset = self._dataset(dependency, upstream)
        recorded = self._recorded(consumer.model_name, consumer.version, upstream.model_name, upstream.version,
                                  dataset.id)
        if recorded is not None:
            return recorded
        cls = _consumer_class(consumer)
        artifacts = self.ws.artifacts
        composite = cls.with_upstream(artifacts.get_bytes(consumer.artifact_sha256), upstream,
                                      artifacts.get_bytes(upstream.artifact_sha256))
        composite_sha = sha256_bytes(composite)
        try:
            baseline_version: ModelVersion | None = self.registry.resolve(consumer.model_name, "production")
        except AliasNotFound:
            baseline_version = None

        available = [*dataset.schema, *compliant_outputs(restrictions_of(self.ws, dataset))]
        if LABEL not in available:
            raise InvalidInput(f"{dataset.ref} has no label column {LABEL!r} to evaluate {consumer.ref} with; "
                               f"declare a dataset of logged impressions (--dataset NAME[:vN]).")
        since = holdout_start(self.ws, upstream.run_id) if not dependency.dataset else None
        frame_key = (dataset.id, None if since is None else str(since))
        frame = None if self._frames is None else self._frames.get(frame_key)
        if frame is None:
            frame = read_evaluation_frame(self.ws, dataset, available,
                                          purpose=f"dependency evaluation of {consumer.ref} with {upstream.ref}")
            if since and "day" in frame.columns:
                frame = frame[pd.to_datetime(frame["day"].astype(str)).dt.date >= pd.Timestamp(since).date()]
                frame = frame.reset_index(drop=True)
            if len(frame) > MAX_ROWS:
                frame = frame.sample(n=MAX_ROWS, random_state=0).reset_index(drop=True)
            if self._frames is not None:
                self._frames[frame_key] = frame
        frame = frame.copy()  # the report builder gets rows of its own
        if frame.empty:
            raise InvalidInput(f"{dataset.ref} has no rows to evaluate {consumer.ref} on"
                               + (f" from the holdout day {since}" if since else "") + ".")
        if since and "day" in frame.columns:
            days = sorted(frame["day"].astype(str).unique())
            distribution = time_ordered_holdout(days[0], days[-1], rows=len(frame), dataset_version_ids=[dataset.id])
        else:
            distribution = Distribution("dataset", "iid", f"all rows of {dataset.ref} ({len(frame)} rows)",
                                        len(frame), (dataset.id,))
        y = pd.to_numeric(frame[LABEL], errors="coerce").to_numpy()
        # scores by bundle bytes: a composite byte-identical to production (its consumer version already pins
        # this upstream version) is loaded and scored once, and its two score columns are the same array
        scored: dict[str, np.ndarray] = {}
        scores = {"candidate": self._score(cls, composite_sha, lambda: composite, frame, frame_key, scored)}
        compared = None
        if baseline_version is not None:
            scores["production"] = self._score(cls, baseline_version.artifact_sha256,
                                               lambda: artifacts.get_bytes(baseline_version.artifact_sha256),
                                               frame, frame_key, scored)
            compared = {"alias": "production", "version": baseline_version.version, "id": baseline_version.id}
        builder = ReportBuilder(
            consumer.model_name,
            {"artifact_sha256": composite_sha, "version": consumer.version, "version_id": consumer.id,
             "format": consumer.artifact_format.value,
             "upstream": {"name": upstream.model_name, "version": upstream.version,
                          "sha256": upstream.artifact_sha256}},
            bootstrap=Bootstrap(resamples=200), compared_with=compared, dataset_version_ids=[dataset.id])
        builder.note(f"{consumer.ref} re-pinned to {upstream.ref} ({trigger}), scored against "
                     + (f"{baseline_version.ref} as it serves" if baseline_version else "nothing (no production)"))
        builder.add(distribution, y, scores, paired_against=["production"] if compared else [], frame=frame,
                    ranking_group=GROUP if GROUP in frame.columns else None, k=10)
        report = builder.build()
        store = EvaluationStore(self.ws)
        stored = store.add(report)
        gate = Gate(f"{GATE_METRIC}_vs_production", "change", metric=GATE_METRIC, against="production",
                    max_regression=dependency.max_regression)
        verdict = judge(report, [gate] if compared else [])
        store.record_verdict(stored.id, verdict)
        row = {
            "id": new_id("dep", self.ws.clock), "consumer": consumer.model_name, "consumer_version": consumer.version,
            "upstream": upstream.model_name, "upstream_version": upstream.version, "dataset_version_id": dataset.id,
            "evaluation_id": stored.id, "baseline_version": None if baseline_version is None else
            baseline_version.version, "metric": GATE_METRIC, "value": _finite(report.value(GATE_METRIC)),
            "baseline_value": _finite(report.value(GATE_METRIC, subject="production")) if compared else None,
            "max_regression": dependency.max_regression, "regressed": not verdict.blessed,
            "reasons": verdict.reasons, "trigger": trigger[:64], "created_at": self.ws.clock.now(),
        }
        from sqlalchemy.exc import IntegrityError

        try:
            with self.ws.metadata.begin() as conn:
                conn.execute(insert(dependency_evaluations).values(**row))
        except IntegrityError:  # another process evaluated the same triple first: its row stands
            again = self._recorded(consumer.model_name, consumer.version, upstream.model_name, upstream.version,
                                   dataset.id)
            if again is None:
                raise
            return again
        return TripleEvaluation(**row)

    def _score(self, cls: Any, sha256: str, data: Any, frame: pd.DataFrame, frame_key: tuple[str, str | None],
               scored: dict[str, np.ndarray]) -> np.ndarray:
        """``frame`` scored by the bundle ``sha256`` (``data()`` its bytes), loaded and scored once per evaluation,
        and once per sync for the same rows (``frame_key``)."""
        key = (sha256, *frame_key)
        found = scored.get(sha256)
        if found is None and self._scores is not None:
            found = self._scores.get(key)
        if found is None:
            found = np.asarray(cls.from_bytes(data()).score_frame(frame))
            found.setflags(write=False)  # shared between score columns and evaluations
            if self._scores is not None:
                self._scores[key] = found
        scored[sha256] = found
        return found

    # -- the trigger ------------------------------------------------------------------------------------
    def _upstream_versions(self, dependency: Dependency) -> dict[int, str]:
        """Upstream versions that matter now, each with why: behind the alias, and the newest registered."""
        return {number: why for number, (why, _version) in self._wanted(dependency).items()}

    def _wanted(self, dependency: Dependency) -> dict[int, tuple[str, tuple[str, ...]]]:
        """Each upstream version that matters, with why and its dataset version ids: two narrow reads (a tick runs
        this every hour; the versions' signatures, with their golden rows, are not needed to know which)."""
        mv = model_versions
        columns = (mv.c.version, mv.c.dataset_version_ids)
        behind_alias = aliases.join(mv, and_(mv.c.model_name == aliases.c.model_name,
                                             mv.c.version == aliases.c.version))
        with self.ws.metadata.begin() as conn:
            newest = conn.execute(select(*columns).where(mv.c.model_name == dependency.upstream)
                                  .order_by(mv.c.version.desc()).limit(1)).first()
            behind = conn.execute(select(*columns).select_from(behind_alias).where(and_(
                aliases.c.model_name == dependency.upstream, aliases.c.alias == dependency.alias))).first()
        if newest is None and not self.registry.exists(dependency.upstream):
            raise ModelNotFound(dependency.upstream)
        out: dict[int, tuple[str, tuple[str, ...]]] = {}
        if newest is not None:
            out[int(newest.version)] = ("registered", tuple(newest.dataset_version_ids or ()))
        if behind is not None:
            out[int(behind.version)] = (f"alias:{dependency.alias}", tuple(behind.dataset_version_ids or ()))
        return out

    def _rows(self, dependency: Dependency, wanted: dict[int, tuple[str, tuple[str, ...]]],
              consumers: list[int]) -> dict[tuple[int, int], TripleEvaluation]:
        """The recorded rows of the triples a sync wants, by (upstream version, consumer version): one query.

        A row counts only on the dataset version :meth:`evaluate` would use (the declared one, else the upstream
        version's first), so what it returns for that triple is this row. Anything else goes to evaluate."""
        if not wanted or not consumers:
            return {}
        declared = None
        if dependency.dataset:
            from yarnit.data import Datasets

            try:
                declared = Datasets(self.ws).resolve(dependency.dataset).id
            except (InvalidInput, NotFound):
                return {}  # evaluate says why
        query = select(dependency_evaluations).where(and_(
            dependency_evaluations.c.consumer == dependency.consumer,
            dependency_evaluations.c.upstream == dependency.upstream,
            dependency_evaluations.c.upstream_version.in_(sorted(wanted)),
            dependency_evaluations.c.consumer_version.in_(consumers)))
        with self.ws.metadata.begin() as conn:
            rows = conn.execute(query.order_by(dependency_evaluations.c.created_at.desc(),
                                               dependency_evaluations.c.id.desc())).mappings().all()
        out: dict[tuple[int, int], TripleEvaluation] = {}
        for r in rows:
            datasets = wanted[r["upstream_version"]][1]
            dataset = declared or (datasets[0] if datasets else None)
            if r["dataset_version_id"] == dataset:
                out.setdefault((r["upstream_version"], r["consumer_version"]),
                               TripleEvaluation(**(dict(r) | {"reasons": list(r["reasons"] or [])})))
        return out

    def _consumer_versions(self, consumer: str) -> list[int]:
        aliases = self.registry.aliases(consumer)
        return sorted({v for a, v in aliases.items() if a in ("production", "canary")})

    def sync(self, *, consumer: str | None = None, upstream: str | None = None) -> list[dict[str, Any]]:
        """Evaluate every triple that matters and has no row yet; each outcome (or its error) is returned."""
        if consumer is not None:
            deps = self.of(consumer)
        elif upstream is not None:
            deps = self.dependents(upstream)
        else:
            deps = self.all()
        outcomes: list[dict[str, Any]] = []
        outer = self._frames is not None
        if not outer:
            self._frames, self._scores = {}, {}
        try:
            self._sync(deps, outcomes)
        finally:
            if not outer:
                self._frames = self._scores = None
        return outcomes

    def _sync(self, deps: list[Dependency], outcomes: list[dict[str, Any]]) -> None:
        for dependency in deps:
            try:
                wanted = self._wanted(dependency)
                consumers = self._consumer_versions(dependency.consumer)
            except ModelNotFound as exc:
                outcomes.append({"consumer": dependency.consumer, "upstream": dependency.upstream, "error": str(exc)})
                continue
            recorded = self._rows(dependency, wanted, consumers)  # a tick with nothing new reads only these
            for upstream_version, (why, _version) in sorted(wanted.items()):
                for consumer_version in consumers:
                    known = recorded.get((upstream_version, consumer_version))
                    if known is not None:
                        outcomes.append(known.to_dict())
                        continue
                    try:
                        found = self.evaluate(dependency, upstream_version, consumer_version, trigger=why)
                    except (InvalidInput, NotFound, Conflict) as exc:
                        outcomes.append({"consumer": dependency.consumer, "consumer_version": consumer_version,
                                         "upstream": dependency.upstream, "upstream_version": upstream_version,
                                         "error": str(exc)})
                        continue
                    outcomes.append(found.to_dict())

    def hold_reason(self, consumer: str, version: int) -> str | None:
        """Why a rollout of ``consumer`` v``version`` must hold, or None: a regressed (or unevaluable) triple."""
        reasons = []
        for dependency in self.of(consumer):
            try:
                wanted = self._upstream_versions(dependency)
            except ModelNotFound as exc:
                reasons.append(f"its upstream {dependency.upstream!r} is gone ({exc})")
                continue
            for upstream_version, why in sorted(wanted.items()):
                try:
                    found = self.evaluate(dependency, upstream_version, version, trigger=why)
                except (InvalidInput, NotFound, Conflict) as exc:
                    reasons.append(f"{consumer} v{version} with {dependency.upstream} v{upstream_version} could not "
                                   f"be evaluated ({exc}); no evaluation is not a pass")
                    continue
                if found.regressed:
                    reasons.append(f"dependency regression on {found.triple}: " + "; ".join(found.reasons))
        return " | ".join(reasons) if reasons else None


def _finite(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def dependency_summary(deps: ModelDependencies, consumer: str, *, limit: int = 20) -> dict[str, Any]:
    """What ``yarnit models deps`` and ``GET /api/models/{name}/dependencies`` show."""
    deps.registry.versions(consumer)  # NotFound for an unknown model
    return {"model": consumer, "dependencies": [d.to_dict() for d in deps.of(consumer)],
            "dependents": [d.to_dict() for d in deps.dependents(consumer)],
            "evaluations": [e.to_dict() for e in deps.evaluations(consumer, limit=limit)]}


__all__ = ["DEFAULT_MAX_REGRESSION", "Dependency", "ModelDependencies", "TripleEvaluation", "dependency_summary"]
