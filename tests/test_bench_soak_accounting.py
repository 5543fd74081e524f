"""The load-and-soak benchmark's accounting (benchmarks/bench_serving_soak.py): what counts as an error, a shed
request and goodput, the exact percentiles from the generator's per-request file, and the RSS slope.

The benchmark itself is not a test (it runs for half an hour); these are the sums its figures come from.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_serving_soak.py"


@pytest.fixture(scope="module")
def soak():
    spec = importlib.util.spec_from_file_location("_bench_serving_soak_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _report(sent: int, statuses: dict[str, int], achieved_rps: float, p50: float = 1.0, p99: float = 2.0) -> dict:
    by_status = {code: {"count": n, "p50_ms": p50, "p99_ms": p99} for code, n in statuses.items()}
    return {"offered_rps": 100.0, "achieved_rps": achieved_rps, "sent": sent, "errors": 0, "late_sends": 1,
            "max_send_lag_ms": 0.5, "by_status": by_status}


def test_unanswered_requests_and_other_statuses_are_errors_and_503s_are_shed(soak) -> None:
    # 1,000 sent: 900 answered 200, 50 shed (503), 10 answered 500, 40 never answered within the drain.
    windows = [_report(600, {"200": 540, "503": 30, "500": 10}, achieved_rps=58.0, p99=3.0),
               _report(400, {"200": 360, "503": 20}, achieved_rps=38.0, p99=9.0)]

    out = soak.outcome(windows, sustainable_rps=120.0)

    assert out["sent"] == 1000 and out["answered"] == 960
    assert out["error_rate"] == pytest.approx(50 / 1000)  # 40 unanswered + 10 answered 500
    assert out["shed_rate"] == pytest.approx(50 / 1000)
    seconds = 580 / 58.0 + 380 / 38.0  # each window's answers over its achieved rate: 20 s
    assert out["seconds"] == pytest.approx(seconds)
    assert out["ok_rps"] == pytest.approx(900 / seconds)
    assert out["goodput_of_sustainable"] == pytest.approx(900 / seconds / 120.0)
    assert out["goodput_of_offered"] == pytest.approx(900 / seconds / 100.0)
    assert out["p99_ms"] == pytest.approx(6.0) and out["p99_ms_worst_window"] == 9.0  # median of 2, and the max
    assert out["late_sends"] == 2


def test_a_run_with_nothing_answered_reports_no_rates_instead_of_dividing_by_zero(soak) -> None:
    out = soak.outcome([_report(10, {}, achieved_rps=0.0)], sustainable_rps=100.0)

    assert out["error_rate"] == 1.0 and out["shed_rate"] == 0.0
    assert out["ok_rps"] is None and out["goodput_of_sustainable"] is None and out["p99_ms"] is None


def test_exact_percentiles_come_from_the_200s_in_the_generators_per_request_file(soak, tmp_path: Path) -> None:
    lines = [f"200 {us} 0" for us in range(1000, 101_000, 1000)]  # 100 answers: 1 ms .. 100 ms
    lines += ["503 50 0", "0 0 0"]  # a refusal and an unanswered request: not latencies of answers
    path = tmp_path / "window.samples"
    path.write_text("\n".join(lines) + "\n", encoding="ascii")

    values = soak.latencies_of_200s(path)

    assert len(values) == 100
    assert soak.nearest_rank(values, 0.50) == 50.0
    assert soak.nearest_rank(values, 0.99) == 99.0
    assert soak.nearest_rank(values[:0], 0.99) is None


def test_rss_slope_is_a_least_squares_fit_in_mib_per_hour(soak) -> None:
    samples = [{"t_s": t, "rss_mib": 300 + 0.5 * t / 60} for t in range(0, 1800, 10)]  # +0.5 MiB a minute

    assert soak.rss_slope_mib_per_hour(samples) == pytest.approx(30.0)
    assert soak.rss_slope_mib_per_hour(samples[:1]) is None


def test_a_swap_cut_off_by_the_soaks_end_is_neither_served_nor_a_failure(soak) -> None:
    report = {"config": {"soak_minutes": 30, "flat_mib_per_hour": 6.0, "swap_every_s": 30},
              "soak": {"rss_slope_mib_per_hour": {"second_half": 7.5}, "error_rate": 0.0, "swap_failures": [],
                       "swaps_done": 61, "swaps_not_served_within_60s": 0, "swaps_cut_off_by_the_end": 1},
              "phases": [{"multiple": 2.0, "goodput_of_sustainable": 0.5}]}

    targets = {t["target"].split(" (")[0]: t for t in soak.targets_of(report)}

    swaps = targets["every hot swap served"]
    assert (swaps["figure"], swaps["verdict"]) == ("60 of 60 (and 1 cut off by the soak's end)", "met")
    memory = next(t for name, t in targets.items() if name.startswith("memory flat"))
    assert (memory["figure"], memory["verdict"]) == (7.5, "not met")
    assert targets["goodput at 2x the sustainable rate, open loop"]["verdict"] == "reported"
