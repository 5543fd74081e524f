"""Helpers for serving tests: registered click models, fault-injecting predictors, a service factory."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from yarnit.core import SimulatedClock
from yarnit.registry import ArtifactFormat, ModelRegistry, ModelVersion, Predictor, dump_sklearn
from yarnit.serving import InferenceService, ModelRuntime, PredictionLog, ServingOptions
from yarnit.serving.runtime import BreakerSettings
from yarnit.storage import Workspace

ROWS = [{"fiber": "merino", "price": 12.0}, {"fiber": "acrylic", "price": 3.0}] * 10
SIGNATURE = {"inputs": {"fiber": "string", "price": "double"},
             "fallback": {"key": "fiber", "table": {"merino": 0.3, "acrylic": 0.1}, "default": 0.05}}


def fit_ctr(c: float) -> Pipeline:
    model = Pipeline([("vec", DictVectorizer()), ("lr", LogisticRegression(C=c))])
    return model.fit(ROWS, [1, 0] * 10)


def register_versions(ws: Workspace, n: int = 3, signature: dict[str, Any] | None = None) -> list[ModelVersion]:
    """``n`` versions of 'ctr' whose scores differ (C = 1, 0.1, 0.01 …); production → v1."""
    registry = ModelRegistry(ws)
    versions = [registry.register("ctr", dump_sklearn(fit_ctr(10.0 ** -i)), ArtifactFormat.SKOPS,
                                  signature=signature or SIGNATURE, metrics={"ctr_holdout": 0.04})
                for i in range(n)]
    registry.promote("ctr", 1)
    return versions


def expected_scores(version: int, rows: list[dict[str, Any]]) -> list[float]:
    return [float(p) for p in fit_ctr(10.0 ** -(version - 1)).predict_proba(rows)[:, 1]]


@dataclass
class Faults:
    """Per-version faults injected through ModelRuntime's wrap_predictor seam."""

    clock: SimulatedClock
    raising: set[int] = field(default_factory=set)
    nan: set[int] = field(default_factory=set)
    slow_s: dict[int, float] = field(default_factory=dict)  # advance the simulated clock while scoring
    blocking: dict[int, threading.Event] = field(default_factory=dict)
    invalid_input: set[int] = field(default_factory=set)
    seen: dict[int, list[list[dict[str, Any]]]] = field(default_factory=dict)
    loads: list[int] = field(default_factory=list)

    def wrap(self, version: ModelVersion, native: Predictor) -> Predictor:
        self.loads.append(version.version)
        return FaultyPredictor(self, version.version, native)


class FaultyPredictor:
    def __init__(self, faults: Faults, version: int, native: Predictor) -> None:
        self.faults, self.version, self.native = faults, version, native

    def predict_proba(self, instances: list[dict[str, Any]]) -> np.ndarray:
        f, v = self.faults, self.version
        f.seen.setdefault(v, []).append([dict(i) for i in instances])
        if v in f.blocking:
            f.blocking[v].wait(30)
        if v in f.raising:
            raise RuntimeError(f"injected failure in v{v}")
        if v in f.invalid_input:
            from yarnit.core import InvalidInput

            raise InvalidInput(f"v{v} cannot use these instances (injected)")
        if v in f.slow_s:
            f.clock.advance(f.slow_s[v])
        scores = np.asarray(self.native.predict_proba(instances), dtype=float)
        if v in f.nan:
            scores = scores * np.nan
        return scores


def make_service(ws: Workspace, faults: Faults | None = None, **options: Any) -> InferenceService:
    opts = ServingOptions(**{"refresh_s": 0.0, "log_fsync": False, "log_flush_interval_s": 0.01} | options)
    runtime = ModelRuntime(ModelRegistry(ws), ws.clock, refresh_s=opts.refresh_s, compile=opts.compile,
                           breaker=BreakerSettings(opts.breaker_failures, opts.breaker_cooldown_s),
                           wrap_predictor=faults.wrap if faults is not None else None)
    log = PredictionLog(ws.home / "prediction_log", ws.clock, flush_interval_s=opts.log_flush_interval_s,
                        fsync=opts.log_fsync)
    return InferenceService(runtime, ws.clock, options=opts, prediction_log=log)
