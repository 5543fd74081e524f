"""Where SLO events come from: counts in memory, or a JSON-lines file of per-minute counts.

A line of the file is ``{"slo": "ctr-availability", "at": "2026-03-01T10:05:00Z", "good": 998, "total": 1000}``
(``at``: ISO 8601 with a zone, or epoch seconds). Every line is checked; the
first bad one is named by its number with what was wrong, and nothing is
half-loaded.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any

from yarnit.core.errors import ConfigError

from .counts import EventCounts
from .slo import SLO, SLOFile


class CountsSource:
    """An :class:`~yarnit.monitoring.burn.SLISource` over counts held in memory, one series per SLO."""

    def __init__(self) -> None:
        self._series: dict[str, EventCounts] = {}

    def counts_for(self, slo: SLO) -> EventCounts:
        """The series of ``slo`` (created, sized to its window, on first use)."""
        if slo.id not in self._series:
            self._series[slo.id] = EventCounts.for_span(max([slo.window_s, *slo.windows_s()]))
        return self._series[slo.id]

    def counts(self, slo: SLO, *, until_s: float) -> EventCounts:
        return self.counts_for(slo)


def read_counts_jsonl(path: str | Path, spec: SLOFile) -> CountsSource:
    """Load per-minute counts for ``spec``'s SLOs from a JSON-lines file."""
    p = Path(path)
    by_name = {slo.name: slo for slo in spec.slos}
    source = CountsSource()
    try:
        handle = p.open(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"Cannot read counts file {p.name!r}: {exc.strerror}.") from None
    with handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            slo, at_s, good, total = _line(line, number, p.name, by_name)
            source.counts_for(slo).add(at_s, good=good, total=total)
    return source


def _line(line: str, number: int, name: str, by_name: dict[str, SLO]) -> tuple[SLO, float, int, int]:
    where = f"{name} line {number}"
    try:
        row: Any = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where} is not JSON ({exc.msg}); each line is "
                          '{"slo": NAME, "at": ISO-TIME, "good": N, "total": N}.') from None
    if not isinstance(row, dict) or set(row) != {"slo", "at", "good", "total"}:
        raise ConfigError(f"{where} must have exactly the keys slo, at, good, total; got "
                          f"{sorted(row) if isinstance(row, dict) else type(row).__name__}.")
    if row["slo"] not in by_name:
        raise ConfigError(f"{where}: slo {str(row['slo'])[:80]!r} is not in the SLO file; known: "
                          f"{', '.join(by_name)}.")
    good, total = row["good"], row["total"]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (good, total)) or not 0 <= good <= total:
        raise ConfigError(f"{where}: good and total must be whole numbers with 0 <= good <= total, got "
                          f"good={good!r}, total={total!r}.")
    at = row["at"]
    if isinstance(at, (int, float)) and not isinstance(at, bool) and math.isfinite(at):
        at_s = float(at)
    else:
        try:
            when = datetime.fromisoformat(str(at).replace("Z", "+00:00"))
        except ValueError:
            when = None
        if when is None or when.tzinfo is None:
            raise ConfigError(f"{where}: at must be an ISO 8601 time with a zone (2026-03-01T10:05:00Z) or epoch "
                              f"seconds, got {str(at)[:80]!r}.")
        at_s = when.timestamp()
    return by_name[row["slo"]], at_s, good, total


__all__ = ["CountsSource", "read_counts_jsonl"]
