"""Throughput: two replicas behind HAProxy against one, and ``yarnit serve --workers 2`` against ``--workers 1``.

The issue's target: "two replicas behind the load balancer serve ≥ 1.8× one replica's throughput on 2 cores'
worth of replicas". Everything runs in the same run, on one workspace (SQLite, WAL), all servers up at once:

* ``lb_1``: HAProxy (``yarnit deploy lb``'s configuration) in front of replica 1 only;
* ``lb_2``: a second HAProxy in front of replicas 1 and 2 (the replicas are what ``yarnit serve`` runs,
  started by ``tests/testsupport/replicas.py``); replica *i* is pinned to core *i* (``taskset``), so one
  replica has one core's worth and two have two;
* ``workers_1``: ``yarnit serve`` (one process), pinned to core 0;
* ``workers_2``: ``yarnit serve --workers 2``, worker 1 pinned to core 0 and worker 2 to core 1
  (``taskset -p`` once they are ready; the supervisor stays unpinned, it only waits).

The load is closed-loop: ``wrk -t1 -cC`` (the serving benchmark's tool) for D seconds, POSTing single-instance
OIP v2 bodies for ``ctr``. The bodies rotate through 20,000 distinct prices, more than the prediction cache's
10,000 entries, so every request misses the cache and is scored. Only 2xx answers count (an overloaded server
sheds with 503). wrk and HAProxy are not pinned: there is no third core, so they take CPU from the servers,
more so in the two-core cases (that is why the ratio on this machine is a lower bound). Each round measures
every configuration once, in an order that alternates round by round (lb_1, lb_2, w_1, w_2 then reversed
pairs), and the ratios are taken within a round, so a drift in the machine's load falls on both sides.
For ``workers_2`` the Lua script also counts which worker answered (``x-yarnit-worker``): keep-alive
connections are accepted once, and how wrk's connections split between the workers decides the gain.

Usage: ``python benchmarks/bench_replica_throughput.py [--rounds 5] [--duration 5] [--connections 16]``.
Writes ``benchmarks/results/replica_throughput.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

DISTINCT = 20_000  # > ServingOptions.cache_entries (10,000): the cache never answers


def write_bodies(path: Path) -> None:
    fibers = ["merino", "acrylic", "alpaca", "cotton", "silk"]
    lines = []
    for i in range(DISTINCT):
        body = {"inputs": [{"name": "fiber", "shape": [1], "datatype": "BYTES", "data": [fibers[i % 5]]},
                           {"name": "price", "shape": [1], "datatype": "FP64", "data": [1.0 + i * 0.001]}]}
        lines.append(json.dumps(body, separators=(",", ":")))
    path.write_text("\n".join(lines) + "\n")


def write_lua(path: Path, bodies: Path) -> None:
    path.write_text(f"""
local bodies = {{}}
for line in io.lines("{bodies}") do bodies[#bodies + 1] = line end
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local threads = {{}}
setup = function(thread) table.insert(threads, thread) end
init = function(args) w1 = 0; w2 = 0; wx = 0 end
request = function()
  i = i % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[i])
end
response = function(status, headers, body)
  local w = headers["x-yarnit-worker"]
  if w == "1" then w1 = w1 + 1 elseif w == "2" then w2 = w2 + 1 else wx = wx + 1 end
end
done = function(summary, latency, requests)
  local a, b, c = 0, 0, 0
  for _, t in ipairs(threads) do a = a + t:get("w1"); b = b + t:get("w2"); c = c + t:get("wx") end
  io.write(string.format("WORKERS %d %d %d\\n", a, b, c))
end
""")


def cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds the processes (all their threads) have used so far."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def wrk(url: str, lua: Path, duration: float, connections: int, threads: int = 1,
        servers: list[int] | None = None) -> dict[str, Any]:
    import resource

    before_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    before = cpu_s(servers or [])
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration:g}s", "-s", str(lua), url],
                         capture_output=True, text=True, timeout=duration + 60).stdout
    server_cpu = cpu_s(servers or []) - before
    after_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_cpu = (after_children.ru_utime + after_children.ru_stime) - (before_children.ru_utime +
                                                                     before_children.ru_stime)
    total = int(re.search(r"(\d+) requests in ([\d.]+)(ms|s|m)", out).group(1))
    took = re.search(r"(\d+) requests in ([\d.]+)(ms|s|m)", out)
    seconds = float(took.group(2)) * {"ms": 1e-3, "s": 1.0, "m": 60.0}[took.group(3)]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    bad = int(non2xx.group(1)) if non2xx else 0
    split = re.search(r"WORKERS (\d+) (\d+) (\d+)", out)
    return {"ok_rps": (total - bad) / seconds, "requests": total, "non_2xx": bad, "seconds": seconds,
            "server_cpu_s": server_cpu, "server_cores": server_cpu / seconds, "wrk_cores": wrk_cpu / seconds,
            "ok_per_server_cpu_s": (total - bad) / server_cpu if server_cpu > 0 else None,
            "socket_errors": sum(int(g) for g in errors.groups()) if errors else 0,
            "by_worker": [int(g) for g in split.groups()] if split else None}


def pin(pid: int, core: int) -> None:
    subprocess.run(["taskset", "-a", "-p", "-c", str(core), str(pid)], check=True, capture_output=True)


def worker_pids(supervisor: int) -> dict[int, int]:
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if ppid == supervisor and b"--slot" in argv:
            found[int(argv[argv.index(b"--slot") + 1])] = int(entry.name)
    return found


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, bound_s: float = 300) -> None:
    import httpx

    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url} not ready within {bound_s} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--no-pin", action="store_true", help="leave every process to the scheduler")
    args = parser.parse_args()
    from testsupport import register_ctr
    from testsupport.replicas import ReplicaCluster, haproxy_binary

    from yarnit.api.server import free_port
    from yarnit.core import Settings
    from yarnit.deploy import LoadBalancerOptions, haproxy_config
    from yarnit.storage import open_workspace

    haproxy = haproxy_binary()
    if haproxy is None:
        raise SystemExit("Needs haproxy (apt-get install haproxy).")
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="bench-replica-tp-") as tmp:
        root = Path(tmp)
        home = root / "home"
        ws = open_workspace(Settings.for_home(home))
        register_ctr(ws, 1)
        ws.close()
        bodies, lua = root / "bodies.txt", root / "bodies.lua"
        write_bodies(bodies)
        write_lua(lua, bodies)
        env = {k: v for k, v in os.environ.items() if k != "YARNIT_DB_URL"} | {"YARNIT_HOME": str(home)}
        cluster = ReplicaCluster(root, env, n_replicas=2)
        try:
            started = time.monotonic()
            cluster.start(haproxy)  # replicas 1 and 2 behind HAProxy: lb_2
            for i, replica in enumerate(cluster.replicas):
                if not args.no_pin:
                    pin(replica.proc.pid, i)
            lb1_port = free_port()
            options = LoadBalancerOptions(bind=f"127.0.0.1:{lb1_port}", check_interval_ms=200, fall=2, rise=1)
            (root / "haproxy-1.cfg").write_text(haproxy_config([f"127.0.0.1:{cluster.replicas[0].port}"], options))
            with open(root / "haproxy-1.log", "wb") as out:
                procs.append(subprocess.Popen([haproxy, "-db", "-f", str(root / "haproxy-1.cfg")], stdout=out,
                                              stderr=out))
            urls = {"lb_1": f"http://127.0.0.1:{lb1_port}", "lb_2": cluster.url}
            for name, workers in (("workers_1", 1), ("workers_2", 2)):
                port = free_port()
                log = root / f"{name}.log"
                with open(log, "wb") as out:
                    proc = subprocess.Popen([sys.executable, "-m", "yarnit", "serve", "--port", str(port),
                                             "--workers", str(workers)], env=env, stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True)
                procs.append(proc)
                urls[name] = f"http://127.0.0.1:{port}"
                wait_ready(urls[name], proc, log)
                deadline = time.monotonic() + 300
                while workers > 1 and log.read_text().count(" ready (pid ") < workers:
                    assert time.monotonic() < deadline, log.read_text()[-2000:]
                    time.sleep(0.3)
                if not args.no_pin:
                    if workers == 1:
                        pin(proc.pid, 0)
                    for slot, pid in worker_pids(proc.pid).items():
                        pin(pid, slot - 1)
            wait_ready(urls["lb_1"], procs[0], root / "haproxy-1.log")
            start_s = time.monotonic() - started
            path = "/v2/models/ctr/infer"
            servers = {"lb_1": [cluster.replicas[0].proc.pid, procs[0].pid],
                       "lb_2": [r.proc.pid for r in cluster.replicas] + [cluster.haproxy.pid],
                       "workers_1": [procs[1].pid], "workers_2": list(worker_pids(procs[2].pid).values())}
            for url in urls.values():  # warm-up, not measured
                wrk(url + path, lua, 2, args.connections, args.threads)
            order = ["lb_1", "lb_2", "workers_1", "workers_2"]
            rounds: list[dict[str, Any]] = []
            for r in range(args.rounds):
                names = order if r % 2 == 0 else ["lb_2", "lb_1", "workers_2", "workers_1"]
                figures = {name: wrk(urls[name] + path, lua, args.duration, args.connections, args.threads,
                                     servers[name]) for name in names}
                figures["load_average_1m"] = os.getloadavg()[0]
                rounds.append(figures)
                print(json.dumps({"round": r + 1, **{k: (round(v["ok_rps"]) if isinstance(v, dict) else v)
                                                     for k, v in figures.items()}}), flush=True)
        finally:
            for proc in procs:
                if proc.poll() is None:
                    if proc.args[0] == haproxy:
                        proc.terminate()
                    else:
                        os.killpg(proc.pid, signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            cluster.stop()

    def ratio(a: str, b: str) -> dict[str, float]:
        values = [r[b]["ok_rps"] / r[a]["ok_rps"] for r in rounds]
        return {"median": statistics.median(values), "min": min(values), "max": max(values),
                "all": [round(v, 3) for v in values]}

    def rps(name: str) -> dict[str, float]:
        values = [r[name]["ok_rps"] for r in rounds]
        return {"median": statistics.median(values), "min": min(values), "max": max(values)}

    result = {
        "command": f"python benchmarks/bench_replica_throughput.py --rounds {args.rounds} --duration "
                   f"{args.duration:g} --connections {args.connections} --threads {args.threads}"
                   + (" --no-pin" if args.no_pin else ""),
        "pinned": not args.no_pin,
        "wrk_threads": args.threads,
        "cpus": os.cpu_count(), "rounds": args.rounds, "duration_s": args.duration,
        "connections": args.connections, "distinct_bodies": DISTINCT, "setup_s": start_s,
        "ok_rps": {name: rps(name) for name in ("lb_1", "lb_2", "workers_1", "workers_2")},
        "replicas_2_over_1": ratio("lb_1", "lb_2"),
        "workers_2_over_1": ratio("workers_1", "workers_2"),
        "workers_2_split": [r["workers_2"]["by_worker"] for r in rounds],
        # CPU the serving side got during each run (servers, plus HAProxy for lb_*), in cores, and wrk's
        "server_cores": {name: [round(r[name]["server_cores"], 2) for r in rounds] for name in urls},
        "wrk_cores": {name: [round(r[name]["wrk_cores"], 2) for r in rounds] for name in urls},
        "ok_per_server_cpu_s": {name: [round(r[name]["ok_per_server_cpu_s"] or 0) for r in rounds] for name in urls},
        "non_2xx": {name: sum(r[name]["non_2xx"] for r in rounds) for name in ("lb_1", "lb_2", "workers_1",
                                                                                 "workers_2")},
        "socket_errors": {name: sum(r[name]["socket_errors"] for r in rounds) for name in ("lb_1", "lb_2",
                                                                                           "workers_1", "workers_2")},
        "load_average_1m": [r["load_average_1m"] for r in rounds],
        "uptime_after": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
    }
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "replica_throughput.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
