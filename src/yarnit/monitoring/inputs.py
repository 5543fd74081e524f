"""The ``input_completeness`` SLI: served rows whose inputs all arrived, from the traffic summaries.

A serving fault that empties features (a partner lookup timing out, a
renamed upstream column) does not fail a request: the model still answers,
on worse inputs, and availability stays perfect. This SLI sees it:

* **event**: a served row, one instance of a request the model's primary
  route answered (status 200) whose instances were logged, or a row of a
  request refused with 422 (an input the model requires was missing or
  malformed: the data plane refuses such a request rather than guess, so a
  feature lookup that empties a required column shows up here, not as worse
  answers); shadow scores and rows past the log's row cap (logged as a count)
  are no events. A hostile client can spend this budget with bad requests:
  like any SLI on inputs, its pages say "inputs are broken", not who broke them;
* **good**: the row holds a value in every expected input column. The data
  plane drops ``null`` values (a null is a missing feature), so an empty input
  is an absent column; expected are the columns some row of the same model
  version held in the same hour ("every feature column seen"), or, with
  ``params.columns``, those named. Naming them also catches a column missing
  from *every* row of an hour, which "seen" cannot, and leaves out one that
  is legitimately often empty. Personal columns are never summarized, so
  never count.

.. code-block:: yaml

    - name: ctr-inputs
      sli: input_completeness
      model: ctr                        # whose rows (without it: every model's)
      objective: 99
      window: 28d
      params: {columns: [fiber, weight_class, color, brand]}   # optional; default: every input column

The counts come from the per-minute input counts the traffic summaries keep
(:mod:`.input_counts`, written by :func:`yarnit.monitoring.traffic.update`),
each row in the minute of its record's own time: a fault shows in the 5-minute
short window of the default page pair as soon as the monitor's pass after it
has read the log. :meth:`InputCompletenessSource.counts` first brings the
summaries up to the clock's now (at most once per instant; the monitor's own
update of the same pass leaves nothing new to read) and keeps each committed
hour's counts in memory, so a monitor reads each window file once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from yarnit.core.clock import Clock
from yarnit.core.errors import ConfigError

from .counts import EventCounts
from .input_counts import InputCounts
from .slo import SLO, SLOFile

INPUT_SLIS = frozenset({"input_completeness"})


def columns_of(slo: SLO) -> frozenset[str] | None:
    """The columns whose emptiness counts for ``slo`` (None: every input column)."""
    raw = slo.params.get("columns")
    if raw is None:
        return None
    if not (isinstance(raw, (list, tuple)) and raw and all(isinstance(c, str) and c for c in raw)):
        raise ConfigError(f"slos[{slo.name}].params.columns must be a non-empty list of input column names, got "
                          f"{raw!r}.")
    return frozenset(raw)


def fill(counts: EventCounts, summaries: Iterable[InputCounts], *, columns: frozenset[str] | None,
         first_minute: int, last_minute: int) -> EventCounts:
    """Add the (good, total) of every minute in ``[first_minute, last_minute]`` to ``counts``.

    Each summary (one model version's rows in one window) is judged against its own columns seen.

    Example:
        >>> hour = InputCounts()
        >>> hour.add(10, {("color", "fiber", "price"): 60, ("price",): 40})
        >>> hour.add(11, {("color", "fiber", "price"): 100})
        >>> fill(EventCounts(capacity=60), [hour], columns=None, first_minute=0, last_minute=59).window(
        ...     end_s=720, window_s=720)
        (160, 200)
    """
    parts = [summary.arrays(columns) for summary in summaries]
    if not parts:
        return counts
    minutes, goods, totals = (np.concatenate([p[i] for p in parts]) for i in range(3))
    inside = (minutes >= first_minute) & (minutes <= last_minute)
    counts.add_many(minutes[inside] * 60, good=goods[inside], total=totals[inside])
    return counts


class InputCompletenessSource:
    """``input_completeness`` counts per model from the traffic summaries (an SLISource)."""

    def __init__(self, workspace: Any, spec: SLOFile, *, clock: Clock) -> None:
        self.workspace, self.spec, self.clock = workspace, spec, clock
        self.last: dict[str, Any] | None = None
        self._refreshed_at: float | None = None
        self._cache: dict[tuple[str, int, int], list[InputCounts]] = {}

    def refresh(self) -> dict[str, Any]:
        """Fold what the prediction log gained into the traffic summaries (once per instant of the clock)."""
        from . import traffic

        now_s = self.clock.now().timestamp()
        if self._refreshed_at != now_s or self.last is None:
            report = traffic.update(self.workspace, clock=self.clock)
            self.last = {k: report.get(k) for k in ("records", "skipped", "epoch", "updated_at")}
            self._refreshed_at = now_s
        return self.last

    def updated(self, report: dict[str, Any], at_s: float) -> None:
        """The monitor ran ``traffic.update`` at ``at_s``: the summaries are current, do not read the log again."""
        self.last = {k: report.get(k) for k in ("records", "skipped", "epoch", "updated_at")}
        self._refreshed_at = at_s

    def counts(self, slo: SLO, *, until_s: float) -> EventCounts:
        from . import traffic

        if slo.sli not in INPUT_SLIS:
            raise ConfigError(f"SLO {slo.name!r} has SLI {slo.sli!r}; this source counts only input_completeness.")
        columns = columns_of(slo)
        self.refresh()
        counts = EventCounts.for_span(max([slo.window_s, *slo.windows_s()]))
        first = math.floor((until_s - counts.capacity * 60) / 60)
        last = math.ceil(until_s / 60) - 1
        models = [slo.model] if slo.model is not None else traffic.models(self.workspace)
        for model in models:
            inputs = traffic.window_inputs(self.workspace, model, first * 60, until_s, cache=self._cache)
            fill(counts, inputs, columns=columns, first_minute=first, last_minute=last)
        return counts


def for_workspace(workspace: Any, spec: SLOFile, *, clock: Clock) -> InputCompletenessSource:
    """The ``input_completeness`` SLOs of ``spec`` over the workspace's traffic summaries."""
    for slo in spec.slos:  # a bad param fails when the source is built, naming the field
        if slo.sli in INPUT_SLIS:
            columns_of(slo)
    return InputCompletenessSource(workspace, spec, clock=clock)


__all__ = ["INPUT_SLIS", "InputCompletenessSource", "columns_of", "fill", "for_workspace"]
