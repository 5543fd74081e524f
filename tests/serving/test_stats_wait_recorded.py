"""ServingStats.wait_recorded: a client that moves a simulated clock waits for the server's records on a condition."""

from __future__ import annotations

import threading

from yarnit.serving.service import ServingStats


def test_a_waiter_wakes_when_the_server_thread_counts_its_request() -> None:
    stats = ServingStats()
    waiting = threading.Event()
    seen: list[int] = []

    def client() -> None:
        waiting.set()
        seen.append(stats.wait_recorded(2, timeout_s=60.0))  # generous: the count comes from the other thread

    thread = threading.Thread(target=client)
    thread.start()
    waiting.wait(60.0)
    stats.count_recorded()
    stats.count_recorded()
    thread.join(60.0)
    assert not thread.is_alive() and seen == [2] and stats.recorded == 2


def test_wait_returns_at_once_when_counted_already_and_says_how_many_on_timeout() -> None:
    stats = ServingStats()
    for _ in range(3):
        stats.count_recorded()
    assert stats.wait_recorded(2, timeout_s=60.0) == 3
    assert stats.wait_recorded(5, timeout_s=0.0) == 3  # a request the server never saw: the caller goes on
