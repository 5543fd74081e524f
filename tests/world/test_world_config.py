from datetime import datetime, timezone

import pytest

from yarnit.core import InvalidInput, utc
from yarnit.world import Fault, WorldConfig


def test_defaults_match_the_documented_interface():
    config = WorldConfig()
    assert (config.seed, config.sessions_per_day, config.start, config.faults) == (0, 2000, utc(2026, 1, 5), ())
    assert config.n_candidates >= config.slate_size


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seed": -1}, r"seed must be an int in \[0, .*got -1"),
        ({"seed": "7"}, r"seed must be an int.*got '7' \(str\)"),
        ({"seed": True}, r"seed must be an int"),
        ({"sessions_per_day": 0}, r"sessions_per_day must be an int in \[1, 1000000\], got 0"),
        ({"n_products": 10}, r"n_products must be an int in \[100, 100000\], got 10"),
        ({"n_users": 0}, r"n_users must be an int in \[1, "),
        ({"slate_size": 0}, r"slate_size must be an int in \[1, 50\]"),
        ({"n_candidates": 5}, r"n_candidates must be an int in \[10, 500\].*at least slate_size"),
        ({"new_user_share": 1.5}, r"new_user_share must be a float in \[0, 1\], got 1.5"),
        ({"start": datetime(2026, 1, 5)}, r"start must be a timezone-aware datetime.*utc\(2026, 1, 5\)"),
        ({"start": utc(2026, 1, 5, 12)}, r"start must be midnight UTC.*2026-01-05T12:00:00\+00:00"),
        ({"faults": [Fault("stockout", day=1)]}, r"faults must be a tuple of Fault"),
        ({"faults": ("stockout@1",)}, r"faults must be a tuple of Fault.*parse_fault"),
    ],
)
def test_invalid_config_says_what_is_wrong_and_what_is_valid(kwargs, message):
    with pytest.raises(InvalidInput, match=message):
        WorldConfig(**kwargs)


def test_start_in_another_timezone_must_still_be_midnight_utc():
    from datetime import timedelta

    paris_midnight = datetime(2026, 1, 5, tzinfo=timezone(timedelta(hours=1)))
    with pytest.raises(InvalidInput, match="midnight UTC"):
        WorldConfig(start=paris_midnight)


def test_horizon_check_rejects_faults_after_the_last_day_and_bad_day_counts():
    config = WorldConfig(faults=(Fault("stockout", day=5),))
    config.check_horizon(6)
    with pytest.raises(InvalidInput, match=r"'stockout@5' starts on day 5, after the last simulated day 4 "
                                           r"\(2026-01-09\)\. Use a day in \[0, 4\]"):
        config.check_horizon(5)
    with pytest.raises(InvalidInput, match=r"days must be an int in \[1, 3660\], got 0"):
        config.check_horizon(0)


def test_to_dict_is_json_ready_and_records_faults_with_their_windows():
    import json

    config = WorldConfig(seed=3, faults=(Fault("stockout", day=2, hours=12, params={"top_n": 4}),))
    data = json.loads(json.dumps(config.to_dict()))
    assert data["start"] == "2026-01-05T00:00:00+00:00"
    assert data["faults"][0]["start"] == "2026-01-07T00:00:00+00:00"
    assert data["faults"][0]["end"] == "2026-01-07T12:00:00+00:00"
    assert data["faults"][0]["params"] == {"top_n": 4}
