"""Burn-rate alerts on the simulated clock: RELIABILITY.md §7 targets 4, 5 and 6, and the no-data state."""

from __future__ import annotations

from typing import Any

import pytest

from testsupport.slo_scenarios import Segment, run_scenario
from yarnit.monitoring import SLO, parse_slo_file

CLEAN_3D = Segment(3 * 24 * 60, 10_000, 10_000)  # every window full of good traffic before minute 0


def _slo(**extra: Any) -> SLO:
    item = {"name": "avail", "sli": "serving_availability", "objective": 99.9, "window": "30d", **extra}
    return parse_slo_file({"service": "shop", "slos": [item]}).slos[0]


def _burn(rate_per_10k: int) -> Segment:
    """One minute of 10,000 requests with ``rate_per_10k`` of them bad."""
    return Segment(1, 10_000 - rate_per_10k, 10_000)


def test_full_outage_pages_within_one_interval_of_52_seconds_and_clears_five_minutes_after():
    trace = run_scenario(_slo(), [Segment(10, 0, 10_000), Segment(60, 10_000, 10_000)], history=CLEAN_3D)
    fired = trace.first("page:1h")
    assert fired is not None and fired <= 0.864 + 1  # 52 s + one 1-minute evaluation interval
    assert trace.first("page") == fired
    pair_minutes = trace.minutes("page:1h")
    cleared = max(pair_minutes) + 1
    assert pair_minutes == list(range(fired, cleared))
    assert cleared - 10 <= 5 + 1  # errors stopped at minute 10
    # The 6 h / 30 m pair keeps paging while its 30-minute window holds the ten bad minutes (workbook design).
    assert max(trace.minutes("page")) + 1 == 10 + 30
    first = trace.monitor.history[0]
    assert (first.alert, first.change, first.at.minute) == ("page", "fired", fired)


@pytest.mark.parametrize(("bad_per_10k", "alert", "expected_min"), [
    (150, "page", 57.6),        # 15x: 1 h window × 14.4 / 15
    (288, "page", 30.0),        # 28.8x
    (65, "page", 332.3),        # 6.5x via 6 h / 30 m: 360 × 6 / 6.5
    (12, "ticket", 3600.0),     # 1.2x opens the 3 d / 6 h ticket at 60 h
])
def test_time_to_fire_is_window_times_threshold_over_burn(bad_per_10k, alert, expected_min):
    minutes = int(expected_min) + 10
    trace = run_scenario(_slo(), [Segment(minutes, 10_000 - bad_per_10k, 10_000)], history=CLEAN_3D,
                         evaluate_from=max(1, int(expected_min) - 5))
    fired = trace.first(alert)
    assert fired is not None and abs(fired - expected_min) <= 1
    assert trace.minutes(alert) == list(range(fired, minutes + 1))  # sustained burn keeps it firing
    if alert == "ticket":
        assert trace.first("page") is None


def test_exactly_14_4x_never_pages_because_the_rule_is_strict():
    trace = run_scenario(_slo(), [Segment(140, 10_000 - 144, 10_000)], history=CLEAN_3D)
    one_hour = trace.statuses[120].alerts[0]
    assert one_hour.long.burn_rate == pytest.approx(14.4) and one_hour.short.burn_rate == pytest.approx(14.4)
    assert trace.first("page") is None
    # The control: one more bad request in 10,000 pages, so the boundary is the only reason for silence.
    assert run_scenario(_slo(), [Segment(140, 10_000 - 145, 10_000)], history=CLEAN_3D).first("page") is not None


def test_five_minutes_of_one_percent_errors_never_page():
    trace = run_scenario(_slo(), [Segment(5, 9_900, 10_000), Segment(120, 10_000, 10_000)], history=CLEAN_3D)
    assert trace.first("page") is None
    assert trace.statuses[60].alerts[0].long.error_ratio == pytest.approx(0.01 * 5 / 60)  # 0.083 % < 1.44 %


def _low_traffic(min_events: int | None):
    """10 requests an hour (one every 6 minutes), then one of them fails."""
    alerting = {} if min_events is None else {"alerting": {"min_events": min_events}}
    slo = _slo(**alerting)
    quiet = [Segment(5, 0, 0), Segment(1, 1, 1)] * 20
    return slo, run_scenario(slo, [*quiet, Segment(5, 0, 0), Segment(1, 0, 1), Segment(20, 0, 0)])


def test_one_failure_at_10_requests_an_hour_does_not_page_below_min_events():
    slo, trace = _low_traffic(None)
    assert slo.min_events == 100
    failure_minute = 126
    assert trace.first("page") is None
    guarded = trace.statuses[failure_minute].alerts[0]
    assert guarded.guarded and guarded.long.total == 10 and guarded.long.bad == 1
    assert guarded.long.exceeds(guarded.pair.burn_rate) and guarded.short.exceeds(guarded.pair.burn_rate)


def test_one_failure_pages_when_min_events_is_lowered_to_the_traffic():
    _, trace = _low_traffic(10)
    assert trace.first("page") == 126


def test_no_events_is_no_data_never_a_page_and_never_ok():
    trace = run_scenario(_slo(), [Segment(30, 10_000, 10_000), Segment(120, 0, 0)], history=CLEAN_3D)
    states = {m: s.state for m, s in trace.statuses.items()}
    assert states[30] == "ok" and states[89] == "ok"  # the last events are still in the 1 h no-data window
    assert all(states[m] == "no_data" for m in range(90, 151))
    assert trace.first("page") is None and trace.first("ticket") is None
    assert [(t.alert, t.change) for t in trace.monitor.history] == [("no_data", "fired")]


def test_a_series_that_never_had_events_has_no_budget_figure():
    trace = run_scenario(_slo(), [Segment(3, 0, 0)])
    status = trace.statuses[3]
    assert status.state == "no_data" and status.budget_remaining is None and not status.budget_exhausted


def test_error_budget_is_spent_when_bad_events_reach_the_objective():
    slo = _slo(window="1d", alerting={"page": [], "ticket": []})
    trace = run_scenario(slo, [Segment(60, 999, 1000), Segment(1, 0, 0)], history=Segment(23 * 60, 1000, 1000))
    assert trace.statuses[60].budget_remaining == pytest.approx(1 - 60 / 1440)
    spent = run_scenario(slo, [Segment(60, 976, 1000)], history=Segment(23 * 60, 1000, 1000)).statuses[60]
    assert spent.budget_exhausted and spent.budget_remaining == pytest.approx(0.0)
