"""Two real `yarnit serve` replicas behind a real HAProxy, on shared PostgreSQL, Redis and artifacts.

* An alias move and a rollback, committed by another process, reach both
  replicas (each polls the metadata store's change counter); the time is
  measured and printed (docs/benchmarks.md), the test only bounds it
  generously. Under load through the balancer meanwhile, every answer is one
  version's, whole: its predictions are exactly v1's or v2's.
* A replica cut off from PostgreSQL reports not ready, the balancer takes it out (no request fails) and
  back once its path returns.
* ``kill -9`` of a replica under load fails no request: HAProxy retries
  what was in flight on the other replica and its readiness check takes the
  dead one out.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
from conftest import _pg_schema_url, postgres_url, redis_url
from testsupport import TOKEN, register_ctr
from testsupport.replicas import (
    ROWS,
    Load,
    ReplicaCluster,
    TcpProxy,
    haproxy_binary,
    propagation_s,
    wait_until,
)

from yarnit.core import Settings, SimulatedClock
from yarnit.registry import ModelRegistry
from yarnit.storage import open_workspace

pytestmark = pytest.mark.timeout(240)

def test_two_replicas_follow_alias_moves_and_lose_no_request_to_a_kill_9(tmp_path: Path,
                                                                        clock: SimulatedClock) -> None:
    haproxy = haproxy_binary()
    if haproxy is None:
        pytest.skip("HAProxy is not installed (apt-get install haproxy; .ci/run does): this test needs the real "
                    "load balancer")
    schemas = _pg_schema_url(postgres_url())
    db_url = next(schemas)
    online = redis_url()
    home = tmp_path / "home"
    ws = open_workspace(Settings.for_home(home, db_url=db_url, online_store=online, api_token=TOKEN), clock)
    # replica-2 reaches PostgreSQL through a proxy the test can cut: its own network path, not the database
    pg = urlsplit(db_url)
    proxy = TcpProxy(pg.port or 5432).start()
    proxied_url = db_url.replace(f"{pg.hostname}:{pg.port or 5432}", f"127.0.0.1:{proxy.port}", 1)
    cluster = ReplicaCluster(tmp_path, os.environ | {"YARNIT_HOME": str(home), "YARNIT_DB_URL": db_url,
                                                     "YARNIT_ONLINE_STORE": online, "YARNIT_API_TOKEN": TOKEN},
                             replica_env={1: {"YARNIT_DB_URL": proxied_url}})
    try:
        register_ctr(ws)  # v1 production, v2 registered
        registry = ModelRegistry(ws)
        expected = {n: np.asarray(registry.load(registry.get("ctr", n)).predict_proba(ROWS)) for n in (1, 2)}
        assert np.abs(expected[1] - expected[2]).max() > 1e-3  # the two versions' answers can be told apart
        cluster.start(haproxy)

        with Load(cluster.url) as load:
            wait_until(lambda: len(load.outcomes) >= 50, 60, "50 answers through the balancer")
            registry.promote("ctr", 2, actor="test", reason="replica propagation")
            moved_s = propagation_s(cluster, 2, time.monotonic())
            wait_until(lambda: any(o[1] == 2 for o in load.outcomes[-20:]), 60, "v2 answering through the balancer")
            registry.roll_back("ctr", actor="test", reason="replica propagation")
            rolled_back_s = propagation_s(cluster, 1, time.monotonic())
            during = len(load.outcomes)
            wait_until(lambda: len(load.outcomes) >= during + 50, 60, "50 more answers after the rollback")
        print(f"\nalias move reached both replicas in {moved_s:.3f} s, the rollback in {rolled_back_s:.3f} s")
        assert moved_s < 30 and rolled_back_s < 30  # generous: the figure that matters is printed and measured

        # No answer mixes versions: each one's predictions are all of the version it names.
        assert {o[0] for o in load.outcomes} == {200}, [o for o in load.outcomes if o[0] != 200][:5]
        assert {o[1] for o in load.outcomes} == {1, 2}
        for _status, version, predictions in load.outcomes:
            assert predictions is not None and version in expected
            np.testing.assert_allclose(predictions, expected[version], rtol=0, atol=1e-5)

        # A replica cut off from PostgreSQL says it is not ready and the balancer stops sending to it, rather than
        # serving aliases it can no longer check; once its path is back it is ready and taken back.
        with Load(cluster.url) as load:
            wait_until(lambda: len(load.outcomes) >= 30, 60, "30 answers through the balancer")
            proxy.cut()
            wait_until(lambda: cluster.servers().get("replica-2", {}).get("status", "").startswith("DOWN"), 30,
                       "the health check taking the replica without PostgreSQL out")
            ready = httpx.get(f"{cluster.replicas[1].url}/v2/health/ready", timeout=10)
            assert ready.status_code == 503 and "metadata store" in ready.json()["reason"], ready.text
            cut_at = len(load.outcomes)
            wait_until(lambda: len(load.outcomes) >= cut_at + 30, 60, "30 answers without replica-2")
            proxy.restore()
            wait_until(lambda: cluster.servers().get("replica-2", {}).get("status") == "UP", 30,
                       "replica-2 taken back once it reaches PostgreSQL again")
        assert [o for o in load.outcomes if o[0] != 200] == []

        servers = cluster.servers()
        with Load(cluster.url, threads=4) as load:
            wait_until(lambda: len(load.outcomes) >= 100, 60, "100 answers through the balancer")
            cluster.kill_9(0)
            killed_at = len(load.outcomes)
            wait_until(lambda: cluster.servers().get("replica-1", {}).get("status", "").startswith("DOWN"), 30,
                       "the health check taking the killed replica out")
            down_at = len(load.outcomes)
            wait_until(lambda: len(load.outcomes) >= down_at + 100, 60, "100 answers after it was taken out")
        after = cluster.servers()
        failed = [o for o in load.outcomes if o[0] != 200]
        print(f"kill -9 under load: {len(load.outcomes)} requests ({killed_at} before the kill, "
              f"{down_at - killed_at} between the kill and DOWN), {len(failed)} failed; HAProxy retried "
              f"{sum(int(s['wretr'] or 0) for s in after.values())}, redispatched "
              f"{sum(int(s['wredis'] or 0) for s in after.values())}")
        assert failed == [], failed[:5]
        assert int(servers["replica-1"]["stot"]) > 0 and int(servers["replica-2"]["stot"]) > 0  # both had served
        assert int(after["replica-2"]["stot"]) > int(servers["replica-2"]["stot"])
    finally:
        cluster.stop()
        proxy.cut()
        ws.close()
        schemas.close()


def test_the_cluster_is_not_up_before_haproxy_answers_its_stats(tmp_path: Path) -> None:
    """Regression: ``ReplicaCluster.start`` waited for ``all(UP)`` over the stats rows, and with HAProxy not yet
    listening the rows were empty, so the load began before the balancer did and its first requests were refused
    (seen in CI as ten "Connection refused" within 10 ms). A stats page showing fewer replicas than started is not
    up either."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from yarnit.api.server import free_port

    header = "# pxname,svname,status,stot,wretr,wredis\n"
    rows = {"body": ""}

    class Stats(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            body = rows["body"].encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    cluster = ReplicaCluster(tmp_path, {})
    cluster.stats_port = free_port()
    assert cluster.every_replica_up() is False  # nothing listens on the stats port yet

    server = ThreadingHTTPServer(("127.0.0.1", cluster.stats_port), Stats)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        rows["body"] = header
        assert cluster.every_replica_up() is False  # HAProxy answers but lists no replica
        rows["body"] = header + "yarnit_replicas,replica-1,UP,0,0,0\n"
        assert cluster.every_replica_up() is False  # one of two
        rows["body"] = header + "yarnit_replicas,replica-1,UP,0,0,0\nyarnit_replicas,replica-2,DOWN,0,0,0\n"
        assert cluster.every_replica_up() is False
        rows["body"] = header + "yarnit_replicas,replica-1,UP,0,0,0\nyarnit_replicas,replica-2,UP,0,0,0\n"
        assert cluster.every_replica_up() is True
    finally:
        server.shutdown()
        server.server_close()
