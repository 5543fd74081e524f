"""``yarnit demo``: the thin end-to-end path from data to a prediction served over HTTP.

world → dataset version → click model → time-ordered holdout AUC → registry
(skops artifact, sha256, lineage) → alias ``production`` → HTTP server on a
loopback port → real ``POST /v1/models/ctr:predict`` requests.

Each step is idempotent: a re-run (also after ``kill -9`` mid-run) reuses the
identical dataset version and model artifact instead of duplicating them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from yarnit.api import create_app
from yarnit.api.server import BackgroundServer
from yarnit.core.errors import InvalidInput, Unavailable
from yarnit.core.hashing import sha256_bytes
from yarnit.data import Datasets
from yarnit.recipes import RAW_INPUTS, train_ctr
from yarnit.registry import ArtifactFormat, ModelRegistry, dump_sklearn
from yarnit.storage import Workspace
from yarnit.training import RunStore, detect_code_version
from yarnit.world import World, WorldConfig

MODEL = "ctr"
DATASET = "yarnit-impressions"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class DemoResult:
    dataset_version: str
    dataset_id: str
    rows: int
    model_version: int
    model_ref: str
    auc_holdout: float | None
    auc_oracle: float | None
    ctr_holdout: float
    served_prediction: float
    served_by_version: int
    served_by: str
    server_url: str
    requests_sent: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def generate_click_log(days: int, seed: int, sessions_per_day: int, progress: Progress) -> pd.DataFrame:
    world = World(WorldConfig(seed=seed, sessions_per_day=sessions_per_day))
    parts = []
    for partition in world.run(days):
        impressions = partition.impressions.merge(partition.truth[["impression_id", "p_click"]],
                                                  on="impression_id", how="left")
        parts.append(impressions)
        progress(f"world: day {partition.impressions['day'].iloc[0]} — {len(impressions):,} impressions")
    return pd.concat(parts, ignore_index=True)


def run_demo(ws: Workspace, *, days: int = 3, seed: int = 0, sessions_per_day: int = 1500,
             progress: Progress = lambda _m: None) -> DemoResult:
    if days < 2:
        raise InvalidInput(f"--days {days} is too few: the demo holds out the last day, so it needs at least 2.")
    log = generate_click_log(days, seed, sessions_per_day, progress)
    truth = log.pop("p_click")  # ground truth is for scoring only, never a feature or part of the dataset

    datasets = Datasets(ws)
    dataset = datasets.ingest_frame(DATASET, log, source=f"yarnit world seed={seed} days={days}",
                                    retention_class="events", pii_columns=["user_id"])
    progress(f"dataset {dataset.ref}: {dataset.row_count:,} rows, sha256 {dataset.content_sha256[:12]}…")

    runs = RunStore(ws)
    code_version = detect_code_version()
    run = runs.start("yarnit-ctr", {"seed": seed, "days": days, "dataset": dataset.id}, code_version=code_version)
    try:
        frame = datasets.read(dataset)
        result = train_ctr(frame, seed=seed)
        holdout = frame["day"] == frame["day"].max()
        y = frame.loc[holdout, "clicked"].to_numpy()
        oracle = float(roc_auc_score(y, truth[holdout.to_numpy()])) if len(np.unique(y)) == 2 else None
        metrics = result.metrics | {"auc_oracle_holdout": oracle}
        progress(f"trained: AUC {metrics['auc_holdout']:.4f} on the time-ordered holdout (oracle {oracle:.4f})")
        registry = ModelRegistry(ws)
        artifact = dump_sklearn(result.estimator)
        version = _register_once(registry, artifact, result, metrics, dataset.id, run.id, seed, code_version)
        runs.finish(run.id, "succeeded", metrics)
    except BaseException:
        runs.finish(run.id, "failed")
        raise
    if registry.aliases(MODEL).get("production") != version.version:
        registry.promote(MODEL, version.version, actor="demo", reason="demo: first model passes holdout AUC")
    progress(f"registered {version.ref} (sha256 {version.artifact_sha256[:12]}…) → production")

    examples = frame.loc[holdout, list(RAW_INPUTS)].head(20).to_dict("records")
    examples = [{k: (v.item() if hasattr(v, "item") else v) for k, v in e.items()} for e in examples]
    with BackgroundServer(create_app(ws)) as server:
        progress(f"serving on {server.url}")
        with httpx.Client(base_url=server.url, timeout=10) as client:
            answers = []
            for example in examples:
                response = client.post(f"/v1/models/{MODEL}:predict", json={"instances": [example]})
                if response.status_code != 200:
                    raise Unavailable(f"The server answered {response.status_code}: {response.text[:300]}")
                answers.append(response.json())
    first = answers[0]
    return DemoResult(
        dataset_version=dataset.ref, dataset_id=dataset.id, rows=dataset.row_count, model_version=version.version,
        model_ref=version.ref, auc_holdout=metrics["auc_holdout"], auc_oracle=oracle,
        ctr_holdout=metrics["ctr_holdout"], served_prediction=first["predictions"][0],
        served_by_version=first["model_version"], served_by=first["served_by"], server_url=server.url,
        requests_sent=len(answers),
    )


def _register_once(registry: ModelRegistry, artifact: bytes, result: Any, metrics: dict[str, Any],
                   dataset_id: str, run_id: str, seed: int, code_version: str | None) -> Any:
    """Reuse the newest version when it holds the identical artifact (a re-run after a crash)."""
    if registry.exists(MODEL):
        existing = registry.versions(MODEL)
        if existing and existing[-1].artifact_sha256 == sha256_bytes(artifact):
            return existing[-1]
    return registry.register(
        MODEL, artifact, ArtifactFormat.SKOPS, signature=result.signature, metrics=metrics, params=result.params,
        dataset_version_ids=[dataset_id], run_id=run_id, code_version=code_version, seed=seed,
        description="Yarn Product Click Prediction Model",
    )


__all__ = ["DemoResult", "run_demo"]
