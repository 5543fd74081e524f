"""`yarnit demo` end to end in a subprocess, and after a kill -9 at a random point."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from yarnit.core.errors import Unavailable
from yarnit.demo import require_answers_from

ARGS = ["demo", "--quick", "--days", "2", "--sessions-per-day", "300", "--json"]


def _env(home: Path) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("YARNIT_")} | {"YARNIT_HOME": str(home)}


def _demo(home: Path) -> dict[str, object]:
    proc = subprocess.run([sys.executable, "-m", "yarnit", *ARGS], env=_env(home), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_demo_serves_a_prediction_from_the_model_it_trained(tmp_path: Path) -> None:
    result = _demo(tmp_path / "ws")
    assert result["model_ref"] == "ctr:v1" and result["served_by_version"] == 1 and result["served_by"] == "model"
    assert 0.0 < result["served_prediction"] < 1.0  # type: ignore[operator]
    assert result["auc_holdout"] > 0.6 and result["requests_sent"] == 20  # type: ignore[operator]
    assert result["answered_by"] == {"ctr:v1": 20}, "every request answered by the model it trained, none by fallback"
    again = _demo(tmp_path / "ws")
    # select, validate, split, tune, train, evaluate come from the cache; reference, golden, baseline, gate and
    # register are never cached (they key other steps or prove something only when they run)
    assert again["model_ref"] == "ctr:v1" and again["cached_steps"] == 6


def test_the_demo_fails_when_the_model_it_trained_answered_none() -> None:
    require_answers_from("ctr:v2", {"ctr:v2": 1, "heuristic": 19})
    with pytest.raises(Unavailable, match=r"ctr:v2, answered none of its 20 requests \(answered by: "
                                          r"\{'heuristic': 12, 'ctr:v1': 5, 'HTTP 503': 3\}\)"):
        require_answers_from("ctr:v2", {"heuristic": 12, "ctr:v1": 5, "HTTP 503": 3})


@pytest.mark.slow
def test_a_demo_killed_at_random_points_leaves_a_workspace_the_next_run_opens(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    rng = random.Random(1)
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, "-m", "yarnit", *ARGS], env=_env(home), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(1.5, 5.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    result = _demo(home)
    assert result["model_ref"] == "ctr:v1" and result["served_by_version"] == 1
