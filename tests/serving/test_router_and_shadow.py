"""Sticky canary split by request key, and shadow scoring that is logged, never returned, never waited for."""

from __future__ import annotations

import threading

import pytest
from serving.helpers import Faults

from yarnit.registry import ModelRegistry
from yarnit.serving import Router, TrafficPolicy, read_prediction_log
from yarnit.serving.router import ShadowScorer
from yarnit.storage import Workspace

ONE = [{"fiber": "merino", "price": 12.0}]


def test_the_split_is_sticky_per_key_and_across_router_instances() -> None:
    first, second = Router(), Router()
    for router in (first, second):
        router.set_policy("ctr", TrafficPolicy(canary_percent=30))
    for i in range(2_000):
        key = f"user-{i}"
        sides = {first.choose("ctr", key, has_canary=True) for _ in range(3)}
        assert sides == {second.choose("ctr", key, has_canary=True)}


@pytest.mark.parametrize("percent", [1, 10, 25, 50])
def test_the_canary_gets_its_share_of_keys(percent: float) -> None:
    router = Router()
    router.set_policy("ctr", TrafficPolicy(canary_percent=percent))
    n = 20_000
    share = sum(router.choose("ctr", f"u{i}", has_canary=True) == "canary" for i in range(n)) / n
    assert abs(share - percent / 100) < 0.01, share


def test_raising_the_percentage_only_moves_keys_to_the_canary() -> None:
    router = Router()
    router.set_policy("ctr", TrafficPolicy(canary_percent=10))
    before = {k for k in (f"u{i}" for i in range(5_000)) if router.choose("ctr", k, has_canary=True) == "canary"}
    router.set_policy("ctr", TrafficPolicy(canary_percent=25))
    after = {k for k in (f"u{i}" for i in range(5_000)) if router.choose("ctr", k, has_canary=True) == "canary"}
    assert before < after


def test_without_a_canary_or_a_key_everything_goes_to_production() -> None:
    router = Router()
    router.set_policy("ctr", TrafficPolicy(canary_percent=100))
    assert router.choose("ctr", "u1", has_canary=False) == "production"
    assert router.choose("ctr", None, has_canary=True) == "production"


def test_requests_follow_the_split_end_to_end(ctr_ws: Workspace, service_factory) -> None:
    ModelRegistry(ctr_ws).set_alias("ctr", "canary", 2)
    service = service_factory()
    service.router.set_policy("ctr", TrafficPolicy(canary_percent=20))
    served = {}
    for i in range(500):
        p = service.predict("ctr", [{"fiber": "merino", "user_id": f"u{i}"}])
        served[f"u{i}"] = (p.alias, p.model_version)
        again = service.predict("ctr", [{"fiber": "acrylic"}], key=f"u{i}")
        assert (again.alias, again.model_version) == served[f"u{i}"]  # sticky, by body field or explicit key
    canary = [k for k, (alias, version) in served.items() if alias == "canary"]
    assert all(served[k][1] == 2 for k in canary)
    assert 0.15 < len(canary) / 500 < 0.25


def test_a_failing_canary_falls_back_to_production(ctr_ws: Workspace, faults: Faults, service_factory) -> None:
    ModelRegistry(ctr_ws).set_alias("ctr", "canary", 2)
    service = service_factory(faults, cache_entries=0)
    service.router.set_policy("ctr", TrafficPolicy(canary_percent=100))
    assert service.predict("ctr", ONE, key="k").model_version == 2
    faults.raising.add(2)
    p = service.predict("ctr", ONE, key="k")
    assert (p.served_by, p.alias, p.model_version, p.reason) == ("previous", "production", 1, "error")


def test_shadow_output_is_logged_and_never_returned(ctr_ws: Workspace, service_factory) -> None:
    ModelRegistry(ctr_ws).set_alias("ctr", "shadow", 3)
    service = service_factory()
    answers = [service.predict("ctr", ONE) for _ in range(5)]
    for p in answers:
        service.record(request_id=p.request_id, protocol="v1", model="ctr", status=200, latency_s=0.001,
                       prediction=p, instances=ONE)
    assert {p.model_version for p in answers} == {1}
    assert service.shadow.drain()
    assert service.log.flush()
    records = list(read_prediction_log(ctr_ws.home / "prediction_log"))
    shadow = [r for r in records if r["role"] == "shadow"]
    assert len(shadow) == 5 and {r["version"] for r in shadow} == {3}
    assert {r["request_id"] for r in shadow} == {p.request_id for p in answers}
    assert all(r["primary_version"] == 1 and r["status"] == 200 for r in shadow)


def test_a_stuck_shadow_never_holds_up_a_response(ctr_ws: Workspace, faults: Faults, service_factory) -> None:
    ModelRegistry(ctr_ws).set_alias("ctr", "shadow", 3)
    service = service_factory(faults, shadow_queue=3)
    service.predict("ctr", ONE)  # loads and validates every alias while nothing blocks
    release = threading.Event()
    faults.blocking[3] = release
    try:
        answers = [service.predict("ctr", [{"fiber": "merino", "price": float(i)}]) for i in range(20)]
    finally:
        release.set()
    assert all(p.model_version == 1 and p.served_by == "model" for p in answers)
    assert service.shadow.dropped >= 20 - 3 - 1  # the bounded queue shed the rest, and counted it
    assert service.shadow.drain()


def test_a_failing_shadow_is_counted_not_raised(ctr_ws: Workspace, faults: Faults, service_factory) -> None:
    ModelRegistry(ctr_ws).set_alias("ctr", "shadow", 3)
    service = service_factory(faults)
    service.predict("ctr", ONE)
    assert service.shadow.drain()
    faults.raising.add(3)
    assert service.predict("ctr", [{"fiber": "silk"}]).model_version == 1
    assert service.shadow.drain()
    assert service.stats.shadow.get(("ctr", "3", "error")) == 1


def test_shadow_scorer_counts_drops_when_full() -> None:
    scorer = ShadowScorer(max_queue=1)
    gate = threading.Event()
    started = threading.Event()

    def block() -> None:
        started.set()
        gate.wait(10)

    assert scorer.submit(block)
    started.wait(10)
    assert scorer.submit(lambda: None)
    assert not scorer.submit(lambda: None)
    assert scorer.dropped == 1
    gate.set()
    scorer.close()
