"""The world as traffic for the data plane: live requests out, and an HTTP ranker that closes the loop.

* :func:`serve_traffic` runs the world and yields, day by day, the rank
  requests its shoppers make: who asks, the query, and the candidates as
  JSON-ready dicts. A load test or a shadow deployment can replay them
  against ``POST /v1/models/{name}:predict``.
* :class:`HttpRanker` is a world ranker that asks a running yarnit server to
  score candidates. With it, ``World(config, ranker=HttpRanker(url))`` lets a
  deployed model decide what shoppers see, through the real HTTP path.

This module talks to the data plane only over HTTP (httpx); it imports
nothing from the platform.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from yarnit.core.errors import InvalidInput, Unavailable

from .config import WorldConfig
from .rankers import RankBatch, popularity_ranker


def _json_ready(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = frame.copy()
    for column in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[column]) or out[column].dtype == object and len(out) and \
                isinstance(out[column].iloc[0], dt.date | dt.datetime):
            out[column] = out[column].astype(str)
    records = out.astype(object).where(out.notna(), None).to_dict("records")
    return [{k: (v.item() if isinstance(v, np.generic) else v) for k, v in r.items()} for r in records]


@dataclass(frozen=True)
class TrafficRequest:
    """One page a shopper asked for: a predict request for each of its candidates."""

    day: dt.date
    session_id: str
    user_id: str
    query: str
    instances: list[dict[str, Any]]


class _Recorder:
    """A ranker that orders like popularity and keeps every batch it was asked to rank."""

    def __init__(self) -> None:
        self.batches: list[RankBatch] = []
        self.model_version = "popularity"
        self.exploration_rate = 0.0

    def rank_batch(self, batch: RankBatch) -> np.ndarray:
        self.batches.append(batch)
        return np.asarray(popularity_ranker.rank_batch(batch))


def serve_traffic(config: WorldConfig, days: int) -> Iterator[TrafficRequest]:
    """Yield the rank requests of ``days`` simulated days (the world's shoppers, with the popularity order)."""
    from .world import World

    recorder = _Recorder()
    world = World(config, ranker=recorder)
    for partition in world.run(days):
        for batch in recorder.batches:
            frame = batch.candidates
            for i in range(batch.n_requests):
                rows = frame.iloc[i * batch.n_candidates:(i + 1) * batch.n_candidates]
                first = rows.iloc[0]
                yield TrafficRequest(day=partition.day, session_id=str(first.get("session_id", "")),
                                     user_id=str(first.get("user_id", "")), query=str(first.get("query", "") or ""),
                                     instances=_json_ready(rows.assign(position=1)))
        recorder.batches.clear()


class HttpRanker:
    """Scores candidates through ``POST {base_url}/v1/models/{model}:predict`` (the deployed model)."""

    exploration_rate = 0.0

    def __init__(self, base_url: str, model: str = "ctr", *, chunk: int = 2000, timeout_s: float = 30.0) -> None:
        import httpx

        self.url = f"/v1/models/{model}:predict"
        self.client = httpx.Client(base_url=base_url, timeout=timeout_s)
        self.chunk = chunk
        self.model_version = f"{model}@http"
        self.served_versions: set[int] = set()

    def rank_batch(self, batch: RankBatch) -> np.ndarray:
        instances = _json_ready(batch.candidates.assign(position=1))
        scores: list[float] = []
        for start in range(0, len(instances), self.chunk):
            response = self.client.post(self.url, json={"instances": instances[start:start + self.chunk]})
            if response.status_code != 200:
                raise Unavailable(f"The data plane answered {response.status_code} at {self.url}: "
                                  f"{response.text[:200]}")
            body = response.json()
            self.served_versions.add(int(body["model_version"]))
            scores.extend(body["predictions"])
        if len(scores) != len(instances):
            raise InvalidInput(f"The data plane returned {len(scores)} scores for {len(instances)} candidates.")
        return np.asarray(scores)

    def close(self) -> None:
        self.client.close()


__all__ = ["HttpRanker", "TrafficRequest", "serve_traffic"]
