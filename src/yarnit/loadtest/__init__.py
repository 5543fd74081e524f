"""Staging load tests (book ch. 15 case 4): a candidate version and production under the same open-loop load.

``run_loadtest`` starts each version in its own staging server, drives both with the project's C
open-loop generator on hard inputs from the prediction log, gates the candidate's p95/p99 latency and
error rate against production's (:class:`Tolerances`) and records the result (:class:`LoadTestStore`),
where the staged rollout's load-test stage reads it.
"""

from .gate import Check, SideFigures, Tolerances, Verdict, figures, judge, percentile
from .inputs import HardInputs, hard_inputs, request_bodies
from .run import MAX_DURATION_S, MAX_REQUESTS, MAX_RPS, LoadTestPlan, StagingServer, placement, run_loadtest
from .store import LoadTestStore

__all__ = [
    "MAX_DURATION_S",
    "MAX_REQUESTS",
    "MAX_RPS",
    "Check",
    "HardInputs",
    "LoadTestPlan",
    "LoadTestStore",
    "SideFigures",
    "StagingServer",
    "Tolerances",
    "Verdict",
    "figures",
    "hard_inputs",
    "judge",
    "percentile",
    "placement",
    "request_bodies",
    "run_loadtest",
]
