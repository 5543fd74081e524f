"""Benchmark: `yarnit backup` / `yarnit restore` of a workspace, against the tools an operator would use instead.

The workspace is the quick demo's (``run_demo``: the ``yarnit-ctr`` pipeline on DAYS simulated days, a
blessed model in production, served once), or any existing workspace given with ``--home`` (e.g. the
30-day operate demo's ``DIR/clean/home``). Measured in one run, each step timed once per repetition:

* yarnit: a full backup into an empty repository; a second backup with nothing changed (incremental);
  ``yarnit backup verify``; a restore into a fresh SQLite workspace; a restore into a fresh PostgreSQL
  schema (the DR drill's cross-backend path), when ``YARNIT_TEST_POSTGRES_URL`` is set;
``--grow N`` then adds N synthetic days shaped like the operate demo's (a dataset version, a model version
and an alias move, 200 audit rows and a ~2 MB prediction-log segment per day; see ``grow``), because the quick
demo trains once and the operate demo (30 daily trainings) takes 12+ minutes to build.

* peers on the same data: SQLite's backup API into a file plus ``cp -a`` of the rest of the home (what an operator
  scripts without yarnit: no verification, no cross-backend restore, a full copy every time), and for the
  PostgreSQL copy ``pg_dump --format=custom`` + ``pg_restore`` into another schema.

Sizes: the repository after the first backup, and the workspace (database + artifacts + files).

Usage::

    python benchmarks/bench_backup.py [--days 30] [--sessions 500] [--grow 30] [--reps 3] [--home DIR]

Writes ``benchmarks/results/backup.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from yarnit.core import Settings, SimulatedClock, utc
from yarnit.storage import open_workspace
from yarnit.storage.backup import BackupRepository, create_backup, verify_backup
from yarnit.storage.restore import restore_workspace


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def timed(fn: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def pg_schema(base: str) -> tuple[str, str]:
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return schema, f"{base}?options={quote(f'-csearch_path={schema}')}"


def drop_schema(base: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(base.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def build(home: Path, days: int, sessions: int) -> float:
    from yarnit.demo import run_demo

    with open_workspace(Settings.for_home(home), SimulatedClock(utc(2026, 1, 5, 9))) as ws:
        seconds, _ = timed(lambda: run_demo(ws, days=days, sessions_per_day=sessions))
    return seconds


def grow(home: Path, days: int) -> dict[str, int]:
    """Add what each further day of the operate demo leaves behind, ``days`` times: a new dataset version (the
    demo's impressions, re-stamped), a registered model version with an evaluation-sized audit trail (200 audit
    rows), an alias move, and a prediction-log segment (~2 MB of JSON lines). Synthetic, stated as such."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    from sklearn.linear_model import LogisticRegression
    from sqlalchemy import insert

    from yarnit.data import Datasets
    from yarnit.registry import ArtifactFormat, ModelRegistry, dump_sklearn
    from yarnit.storage.schema import audit_log

    clock = SimulatedClock(utc(2026, 2, 5, 9))
    with open_workspace(Settings.for_home(home), clock) as ws:
        datasets, registry = Datasets(ws), ModelRegistry(ws)
        base = max((v for v in datasets.list() if v.row_count), key=lambda v: v.row_count)
        table = datasets.read_table(base)
        rng = np.random.default_rng(0)
        log_dir = home / "prediction_log"
        log_dir.mkdir(exist_ok=True)
        for day in range(days):
            stamped = table.append_column("bench_day", pa.array(np.full(table.num_rows, day, dtype=np.int64)))
            stamped = stamped.filter(pc.greater(pa.array(rng.random(table.num_rows)), 0.1))
            datasets.ingest_frame("bench-impressions", stamped, source=f"bench day {day}",
                                  pii_columns=base.pii_columns, subject=base.subject_column,
                                  no_subject=None if base.subject_column else "synthetic benchmark copy")
            x = rng.random((200, 4))
            model = LogisticRegression(C=1.0 + day).fit(x, (x[:, 0] > 0.5).astype(int))
            version = registry.register("bench-model", dump_sklearn(model), ArtifactFormat.SKOPS)
            registry.set_alias("bench-model", "production", version.version)
            with ws.metadata.begin() as conn:
                conn.execute(insert(audit_log), [{"at": clock.now(), "actor": "bench", "action": "bench.event",
                                                  "subject": f"day {day}", "detail": {"i": i, "day": day}}
                                                 for i in range(200)])
            lines = [f'{{"request_id":"bench-{day}-{i}","model":"ctr","version":1,"p":{rng.random():.6f},'
                     f'"features":{{"price":{rng.random() * 100:.2f},"fiber":"merino"}}}}' for i in range(20000)]
            (log_dir / f"seg-bench-{day:03d}.log").write_text("\n".join(lines) + "\n")
            clock.advance(86400)
    return {"days": days}


def peer_copy(home: Path, out: Path) -> float:
    def run() -> None:
        out.mkdir(parents=True)
        src = sqlite3.connect(home / "yarnit.db")
        dst = sqlite3.connect(out / "yarnit.db")
        src.backup(dst)
        dst.close()
        src.close()
        rest = [str(p) for p in home.iterdir() if not p.name.startswith("yarnit.db")]
        subprocess.run(["cp", "-a", *rest, str(out)], check=True)

    return timed(run)[0]


def one_repetition(home: Path, work: Path, rep: int, clock: SimulatedClock,
                   pg_base: str) -> tuple[dict[str, float], dict[str, int]]:
    """Back up, check, restore (SQLite, PostgreSQL) and run the peers once; return the seconds and sizes."""
    row: dict[str, float] = {}
    repo = BackupRepository(work / f"repo{rep}")
    with open_workspace(Settings.for_home(home), clock) as ws:
        row["backup_full_s"], first = timed(lambda: create_backup(ws, repo))
        row["backup_again_s"], again = timed(lambda: create_backup(ws, repo))
    row["verify_s"], checked = timed(lambda: verify_backup(repo))
    assert checked.ok and again.blobs_copied == 0, (checked.problems, again.blobs_copied)
    with open_workspace(Settings.for_home(work / f"sqlite{rep}"), clock) as target:
        row["restore_sqlite_s"], _ = timed(lambda: restore_workspace(target, repo))
    if pg_base:
        schema, url = pg_schema(pg_base)
        try:
            with open_workspace(Settings.for_home(work / f"pg{rep}", db_url=url), clock) as target:
                row["restore_postgresql_s"], _ = timed(lambda: restore_workspace(target, repo))
            dump = work / f"pg{rep}.pgdump"
            plain = pg_base.replace("postgresql+psycopg", "postgresql")
            row["peer_pg_dump_s"] = timed(lambda: subprocess.run(
                ["pg_dump", "--format=custom", f"--schema={schema}", f"--file={dump}", plain], check=True))[0]
            drop_schema(pg_base, schema)
            row["peer_pg_restore_s"] = timed(lambda: subprocess.run(
                ["pg_restore", "--no-owner", f"--dbname={plain}", str(dump)], check=True))[0]
        finally:
            drop_schema(pg_base, schema)
    row["peer_sqlite_backup_cp_s"] = peer_copy(home, work / f"peer{rep}")
    sizes = {"repository_bytes": du(repo.root), "workspace_bytes": du(home),
             "database_bytes": (home / "yarnit.db").stat().st_size, "artifacts": first.artifacts,
             "rows": sum(first.tables.values()), "files": first.files}
    shutil.rmtree(work / f"sqlite{rep}", ignore_errors=True)
    shutil.rmtree(work / f"peer{rep}", ignore_errors=True)
    return row, sizes


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--sessions", type=int, default=500)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--home", type=Path, default=None, help="back up this existing workspace instead")
    parser.add_argument("--grow", type=int, default=0, help="add this many synthetic operate-demo days (grow())")
    args = parser.parse_args()
    pg_base = os.environ.get("YARNIT_TEST_POSTGRES_URL", "").strip()
    work = Path(tempfile.mkdtemp(prefix="yarnit-bench-backup-"))
    try:
        home = args.home or work / "source"
        build_s = None if args.home else build(home, args.days, args.sessions)
        if args.grow:
            grow(home, args.grow)
        clock = SimulatedClock(utc(2026, 3, 1))
        runs: list[dict[str, float]] = []
        sizes: dict[str, int] = {}
        for rep in range(args.reps):
            row, sizes = one_repetition(home, work, rep, clock, pg_base)
            runs.append(row)
        summary = {k: {"median": round(statistics.median(r[k] for r in runs), 3),
                       "min": round(min(r[k] for r in runs), 3), "max": round(max(r[k] for r in runs), 3)}
                   for k in runs[0]}
        result = {"config": {"days": args.days, "sessions_per_day": args.sessions, "reps": args.reps,
                             "grow": args.grow,
                             "home": str(args.home) if args.home else "run_demo"},
                  "build_s": build_s, "sizes": sizes, "seconds": summary, "runs": runs,
                  "cpus": os.cpu_count(), "load_avg": os.getloadavg()}
        out = HERE / "results" / "backup.json"
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
