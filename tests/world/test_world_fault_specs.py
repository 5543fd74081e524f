import re

import pandas as pd
import pytest

from yarnit.core import InvalidInput, utc
from yarnit.world import FAULTS, Fault, parse_fault

START = utc(2026, 1, 5)


def test_there_are_ten_faults_each_with_a_book_reference_in_its_docstring():
    assert list(FAULTS) == [
        "discount_format", "partner_lookup", "stale_features", "biased_loss", "click_log_outage",
        "upstream_change", "traffic_spike", "app_requery", "stockout", "model_collapse",
    ]  # fmt: skip
    for kind in FAULTS.values():
        doc = type(kind).__doc__ or ""
        assert "Book: ch." in doc and "Fingerprint:" in doc, kind.name
        assert kind.book.startswith("ch."), kind.name


def test_spec_with_day_number_hours_and_params():
    fault = parse_fault("stockout@3:48,top_n=5")
    assert (fault.name, fault.day, fault.hours, dict(fault.params)) == ("stockout", 3, 48.0, {"top_n": 5})
    assert fault.window(START) == (utc(2026, 1, 8), utc(2026, 1, 10))


def test_spec_defaults_to_a_24_hour_window_and_default_params():
    fault = parse_fault("biased_loss@1")
    assert fault.hours == 24.0
    assert dict(fault.params) == {"country": "", "events": "purchases", "language": "es"}


def test_spec_accepts_an_iso_date_relative_to_the_start():
    assert parse_fault("traffic_spike@2026-01-08:6,factor=3", start=START).day == 3


def test_spec_round_trips_and_lists_only_changed_params():
    fault = parse_fault("model_collapse@2:5.5,mode=constant,value=0.25")
    assert fault.spec() == "model_collapse@2:5.5,mode=constant,value=0.25"
    assert parse_fault(fault.spec()) == fault
    assert parse_fault("stockout@4").spec() == "stockout@4"


def test_to_dict_records_exact_name_window_and_every_param():
    fault = parse_fault("click_log_outage@2:36")
    assert fault.to_dict(START) == {
        "name": "click_log_outage",
        "book": "ch. 15 case 5",
        "day": 2,
        "hours": 36.0,
        "start": "2026-01-07T00:00:00+00:00",
        "end": "2026-01-08T12:00:00+00:00",
        "params": {"replay_after_hours": 48.0},
        "spec": "click_log_outage@2:36",
    }


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("meteor@1", r"Unknown fault 'meteor'.*Valid faults: discount_format, partner_lookup, .*model_collapse"),
        ("stockout", r"has no '@DAY'.*NAME@DAY\[\+HH\]\[:HOURS\]"),
        ("stockout@x", r"DAY 'x' must be a day number \(0 = the start date\) or a date YYYY-MM-DD"),
        ("stockout@-1", r"DAY '-1' must be a day number"),
        ("stockout@2026-02-30", r"'2026-02-30' is not a real date"),
        ("stockout@2026-01-01", r"2026-01-01 is before the world's start 2026-01-05"),
        ("stockout@1:abc", r"HOURS 'abc' is not a number"),
        ("stockout@1:0", r"hours must be a number in \(0, 87840\], got 0.0"),
        ("stockout@1,top=3", r"Fault 'stockout' has no parameter 'top'. Valid parameters: top_n: int in \[1, 1000\]"),
        ("stockout@1,top_n=0", r"top_n='0' is out of range. Use top_n: int in \[1, 1000\]"),
        ("stockout@1,top_n=2.5", r"top_n='2.5' is not an int"),
        ("stockout@1,top_n", r"'top_n' is not param=value"),
        ("stockout@1,top_n=2,top_n=3", r"parameter 'top_n' is given twice"),
        ("traffic_spike@1,factor=1", r"factor='1' is out of range. Use factor: float in \(1, 50\]"),
        ("model_collapse@1,mode=nan", r"mode='nan' is not valid. Use mode: one of zero, constant"),
        ("biased_loss@1,country=ES,language=es", r"give country or language, not both"),
        ("biased_loss@1,country=XX", r"country='XX' is not valid. Use country: one of US, GB, CA"),
        ("upstream_change@1,change=rename,new_name=Bad Name", r"new_name='Bad Name' is not a column name"),
        ("upstream_change@1,change=rename,new_name=price_usd", r"already names a column of the impressions"),
    ],
)
def test_bad_specs_fail_with_one_clear_error(spec, message):
    with pytest.raises(InvalidInput, match=message):
        parse_fault(spec, start=START)


def test_a_date_needs_the_start_date():
    with pytest.raises(InvalidInput, match="needs the world's start date"):
        parse_fault("stockout@2026-01-08")


def test_fault_objects_validate_like_specs():
    with pytest.raises(InvalidInput, match="Unknown fault 'x'"):
        Fault("x", day=1)
    with pytest.raises(InvalidInput, match=r"day must be an int in \[0, 3659\]"):
        Fault("stockout", day=-1)
    with pytest.raises(InvalidInput, match=r"top_n=5000 is out of range"):
        Fault("stockout", day=1, params={"top_n": 5000})
    assert hash(Fault("stockout", day=1)) == hash(Fault("stockout", day=1, params={"top_n": 20}))


def test_a_fault_can_open_at_an_hour_of_its_day_and_the_world_honours_it() -> None:
    from yarnit.world import World, WorldConfig

    fault = parse_fault("stockout@1+12:6,top_n=5")
    assert (fault.day, fault.hour, fault.hours) == (1, 12.0, 6.0) and fault.spec() == "stockout@1+12:6,top_n=5"
    start = WorldConfig().start
    opens, closes = fault.window(start)
    assert (opens - start).total_seconds() == 36 * 3600 and (closes - opens).total_seconds() == 6 * 3600
    assert fault.to_dict(start)["hour"] == 12.0 and "hour" not in parse_fault("stockout@1").to_dict(start)
    day = list(World(WorldConfig(seed=3, sessions_per_day=300, n_users=500, faults=(fault,))).run(2))[1]
    shown = day.impressions
    hours = pd.to_datetime(shown["event_time"], utc=True).dt.hour
    out = ~shown["in_stock"].astype(bool)
    assert out[hours < 12].mean() < out[(hours >= 12) & (hours < 18)].mean()  # sold out only inside the window
    for bad, why in (("stockout@1+24", "[0, 24)"), ("stockout@1+x", "not a number of hours")):
        with pytest.raises(InvalidInput, match=re.escape(why)):
            parse_fault(bad)
