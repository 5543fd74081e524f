"""`make bench`: run every benchmark script in this folder, one after another.

Each script writes its JSON to benchmarks/results/ and prints its figures;
docs/benchmarks.md collects the tables. Pass script names to run a subset:
    .venv/bin/python benchmarks/run_all.py bench_training.py
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    scripts = sys.argv[1:] or sorted(p.name for p in HERE.glob("bench_*.py"))
    failed = []
    for name in scripts:
        print(f"=== {name}", flush=True)
        if subprocess.run([sys.executable, str(HERE / name)], cwd=HERE.parent).returncode != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
