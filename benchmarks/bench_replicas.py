"""Alias propagation across replicas: how long an alias move takes to reach every `yarnit serve` replica.

Two real replica processes (what ``yarnit serve`` runs) on one PostgreSQL schema, Redis and a shared workspace
directory, behind HAProxy configured by ``yarnit deploy lb``, with three client threads driving
two-row predictions through the balancer the whole time. Each round moves ``production`` (a promote,
then a rollback, alternately) from this process and polls every replica on its own port until it
answers with the new version; the round's figure is the slower replica's time from the commit. The
clients' answers are checked: none failed, and every answer's predictions are exactly those of the
version it names (no answer mixes versions).

Also the watcher's per-poll cost, against what it replaces: reading the PostgreSQL change counter
(``MetadataStore.change_token``, migration 0014) versus re-reading one model's aliases (what every
replica did every 0.25 s per served model before).

Needs PostgreSQL, Redis and HAProxy: YARNIT_TEST_POSTGRES_URL, YARNIT_TEST_REDIS_URL, haproxy on PATH.
Usage: .venv/bin/python benchmarks/bench_replicas.py [--rounds 20]
Writes benchmarks/results/replicas.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    import numpy as np
    from conftest import _pg_schema_url
    from testsupport import TOKEN, register_ctr
    from testsupport.replicas import (
        ROWS,
        Load,
        ReplicaCluster,
        haproxy_binary,
        propagation_s,
    )

    from yarnit.core import Settings, SystemClock
    from yarnit.registry import ModelRegistry
    from yarnit.storage import open_workspace

    haproxy = haproxy_binary()
    pg, redis = os.environ.get("YARNIT_TEST_POSTGRES_URL"), os.environ.get("YARNIT_TEST_REDIS_URL")
    if haproxy is None or not pg or not redis:
        raise SystemExit("Needs haproxy on PATH (apt-get install haproxy) and YARNIT_TEST_POSTGRES_URL and "
                         "YARNIT_TEST_REDIS_URL (make bench sets them to the local servers, as .ci/run does).")
    schemas = _pg_schema_url(pg)
    db_url = next(schemas)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        ws = open_workspace(Settings.for_home(home, db_url=db_url, online_store=redis, api_token=TOKEN),
                            SystemClock())
        cluster = ReplicaCluster(Path(tmp), os.environ | {"YARNIT_HOME": str(home), "YARNIT_DB_URL": db_url,
                                                          "YARNIT_ONLINE_STORE": redis, "YARNIT_API_TOKEN": TOKEN})
        try:
            register_ctr(ws)
            registry = ModelRegistry(ws)
            expected = {n: np.asarray(registry.load(registry.get("ctr", n)).predict_proba(ROWS)) for n in (1, 2)}
            token_us = _per_call_us(ws.metadata.change_token)
            aliases_us = _per_call_us(lambda: registry.aliases("ctr"))
            started = time.monotonic()
            cluster.start(haproxy)
            start_s = time.monotonic() - started
            rounds = []
            with Load(cluster.url) as load:
                for i in range(args.rounds):
                    if i % 2 == 0:
                        registry.promote("ctr", 2, actor="bench", reason="propagation")
                        rounds.append(propagation_s(cluster, 2, time.monotonic()))
                    else:
                        registry.roll_back("ctr", actor="bench", reason="propagation")
                        rounds.append(propagation_s(cluster, 1, time.monotonic()))
            failed = [o for o in load.outcomes if o[0] != 200]
            mixed = [o for o in load.outcomes if o[0] == 200 and not np.allclose(o[2], expected[o[1]], atol=1e-5)]
        finally:
            cluster.stop()
            ws.close()
            schemas.close()
    result = {
        "rounds": len(rounds), "propagation_s_p50": statistics.median(rounds),
        "propagation_s_max": max(rounds), "propagation_s_all": [round(r, 3) for r in rounds],
        "requests": len(load.outcomes), "failed": len(failed), "mixed_versions": len(mixed),
        "change_token_us": token_us, "aliases_reread_us": aliases_us, "replicas_start_s": start_s,
        "load_average_1m": os.getloadavg()[0],
    }
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "replicas.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def _per_call_us(fn, n: int = 500) -> float:  # type: ignore[no-untyped-def]
    fn()
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - started) / n * 1e6


if __name__ == "__main__":
    main()
