"""Target 7: while a model's 28-day error budget is spent, promotions to production/canary are refused;
an override needs a reason and is audited."""

from __future__ import annotations

from datetime import timedelta

import pytest

from testsupport import register_ctr
from yarnit.core import InvalidInput, SimulatedClock
from yarnit.monitoring import parse_slo_file
from yarnit.monitoring.policy import ErrorBudgetPolicy
from yarnit.monitoring.sources import CountsSource
from yarnit.registry import ModelRegistry, ReleaseHalted
from yarnit.storage import Workspace

SPEC = parse_slo_file({"service": "yarnit-serving", "slos": [
    {"name": "ctr-availability", "sli": "serving_availability", "model": "ctr", "objective": 99.9, "window": "28d"},
    {"name": "recs-availability", "sli": "serving_availability", "model": "recs", "objective": 99.9,
     "window": "28d"}]})
CTR = SPEC.get("ctr-availability")


@pytest.fixture
def setup(sqlite_ws: Workspace, clock: SimulatedClock):
    register_ctr(sqlite_ws, blessed=True)  # v1 in production, v2 blessed: only the budget can stop it
    source = CountsSource()
    registry = ModelRegistry(sqlite_ws, release_gate=ErrorBudgetPolicy(SPEC.slos, source, clock))
    return registry, source.counts_for(CTR), clock


def _traffic(counts, clock, *, days: float, good: int, total: int) -> None:
    """``days`` of steady traffic ending now (per minute: ``good`` of ``total``)."""
    end = clock.now().timestamp()
    counts.add_span(end - days * 86400, end, good_per_bucket=good, total_per_bucket=total)


def test_a_spent_28_day_budget_refuses_promotion_to_production_and_canary(setup):
    registry, counts, clock = setup
    _traffic(counts, clock, days=28, good=998, total=1000)  # 0.2 % errors: twice the 0.1 % budget
    before = registry.history("ctr")
    for alias in ("production", "canary"):
        with pytest.raises(ReleaseHalted, match=r"Refusing to promote model 'ctr' v2 to '" + alias +
                           r"': the error budget of SLO yarnit-serving-ctr-availability is spent: 80640 bad of "
                           r"40320000 events in the last 28d.*--override-reason"):
            registry.promote("ctr", 2, alias=alias, require_blessing=True)
    assert registry.resolve("ctr", "production").version == 1 and registry.history("ctr") == before
    registry.promote("ctr", 2, alias="staging", require_blessing=True)  # not a traffic-taking alias


def test_an_override_needs_a_reason_and_is_written_to_the_audit_log(setup, sqlite_ws):
    from sqlalchemy import select

    from yarnit.storage.schema import audit_log

    registry, counts, clock = setup
    _traffic(counts, clock, days=28, good=998, total=1000)
    with pytest.raises(InvalidInput, match="needs a reason for the audit trail"):
        registry.promote("ctr", 2, require_blessing=True, force=True)
    with pytest.raises(ReleaseHalted):  # --force skips the blessing check only, never the spent budget
        registry.promote("ctr", 2, require_blessing=True, force=True, reason="ship it")
    with pytest.raises(ReleaseHalted):  # a blank override is no reason
        registry.promote("ctr", 2, require_blessing=True, override_reason="   ")
    registry.promote("ctr", 2, require_blessing=True, override_reason="P0: security fix CVE-2026-1", actor="ana")
    last = registry.history("ctr")[-1]
    assert (last.to_version, last.action, last.actor) == (2, "override-promote", "ana")
    assert last.reason.startswith("[override by ana: P0: security fix CVE-2026-1; release halted: the error budget "
                                  "of SLO yarnit-serving-ctr-availability is spent")
    with sqlite_ws.metadata.begin() as conn:
        row = conn.execute(select(audit_log).where(audit_log.c.action == "error_budget.override")).mappings().one()
    assert (row["actor"], row["subject"]) == ("ana", "model:ctr:production")
    assert row["detail"]["override_reason"] == "P0: security fix CVE-2026-1"
    assert row["detail"]["refusal"].startswith("the error budget of SLO yarnit-serving-ctr-availability is spent")
    assert (row["detail"]["from_version"], row["detail"]["to_version"]) == (1, 2)


def test_promotions_resume_when_the_budget_recovers_and_other_models_are_not_halted(setup):
    registry, counts, clock = setup
    _traffic(counts, clock, days=1, good=950, total=1000)  # one bad day: 5 % errors spend 28 d of budget
    assert registry.release_gate.refusal("ctr", "production") is not None
    assert registry.release_gate.refusal("recs", "production") is None
    clock.advance(timedelta(days=28))
    _traffic(counts, clock, days=27, good=1000, total=1000)  # the bad day has left the 28-day window
    registry.promote("ctr", 2, require_blessing=True)
    assert registry.history("ctr")[-1].action == "promote"


def test_within_budget_promotes_normally_and_exactly_the_budget_is_spent(setup):
    registry, counts, clock = setup
    _traffic(counts, clock, days=28, good=9_991, total=10_000)  # 0.09 % errors: 90 % of the budget
    assert registry.release_gate.refusal("ctr", "production") is None
    registry.promote("ctr", 2, alias="canary", require_blessing=True)
    _traffic(counts, clock, days=28, good=9_989, total=10_000)  # now 20 bad in 20,000 a minute: exactly spent
    assert "is spent" in registry.release_gate.refusal("ctr", "canary")


def test_a_spent_budget_refuses_raising_the_canary_share_but_never_lowering_it(setup, sqlite_ws):
    from yarnit.serving.errors import CanaryHalted
    from yarnit.serving.router import TrafficPolicyStore

    registry, counts, clock = setup
    store = TrafficPolicyStore(sqlite_ws, release_gate=registry.release_gate)
    store.set("ctr", canary_percent=5, actor="ana")  # within budget: allowed
    _traffic(counts, clock, days=28, good=998, total=1000)
    with pytest.raises(CanaryHalted, match=r"raise the canary share of model 'ctr' from 5% to 25%: the error "
                                           r"budget of SLO yarnit-serving-ctr-availability is spent"):
        store.set("ctr", canary_percent=25, actor="ana")
    assert store.get("ctr").canary_percent == 5 and len(store.history("ctr")) == 1
    store.set("ctr", canary_percent=1, actor="ana", reason="shrink the canary")  # lowering is always allowed
    with pytest.raises(InvalidInput, match="needs a reason"):
        store.set("ctr", canary_percent=50, actor="ana", force=True)
    store.set("ctr", canary_percent=50, actor="ana", force=True, reason="P0: canary carries the fix")
    last = store.history("ctr")[-1]
    assert (last.to_canary_percent, last.actor) == (50, "ana")
    assert last.reason.startswith("P0: canary carries the fix [forced: the error budget of SLO")


def test_a_spent_model_freshness_budget_never_halts_the_release_that_would_restore_it(sqlite_ws, clock):
    """Regression: a stale production model spent its freshness budget, the gate then halted every promotion,
    and the model could only get staler (the 30-day demo's loop trained 20 versions and released none)."""
    spec = parse_slo_file({"service": "s", "slos": [
        {"name": "fresh", "sli": "model_freshness", "model": "ctr", "objective": 99, "window": "28d",
         "params": {"max_age": "1d"}},
        {"name": "up", "sli": "serving_availability", "model": "ctr", "objective": 99.9, "window": "28d"}]})
    register_ctr(sqlite_ws, 3, blessed=True)
    source = CountsSource()
    registry = ModelRegistry(sqlite_ws, release_gate=ErrorBudgetPolicy(spec.slos, source, clock))
    end = clock.now().timestamp()
    source.counts_for(spec.get("fresh")).add_span(end - 28 * 86400, end, good_per_bucket=0, total_per_bucket=1)
    registry.promote("ctr", 2, require_blessing=True)  # freshness is all spent: releasing is the cure
    assert registry.resolve("ctr", "production").version == 2
    source.counts_for(spec.get("up")).add_span(end - 28 * 86400, end, good_per_bucket=998, total_per_bucket=1000)
    with pytest.raises(ReleaseHalted, match="the error budget of SLO s-up is spent"):  # availability still halts
        registry.promote("ctr", 3, require_blessing=True)
