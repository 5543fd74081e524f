"""When the model cannot answer: the previous version, then a heuristic; and breakers to stop retrying.

The chain for one request (see :class:`~yarnit.serving.service.InferenceService`):

1. the routed version (``production``, or ``canary`` for its share of keys);
2. the *previous* production version (kept loaded after a swap), and for a
   canary request the production version;
3. the version behind the ``fallback`` alias, if any;
4. a :class:`HeuristicFallback`: a small table of priors (popular items,
   base rates) that answers instantly, when the version declares one. A
   version without any prior has no heuristic, and the request gets a 503
   with Retry-After instead of an invented number. For a ranking model it is the
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

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from yarnit.core.clock import Clock


@dataclass(frozen=True)
class HeuristicFallback:
    """Scores from a small table of priors: ``table[instance[key]]``, else ``default``.

    Built from a version's signature (``"fallback": {"key": "product_type",
    "table": {"yarn": 0.04}, "default": 0.03}``; the ``yarnit-ctr`` pipeline
    records its training base rate per product type there) or, lacking that,
    from a base rate in its metrics (``base_rate``, ``ctr_holdout``,
    ``positive_rate``, or the pipeline's holdout ``ctr``). A version with
    neither has no heuristic (:attr:`available` is False): serving then answers
    an explicit 503 rather than a number nobody declared.

    Example:
        >>> heuristic = HeuristicFallback(key="product_type", table={"yarn": 0.04}, default=0.02)
        >>> heuristic.predict([{"product_type": "yarn"}, {"product_type": "needles"}])
        [0.04, 0.02]
        >>> HeuristicFallback.for_version({}, {}).available
        False
    """

    key: str | None = None
    table: Mapping[str, float] = field(default_factory=dict)
    default: float | None = None  # None: no prior for an instance outside the table
    source: str = "none"
    popular: tuple[str, ...] = ()  # ranking models: item ids, most popular first

    @property
    def ranking(self) -> bool:
        """Whether this heuristic answers slates (a ranking model's) rather than probabilities."""
        return self.source == "signature.ranking"

    @property
    def available(self) -> bool:
        """Whether the version's owner declared any prior at all (else serving answers 503, not a number)."""
        return self.ranking or self.default is not None or bool(self.key and self.table)

    @property
    def per_instance(self) -> bool:
        """Whether its answer depends on the instance (a per-slice table, popular items), not one constant.

        Only such a heuristic answers a request whose deadline ran out: a constant
        for every row of a batch the model could not score in time tells the
        client nothing, and a 503 with Retry-After tells it to come back.
        """
        return self.ranking or bool(self.key and self.table)

    def answers(self, instances: list[dict[str, Any]]) -> bool:
        """Whether it has a prior for every one of ``instances``."""
        if self.ranking or self.default is not None:
            return True
        if not (self.key and self.table):
            return False
        return all(str(i.get(self.key)) in self.table for i in instances)

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
        """The prior of each instance; call it only when :meth:`answers` says it has one for each."""
        default = self.default
        if self.key is None or not self.table:
            if default is None:
                raise ValueError("this version declares no fallback prior; check HeuristicFallback.answers first")
            return [default] * len(instances)
        table, key = self.table, self.key
        out = [table.get(str(i.get(key)), default) for i in instances]
        if any(v is None for v in out):
            raise ValueError(f"no fallback prior for some values of {key!r}; check HeuristicFallback.answers first")
        return out  # type: ignore[return-value]

    @classmethod
    def for_version(cls, signature: Mapping[str, Any], metrics: Mapping[str, Any]) -> HeuristicFallback:
        """The heuristic a version's owner declared (signature ``fallback``), else its recorded base rate."""
        spec = signature.get("fallback")
        if signature.get("output") == "class":  # a probability is no answer for a classifier: no heuristic
            return cls()
        if (isinstance(spec, Mapping) and spec.get("kind") == "ranking") or signature.get("output") == "ranking":
            popular = spec.get("popular") if isinstance(spec, Mapping) else None
            return cls(popular=tuple(str(p) for p in popular or ()), source="signature.ranking")
        base_rate, base_source = None, "none"
        for name in BASE_RATE_METRICS:
            base_rate = _probability(metrics.get(name))
            if base_rate is not None:
                base_source = f"metrics.{name}"
                break
        if isinstance(spec, Mapping):
            raw = spec.get("table") or {}
            table = {str(k): p for k, v in (raw.items() if isinstance(raw, Mapping) else ())
                     if (p := _probability(v)) is not None}
            key = spec.get("key") if isinstance(spec.get("key"), str) else None
            default = _probability(spec.get("default"))
            if default is None:
                default = base_rate
            if (key and table) or default is not None:
                return cls(key=key, table=table, default=default, source="signature")
        if base_rate is not None:
            return cls(default=base_rate, source=base_source)
        return cls()


#: Metrics read as a click model's base rate when its signature declares no fallback, in this order.
#: ``ctr`` is what the ``yarnit-ctr`` pipeline records (the holdout click rate) on versions that predate
#: the per-slice training base rate in their signature.
BASE_RATE_METRICS = ("base_rate", "ctr_holdout", "positive_rate", "ctr")


def _probability(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) and 0.0 <= value <= 1.0 else None


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


__all__ = ["BASE_RATE_METRICS", "CircuitBreaker", "HeuristicFallback"]
