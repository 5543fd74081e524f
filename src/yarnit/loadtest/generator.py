"""The open-loop generator (``openloop.c``): compiled on first use with the system C compiler, run as a process.

The generator is the project's C one (one thread, epoll, busy-polling near a
send; see ``openloop.c`` for its timing model): request i leaves at
``t0 + i / RATE`` whatever the server does, and its latency runs from that
scheduled time, so a slow server cannot slow the offered load down
(no coordinated omission). Its noise is tens of microseconds where a Python
client's was about a millisecond, which matters for a p99 gate.

It ships as C source in the package and is compiled on first use with ``cc``
(else ``gcc``, ``clang``) into a file named by the sha256 of the source, so an
upgrade rebuilds it and two processes building at once never see a
half-written binary (written beside, then renamed). The benchmarks use the
same source and the same build (``benchmarks/loadgen``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yarnit.core.errors import MissingDependency, Unavailable
from yarnit.core.hashing import sha256_bytes

SOURCE = Path(__file__).resolve().parent / "openloop.c"
COMPILERS = ("cc", "gcc", "clang")
DRAIN_S = 10.0  # the generator waits this long for answers after its last send (openloop.c's DRAIN_NS)


def build(directory: str | os.PathLike[str]) -> Path:
    """The generator binary in ``directory`` (``openloop-<sha256 of the source>``), compiled if it is not there.

    Raises :class:`MissingDependency` when no C compiler is on PATH, and
    :class:`Unavailable` when compiling fails (with the compiler's message).
    """
    source = SOURCE.read_bytes()
    binary = Path(directory) / f"openloop-{sha256_bytes(source)[:16]}"
    if binary.is_file() and os.access(binary, os.X_OK):
        return binary
    compiler = next((found for name in COMPILERS if (found := shutil.which(name))), None)
    if compiler is None:
        raise MissingDependency("The load test's generator is C source compiled on first use, and no C compiler "
                                f"({', '.join(COMPILERS)}) is on PATH: install one (e.g. apt-get install gcc) "
                                "and run the load test again.")
    binary.parent.mkdir(parents=True, exist_ok=True)
    tmp = binary.with_name(f"{binary.name}.{os.getpid()}.tmp")
    try:
        proc = subprocess.run([compiler, "-O2", "-Wall", "-o", str(tmp), str(SOURCE)], capture_output=True,
                              text=True, timeout=120)
    except subprocess.TimeoutExpired as exc:
        tmp.unlink(missing_ok=True)
        raise Unavailable(f"{compiler} did not compile the load generator within 120 s.") from exc
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise Unavailable(f"{compiler} could not compile the load generator {SOURCE}: {proc.stderr.strip()[:2000]}")
    os.replace(tmp, binary)  # atomic: a concurrent run never executes a half-written binary
    return binary


@dataclass(frozen=True)
class Sample:
    """One scheduled request as the generator saw it: status 0 is an error (no answer, or a broken one)."""

    status: int
    latency_ms: float  # from the scheduled send time to the last byte of the answer
    send_lag_ms: float  # how late the generator sent it


def run(binary: Path, *, host: str, port: int, path: str, rate: float, duration_s: float, bodies_file: Path,
        connections: int, samples_file: Path | None = None, spin_us: float | None = None,
        cpu: str | None = None) -> dict[str, Any]:
    """Offer ``rate`` req/s of POST ``path`` for ``duration_s``; the generator's JSON report.

    With ``samples_file`` the generator also writes every request's status and
    latency there (read them with :func:`read_samples`). ``spin_us`` sets its
    busy-poll window (0: sleep instead, less precise, little CPU); ``cpu``
    pins it with ``taskset -c`` (keep it off the server's cores).
    """
    cmd = [str(binary), host, str(port), path, repr(float(rate)), repr(float(duration_s)), str(bodies_file),
           str(int(connections))]
    if cpu is not None:
        taskset = shutil.which("taskset")
        if taskset is None:
            raise MissingDependency("Pinning the load generator to a CPU needs 'taskset' (util-linux); "
                                    "install it or leave the CPU unset.")
        cmd = [taskset, "-c", str(cpu), *cmd]
    env = dict(os.environ)
    if samples_file is not None:
        env["OPENLOOP_LATENCIES"] = str(samples_file)
    if spin_us is not None:
        env["OPENLOOP_SPIN_US"] = repr(float(spin_us))
    # the run, the drain, a 5 s connect timeout, with margin
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=duration_s + DRAIN_S + 30)
    except subprocess.TimeoutExpired as exc:  # killed by run(): a hung generator never hangs the load test
        raise Unavailable(f"The load generator did not finish within {duration_s + DRAIN_S + 30:g} s.") from exc
    if proc.returncode != 0:
        raise Unavailable(f"The load generator exited with {proc.returncode}: {proc.stderr.strip()[:2000]}")
    report: dict[str, Any] = json.loads(proc.stdout)
    # Its own stalls and preemptions (stderr): they inflate late sends and the latencies measured.
    report["warnings"] = [line.removeprefix("openloop: ") for line in proc.stderr.splitlines() if line.strip()]
    return report


def read_samples(path: Path) -> list[Sample]:
    """The per-request lines a run wrote (``<status> <latency_us> <send_lag_us>``), in schedule order."""
    out = []
    with open(path, encoding="ascii") as stream:
        for line in stream:
            status, latency_us, lag_us = line.split()
            out.append(Sample(int(status), int(latency_us) / 1000.0, int(lag_us) / 1000.0))
    return out


__all__ = ["COMPILERS", "SOURCE", "Sample", "build", "read_samples", "run"]
