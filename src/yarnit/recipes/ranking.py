"""Ranking with the click model in the world's closed loop (ch. 3 and 10 feedback loops).

:class:`ClickModelRanker` scores every candidate of a batch of pages with a
registered click model. It computes the features with the transform named
in the model's signature, vectorized as in training (for ``ctr_features_v2``
and ``v3`` after adding the shopper and product history it has observed,
point-in-time as in training), sets ``position`` to 1 so that position bias
does not leak into the order, and shows a small share of sessions in a
random order (ε-greedy exploration).
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

from .affinity import HISTORY_TRANSFORMS, AffinityHistory


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
        # ctr_features_v2 and v3 need each shopper's click history: kept here and fed by observe()
        self.history = AffinityHistory() if transform in HISTORY_TRANSFORMS else None

    def observe(self, impressions: pd.DataFrame) -> None:
        """Learn from a closed day's log (the shopper and product history behind v2/v3 features)."""
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


def closed_loop_ctr(rankers: Mapping[str, Any], *, days: int = 7, seed: int = 1, sessions_per_day: int = 2000,
                    warmup_days: int = 0, warmup_ranker: Any = None) -> list[LoopResult]:
    """Run the world for ``days`` under each ranker (same seed, same shoppers) and measure what they get.

    With ``warmup_days``, the world first runs that many days under ``warmup_ranker`` (default: popularity,
    the policy that logged the training data), every ranker observes those logs, and only the days after
    them count: the model is deployed on the store it was trained on, and knows its shoppers' history.
    """
    from yarnit.world import World, WorldConfig, popularity_ranker

    if warmup_days < 0:
        raise InvalidInput(f"warmup_days must be 0 or more; got {warmup_days}.")
    results = []
    for name, ranker in rankers.items():
        world = World(WorldConfig(seed=seed, sessions_per_day=sessions_per_day),
                      ranker=(warmup_ranker or popularity_ranker) if warmup_days else ranker)
        impressions = clicks = purchases = 0
        versions: set[str] = set()
        for index, day in enumerate(world.run(warmup_days + days)):
            log = day.impressions
            if hasattr(ranker, "observe"):
                ranker.observe(log)
            if index + 1 == warmup_days:
                world.ranker = ranker  # read when the next day starts
            if index < warmup_days:
                continue
            impressions += len(log)
            clicks += int(log["clicked"].sum())
            purchases += int(log["purchased"].sum())
            versions.update(log["model_version"].unique())
        results.append(LoopResult(name, impressions, clicks, clicks / max(1, impressions), purchases,
                                  tuple(sorted(versions))))
    return results


__all__ = ["ClickModelRanker", "LoopResult", "closed_loop_ctr"]
