"""An open-loop HTTP load generator (for the overload scenario), latency split by status code.

wrk is closed-loop (a connection sends its next request only after an answer)
and reports one latency distribution for all answers; an overload test needs
requests sent at a fixed *rate* whatever the server does, and the latency of
admitted (200) and shed (503) answers apart. Requests are scheduled at
``t0 + i / rate``; latency is measured from the scheduled time, so time spent
waiting for a free connection counts (no coordinated omission).

Usage: python serving_loadgen.py HOST PORT PATH RATE DURATION_S BODIES_FILE CONNECTIONS
Prints one JSON object: offered and achieved rates, counts and p50/p99 per status.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def main(host: str, port: int, path: str, rate: float, duration_s: float, bodies_file: str,
               connections: int) -> dict:
    bodies = [line.strip().encode() for line in open(bodies_file, "rb").read().decode().splitlines() if line.strip()]
    requests = [(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(b)}\r\n\r\n").encode() + b for b in bodies]
    idle: asyncio.Queue = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(await asyncio.open_connection(host, port))
    latencies: dict[int, list[float]] = {}
    errors = 0
    total = int(rate * duration_s)
    t0 = time.perf_counter() + 0.05
    pending: set[asyncio.Task] = set()

    async def one(i: int, scheduled: float) -> None:
        nonlocal errors
        reader, writer = await idle.get()
        try:
            writer.write(requests[i % len(requests)])
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            latencies.setdefault(status, []).append(time.perf_counter() - scheduled)
            idle.put_nowait((reader, writer))
        except (OSError, asyncio.IncompleteReadError):
            errors += 1
            idle.put_nowait(await asyncio.open_connection(host, port))

    for i in range(total):
        scheduled = t0 + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.ensure_future(one(i, scheduled))
        pending.add(task)
        task.add_done_callback(pending.discard)
    if pending:
        await asyncio.wait(pending, timeout=30)
    elapsed = time.perf_counter() - t0
    answered = sum(len(v) for v in latencies.values())
    return {
        "offered_rps": rate, "achieved_rps": answered / elapsed, "errors": errors, "sent": total,
        "by_status": {str(s): {"count": len(v), "p50_ms": _pct(v, 0.5) * 1e3, "p99_ms": _pct(v, 0.99) * 1e3}
                      for s, v in sorted(latencies.items())},
    }


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    host, port, path, rate, duration, bodies, conns = sys.argv[1:8]
    print(json.dumps(asyncio.run(main(host, int(port), path, float(rate), float(duration), bodies, int(conns)))))
