"""Ranking with the click model in the world's closed loop (ch. 3 and 10 feedback loops).

:class:`ClickModelRanker` scores every candidate of a batch of pages with a
registered click model. It computes the features with the same
``ctr_features_v1`` definition used in training (vectorized), sets
``position`` to 1 so that position bias does not leak into the order, and
shows a small share of sessions in a random order (ε-greedy exploration).
The world logs the propensities of those sessions together with the model
version. :func:`closed_loop_ctr` runs the world under several rankers with
the same seed and compares the CTRs they get.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from yarnit.core.errors import InvalidInput
from yarnit.features.request_time_frame import FRAME_TRANSFORMS
from yarnit.registry import ModelRegistry, ModelVersion, load_predictor
from yarnit.training.encoding import encode_frame

from .affinity import AffinityHistory


class ClickModelRanker:
    """A world ranker backed by a registered click model version."""

    def __init__(self, version: ModelVersion, artifact: bytes, *, exploration_rate: float = 0.05) -> None:
        transform = version.signature.get("transform")
        if transform not in FRAME_TRANSFORMS:
            raise InvalidInput(
                f"{version.ref} uses transform {transform!r}, which has no vectorized form; known: "
                f"{', '.join(FRAME_TRANSFORMS)}."
            )
        if not 0.0 <= exploration_rate <= 1.0:
            raise InvalidInput(f"exploration_rate must be in [0, 1]; got {exploration_rate}.")
        self.version = version
        self.transform = FRAME_TRANSFORMS[transform]
        self.predictor = load_predictor(artifact, version.artifact_format)
        self.model_version = version.ref
        self.exploration_rate = exploration_rate
        # ctr_features_v2 needs each shopper's click history: kept here and fed by observe()
        self.history = AffinityHistory() if transform == "ctr_features_v2" else None

    def observe(self, impressions: pd.DataFrame) -> None:
        """Learn from a day the ranker served (the click history behind shopper affinities)."""
        if self.history is not None:
            self.history.observe(impressions)

    @classmethod
    def from_registry(cls, registry: ModelRegistry, model: str, alias: str = "production",
                      **options: Any) -> ClickModelRanker:
        version = registry.resolve(model, alias)
        return cls(version, registry.ws.artifacts.get_bytes(version.artifact_sha256), **options)

    def score_frame(self, candidates: pd.DataFrame) -> np.ndarray:
        if self.history is not None:
            candidates = self.history.annotate(candidates)
        features = self.transform(candidates.assign(position=1))
        estimator = getattr(self.predictor, "estimator", None)
        if estimator is not None and hasattr(estimator, "named_steps") and "vectorize" in estimator.named_steps:
            # fast path for the skops logistic pipeline: encode the frame directly, as training did
            matrix = encode_frame(estimator.named_steps["vectorize"], features)
            return np.asarray(estimator.named_steps["model"].predict_proba(matrix)[:, 1])
        records = features.astype({c: object for c in features.columns if features[c].dtype == "category"})
        return np.asarray(self.predictor.predict_proba(records.to_dict("records")))

    def rank_batch(self, batch: Any) -> np.ndarray:
        scores = self.score_frame(batch.candidates)
        return scores.reshape(batch.n_requests, batch.n_candidates)

    def __call__(self, request: Any) -> np.ndarray:
        return self.score_frame(request.candidates)


@dataclass(frozen=True)
class LoopResult:
    ranker: str
    impressions: int
    clicks: int
    ctr: float
    purchases: int
    model_versions: tuple[str, ...]


def closed_loop_ctr(rankers: Mapping[str, Any], *, days: int = 7, seed: int = 1,
                    sessions_per_day: int = 2000) -> list[LoopResult]:
    """Run the world for ``days`` under each ranker (same seed, same shoppers) and measure what they get."""
    from yarnit.world import World, WorldConfig

    results = []
    for name, ranker in rankers.items():
        world = World(WorldConfig(seed=seed, sessions_per_day=sessions_per_day), ranker=ranker)
        impressions = clicks = purchases = 0
        versions: set[str] = set()
        for day in world.run(days):
            log = day.impressions
            impressions += len(log)
            clicks += int(log["clicked"].sum())
            purchases += int(log["purchased"].sum())
            versions.update(log["model_version"].unique())
            if hasattr(ranker, "observe"):
                ranker.observe(log)
        results.append(LoopResult(name, impressions, clicks, clicks / max(1, impressions), purchases,
                                  tuple(sorted(versions))))
    return results


__all__ = ["ClickModelRanker", "LoopResult", "closed_loop_ctr"]
