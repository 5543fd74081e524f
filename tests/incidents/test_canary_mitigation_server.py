"""The default mitigation of a burning canary, for real, against a server on 127.0.0.1.

No incidents.yaml and no actions mapping: the monitor opens an incident for the canary's availability SLO (the
SLO's ``params: {alias: canary}``), the default ``burning-canary`` policy resolves ``abort_canary`` from
:mod:`yarnit.continuous.actions`, the canary's traffic is taken away (production keeps its version), the
running server's next request for a canary key is answered by production, and the incident's timeline records
the action with actor ``incident:<id>``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
from testsupport import TOKEN, register_ctr
from testsupport.monitoring import write_slos

from yarnit.api import create_app
from yarnit.api.server import BackgroundServer
from yarnit.core import Settings
from yarnit.incidents import IncidentStore
from yarnit.monitoring.runner import Monitor
from yarnit.monitoring.workspace import load_workspace_slos, prediction_log_dir
from yarnit.registry import ModelRegistry
from yarnit.serving.predlog import PredictionLog
from yarnit.serving.router import BUCKETS, TrafficPolicyStore, bucket
from yarnit.storage import open_workspace

ROW = [{"fiber": "merino", "price": 12.0}]


def wait_for(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_a_burning_canary_is_aborted_by_the_default_policy_and_production_answers(tmp_path, clock) -> None:
    ws = open_workspace(Settings.for_home(tmp_path / "home", api_token=TOKEN), clock)
    try:
        register_ctr(ws)  # v1 production, v2 (blessed)
        registry = ModelRegistry(ws)
        registry.set_alias("ctr", "canary", 2, actor="user:alice", reason="canary v2")
        TrafficPolicyStore(ws).set("ctr", canary_percent=50.0, actor="user:alice", reason="canary v2 at 50 %")
        write_slos(ws.home, sinks=[{"type": "file"}], extra=(
            {"name": "ctr-canary-availability", "sli": "serving_availability", "model": "ctr", "objective": 99,
             "window": "7d", "params": {"alias": "canary"}},))
        # an hour of traffic on the simulated clock; the canary's requests fail with no answer in the last 10 min
        log = PredictionLog(prediction_log_dir(ws.home), clock, fsync=False, aggregate_window_s=1e9)
        n = 0
        for minute in range(61):
            for routed in ("production", "canary"):
                for _ in range(10):
                    n += 1
                    record = {"request_id": f"r{n}", "time": clock.now(), "role": "primary", "protocol": "v1",
                              "model": "ctr", "latency_ms": 5.0, "key": None, "routed": routed}
                    if routed == "canary" and minute >= 51:
                        record.update(status=500, error="RuntimeError")
                    else:
                        record.update(status=200, version=2 if routed == "canary" else 1, alias=routed,
                                      served_by="model", predictions=[0.5])
                    log.append(record)
            clock.advance(60)
        assert log.flush()
        log.close()
        canary_key = next(k for k in (f"shopper-{i}" for i in range(1000)) if bucket("ctr", k) < 50 * BUCKETS / 100)
        app = create_app(ws, refresh_s=0.05)
        try:
            with BackgroundServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as http:
                def version_for_canary_key() -> int:
                    response = http.post("/v1/models/ctr:predict", json={"instances": ROW, "key": canary_key})
                    assert response.status_code == 200, response.text
                    return int(response.json()["model_version"])

                assert version_for_canary_key() == 2  # the canary answers its keys
                report = Monitor(ws, load_workspace_slos(ws.home), clock=clock).run_once()  # no actions mapping
                hook = report["hooks"]["incidents"]["report"]
                assert [m["policy"] for m in hook["mitigations"]] == ["burning-canary"], hook
                assert TrafficPolicyStore(ws).get("ctr").canary_percent == 0
                assert registry.aliases("ctr") == {"production": 1, "canary": 1}  # production was not moved
                wait_for(lambda: app.state.serving.router.policy("ctr").canary_percent == 0)
                assert version_for_canary_key() == 1  # the next request for that key: production answers
        finally:
            app.state.serving.close()
        (incident,) = IncidentStore.open(ws.home, clock).list()
        assert incident.state == "mitigated" and incident.mitigations["burning-canary"]["state"] == "ok"
        (event,) = [e for e in incident.events if e.kind == "mitigation"]
        assert event.actor == f"incident:{incident.id}" and "abort_canary on ctr" in event.summary
        result = event.data["result"]
        assert (result["from"], result["to"]) == ({"canary_percent": 50.0, "canary": 2},
                                                  {"canary_percent": 0.0, "canary": 1})
        assert result["changed"] and result["audit_id"] is not None
    finally:
        ws.close()
