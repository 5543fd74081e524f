"""Admission control: bounded concurrency, a per-request deadline, and a fast 503 when full.

The data plane scores on the event loop (one request at a time per process: a
CPU-bound model gains nothing from threads under the GIL). Requests that
arrive while one is being scored queue at a FIFO gate; the gate is handed on
one request per loop iteration, so the loop polls its sockets between two
scorings and a request that arrives to a full queue is answered 503 within
about one scoring time, instead of waiting behind the whole queue (latency
that grows without bound is how an overloaded server fails everyone).

* ``max_in_flight``: admitted requests (scoring + waiting at the gate). Over
  it, a request is shed at once with ``Retry-After``.
* ``deadline_s``: a request still waiting at the gate after its deadline is
  shed rather than scored for a client that has likely given up.

Time is read from the injected clock, so tests drive deadlines exactly.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

from yarnit.core.clock import Clock

from .errors import Overloaded


@dataclass(frozen=True)
class AdmissionLimits:
    """Keyword-only limits for :class:`AdmissionController`."""

    max_in_flight: int = 64
    deadline_s: float = 0.5
    retry_after_s: int = 1


class Ticket:
    """One admitted request: when it entered, and whether it holds the gate."""

    __slots__ = ("entered_s", "deadline_s", "holds_gate")

    def __init__(self, entered_s: float, deadline_s: float) -> None:
        self.entered_s = entered_s
        self.deadline_s = deadline_s
        self.holds_gate = False

    def remaining_s(self, now_s: float) -> float:
        return self.entered_s + self.deadline_s - now_s


class AdmissionController:
    """Counts requests in flight, sheds over the limit, serialises scoring through a FIFO gate."""

    def __init__(self, clock: Clock, limits: AdmissionLimits | None = None) -> None:
        self.clock = clock
        self.limits = limits or AdmissionLimits()
        self.in_flight = 0
        self.shed_concurrency = 0
        self.shed_deadline = 0
        self.closed = False
        self._gate_held = False
        self._waiters: deque[asyncio.Future[None]] = deque()

    def enter(self, deadline_s: float | None = None) -> Ticket:
        """Admit a request or raise :class:`Overloaded` (no waiting, no I/O)."""
        if self.closed:
            raise Overloaded("closed", self.limits.retry_after_s)
        if self.in_flight >= self.limits.max_in_flight:
            self.shed_concurrency += 1
            raise Overloaded("concurrency", self.limits.retry_after_s)
        self.in_flight += 1
        return Ticket(self.clock.monotonic(), self.limits.deadline_s if deadline_s is None else deadline_s)

    async def acquire(self, ticket: Ticket) -> None:
        """Wait for this request's turn to score; shed it if its deadline passed while waiting."""
        if not self._gate_held and not self._waiters:
            self._gate_held = ticket.holds_gate = True
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                ticket.holds_gate = True  # we were handed the gate as we were cancelled: pass it on
                self._release_gate(ticket)
            else:
                self._remove(waiter)
            raise
        ticket.holds_gate = True
        if ticket.remaining_s(self.clock.monotonic()) < 0:
            self.shed_deadline += 1
            self._release_gate(ticket)
            raise Overloaded("deadline", self.limits.retry_after_s)

    def leave(self, ticket: Ticket) -> None:
        """The request is answered: free its slot and hand the gate on (next loop iteration)."""
        self.in_flight -= 1
        if ticket.holds_gate:
            ticket.holds_gate = False
            # Handing the gate on in the *next* iteration lets the loop poll its
            # sockets first, so newcomers meet the limit (and a fast 503) now,
            # not after the whole queue has been scored.
            try:
                asyncio.get_running_loop().call_soon(self._pass_gate)
            except RuntimeError:  # no loop (synchronous use): hand on directly
                self._pass_gate()

    def _release_gate(self, ticket: Ticket) -> None:
        ticket.holds_gate = False
        self._pass_gate()

    def _pass_gate(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._gate_held = False

    def _remove(self, waiter: asyncio.Future[None]) -> None:
        try:
            self._waiters.remove(waiter)
        except ValueError:
            pass

    @property
    def waiting(self) -> int:
        return len(self._waiters)


__all__ = ["AdmissionController", "AdmissionLimits", "Ticket"]
