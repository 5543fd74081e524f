"""Regression: raising a canary's share asks the release gate *before* the policy's write transaction.

Asked inside it, on SQLite, the gate's probes (model freshness reads the registry) opened a second transaction
that waited out the 30 s busy timeout behind the first and then failed, so a spent budget could not halt a
canary raise (and every staged rollout step stalled 30 s). The budget below is spent by a stale dataset the
model is judged on: only a gate that can read the database sees it.
"""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest
from testsupport import register_ctr

from yarnit.core import Settings, SimulatedClock, utc
from yarnit.data import Datasets
from yarnit.monitoring.workspace import slo_path
from yarnit.serving.errors import CanaryHalted
from yarnit.serving.router import TrafficPolicyStore
from yarnit.storage import open_workspace

STALE_DATA_SLO = """\
service: shop
slos:
  - name: ctr-data-fresh
    sli: data_freshness
    model: ctr
    objective: 99
    window: 7d
    params: {dataset: clicks, max_age: 1h}
"""


def test_a_spent_freshness_budget_halts_a_canary_raise_on_sqlite_and_lowering_is_never_asked(tmp_path) -> None:
    clock = SimulatedClock(utc(2026, 1, 5))
    with open_workspace(Settings.for_home(tmp_path / "home"), clock) as ws:
        register_ctr(ws)
        Datasets(ws).ingest_frame("clicks", pd.DataFrame({"x": [1, 2]}), source="test", no_subject="test rows")
        slo_path(ws.home).write_text(STALE_DATA_SLO)
        clock.advance(timedelta(days=3))  # no newer data for most of the window: the budget is spent
        store = TrafficPolicyStore(ws)
        with pytest.raises(CanaryHalted, match="ctr-data-fresh"):
            store.set("ctr", canary_percent=10, actor="user:test", reason="raise")
        assert store.get("ctr").canary_percent == 0  # nothing changed, nothing audited
        event = store.set("ctr", canary_percent=10, actor="user:test", reason="raise",
                          override_reason="P0: a fix that cannot wait")
        assert event.to_canary_percent == 10 and "release halted" in event.reason
        lowered = store.set("ctr", canary_percent=0, actor="user:test", reason="lower")  # never refused
        assert lowered.to_canary_percent == 0
