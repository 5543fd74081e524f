"""When the model cannot answer: the previous version, then a heuristic; and breakers to stop retrying.

The chain for one request (see :class:`~yarnit.serving.service.InferenceService`):

1. the routed version (``production``, or ``canary`` for its share of keys);
2. the *previous* production version (kept loaded after a swap), and for a
   canary request the production version;
3. the version behind the ``fallback`` alias, if any;
4. a :class:`HeuristicFallback`: a small table of priors (popular items,
   base rates) that always answers instantly. For a ranking model it is the
   universal fallback of ch. 12, popular items: the request's candidates in
   popularity order (out-of-stock ones left out), or the top of the popular
   list when the request brings none.

A model attempt counts as failed when it raises, returns non-finite or
out-of-range scores, or finishes after the request's deadline (its late
answer is discarded: the client asked for an answer by then). Each loaded
version has a :class:`CircuitBreaker`: after ``failures_to_open``
consecutive failures it is skipped for ``cooldown_s`` (injected clock), so a
broken or slow version costs one failed attempt, not one per request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from yarnit.core.clock import Clock


@dataclass(frozen=True)
class HeuristicFallback:
    """Scores from a small table: ``table[instance[key]]``, else ``default``.

    Built from a version's signature (``"fallback": {"key": "product_type",
    "table": {"yarn": 0.04}, "default": 0.03}``) or, lacking that, from its
    holdout base rate (``metrics["ctr_holdout"]``).

    Example:
        >>> heuristic = HeuristicFallback(key="product_type", table={"yarn": 0.04}, default=0.02)
        >>> heuristic.predict([{"product_type": "yarn"}, {"product_type": "needles"}])
        [0.04, 0.02]
    """

    key: str | None = None
    table: Mapping[str, float] = field(default_factory=dict)
    default: float = 0.0
    source: str = "constant"
    popular: tuple[str, ...] = ()  # ranking models: item ids, most popular first

    @property
    def ranking(self) -> bool:
        """Whether this heuristic answers slates (a ranking model's) rather than probabilities."""
        return self.source == "signature.ranking"

    def rank(self, instances: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Popular items for each instance: its candidates by popularity, else the top ``k`` of the list.

        Example:
            >>> heuristic = HeuristicFallback(popular=("p3", "p1", "p2"), source="signature.ranking")
            >>> heuristic.rank([{"k": 2}, {"k": 5, "candidates": ["p2", {"product_id": "p1", "in_stock": False},
            ...                                                    "p9", "p3"]}])[1]["items"]
            ['p3', 'p2', 'p9']
        """
        order = {item: i for i, item in enumerate(self.popular)}
        slates = []
        for instance in instances:
            k = instance.get("k", 10)
            k = int(k) if isinstance(k, int | float) and not isinstance(k, bool) and 1 <= k <= 1000 else 10
            candidates = instance.get("candidates")
            if isinstance(candidates, list):
                ids = []
                for c in candidates:
                    if isinstance(c, str):
                        ids.append(c)
                    elif isinstance(c, Mapping) and isinstance(c.get("product_id"), str) \
                            and c.get("in_stock") is not False:
                        ids.append(c["product_id"])
                unknown = len(order)
                items = sorted(dict.fromkeys(ids), key=lambda i: order.get(i, unknown))[:k]
            else:
                items = list(self.popular[:k])
            n = len(items)
            slates.append({"items": items, "scores": [1.0 - j / max(n, 1) for j in range(n)],
                           "propensities": [1.0] * n, "explored": False, "eligible": n})
        return slates

    def predict(self, instances: list[dict[str, Any]]) -> list[float]:
        if self.key is None or not self.table:
            return [self.default] * len(instances)
        table, key, default = self.table, self.key, self.default
        return [float(table.get(str(i.get(key)), default)) for i in instances]

    @classmethod
    def for_version(cls, signature: Mapping[str, Any], metrics: Mapping[str, Any]) -> HeuristicFallback:
        spec = signature.get("fallback")
        if (isinstance(spec, Mapping) and spec.get("kind") == "ranking") or signature.get("output") == "ranking":
            popular = spec.get("popular") if isinstance(spec, Mapping) else None
            return cls(popular=tuple(str(p) for p in popular or ()), source="signature.ranking")
        if isinstance(spec, Mapping):
            table = {str(k): float(v) for k, v in (spec.get("table") or {}).items()}
            return cls(key=spec.get("key"), table=table, default=float(spec.get("default", 0.0)),
                       source="signature")
        for name in ("ctr_holdout", "base_rate", "positive_rate"):
            value = metrics.get(name)
            if isinstance(value, int | float) and 0.0 <= float(value) <= 1.0:
                return cls(default=float(value), source=f"metrics.{name}")
        return cls()


class CircuitBreaker:
    """Consecutive failures open it for ``cooldown_s``; then one trial request (half-open)."""

    __slots__ = ("clock", "failures_to_open", "cooldown_s", "failures", "opened_at", "trips")

    def __init__(self, clock: Clock, *, failures_to_open: int = 3, cooldown_s: float = 5.0) -> None:
        self.clock = clock
        self.failures_to_open = failures_to_open
        self.cooldown_s = cooldown_s
        self.failures = 0
        self.opened_at: float | None = None
        self.trips = 0

    def allows(self) -> bool:
        if self.opened_at is None:
            return True
        if self.clock.monotonic() - self.opened_at >= self.cooldown_s:
            self.opened_at = None  # half-open: let the next attempt decide
            self.failures = self.failures_to_open - 1
            return True
        return False

    def record_success(self) -> None:
        self.failures = 0
        self.opened_at = None

    def record_failure(self) -> None:
        self.failures += 1
        if self.failures >= self.failures_to_open and self.opened_at is None:
            self.opened_at = self.clock.monotonic()
            self.trips += 1

    @property
    def state(self) -> str:
        return "closed" if self.opened_at is None else "open"


__all__ = ["CircuitBreaker", "HeuristicFallback"]
