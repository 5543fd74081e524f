"""A precise open-loop HTTP/1.1 load generator (C, epoll, one thread), built on demand.

``openloop HOST PORT PATH RATE DURATION_S BODIES_FILE CONNECTIONS`` sends request i at
t0 + i/RATE whatever the server does, and prints one JSON object: offered and achieved
rates, ``late_sends`` and ``max_send_lag_ms``, and per status code the count and
p50/p99/p99.9/max latency from the scheduled send time (plus p50/p99 from the actual
send). Its noise is microseconds where a Python asyncio client's was about a millisecond;
see ``openloop.c`` for the timing model.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

SOURCE = Path(__file__).resolve().parent / "openloop.c"
BINARY = SOURCE.parents[1] / ".work" / "bin" / "openloop"


def build() -> Path:
    """Compile ``openloop.c`` into ``benchmarks/.work/bin/openloop`` unless it is up to date."""
    if BINARY.exists() and BINARY.stat().st_mtime >= SOURCE.stat().st_mtime:
        return BINARY
    gcc = shutil.which("gcc")
    if gcc is None:
        raise RuntimeError("cannot build the openloop load generator: 'gcc' was not found on PATH")
    BINARY.parent.mkdir(parents=True, exist_ok=True)
    tmp = BINARY.with_name(f"{BINARY.name}.{os.getpid()}.tmp")
    proc = subprocess.run([gcc, "-O2", "-Wall", "-Wextra", "-o", str(tmp), str(SOURCE)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"gcc failed to build {SOURCE}:\n{proc.stderr}")
    os.replace(tmp, BINARY)  # atomic: a concurrent run never sees a half-written binary
    return BINARY


def run(host: str, port: int, path: str, rate: float, duration_s: float, bodies_file: str | os.PathLike,
        connections: int, cpu: str | None = "1") -> dict:
    """Offer ``rate`` req/s for ``duration_s`` s; return the generator's JSON report as a dict.

    ``cpu`` pins the generator with ``taskset -c CPU`` (keep it off the server's cores); None
    leaves it unpinned.
    """
    cmd = [str(build()), host, str(port), path, repr(float(rate)), repr(float(duration_s)),
           str(bodies_file), str(int(connections))]
    if cpu is not None:
        taskset = shutil.which("taskset")
        if taskset is None:
            raise RuntimeError("cannot pin the openloop load generator: 'taskset' was not found on PATH "
                               "(install util-linux or pass cpu=None)")
        cmd = [taskset, "-c", str(cpu), *cmd]
    # 5 s connect timeout + the run + 10 s drain, with margin
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 30)
    if proc.returncode != 0:
        raise RuntimeError(f"openloop exited with {proc.returncode}: {proc.stderr.strip()}")
    report: dict = json.loads(proc.stdout)
    # Its own stalls and preemptions (stderr): they inflate late_sends and the latencies measured.
    report["warnings"] = [line.removeprefix("openloop: ") for line in proc.stderr.splitlines() if line.strip()]
    return report
