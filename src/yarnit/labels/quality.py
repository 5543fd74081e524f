"""Rater quality from hidden golden questions: accuracy, its drift over time, flags and weights.

Golden items have a known class and sit at random places in every rater's queue, indistinguishable from
ordinary items. A rater's golden answers, taken in the order they gave them, are a running test of how
well they label. Three figures come out of it:

* accuracy, and the Wilson interval around it (few golden answers say little);
* drift: accuracy over the last ``drift_window`` golden answers minus over the first (a tiring rater, or
  one who learned the guideline, shows here before it shows in the total);
* the flag: raised at the first golden answer after which the Wilson upper bound is below the policy's
  ``min_accuracy``, and kept; a flagged rater's answers count ``flagged_weight`` in the consensus. The
  answer number at which it was raised is recorded, so "caught within 50 answers" is a fact, not a guess.

A z-bound rather than the raw accuracy keeps a good rater who misses two of their first three golden
items from being flagged: 1/3 correct has an upper bound of 0.79 at z = 1.96.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .models import Answer, QualityPolicy


def wilson_bounds(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a proportion ``correct / n`` ((0, 1) when n is 0)."""
    if n == 0:
        return 0.0, 1.0
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class RaterQuality:
    """What the golden items say about one rater."""

    rater: str
    answers: int
    golden_answers: int
    golden_correct: int
    accuracy: float | None
    accuracy_low: float
    accuracy_high: float
    first_window_accuracy: float | None
    last_window_accuracy: float | None
    flagged: bool
    flagged_at_answer: int | None  # the rater's answer number (seq) when the flag was raised
    weight: float

    @property
    def drift(self) -> float | None:
        if self.first_window_accuracy is None or self.last_window_accuracy is None:
            return None
        return self.last_window_accuracy - self.first_window_accuracy

    def to_dict(self) -> dict[str, Any]:
        return {"rater": self.rater, "answers": self.answers, "golden_answers": self.golden_answers,
                "golden_correct": self.golden_correct, "accuracy": self.accuracy,
                "accuracy_interval": [self.accuracy_low, self.accuracy_high],
                "first_window_accuracy": self.first_window_accuracy,
                "last_window_accuracy": self.last_window_accuracy, "drift": self.drift, "flagged": self.flagged,
                "flagged_at_answer": self.flagged_at_answer, "weight": self.weight}


def rater_quality(rater: str, answers: Sequence[Answer], golden: Mapping[str, str],
                  policy: QualityPolicy) -> RaterQuality:
    """Golden accuracy, drift and flag of ``rater`` from their answers (any order; sorted by ``seq``)."""
    mine = sorted((a for a in answers if a.rater == rater), key=lambda a: a.seq)
    hits: list[bool] = []
    flagged_at: int | None = None
    for a in mine:
        if a.item_key not in golden:
            continue
        hits.append(a.label == golden[a.item_key])
        if flagged_at is None and len(hits) >= policy.min_golden:
            _, high = wilson_bounds(sum(hits), len(hits), policy.z)
            if high < policy.min_accuracy:
                flagged_at = a.seq
    correct, n = sum(hits), len(hits)
    low, high = wilson_bounds(correct, n, policy.z)
    window = policy.drift_window
    first = sum(hits[:window]) / len(hits[:window]) if n >= 2 * window else None
    last = sum(hits[-window:]) / window if n >= 2 * window else None
    flagged = flagged_at is not None
    return RaterQuality(rater=rater, answers=len(mine), golden_answers=n, golden_correct=correct,
                        accuracy=correct / n if n else None, accuracy_low=low, accuracy_high=high,
                        first_window_accuracy=first, last_window_accuracy=last, flagged=flagged,
                        flagged_at_answer=flagged_at, weight=policy.flagged_weight if flagged else 1.0)


def accuracy_over_time(rater: str, answers: Sequence[Answer], golden: Mapping[str, str],
                       window: int) -> list[dict[str, Any]]:
    """The rater's golden accuracy in consecutive windows of ``window`` golden answers (oldest first)."""
    mine = [a for a in sorted(answers, key=lambda a: a.seq) if a.rater == rater and a.item_key in golden]
    out = []
    for start in range(0, len(mine), window):
        chunk = mine[start:start + window]
        out.append({"until_answer": chunk[-1].seq, "until": chunk[-1].answered_at.isoformat(),
                    "golden_answers": len(chunk),
                    "accuracy": sum(a.label == golden[a.item_key] for a in chunk) / len(chunk)})
    return out


__all__ = ["RaterQuality", "accuracy_over_time", "rater_quality", "wilson_bounds"]
