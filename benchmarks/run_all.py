"""`make bench`: run every benchmark script in this folder, then regenerate docs/benchmarks.md's summary.

Each script writes its JSON to benchmarks/results/ and prints its figures; after
the scripts, the generated section of docs/benchmarks.md (between the markers,
see ``summary.py``) is rewritten from those files, with the machine this run
was on (``results/machine.json``: CPU, cores, memory, OS, Python, the load
average at the start and end of the run) and the versions of yarnit and each
peer. Everything outside the markers is left as it is.

    python benchmarks/run_all.py                      # every script (hours), then the docs
    python benchmarks/run_all.py serving training     # a subset, by name (bench_ and .py optional)
    python benchmarks/run_all.py --quick serving_soak # --quick passed to the scripts that take it
    python benchmarks/run_all.py serving_soak -- --soak-minutes 30   # after --: the one script's own options
    python benchmarks/run_all.py --list [--json]      # the scripts, their results files and peers
    python benchmarks/run_all.py --docs-only          # `make bench-docs`: regenerate, run nothing

A script that fails or runs past ``--timeout-min`` (per script, default 180)
is reported and the others still run; the exit status is 1 when any failed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import summary  # noqa: E402  (beside this script)


def takes_quick(script: str) -> bool:
    """Whether a script has a ``--quick`` option (read from its source, so nothing is run to find out)."""
    return '"--quick"' in (HERE / script).read_text(encoding="utf-8")


def resolve(names: list[str]) -> list[str]:
    """Script file names for ``serving``, ``bench_serving`` or ``bench_serving.py``; unknown names are an error."""
    known = summary.scripts()
    out = []
    for name in names:
        stem = name.removesuffix(".py").removeprefix("bench_")
        script = f"bench_{stem}.py"
        if script not in known:
            raise SystemExit(f"no benchmark named {name!r}; the benchmarks are: "
                             + ", ".join(s.removeprefix("bench_").removesuffix(".py") for s in known))
        out.append(script)
    return out


def run_one(script: str, quick: bool, timeout_s: float, extra: list[str] | None = None) -> dict[str, Any]:
    entry = summary.entry_for(script)
    cmd = [sys.executable, str(HERE / script), *(entry.args if entry else ()), *(extra or [])]
    if quick and takes_quick(script):
        cmd.append("--quick")
    started = time.monotonic()
    # Its own process group, so that a timeout also ends the servers and generators the script started.
    proc = subprocess.Popen(cmd, cwd=HERE.parent, start_new_session=True)
    try:
        code = proc.wait(timeout=timeout_s)
        status = "ok" if code == 0 else f"exit {code}"
    except subprocess.TimeoutExpired:
        # SIGINT first: the script's context managers then stop the servers it started in sessions of their own
        # (which a signal to this group would not reach); SIGKILL to the group if it is still there after 60 s.
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        status = f"timed out after {timeout_s / 60:g} min"
    return {"script": script, "status": status, "seconds": round(time.monotonic() - started, 1),
            "command": " ".join(["python", f"benchmarks/{script}", *cmd[2:]])}


def record_machine(run: dict[str, Any]) -> None:
    """results/machine.json: the machine's facts and this run's load, read by the docs summary."""
    summary.RESULTS.mkdir(exist_ok=True)
    data = summary.machine_facts() | {"run": run}
    tmp = summary.RESULTS / ".machine.json.tmp"
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, summary.RESULTS / "machine.json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the benchmarks and regenerate docs/benchmarks.md's summary.")
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all); e.g. serving or bench_serving.py")
    parser.add_argument("--only", action="append", default=[], help="same as a name (repeatable)")
    parser.add_argument("--quick", action="store_true", help="pass --quick to the scripts that take it")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--docs-only", action="store_true", help="regenerate the docs from the results; run nothing")
    parser.add_argument("--no-docs", action="store_true", help="run the scripts, leave the docs alone")
    parser.add_argument("--timeout-min", type=float, default=180.0, help="per script")
    parser.add_argument("--json", action="store_true", help="machine-readable output (with --list and at the end)")
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    if args.list:
        rows = []
        for script in summary.scripts():
            entry = summary.entry_for(script)
            rows.append({"script": script, "results": list(entry.results) if entry else [],
                         "peer": entry.peer if entry else "(no summary entry)", "quick": takes_quick(script),
                         "note": entry.note if entry else ""})
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            for r in rows:
                print(f"{r['script']:<30} {', '.join(r['results']) or '-':<50} {r['peer']}"
                      + (" [--quick]" if r["quick"] else ""))
        return 0
    outcome: dict[str, Any] = {"runs": []}
    if not args.docs_only:
        chosen = resolve(args.names + args.only) or summary.scripts()
        if extra and len(chosen) != 1:
            parser.error(f"options after -- go to one script; {len(chosen)} are chosen: name one")
        load_start = [round(x, 2) for x in os.getloadavg()]
        started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        for i, script in enumerate(chosen, 1):
            print(f"=== [{i}/{len(chosen)}] {script}" + (" --quick" if args.quick and takes_quick(script) else ""),
                  flush=True)
            result = run_one(script, args.quick, args.timeout_min * 60, extra)
            outcome["runs"].append(result)
            print(f"=== {script}: {result['status']} in {result['seconds']:.0f} s", flush=True)
        record_machine({"started": started, "ended": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                        "scripts": [r["command"] for r in outcome["runs"]], "quick": args.quick,
                        "load_start": load_start, "load_end": [round(x, 2) for x in os.getloadavg()]})
    if not args.no_docs:
        outcome["docs"] = summary.rewrite()
        docs = outcome["docs"]
        if not args.json:
            print(f"{docs['doc']}: {'rewritten' if docs['changed'] else 'unchanged'} ({docs['rows']} target rows)")
            for problem in docs["problems"]:
                print(f"  problem: {problem}")
    failed = [r for r in outcome["runs"] if r["status"] != "ok"]
    if args.json:
        print(json.dumps(outcome, indent=2))
    elif failed:
        print("failed: " + ", ".join(f"{r['script']} ({r['status']})" for r in failed))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
