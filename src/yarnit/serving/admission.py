"""Admission control: bounded concurrency, a per-request deadline, a fast 503 when full, and where to score.

Small requests for compiled models are scored on the event loop (one at a time
per process: a few µs of ONNX Runtime gain nothing from a thread hop). They
queue at a FIFO gate; the gate is handed on one request per loop iteration, so
the loop polls its sockets between two scorings and a request that arrives to
a full queue is answered 503 within about one scoring time, instead of waiting
behind the whole queue (latency that grows without bound is how an overloaded
server fails everyone).

A request that would hold the loop for long goes to a :class:`ScoringPool`
instead: a model with no compiled path (native LightGBM or scikit-learn, a
ranking model), one that reads online features (I/O), a model not loaded yet,
or a batch that would hold the loop for more than ``inline_budget_ms`` at
the model's per-row cost timed at load (see :func:`scores_inline`).
The loop stays free meanwhile, so health checks, 503s and other models keep
answering while a slow model scores.

* ``max_in_flight``: admitted requests (scoring inline or in the pool, plus
  those waiting at the gate). Over it, a request is shed at once with
  ``Retry-After``. It bounds memory, not latency, so it is large (4096):
  many clients are not overload. 256 closed-loop clients of a model that
  scores in 40 µs make a queue of 10 ms; shedding them only makes them
  come back at once, and with a limit of 64 they got 200 answers a second.
  A request is admitted only once its body is complete (the data plane
  calls :meth:`AdmissionController.try_enter` then), so slow bodies hold no
  slot.
* ``max_queue_delay_ms``: a request is also shed at once when the requests
  already waiting at the gate would hold it longer than this: their number
  times the recent time between two turns (a moving average). A count limit
  alone lets the wait grow with the work per turn (Little's law: 64 waiting
  at 0.3 ms a turn is 19 ms), so under overload admitted requests would
  queue up to the limit; the delay limit keeps their wait bounded whatever
  a turn costs. The default, 20 ms, is the admitted p99 the data plane
  aims at under overload.
* ``deadline_s``: a request still waiting at the gate after its deadline is
  shed rather than scored for a client that has likely given up; an
  offloaded request not scored by its deadline is answered by the fallback
  (the data plane does this) and counted in ``ScoringPool.timeouts``.
* ``offload_threads``: the pool's threads. A call that timed out keeps its
  thread until the model returns (Python cannot stop a thread), so a model
  that hangs costs at most this many threads; requests that then find no
  free thread get the fallback at their deadline.

Time is read from the injected clock, so tests drive deadlines exactly.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
import types
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from yarnit.core.clock import Clock

from .errors import Overloaded

if TYPE_CHECKING:
    from .runtime import LoadedModel, ModelState

T = TypeVar("T")

# How long one request may hold the event loop: half the single-row p99 target (2 ms). Measured with
# benchmarks/bench_serving.py --offload-sweep: a trip through the scoring pool costs ~80 µs, under 10% of
# a request that scores for 1 ms or more; below that, the hop costs more than the loop time it frees.
INLINE_BUDGET_MS = 1.0


@dataclass(frozen=True)
class AdmissionLimits:
    """Keyword-only limits for :class:`AdmissionController`."""

    max_in_flight: int = 4096
    max_queue_delay_ms: float | None = 20.0
    deadline_s: float = 0.5
    retry_after_s: int = 1
    offload_threads: int = 4
    inline_budget_ms: float = INLINE_BUDGET_MS


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
        self.shed_queue_delay = 0
        self.shed_deadline = 0
        #: why the last :meth:`try_enter` that returned None shed its request ("closed", "concurrency", "queue")
        self.shed_reason = "concurrency"
        delay_ms = self.limits.max_queue_delay_ms
        self._max_delay_s = None if delay_ms is None else delay_ms / 1000.0
        self._turn_s = 0.0  # moving average of the time between two turns at the gate, while requests wait
        self._last_turn_s: float | None = None
        self.closed = False
        self.pool = ScoringPool(self.limits.offload_threads)
        self._gate_held = False
        self._cooling = False  # the gate was handed back in this loop iteration (see _hand_on)
        self._waiters: deque[asyncio.Future[None]] = deque()

    def enter(self, deadline_s: float | None = None) -> Ticket:
        """Admit a request or raise :class:`Overloaded` (no waiting, no I/O)."""
        ticket = self.try_enter(deadline_s)
        if ticket is None:
            raise Overloaded(self.shed_reason, self.limits.retry_after_s)
        return ticket

    def try_enter(self, deadline_s: float | None = None, wait_s: float | None = None) -> Ticket | None:
        """Admit a request, or count it as shed and return None: :meth:`enter` without an exception.

        The reason of a shed (:attr:`shed_reason`) is "closed" while :attr:`closed`, "concurrency" at
        ``max_in_flight``, "queue" past ``max_queue_delay_ms``: the requests
        waiting at the gate would hold it longer, or ``wait_s`` (the caller's
        own queue's estimate of its wait, e.g. the HTTP fast lane's FIFO)
        is over the limit.
        The data plane calls this one: a shed must stay cheap when the server
        is over capacity, and raising costs about a µs.
        """
        if self.closed:
            self.shed_reason = "closed"
            return None
        if self.in_flight >= self.limits.max_in_flight:
            self.shed_concurrency += 1
            self.shed_reason = "concurrency"
            return None
        waiting = len(self._waiters)
        if self._max_delay_s is not None and (waiting * self._turn_s > self._max_delay_s or (
                wait_s is not None and wait_s > self._max_delay_s)):
            self.shed_queue_delay += 1
            self.shed_reason = "queue"
            return None
        self.in_flight += 1
        return Ticket(self.clock.monotonic(), self.limits.deadline_s if deadline_s is None else deadline_s)

    async def acquire(self, ticket: Ticket) -> None:
        """Wait for this request's turn to score; shed it if its deadline passed while waiting."""
        if not self._gate_held and not self._waiters:
            self._gate_held = ticket.holds_gate = True
            self._last_turn_s = self.clock.monotonic()
            if not self._cooling:
                return
            # The gate was handed back earlier in this loop iteration: take it, but start at the next one.
            try:
                await _next_iteration()
            except asyncio.CancelledError:
                self._release_gate(ticket)
                raise
        else:
            await self._wait_turn(ticket)
        try:
            self.check_deadline(ticket)
        except Overloaded:
            self._release_gate(ticket)
            raise

    def check_deadline(self, ticket: Ticket) -> None:
        """Shed (count, raise :class:`Overloaded`) a request whose deadline passed while it waited."""
        if ticket.remaining_s(self.clock.monotonic()) < 0:
            self.shed_deadline += 1
            raise Overloaded("deadline", self.limits.retry_after_s)

    async def _wait_turn(self, ticket: Ticket) -> None:
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

    def leave(self, ticket: Ticket) -> None:
        """The request is answered: free its slot and hand the gate on (next loop iteration)."""
        self.in_flight -= 1
        if ticket.holds_gate:
            self._hand_on(ticket)

    def release_gate(self, ticket: Ticket) -> None:
        """Hand the gate on before the request is answered (its scoring moved to the pool)."""
        if ticket.holds_gate:
            self._hand_on(ticket)

    def _hand_on(self, ticket: Ticket) -> None:
        """Hand the gate to the next request, whose turn starts at the *next* loop iteration.

        Starting it one iteration later lets the loop poll its sockets first, so
        newcomers meet the limit (and a fast 503) now, not after the whole
        queue has been scored. A woken waiter resumes at the next iteration by
        itself. With nobody waiting, the gate is free but "cooling" until the
        next iteration: a request that takes it meanwhile yields once before
        it scores (a plain yield: a queued future would cost one iteration more).
        """
        ticket.holds_gate = False
        if self._wake_oldest():
            return
        self._gate_held = False
        self._last_turn_s = None  # an idle gap is not a turn
        if not self._cooling:
            try:
                asyncio.get_running_loop().call_soon(self._cool_down)
            except RuntimeError:  # no loop (synchronous use): nothing to wait for
                return
            self._cooling = True

    def _cool_down(self) -> None:
        self._cooling = False

    def _release_gate(self, ticket: Ticket) -> None:
        ticket.holds_gate = False
        if not self._wake_oldest():
            self._gate_held = False
            self._last_turn_s = None

    def _wake_oldest(self) -> bool:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # it resumes at the next loop iteration
                self._timed_turn()
                return True
        return False

    def _timed_turn(self) -> None:
        """A waiter got its turn: fold the time since the previous turn into the moving average."""
        now = self.clock.monotonic()
        if self._last_turn_s is not None:
            interval = now - self._last_turn_s
            if self._turn_s == 0.0:
                self._turn_s = interval
            else:
                # One stall (a GC pass, the log writer taking the GIL) must not shed a short queue: a sample
                # counts for at most 4× the average, so the estimate still follows a real slowdown within a
                # few turns but not a single outlier (at 8 concurrent requests one 3 ms stall used to shed).
                self._turn_s += 0.2 * (min(interval, 4.0 * self._turn_s) - self._turn_s)
        self._last_turn_s = now

    def _remove(self, waiter: asyncio.Future[None]) -> None:
        try:
            self._waiters.remove(waiter)
        except ValueError:
            pass

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    @property
    def gate_free(self) -> bool:
        """Nobody holds the gate or waits for it: a request may score right now without taking a turn."""
        return not self._gate_held and not self._waiters


def scores_inline(state: ModelState | None, canary_percent: float, n_rows: int, budget_s: float) -> bool:
    """Whether a request may be scored on the event loop.

    Yes when every version likely to answer it is compiled, reads no online
    features, and scores ``n_rows`` rows within ``budget_s`` at the per-row
    cost timed when it was loaded (so a 1,000-tree model gets a smaller row
    threshold than a logistic regression). A model not loaded yet is not
    (loading it reads the registry and the artifact).
    """
    if state is None:
        return False
    first = state.production if state.production is not None else state.previous
    candidates: list[LoadedModel | None] = [first]
    if canary_percent > 0.0:
        candidates.append(state.canary)
    # NaN (cost unknown) fails the comparison: such a model is offloaded.
    return all(m.compile.compiled is not None and not m.features and n_rows * m.compile.row_cost_s <= budget_s
               for m in candidates if m is not None)


class ScoringTimeout(TimeoutError):
    """An offloaded call was not done by its deadline (it may still be running; its answer is discarded)."""


class ScoringPool:
    """A few daemon threads that score requests off the event loop, each call bounded by a deadline.

    Threads are daemons, so a model that never returns cannot keep the process
    from exiting. Slots are handed over in FIFO order, on the loop thread.
    """

    def __init__(self, threads: int = 4) -> None:
        self.threads = max(1, threads)
        self.busy = 0  # slots held by a running call (a timed-out call holds its slot until it returns)
        self.offloaded = 0
        self.timeouts = 0
        self._jobs: queue.SimpleQueue[tuple[Callable[[], object], concurrent.futures.Future[object]] | None] = \
            queue.SimpleQueue()
        self._workers: list[threading.Thread] = []
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def run(self, fn: Callable[[], T], timeout_s: float) -> T:
        """``fn()`` on a pool thread; :class:`ScoringTimeout` if it has not returned within ``timeout_s``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        await self._take_slot(loop, timeout_s)
        self.offloaded += 1
        job: concurrent.futures.Future[T] = concurrent.futures.Future()
        job.add_done_callback(lambda _job: _call_soon(loop, self._free_slot))
        if len(self._workers) < self.threads:
            self._start_worker()
        self._jobs.put((fn, job))  # type: ignore[arg-type]
        answer = asyncio.wrap_future(job, loop=loop)
        answer.add_done_callback(_retrieve)  # a late failure must not log "exception never retrieved"
        try:
            # shield: a timeout abandons the answer, it does not cancel the job (a running thread cannot be).
            return await asyncio.wait_for(asyncio.shield(answer), max(0.0, deadline - loop.time()))
        except TimeoutError:
            self.timeouts += 1
            raise ScoringTimeout(f"scoring took longer than {timeout_s * 1000:.0f} ms") from None

    async def _take_slot(self, loop: asyncio.AbstractEventLoop, timeout_s: float) -> None:
        if self.busy < self.threads and not self._waiters:
            self.busy += 1
            return
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), max(0.0, timeout_s))
        except (TimeoutError, asyncio.CancelledError) as exc:
            if waiter.done() and not waiter.cancelled():
                self._free_slot()  # handed a slot just as we gave up: pass it on
            else:
                waiter.cancel()
                self._remove(waiter)
            if isinstance(exc, TimeoutError):
                self.timeouts += 1
                raise ScoringTimeout(f"no scoring thread was free within {timeout_s * 1000:.0f} ms") from None
            raise

    def _free_slot(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot goes straight to the oldest waiter
                return
        self.busy -= 1

    def _remove(self, waiter: asyncio.Future[None]) -> None:
        try:
            self._waiters.remove(waiter)
        except ValueError:
            pass

    def _start_worker(self) -> None:
        thread = threading.Thread(target=self._work, name=f"yarnit-score-{len(self._workers)}", daemon=True)
        self._workers.append(thread)
        thread.start()

    def _work(self) -> None:
        while True:
            item = self._jobs.get()
            if item is None:
                return
            self._run(*item)
            # An idle thread must not hold its last job (its closure: the request's body and exchange; its
            # result: the parsed rows) until the next one comes: that kept ~45 MB per thread after a 15 MB body.
            del item

    @staticmethod
    def _run(fn: Callable[[], Any], job: concurrent.futures.Future[Any]) -> None:
        if not job.set_running_or_notify_cancel():
            return
        try:
            job.set_result(fn())
        except BaseException as exc:  # handed to the awaiting request, which answers for it
            job.set_exception(exc)

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def close(self) -> None:
        """Let idle threads exit (a thread still scoring finishes its call first)."""
        for _ in self._workers:
            self._jobs.put(None)
        self._workers = []


@types.coroutine
def _next_iteration() -> Generator[None, None, None]:
    """Suspend the running task until the loop's next iteration (what ``asyncio.sleep(0)`` does)."""
    yield


def _call_soon(loop: asyncio.AbstractEventLoop, fn: Callable[[], None]) -> None:
    try:
        loop.call_soon_threadsafe(fn)
    except RuntimeError:  # the loop is closed (shutdown): nobody is waiting for the slot any more
        pass


def _retrieve(future: asyncio.Future[object]) -> None:
    if not future.cancelled():
        future.exception()


__all__ = ["INLINE_BUDGET_MS", "AdmissionController", "AdmissionLimits", "ScoringPool", "ScoringTimeout", "Ticket",
           "scores_inline"]
