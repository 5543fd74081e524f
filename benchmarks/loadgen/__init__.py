"""A precise open-loop HTTP/1.1 load generator (C, epoll, one thread), built on demand.

The source and its build live in the package (``yarnit.loadtest.generator``, which ``yarnit loadtest``
uses); this wrapper keeps the benchmarks' calling convention. ``openloop HOST PORT PATH RATE DURATION_S
BODIES_FILE CONNECTIONS`` sends request i at t0 + i/RATE whatever the server does, and prints one JSON
object: offered and achieved rates, ``late_sends`` and ``max_send_lag_ms``, and per status code the count
and p50/p95/p99/p99.9/max latency from the scheduled send time (plus p50/p99 from the actual send). Its
noise is microseconds where a Python asyncio client's was about a millisecond; see
``src/yarnit/loadtest/openloop.c`` for the timing model.
"""

from __future__ import annotations

import os
from pathlib import Path

from yarnit.loadtest import generator

SOURCE = generator.SOURCE
BIN_DIR = Path(__file__).resolve().parents[1] / ".work" / "bin"


def build() -> Path:
    """Compile ``openloop.c`` into ``benchmarks/.work/bin/`` unless that build of the source is there."""
    return generator.build(BIN_DIR)


def run(host: str, port: int, path: str, rate: float, duration_s: float, bodies_file: str | os.PathLike,
        connections: int, cpu: str | None = "1") -> dict:
    """Offer ``rate`` req/s for ``duration_s`` s; return the generator's JSON report as a dict.

    ``cpu`` pins the generator with ``taskset -c CPU`` (keep it off the server's cores); None
    leaves it unpinned.
    """
    return generator.run(build(), host=host, port=port, path=path, rate=rate, duration_s=duration_s,
                         bodies_file=Path(bodies_file), connections=connections, cpu=cpu)
