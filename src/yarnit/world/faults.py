"""Fault: one injected failure scenario with its time window and parameters, and its spec syntax.

The command line writes a fault as ``NAME@DAY[:HOURS][,param=value…]``:

* ``NAME`` is one of :data:`yarnit.world.FAULTS` (``yarnit world faults`` lists them);
* ``DAY`` is the first day, either a day number (0 is the world's start date)
  or an ISO date such as ``2026-01-08``; the window opens at midnight UTC, or
  ``+HH`` hours later (``stockout@3+12`` opens at noon of day 3);
* ``HOURS`` is the length of the window (default 24);
* each ``param=value`` sets a parameter of the scenario (the rest keep defaults).

Example:
    >>> f = parse_fault("click_log_outage@2:48,replay_after_hours=12")
    >>> f.name, f.day, f.hours, dict(f.params)
    ('click_log_outage', 2, 48.0, {'replay_after_hours': 12.0})
    >>> f.spec()
    'click_log_outage@2:48,replay_after_hours=12'
    >>> from yarnit.core import utc
    >>> parse_fault("stockout@3+12:48").window(utc(2026, 1, 5))[0].isoformat()
    '2026-01-08T12:00:00+00:00'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from types import MappingProxyType
from typing import Any

from yarnit.core.errors import InvalidInput

from .scenarios import FAULTS, FaultKind, ParamValue

MAX_DAYS = 3660
SPEC_SYNTAX = ("NAME@DAY[+HH][:HOURS][,param=value...] (e.g. stockout@3:48,top_n=5, stockout@3+12 from noon, or "
               "biased_loss@2026-01-08,country=ES)")


def _valid_names() -> str:
    return ", ".join(FAULTS)


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Fault:
    """A failure scenario switched on for ``hours`` from ``hour`` o'clock (UTC, default midnight) of day ``day``.

    ``params`` are checked against the scenario (:data:`FAULTS`) and completed
    with defaults, so ``faults.json`` records every value actually used.

    Example:
        >>> Fault("stockout", day=3, hours=48, params={"top_n": 5}).spec()
        'stockout@3:48,top_n=5'
    """

    name: str
    day: int
    hours: float = 24.0
    params: Mapping[str, ParamValue] = field(default_factory=dict)
    hour: float = 0.0

    def __post_init__(self) -> None:
        if self.name not in FAULTS:
            raise InvalidInput(
                f"Unknown fault {self.name!r}. Valid faults: {_valid_names()}. "
                "See their parameters with: yarnit world faults"
            )
        if isinstance(self.day, bool) or not isinstance(self.day, int) or not 0 <= self.day < MAX_DAYS:
            raise InvalidInput(
                f"Fault {self.name!r}: day must be an int in [0, {MAX_DAYS - 1}] (0 is the start date), "
                f"got {self.day!r}."
            )
        hours = self.hours
        if isinstance(hours, bool) or not isinstance(hours, (int, float)) or not 0 < hours <= MAX_DAYS * 24:
            raise InvalidInput(
                f"Fault {self.name!r}: hours must be a number in (0, {MAX_DAYS * 24}], got {hours!r}. "
                "Example: stockout@3:48 lasts two days."
            )
        object.__setattr__(self, "hours", float(hours))
        hour = self.hour
        if isinstance(hour, bool) or not isinstance(hour, (int, float)) or not 0 <= hour < 24:
            raise InvalidInput(f"Fault {self.name!r}: the start hour must be a number in [0, 24), got {hour!r}. "
                               "Example: stockout@3+12 opens at noon of day 3.")
        object.__setattr__(self, "hour", float(hour))
        object.__setattr__(self, "params", MappingProxyType(self._checked_params(dict(self.params))))

    def _checked_params(self, given: dict[str, Any]) -> dict[str, ParamValue]:
        kind = self.kind
        known = {p.name for p in kind.params}
        unknown = sorted(set(given) - known)
        if unknown:
            valid = "; ".join(p.describe() for p in kind.params) or "none"
            raise InvalidInput(f"Fault {self.name!r} has no parameter {unknown[0]!r}. Valid parameters: {valid}.")
        values = {p.name: p.coerce(self.name, given[p.name]) if p.name in given else p.default for p in kind.params}
        return dict(sorted(kind.resolve(values).items()))

    def __hash__(self) -> int:
        return hash((self.name, self.day, self.hour, self.hours, tuple(self.params.items())))

    @property
    def kind(self) -> FaultKind:
        return FAULTS[self.name]

    def window(self, start: datetime) -> tuple[datetime, datetime]:
        """The [start, end) of the fault for a world that starts at ``start``."""
        opens = start + timedelta(days=self.day, hours=self.hour)
        return opens, opens + timedelta(hours=self.hours)

    def spec(self) -> str:
        """The command-line form; parameters that differ from their defaults are listed."""
        text = f"{self.name}@{self.day}"
        if self.hour:
            text += f"+{_number(self.hour)}"
        if self.hours != 24.0:
            text += f":{_number(self.hours)}"
        defaults = {p.name: p.default for p in self.kind.params}
        changed = [f"{k}={_number(v)}" for k, v in self.params.items() if defaults.get(k) != v]
        return ",".join([text, *changed])

    def to_dict(self, start: datetime) -> dict[str, Any]:
        """What ``faults.json`` records: exact name, window and every parameter."""
        opens, closes = self.window(start)
        record = {
            "name": self.name,
            "book": self.kind.book,
            "day": self.day,
            "hours": self.hours,
            "start": opens.isoformat(),
            "end": closes.isoformat(),
            "params": dict(self.params),
            "spec": self.spec(),
        }
        if self.hour:  # a window opening at midnight keeps the record it always had
            record["hour"] = self.hour
        return record


def parse_fault(text: str, *, start: datetime | None = None) -> Fault:
    """Parse ``NAME@DAY[:HOURS][,param=value…]``; ``start`` is needed when DAY is a date."""
    spec = text.strip()
    head, *assignments = spec.split(",")
    if "@" not in head:
        raise InvalidInput(f"Fault spec {text!r} has no '@DAY'. Use {SPEC_SYNTAX}. Valid faults: {_valid_names()}.")
    name, when = (part.strip() for part in head.split("@", 1))
    if name not in FAULTS:
        raise InvalidInput(
            f"Unknown fault {name!r} in {text!r}. Valid faults: {_valid_names()}. "
            "See their parameters with: yarnit world faults"
        )
    day_text, _, hours_text = when.partition(":")
    day_text, plus, hour_text = day_text.partition("+")
    day = _parse_day(name, day_text.strip(), start)
    hour = 0.0
    if plus:
        try:
            hour = float(hour_text)
        except ValueError:
            raise InvalidInput(f"Fault {name!r}: +HH {hour_text!r} is not a number of hours. Use {SPEC_SYNTAX}.") from None
    hours: float = 24.0
    if hours_text.strip():
        try:
            hours = float(hours_text)
        except ValueError:
            raise InvalidInput(
                f"Fault {name!r}: HOURS {hours_text!r} is not a number. Use {SPEC_SYNTAX}."
            ) from None
    params: dict[str, str] = {}
    for assignment in assignments:
        key, sep, value = assignment.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"Fault {name!r}: {assignment!r} is not param=value. Use {SPEC_SYNTAX}.")
        if key.strip() in params:
            raise InvalidInput(f"Fault {name!r}: parameter {key.strip()!r} is given twice in {text!r}.")
        params[key.strip()] = value.strip()
    return Fault(name, day=day, hours=hours, params=params, hour=hour)


def _parse_day(name: str, text: str, start: datetime | None) -> int:
    if text.isdigit():
        return int(text)
    if len(text) == 10 and text[4] == "-" and text[7] == "-":
        try:
            when = date.fromisoformat(text)
        except ValueError:
            raise InvalidInput(f"Fault {name!r}: {text!r} is not a real date (YYYY-MM-DD).") from None
        if start is None:
            raise InvalidInput(f"Fault {name!r}: a date ({text}) needs the world's start date to become a day number.")
        offset = (when - start.date()).days
        if offset < 0:
            raise InvalidInput(
                f"Fault {name!r}: {text} is before the world's start {start.date().isoformat()}; "
                "use a date on or after it, or a day number (0 = the start date)."
            )
        return offset
    raise InvalidInput(
        f"Fault {name!r}: DAY {text!r} must be a day number (0 = the start date) or a date YYYY-MM-DD. "
        f"Use {SPEC_SYNTAX}."
    )


def describe_faults() -> str:
    """Every scenario with its book reference and parameters (for ``yarnit world faults``)."""
    return "\n".join(kind.describe() for kind in FAULTS.values())


__all__ = ["Fault", "SPEC_SYNTAX", "describe_faults", "parse_fault"]
