"""A big request leaves nothing behind: the prediction cache is bounded by memory, the pool lets go (issue 15 item 10)."""

from __future__ import annotations

import asyncio
import gc
import math
import threading
import time
import tracemalloc
import weakref
from typing import Any

from yarnit.serving import PredictionCache
from yarnit.serving.admission import ScoringPool
from yarnit.serving.router import ShadowScorer
from yarnit.serving.cache import instance_key

FIELDS = 72


def _wide_row(i: int) -> dict[str, Any]:
    """A row of ``FIELDS`` distinct values, like one row of a 15 MB OIP v2 request."""
    row: dict[str, Any] = {"fiber": f"merino-{i}", "price": 1.0 + i / 7.0}
    row.update({f"f{j:02d}": i * 100.0 + j + 0.5 for j in range(FIELDS - 2)})
    return row


def _retained_bytes(work: Any) -> int:
    """Bytes still allocated after ``work()`` ran and its garbage was collected."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        work()
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def test_ten_thousand_wide_rows_in_the_cache_stay_small() -> None:
    """Keys are digests: the cache does not keep the rows' 720,000 values alive (it kept ~100 MB)."""
    cache = PredictionCache(max_entries=10_000)

    def fill() -> None:
        for i in range(10_000):
            cache.put(instance_key("mv_1", _wide_row(i)), 0.5)

    retained = _retained_bytes(fill)
    assert len(cache) == 10_000
    assert retained < 6_000_000, f"10,000 cached rows hold {retained:,} bytes"
    assert cache.get(instance_key("mv_1", _wide_row(17))) == 0.5


def test_a_big_request_is_not_kept_after_its_answer(service_factory) -> None:
    """A 5,000-row batch of wide rows is scored and answered; none of its rows stays in memory."""
    service = service_factory()
    service.predict("ctr", [{"fiber": "merino", "price": 1.0}])  # loads the model before measuring

    def serve_big() -> None:
        prediction = service.predict("ctr", [_wide_row(i) for i in range(5_000)])
        assert prediction.served_by == "model" and len(prediction.values) == 5_000

    retained = _retained_bytes(serve_big)
    assert retained < 3_000_000, f"a 5,000-row request left {retained:,} bytes behind"


def test_cache_keys_tell_apart_values_that_compare_equal_or_serialise_alike() -> None:
    base = {"fiber": "merino", "price": 1}
    keys = [instance_key("mv_1", base | {"price": value}) for value in (1, 1.0, True, None, math.nan, math.inf)]
    assert None not in keys and len(set(keys)) == len(keys)
    assert instance_key("mv_1", {"price": 1, "fiber": "merino"}) == instance_key("mv_1", base)  # order is not part
    assert instance_key("mv_2", base) != instance_key("mv_1", base)
    assert instance_key("mv_1", {1: "a", "b": 2}) is None  # not serialisable: scored, never cached
    assert len(instance_key("mv_1", _wide_row(0))[1]) == 16


class _Rows(list):
    """A request's body or parsed rows (a list subclass, so a weak reference can watch it)."""


def test_an_idle_scoring_thread_lets_go_of_its_last_request() -> None:
    """The pool thread held its last job (closure: the body; result: the rows) until the next job came."""
    body = _Rows([b"x" * 1_000_000])
    watched = weakref.ref(body)
    pool = ScoringPool(threads=1)

    async def parse_on_the_pool() -> weakref.ref:
        rows = await pool.run(lambda: _Rows([len(body[0])]), 5.0)
        return weakref.ref(rows)

    try:
        rows = asyncio.run(parse_on_the_pool())
        del body
        for _ in range(100):  # the thread drops them right after handing the answer over
            gc.collect()
            if rows() is None and watched() is None:
                break
            time.sleep(0.05)
        assert rows() is None, "the parsed rows outlived their request on the idle pool thread"
        assert watched() is None, "the body outlived its request on the idle pool thread"
    finally:
        pool.close()  # (a closed pool's threads exit, which would release them anyway)


def test_the_shadow_thread_lets_go_of_its_last_request() -> None:
    scorer = ShadowScorer(max_queue=4)
    instances = _Rows([_wide_row(0)])
    watched = weakref.ref(instances)
    ran = threading.Event()

    def job(rows: _Rows = instances) -> None:  # a shadow job holds its request's rows, like service._shadow
        assert rows
        ran.set()

    try:
        assert scorer.submit(job) and ran.wait(10)
        del instances, job
        for _ in range(100):
            gc.collect()
            if watched() is None:
                break
            time.sleep(0.05)
        assert watched() is None, "the shadow thread kept its last request's rows while waiting for the next"
    finally:
        scorer.close()
