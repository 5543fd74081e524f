"""Admission control: a bounded number of requests in flight, FIFO turns, deadlines, fast shedding."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from yarnit.core import SimulatedClock
from yarnit.serving import AdmissionController, AdmissionLimits, Overloaded


async def _take_turn(admission: AdmissionController, on_turn: Callable[[], None]) -> None:
    """One request: admitted, waits for its turn at the gate, calls ``on_turn`` there, leaves."""
    ticket = admission.enter()
    try:
        await admission.acquire(ticket)
        on_turn()
    finally:
        admission.leave(ticket)


def test_requests_over_the_limit_are_shed_at_once(clock: SimulatedClock) -> None:
    admission = AdmissionController(clock, AdmissionLimits(max_in_flight=2, retry_after_s=3))
    first, second = admission.enter(), admission.enter()
    with pytest.raises(Overloaded, match="Retry after 3 s") as info:
        admission.enter()
    assert info.value.reason == "concurrency" and info.value.retry_after_s == 3
    assert admission.shed_concurrency == 1
    admission.leave(first)
    admission.leave(second)
    assert admission.in_flight == 0


def test_turns_are_taken_in_arrival_order_one_per_loop_iteration(clock: SimulatedClock) -> None:
    admission = AdmissionController(clock, AdmissionLimits(max_in_flight=10))
    order: list[int] = []

    async def main() -> None:
        await asyncio.gather(*(_take_turn(admission, lambda i=i: order.append(i)) for i in range(6)))

    asyncio.run(main())
    assert order == list(range(6))
    assert admission.in_flight == 0 and admission.waiting == 0


def test_one_request_scores_per_loop_iteration_and_the_next_one_at_the_very_next(clock: SimulatedClock) -> None:
    admission = AdmissionController(clock, AdmissionLimits(max_in_flight=20))
    iteration = 0
    turns: list[int] = []

    def request() -> Awaitable[None]:
        return _take_turn(admission, lambda: turns.append(iteration))

    async def main() -> None:
        loop = asyncio.get_running_loop()

        def tick() -> None:  # counts the loop's iterations
            nonlocal iteration
            iteration += 1
            loop.call_soon(tick)

        loop.call_soon(tick)
        await asyncio.sleep(0)
        for _ in range(3):  # back to back from one task, as requests pipelined on one connection
            await request()
        await asyncio.gather(*(request() for _ in range(5)))  # a burst that arrives in one iteration

    asyncio.run(main())
    # The loop polls its sockets between two turns (so newcomers are shed in time), and wastes no
    # iteration either: each turn starts at the iteration after the previous one.
    assert [b - a for a, b in zip(turns, turns[1:])] == [1] * 7
    assert admission.in_flight == 0 and admission.waiting == 0


def test_newcomers_meet_the_limit_while_others_wait(clock: SimulatedClock) -> None:
    admission = AdmissionController(clock, AdmissionLimits(max_in_flight=3))
    outcomes: list[str] = []

    async def request() -> None:
        try:
            ticket = admission.enter()
        except Overloaded:
            outcomes.append("503")
            return
        try:
            await admission.acquire(ticket)
            outcomes.append("200")
        finally:
            admission.leave(ticket)

    async def main() -> None:
        await asyncio.gather(*(request() for _ in range(10)))

    asyncio.run(main())
    # The first scores at once and keeps the gate for this loop iteration; the next
    # three queue behind it (in flight: 3, counting the first until it leaves) ...
    assert outcomes.count("200") >= 3 and outcomes.count("503") >= 1
    assert outcomes.count("200") + outcomes.count("503") == 10


def test_a_request_whose_deadline_passed_in_the_queue_is_shed(clock: SimulatedClock) -> None:
    admission = AdmissionController(clock, AdmissionLimits(max_in_flight=10, deadline_s=0.1))
    outcomes: list[str] = []
    arrived = asyncio.Event()

    async def slow_first() -> None:
        ticket = admission.enter()
        try:
            await admission.acquire(ticket)
            await arrived.wait()  # the second request arrives and queues behind this one
            clock.advance(0.5)  # this request's scoring takes 0.5 s of simulated time
            outcomes.append("first")
        finally:
            admission.leave(ticket)

    async def queued() -> None:
        ticket = admission.enter()
        arrived.set()
        try:
            await admission.acquire(ticket)
            outcomes.append("scored")
        except Overloaded as exc:
            outcomes.append(exc.reason)
        finally:
            admission.leave(ticket)

    async def main() -> None:
        first = asyncio.ensure_future(slow_first())
        await asyncio.sleep(0)
        await asyncio.gather(first, queued())

    asyncio.run(main())
    assert outcomes == ["first", "deadline"]
    assert admission.shed_deadline == 1 and admission.in_flight == 0


def test_a_cancelled_waiter_leaves_the_queue(clock: SimulatedClock) -> None:
    admission = AdmissionController(clock)

    async def main() -> None:
        holder = admission.enter()
        await admission.acquire(holder)
        waiter_ticket = admission.enter()
        task = asyncio.ensure_future(admission.acquire(waiter_ticket))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        admission.leave(waiter_ticket)
        admission.leave(holder)
        await asyncio.sleep(0)
        third = admission.enter()
        await asyncio.wait_for(admission.acquire(third), 1)
        admission.leave(third)

    asyncio.run(main())
    assert admission.in_flight == 0 and admission.waiting == 0


def test_a_closed_controller_sheds_everything(clock: SimulatedClock) -> None:
    admission = AdmissionController(clock)
    admission.closed = True
    with pytest.raises(Overloaded, match="shutting down"):
        admission.enter()


def test_a_request_that_would_wait_past_the_queue_delay_limit_is_shed(clock: SimulatedClock) -> None:
    admission = AdmissionController(clock, AdmissionLimits(max_in_flight=100, max_queue_delay_ms=5.0))

    async def main() -> None:
        first = admission.enter()
        await admission.acquire(first)  # holds the gate
        queued = [admission.enter() for _ in range(4)]
        turns = [asyncio.ensure_future(admission.acquire(t)) for t in queued]
        await asyncio.sleep(0)
        holder = first
        for turn, ticket in zip(turns[:2], queued[:2], strict=True):  # each turn takes 2 ms
            clock.advance(0.002)
            admission.leave(holder)
            await turn
            holder = ticket
        assert admission.waiting == 2
        # 2 waiting × 2 ms a turn = 4 ms: within the limit, admitted
        late = admission.try_enter()
        assert late is not None
        turns.append(asyncio.ensure_future(admission.acquire(late)))
        queued.append(late)
        await asyncio.sleep(0)
        # 3 waiting × 2 ms = 6 ms > 5 ms: shed at once, even though far below max_in_flight
        assert admission.try_enter() is None
        assert admission.shed_reason == "queue" and admission.shed_queue_delay == 1 and admission.shed_concurrency == 0
        with pytest.raises(Overloaded, match="queue-delay limit"):
            admission.enter()
        for turn, ticket in zip(turns[2:], queued[2:], strict=True):
            admission.leave(holder)
            await turn
            holder = ticket
        admission.leave(holder)
        assert admission.in_flight == 0 and admission.waiting == 0
        # an idle gate forgets the queue: the next request is admitted and scores at once
        fresh = admission.enter()
        await admission.acquire(fresh)
        admission.leave(fresh)

    asyncio.run(main())


def test_one_stalled_turn_does_not_shed_a_short_queue(clock: SimulatedClock) -> None:
    admission = AdmissionController(clock, AdmissionLimits(max_in_flight=100, max_queue_delay_ms=5.0))

    async def main() -> None:
        holder = admission.enter()
        await admission.acquire(holder)
        queued = [admission.enter() for _ in range(16)]
        turns = [asyncio.ensure_future(admission.acquire(t)) for t in queued]
        await asyncio.sleep(0)
        for i, step_s in enumerate([0.0001] * 5 + [0.003]):  # five quick turns, then one 3 ms stall
            clock.advance(step_s)
            admission.leave(holder)
            await turns[i]
            holder = queued[i]
        assert admission.waiting == 10
        # 10 waiting: a raw moving average after the stall (0.68 ms a turn) would estimate 6.8 ms and shed
        late = admission.try_enter()
        assert late is not None and admission.shed_queue_delay == 0
        turns.append(asyncio.ensure_future(admission.acquire(late)))
        queued.append(late)
        for i in range(6, len(turns)):
            admission.leave(holder)
            await turns[i]
            holder = queued[i]
        admission.leave(holder)
        assert admission.in_flight == 0

    asyncio.run(main())


def test_many_clients_are_admitted_by_default_not_shed(clock: SimulatedClock) -> None:
    # 1,024 closed-loop clients each with one request in flight are not overload: the count limit bounds
    # memory, the queue-delay limit bounds latency. A limit of 64 shed 192 of 256 wrk clients at once, and
    # they came straight back: 200 answers a second against 11,000 at 16 connections.
    admission = AdmissionController(clock)
    tickets = [admission.try_enter() for _ in range(1_024)]
    assert all(t is not None for t in tickets) and admission.shed_concurrency == 0
    assert admission.limits.max_queue_delay_ms == 20.0  # the admitted p99 aimed at under overload
