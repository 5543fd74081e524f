"""Drive a label task with answering functions: simulated raters in tests, demos and benchmarks.

The platform does not import the world (see docs/design.md); callers pass ``answer(rater, item_key,
prelabel) -> label``, e.g. a :class:`yarnit.world.raters.RaterPool` wrapped with each item's true class.
Raters take turns one item at a time, so their answers interleave in time as a real workforce's do,
and each turn advances a simulated clock by ``step_s`` when one is given.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from yarnit.core.clock import SimulatedClock

from .models import Answer
from .service import Labels

AnswerFn = Callable[[str, str, str | None], str]


def run_raters(labels: Labels, task_name: str, answer: AnswerFn, *, raters: Sequence[str] | None = None,
               max_answers_per_rater: int | None = None, batch: int = 50, step_s: float = 0.0) -> list[Answer]:
    """Let each rater answer their queue (up to ``max_answers_per_rater``), in turns; returns the answers."""
    task = labels.task(task_name)
    who = list(raters or task.raters)
    given = {r: 0 for r in who}
    queues: dict[str, list[dict[str, object]]] = {r: [] for r in who}
    out: list[Answer] = []
    clock = labels.ws.clock if isinstance(labels.ws.clock, SimulatedClock) else None
    while True:
        pending: list[tuple[str, str, str]] = []
        for r in who:
            if max_answers_per_rater is not None and given[r] >= max_answers_per_rater:
                continue
            if not queues[r]:
                queues[r] = labels.next_items(task_name, r, limit=batch)
            if queues[r]:
                item = queues[r].pop(0)
                key = str(item["item_key"])
                prelabel = item.get("prelabel")
                pending.append((key, r, answer(r, key, None if prelabel is None else str(prelabel))))
                given[r] += 1
        if not pending:
            return out
        out += labels.answer_many(task_name, pending)
        if clock is not None and step_s:
            clock.advance(step_s)


__all__ = ["AnswerFn", "run_raters"]
