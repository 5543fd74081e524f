"""yarnit's server as `yarnit serve` runs it, built from YARNIT_HOME: prediction log and metrics on.

The prediction cache is off (BENCH_CACHE=1 turns it on) so that no system answers repeated bodies from memory.
"""

import os
from dataclasses import replace

from yarnit.api import create_app
from yarnit.api.dataplane import asgi_entry
from yarnit.api.server import prepare_for_traffic
from yarnit.core import load_settings
from yarnit.serving import ServingOptions
from yarnit.storage import open_workspace


def app():
    delay = os.environ.get("BENCH_MAX_QUEUE_DELAY_MS")  # unset: the serving default; "none": no delay limit
    options = ServingOptions(cache_entries=10_000 if os.environ.get("BENCH_CACHE") == "1" else 0,
                             max_in_flight=int(os.environ.get("BENCH_MAX_IN_FLIGHT", "32")
                                               or str(ServingOptions.max_in_flight)),
                             log_flush_interval_s=float(os.environ.get("BENCH_LOG_FLUSH_S", "0.05")),
                             log_fsync=os.environ.get("BENCH_LOG_FSYNC", "1") == "1",
                             **({} if os.environ.get("BENCH_TURN_BUDGET_MS") is None else {"turn_budget_ms": float(os.environ["BENCH_TURN_BUDGET_MS"])}),
                             **({} if delay is None else
                                {"max_queue_delay_ms": None if delay == "none" else float(delay)}))
    if os.environ.get("BENCH_MAX_CONN_PER_CLIENT"):  # every benchmark connection comes from 127.0.0.1
        options = replace(options, max_connections_per_client=int(os.environ["BENCH_MAX_CONN_PER_CLIENT"]))
    if os.environ.get("BENCH_SCORE_SHARE"):  # A/B of the fast lane's scoring share (ad hoc)
        from yarnit.api import fastlane

        fastlane.SCORE_SHARE = float(os.environ["BENCH_SCORE_SHARE"])
    served = create_app(open_workspace(load_settings()), serving=options)
    prepare_for_traffic(served)  # as `yarnit serve` does: preload models, gc.freeze()
    return asgi_entry(served)
