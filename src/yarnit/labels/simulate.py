"""Drive a label task with answering functions: simulated raters in tests, demos and benchmarks.

The platform does not import the world (see docs/design.md); callers pass ``answer(rater, item_key,
prelabel) -> label``, e.g. a :class:`yarnit.world.raters.RaterPool` wrapped with each item's true class.
Raters take turns one item at a time, so their answers interleave in time as a real workforce's do,
and each turn advances a simulated clock by ``step_s`` when one is given.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from yarnit.core.clock import SimulatedClock

from .models import Answer
from .service import Labels

AnswerFn = Callable[[str, str, str | None], str]


def run_raters(labels: Labels, task_name: str, answer: AnswerFn, *, raters: Sequence[str] | None = None,
               max_answers_per_rater: int | None = None, batch: int = 50, step_s: float = 0.0,
               rounds_per_commit: int = 10) -> list[Answer]:
    """Let each rater answer their queue (up to ``max_answers_per_rater``), in turns; returns the answers.

    Answers are stored every ``rounds_per_commit`` rounds (one transaction each; a round is one answer per
    rater), and the simulated clock advances ``step_s`` per stored batch.
    """
    task = labels.task(task_name)
    who = list(raters or task.raters)
    given = {r: 0 for r in who}
    queues: dict[str, list[dict[str, Any]]] = {r: [] for r in who}
    out: list[Answer] = []
    clock = labels.ws.clock if isinstance(labels.ws.clock, SimulatedClock) else None
    seen: dict[str, set[str]] = {r: set() for r in who}
    while True:
        pending: list[tuple[str, str, str]] = []
        for _ in range(rounds_per_commit):
            pending += _round(labels, task_name, who, queues, seen, given, answer, max_answers_per_rater, batch)
        if not pending:
            return out
        out += labels.answer_many(task_name, pending)
        seen = {r: set() for r in who}
        if clock is not None and step_s:
            clock.advance(step_s)


def _round(labels: Labels, task_name: str, who: list[str], queues: dict[str, list[dict[str, Any]]],
           seen: dict[str, set[str]], given: dict[str, int], answer: AnswerFn, limit: int | None,
           batch: int) -> list[tuple[str, str, str]]:
    pending: list[tuple[str, str, str]] = []
    for r in who:
        if limit is not None and given[r] >= limit:
            continue
        if not queues[r]:
            # answers of this commit batch are not stored yet: skip them in the refetched queue
            fresh = labels.next_items(task_name, r, limit=batch + len(seen[r]))
            queues[r] = [q for q in fresh if q["item_key"] not in seen[r]][:batch]
        if queues[r]:
            item = queues[r].pop(0)
            key = str(item["item_key"])
            prelabel = item.get("prelabel")
            pending.append((key, r, answer(r, key, None if prelabel is None else str(prelabel))))
            given[r] += 1
            seen[r].add(key)
    return pending


__all__ = ["AnswerFn", "run_raters"]
