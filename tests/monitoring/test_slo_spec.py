"""The SLO file: the workbook's defaults, and one clear error per mistake naming the field and the choices."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest

from yarnit.core.errors import ConfigError
from yarnit.monitoring import EventCounts, load_slo_file, parse_slo_file


def _file(**slo: Any) -> dict[str, Any]:
    item = {"name": "avail", "sli": "serving_availability", "objective": 99.9, "window": "30d", **slo}
    return {"service": "shop", "slos": [item]}


def test_defaults_are_the_workbook_pairs_and_objectives_are_exact():
    slo = parse_slo_file(_file()).slos[0]
    assert slo.objective == Fraction(999, 1000) and slo.error_budget == Fraction(1, 1000)
    assert [(a.severity, a.long_s, a.short_s, a.burn_rate) for a in slo.alerts] == [
        ("page", 3600, 300, Fraction("14.4")), ("page", 21600, 1800, Fraction(6)), ("ticket", 259200, 21600, 1)]
    assert slo.min_events == 100 and slo.id == "shop-avail" and slo.alert_name == "AvailErrorBudgetBurn"


def test_openslo_target_ratio_is_accepted_as_an_alternative_to_percent():
    data = {"service": "shop", "slos": [{"name": "runs", "sli": "pipeline_success", "target": 0.99}]}
    assert parse_slo_file(data).slos[0].objective == Fraction(99, 100)


@pytest.mark.parametrize(("change", "message"), [
    ({"objective": 100}, r"slos\[0\] \(avail\)\.objective is 100; it must satisfy 0 < objective < 100"),
    ({"objective": 120.5}, r"objective is 120.5"),
    ({"sli": "uptime"}, r"\.sli is 'uptime', not a known SLI; valid choices: serving_availability, "
                        r"serving_latency, data_freshness"),
    ({"window": "30 days"}, r"\.window must be a duration like 5m, 1h, 3d or 4w .* got '30 days'"),
    ({"window": "2h"}, r"alerting\.page\[1\]\.long \(6h\) is longer than the SLO window \(2h\)"),
    ({"alerting": {"page": [{"long": "5m", "short": "1h", "burn_rate": 14.4}]}},
     r"alerting\.page\[0\]: the short window \(1h\) must be shorter than the long window \(5m\)"),
    ({"alerting": {"ticket": [{"long": "3d", "short": "6h", "burn_rate": 0}]}}, r"burn_rate must be a positive"),
    ({"alerting": {"min_events": -1}}, r"min_events must be a whole number >= 0"),
    ({"sli": "serving_latency"}, r"params needs threshold_ms for sli serving_latency"),
    ({"prometheus": {"errors": "a_total", "good": "b_total", "total": "c_total"}},
     r"prometheus needs total and exactly one of errors or good"),
    ({"colour": "red"}, r"unknown key\(s\) colour; valid keys: name, sli, objective"),
])
def test_bad_slo_fields_get_one_error_naming_the_field_and_the_choices(change, message):
    with pytest.raises(ConfigError, match=message):
        parse_slo_file(_file(**change))


def test_duplicated_slo_names_are_refused():
    data = _file()
    data["slos"].append(dict(data["slos"][0]))
    with pytest.raises(ConfigError, match=r"slos\[1\]\.name 'avail' is used twice"):
        parse_slo_file(data)


def test_load_reports_yaml_errors_with_the_file_name_only(tmp_path):
    path = tmp_path / "slos.yaml"
    path.write_text("service: shop\nslos: [\n")
    with pytest.raises(ConfigError, match=r"^SLO file 'slos.yaml' is not valid YAML") as err:
        load_slo_file(path)
    assert str(tmp_path) not in str(err.value)


def test_event_counts_are_bounded_and_refuse_counts_older_than_the_ring():
    counts = EventCounts(bucket_s=60, capacity=10)
    counts.add_span(0, 600, good_per_bucket=9, total_per_bucket=10)
    assert counts.window(end_s=600, window_s=600) == (90, 100)
    counts.add(900, good=1, total=1)  # head moves to bucket 15: buckets 0..5 fall out
    assert counts.window(end_s=960, window_s=960) == (37, 41)
    counts.add(0, good=5, total=5)
    assert counts.dropped == 5 and counts.window(end_s=960, window_s=960) == (37, 41)


def test_event_counts_merge_by_adding_buckets():
    a, b = EventCounts(capacity=100), EventCounts(capacity=100)
    a.add_span(0, 1200, good_per_bucket=10, total_per_bucket=10)
    b.add_span(600, 1800, good_per_bucket=0, total_per_bucket=5)
    a.merge(b)
    assert a.window(end_s=1800, window_s=1800) == (200, 300)
    assert a.window(end_s=1200, window_s=600) == (100, 150)
    with pytest.raises(ValueError, match="30 s buckets"):
        a.merge(EventCounts(bucket_s=30))
