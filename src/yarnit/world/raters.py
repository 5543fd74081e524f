"""A simulated pool of human raters: the annotation workforce of book ch. 4, with its failings.

Each :class:`RaterProfile` answers an item correctly with probability ``accuracy`` less
``fatigue_per_100`` for every hundred answers they have already given (never below chance); a wrong
answer goes to their favourite ``bias_class`` with probability ``bias_strength``, else to a uniformly
drawn other class. The adversarial rater answers a wrong class on purpose (the next class, so their
answers look plausible and consistent) with probability ``1 - accuracy``. Shown a model's pre-label, a
rater copies it without judging with probability ``anchoring`` (the anchoring bias the platform measures).

An answer is drawn from a generator seeded by (pool seed, rater, item key), so a rater answers an item
the same way whatever order the items come in; only fatigue depends on how many answers came before.

Example:
    >>> pool = RaterPool.default(n_classes=4, seed=3)
    >>> [p.rater_id for p in pool.profiles if p.adversarial]
    ['rater-08']
    >>> pool.answer("rater-01", "q00001", truth=2) in range(4)
    True
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

_SALT = 0x4A7E


@dataclass(frozen=True)
class RaterProfile:
    """How one simulated rater behaves."""

    rater_id: str
    accuracy: float  # chance of a correct answer when fresh
    bias_class: int | None = None  # where their mistakes go, if they lean to one class
    bias_strength: float = 0.0
    fatigue_per_100: float = 0.0  # accuracy lost per hundred answers given
    adversarial: bool = False
    anchoring: float = 0.3  # chance of copying a shown pre-label


def _item_seed(item_key: str) -> int:
    return int.from_bytes(hashlib.sha256(item_key.encode("utf-8")).digest()[:8], "little")


@dataclass
class RaterPool:
    """Raters answering label items; counts each rater's answers for fatigue."""

    n_classes: int
    profiles: list[RaterProfile]
    seed: int = 0
    answered: dict[str, int] = field(default_factory=dict)

    @classmethod
    def default(cls, n_classes: int, seed: int = 0, *, n_raters: int = 8) -> RaterPool:
        """Eight raters: five good ones of varied skill, one biased, one tiring, one adversarial."""
        rng = np.random.default_rng([seed, _SALT])
        good = [RaterProfile(f"rater-{i + 1:02d}", accuracy=float(rng.uniform(0.72, 0.92)))
                for i in range(max(n_raters - 3, 1))]
        extra = [
            RaterProfile(f"rater-{len(good) + 1:02d}", accuracy=0.62, bias_class=int(rng.integers(n_classes)),
                         bias_strength=0.9),
            RaterProfile(f"rater-{len(good) + 2:02d}", accuracy=0.9, fatigue_per_100=0.25),
            RaterProfile(f"rater-{len(good) + 3:02d}", accuracy=0.1, adversarial=True, anchoring=0.0),
        ]
        return cls(n_classes, good + extra, seed)

    def profile(self, rater_id: str) -> RaterProfile:
        for p in self.profiles:
            if p.rater_id == rater_id:
                return p
        raise KeyError(f"No simulated rater {rater_id!r}; the pool has {[p.rater_id for p in self.profiles]}")

    def accuracy_now(self, rater_id: str) -> float:
        p = self.profile(rater_id)
        worn = p.accuracy - p.fatigue_per_100 * self.answered.get(rater_id, 0) / 100.0
        return worn if p.adversarial else max(worn, 1.0 / self.n_classes)

    def answer(self, rater_id: str, item_key: str, truth: int, *, prelabel: int | None = None) -> int:
        """The class ``rater_id`` gives ``item_key`` whose true class is ``truth``."""
        p = self.profile(rater_id)
        index = self.profiles.index(p)
        rng = np.random.default_rng([self.seed, _SALT, index, _item_seed(item_key)])
        u = rng.random(4)
        accuracy = self.accuracy_now(rater_id)
        self.answered[rater_id] = self.answered.get(rater_id, 0) + 1
        if prelabel is not None and u[3] < p.anchoring:
            return int(prelabel)
        if u[0] < accuracy:
            return int(truth)
        if p.adversarial:
            return int((truth + 1) % self.n_classes)
        if p.bias_class is not None and p.bias_class != truth and u[1] < p.bias_strength:
            return int(p.bias_class)
        other = [c for c in range(self.n_classes) if c != truth]
        return int(other[int(u[2] * len(other))])


__all__ = ["RaterPool", "RaterProfile"]
