"""How the click model's training cost grows with the data (issue 20): 7, 30 and 90 days of the world.

Each size runs the whole ``yarnit pipeline run yarnit-ctr`` (world simulation, dataset version, validation,
features + training, evaluation, gate, registration) in a fresh workspace, in its own child process under
``/usr/bin/time -v``: wall time, CPU time (user + sys) and peak RSS of that process, plus the per-step times
and the holdout AUC the run reports (each step's wall and CPU seconds and peak RSS, as the run records them).
The load average before and after each run is recorded next to it.

``--peer-rev REV`` also runs the pipeline of another commit (e.g. the one before issue 20) on the sizes in
``--peer-days``, interleaved with this tree's runs on the same sizes: the peak RSS and AUC of both, measured
in the same session. ``--dask`` adds a LightGBM run on a Dask LocalCluster (``--dask``) next to the same
trainer on one machine, on ``--dask-days`` days, and compares their AUC.

Every run also samples the resident set of each process of the run (psutil, every ``SAMPLE_S``): the
``yarnit`` process (the client; a LocalCluster's scheduler and nannies live in it too) and each child it
starts (on Dask, the worker processes). ``processes`` lists each one's peak, ``largest_process_mib`` the
largest. /usr/bin/time's peak is the largest process too, but it cannot say which one it was.

Usage: .venv/bin/python benchmarks/bench_training_growth.py [--days 7,30,90] [--sessions 20000]
       [--peer-rev 3401209] [--peer-days 7,30] [--dask --dask-days 7 [--dask-only]]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "benchmarks" / ".work" / "training_growth"
LIMIT_MIB = 2048
SAMPLE_S = 0.25


class ProcessPeaks:
    """The peak resident set of every process below ``pid`` (its children, recursively), sampled in a thread.

    A process's role is read from its command line: ``client`` for the ``yarnit`` process, ``child`` for a
    multiprocessing child (a Dask worker, or evaluate's validity check), else the program's name;
    ``seen_s`` is when it was first seen, from the start of the run."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peaks: dict[int, dict[str, Any]] = {}
        self._started = time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        import psutil

        try:
            top = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self._stop.is_set():
            try:
                processes = top.children(recursive=True)
            except psutil.NoSuchProcess:
                return
            for proc in processes:
                try:
                    rss = proc.memory_info().rss
                    seen = self.peaks.get(proc.pid)
                    if seen is None:
                        seen = self.peaks[proc.pid] = {"pid": proc.pid, "role": _role(proc.cmdline()), "peak_mib": 0,
                                                     "seen_s": round(time.perf_counter() - self._started)}
                    seen["peak_mib"] = max(seen["peak_mib"], round(rss / 2**20))
                except psutil.Error:
                    continue
            self._stop.wait(SAMPLE_S)

    def stop(self) -> list[dict[str, Any]]:
        self._stop.set()
        self._thread.join()
        return sorted((p for p in self.peaks.values() if p["role"] not in ("time", "git")), key=lambda p: -p["peak_mib"])


def _role(cmdline: list[str]) -> str:
    text = " ".join(cmdline)
    if "yarnit" in cmdline and "pipeline" in cmdline:
        return "client"
    if "multiprocessing" in text and "resource_tracker" in text:
        return "resource_tracker"
    if "multiprocessing" in text:
        return "child"
    return Path(cmdline[0]).name if cmdline else "?"


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def peer_tree(rev: str) -> Path:
    """The ``src`` tree of commit ``rev`` (exported once with git archive)."""
    target = WORK / f"peer-{rev}"
    if not (target / "src" / "yarnit").is_dir():
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        archive = subprocess.run(["git", "archive", rev, "src"], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target / "src"


def run_pipeline(home: Path, src: Path, days: int, sessions: int, *extra: str) -> dict[str, Any]:
    """One ``yarnit pipeline run yarnit-ctr`` in a fresh workspace: wall, CPU, peak RSS, steps and AUC."""
    shutil.rmtree(home, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("YARNIT_")}
    env |= {"YARNIT_HOME": str(home), "PYTHONPATH": str(src)}
    command = ["/usr/bin/time", "-v", sys.executable, "-m", "yarnit", "pipeline", "run", "yarnit-ctr",
               "--set", f"days={days}", "--set", f"sessions_per_day={sessions}", *extra, "--json"]
    before = load()
    started = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    peaks = ProcessPeaks(child.pid)
    stdout, stderr = child.communicate()
    wall = time.perf_counter() - started
    processes = peaks.stop()
    proc = subprocess.CompletedProcess(command, child.returncode, stdout, stderr)
    if proc.returncode != 0:
        raise SystemExit(f"yarnit-ctr on {days} days failed:\n{proc.stderr[-3000:]}")

    def field(name: str) -> float:
        return float(re.search(rf"{re.escape(name)}: ([0-9.]+)", proc.stderr).group(1))  # type: ignore[union-attr]

    # with --dask, LightGBM's and the workers' own logs land on stdout before the JSON document
    result = json.loads(proc.stdout[proc.stdout.find("\n{") + 1:] if not proc.stdout.startswith("{") else proc.stdout)
    # peak_rss_mib: the client's peak so far when the step ended (ru_maxrss; never goes down)
    steps = {s["step"]: {"wall_s": round(s.get("wall_s") or 0.0, 2), "cpu_s": round(s.get("cpu_s") or 0.0, 2),
                         "rows": s.get("rows"), "peak_rss_mib": round(s["peak_rss_mb"]) if s.get("peak_rss_mb") else None}
             for s in result["steps"]}
    return {
        "days": days, "sessions_per_day": sessions, "rows": result["steps"][0].get("rows"),
        "wall_s": round(wall, 1), "cpu_s": round(field("User time (seconds)") + field("System time (seconds)"), 1),
        "peak_rss_mib": round(field("Maximum resident set size (kbytes)") / 1024),
        "processes": processes, "largest_process_mib": max((p["peak_mib"] for p in processes), default=None),
        "auc_holdout": result["metrics"].get("auc_holdout"), "load_before": before, "load_after": load(),
        "steps": steps,
    }


def show(label: str, r: dict[str, Any]) -> None:
    processes = ", ".join(f"{p['role']} {p['peak_mib']}" for p in r["processes"])
    print(f"{label}: {r['days']} days, {r['rows']:,} rows: {r['wall_s']:.0f} s wall, {r['cpu_s']:.0f} s CPU, "
          f"peak {r['peak_rss_mib']} MiB ({processes}), AUC {r['auc_holdout']:.6f} (load {r['load_before']} → {r['load_after']})",
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", default="7,30,90")
    parser.add_argument("--sessions", type=int, default=20000)
    parser.add_argument("--peer-rev", default=None, help="also run this commit's pipeline (e.g. before issue 20)")
    parser.add_argument("--peer-days", default="7,30")
    parser.add_argument("--dask", action="store_true", help="compare LightGBM on Dask with LightGBM on one machine")
    parser.add_argument("--dask-days", type=int, default=7)
    parser.add_argument("--dask-only", action="store_true",
                        help="with --dask, only the Dask run (its one-machine side measured by another run)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "training_growth.json"))
    args = parser.parse_args()
    here = ROOT / "src"
    home = WORK / f"home-{os.getpid()}"  # two instances may run side by side
    sizes = [int(d) for d in args.days.split(",") if d]
    peer_sizes = [int(d) for d in args.peer_days.split(",") if d] if args.peer_rev else []
    peer_src = peer_tree(args.peer_rev) if args.peer_rev else None
    growth: list[dict[str, Any]] = []
    peer: list[dict[str, Any]] = []
    for days in sorted(set(sizes) | set(peer_sizes)):
        if peer_src is not None and days in peer_sizes:
            peer.append(run_pipeline(home, peer_src, days, args.sessions))
            show(f"peer {args.peer_rev}", peer[-1])
        if days in sizes:
            growth.append(run_pipeline(home, here, days, args.sessions))
            show("this tree", growth[-1])
    dask: dict[str, Any] | None = None
    if args.dask:
        lgbm = ("--set", "trainer=lightgbm", "--set", "promote=false")
        one = None if args.dask_only else run_pipeline(home, here, args.dask_days, args.sessions, *lgbm)
        if one is not None:
            show("lightgbm, one machine", one)
        on_dask = run_pipeline(home, here, args.dask_days, args.sessions, *lgbm, "--dask")
        show("lightgbm, Dask LocalCluster", on_dask)
        dask = {"one_machine": one, "dask": on_dask,
                "auc_difference": None if one is None else abs(on_dask["auc_holdout"] - one["auc_holdout"])}
    shutil.rmtree(home, ignore_errors=True)
    results = {
        "benchmark": "training_growth", "sessions_per_day": args.sessions, "limit_mib": LIMIT_MIB,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "growth": growth, "peer": {"rev": args.peer_rev, "runs": peer} if args.peer_rev else None, "dask": dask,
        "command": "python benchmarks/bench_training_growth.py " + " ".join(sys.argv[1:]),
    }
    out = Path(args.out)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
