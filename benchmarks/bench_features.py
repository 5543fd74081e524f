"""Benchmark: yarnit.features against Feast's local provider (Parquet offline, SQLite online), same data, one run.

What is measured, each system in its own child process (peak memory from
``/usr/bin/time -v``), systems interleaved per repetition (yarnit, Feast,
yarnit, Feast …):

* **online read, 1 entity × 10 features** (in-process, after warm-up): yarnit
  ``OnlineFeatures.read_one`` (values *with* status, event time and age) from
  SQLite and from Redis on loopback; Feast ``get_online_features(...).to_dict()``
  from its SQLite online store. p50/p99 per call;
* **online read, 100 entities × 10 features**: same, one call for 100 keys;
* **point-in-time join, 1,000,000 entity rows × 10 features** against 1,000,000
  feature rows (100,000 entities × 10 timestamps; 10 % of entity rows name an
  entity without features, some rows precede every feature row): yarnit
  ``OfflineStore.point_in_time_join`` → pandas, Feast ``get_historical_features(...).to_df()``;
  the row counts are compared (Feast drops rows without an earlier value);
* **materialize** 1,000,000 rows (1,000,000 entities) into SQLite: time and
  peak memory. Feast is timed on ``--feast-mat-rows`` rows (default 100,000;
  its per-row cost makes 1,000,000 take minutes) and compared per row.

Feast lives in its own virtual environment, ``benchmarks/.venvs/feast``,
created here (never in yarnit's environment). If it cannot be installed, that
is recorded and yarnit is still measured against the targets.

Usage::

    python benchmarks/bench_features.py [--reps 3] [--skip-feast] [--skip-redis]

Writes ``benchmarks/results/features.json`` and ``benchmarks/results/features.md`` (a section for docs/benchmarks.md).
Redis: ``YARNIT_BENCH_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``), keys
under a unique prefix, deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / ".work" / "features"
VENVS = HERE / ".venvs"
FEAST_PIN = "feast==0.67.0"
INSTALL_TIMEOUT_S = 900
N_MAT = 1_000_000
N_PIT_ENTITIES = 100_000
PIT_PER_ENTITY = 10
N_PIT_ROWS = 1_000_000

TARGETS = {
    "online_1x10_sqlite_p99_us": 25.0,
    "online_1x10_redis_p99_us": 500.0,
    "online_100x10_sqlite_p99_ms": 0.7,
    "pit_1m_s": 1.0,
    "materialize_1m_s": 10.0,
    "materialize_1m_peak_mib": 1024.0,
    "ratio_vs_feast": 10.0,
}

MAKE_DATA = r'''
import sys, numpy as np, pandas as pd, pyarrow as pa, pyarrow.parquet as pq
out = sys.argv[1]
N_MAT, N_ENT, PER, N_PIT = (int(x) for x in sys.argv[2:6])
rng = np.random.default_rng(20260105)
t0 = pd.Timestamp("2026-01-01T00:00Z")
def frame(keys, offsets_s):
    cols = {"driver_id": keys.astype(np.int64),
            "event_time": (t0 + pd.to_timedelta(offsets_s, unit="s")).astype("datetime64[us, UTC]")}
    for i in range(10):
        cols[f"f{i}"] = rng.normal(size=len(keys))
    return pd.DataFrame(cols)
mat = frame(np.arange(N_MAT), rng.integers(0, 10 * 86400, N_MAT))
mat.to_parquet(f"{out}/mat.parquet", index=False)
feats = frame(np.repeat(np.arange(N_ENT), PER), rng.integers(0, 10 * 86400, N_ENT * PER))
feats = feats.drop_duplicates(["driver_id", "event_time"])
feats.to_parquet(f"{out}/pit_features.parquet", index=False)
ents = pd.DataFrame({
    "driver_id": rng.integers(0, int(N_ENT * 1.1), N_PIT).astype(np.int64),
    "event_time": (t0 + pd.to_timedelta(rng.integers(-86400, 11 * 86400, N_PIT), unit="s")).astype("datetime64[us, UTC]"),
})
ents.to_parquet(f"{out}/pit_entities.parquet", index=False)
print("ok")
'''

YARNIT_CHILD = r'''
import json, os, random, resource, sys, time, uuid
from datetime import timedelta
import pandas as pd, pyarrow.parquet as pq
from yarnit.core import SimulatedClock, utc
from yarnit.features import OfflineStore, OnlineFeatures, feature_view, materialize, open_online_store
task, work = sys.argv[1], sys.argv[2]
spec = json.loads(sys.argv[3])
FEATS = {f"f{i}": "float64" for i in range(10)}

@feature_view(entities={"driver_id": "int64"}, features=FEATS, ttl=timedelta(days=30))
def stats(): ...

@feature_view(entities={"driver_id": "int64"}, features=FEATS, ttl=timedelta(days=2))
def pit_stats(): ...

clock = SimulatedClock(utc(2026, 1, 11))
out = {}
def rss_mib():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

def offline_for(view, name):
    store = OfflineStore(f"{work}/yarnit-offline")
    if not store.files(view):
        store.write(view, pq.read_table(f"{work}/{name}.parquet"))
    return store

if task == "materialize":
    offline = offline_for(stats, "mat")
    url = spec["url"]
    online = open_online_store(url)
    online.drop(f"stats@{stats.version}")
    out["rss_before_mib"] = rss_mib()
    started = time.perf_counter()
    result = materialize(stats, offline, online, clock=clock, full=True)
    out["seconds"] = time.perf_counter() - started
    out["rows"] = result.rows_written
elif task == "online":
    online = open_online_store(spec["url"])
    reader = OnlineFeatures(online, [stats], clock)
    n, rng = spec["n_entities"], random.Random(spec["seed"])
    keys = [rng.randrange(spec["key_space"]) for _ in range(spec["calls"] + spec["warmup"])]
    one = reader.read_one
    out["warmed_bytes"] = reader.warm()  # as a serving process does at start-up (maps the SQLite pages)
    for k in keys[:spec["warmup"]]:
        one("stats", k)
    lat = []
    perf = time.perf_counter_ns
    for k in keys[spec["warmup"]:]:
        s = perf(); one("stats", k); lat.append(perf() - s)
    lat.sort()
    out["one"] = {"p50_us": lat[len(lat) // 2] / 1e3, "p99_us": lat[int(len(lat) * 0.99)] / 1e3, "calls": len(lat)}
    row = one("stats", keys[0])
    assert row.status.value == "present" and len(row.values) == 10 and row.age_s is not None
    batches = [[rng.randrange(spec["key_space"]) for _ in range(100)] for _ in range(spec["batch_calls"] + 50)]
    for b in batches[:50]:
        reader.read("stats", b)
    lat = []
    for b in batches[50:]:
        s = perf(); reader.read("stats", b); lat.append(perf() - s)
    lat.sort()
    out["hundred"] = {"p50_ms": lat[len(lat) // 2] / 1e6, "p99_ms": lat[int(len(lat) * 0.99)] / 1e6,
                      "calls": len(lat)}
elif task == "pit":
    offline = offline_for(pit_stats, "pit_features")
    entities = pd.read_parquet(f"{work}/pit_entities.parquet")
    requests = [(pit_stats, list(FEATS))]
    offline.point_in_time_join(entities.iloc[:1000], requests)  # warm-up (imports, DuckDB start)
    started = time.perf_counter()
    table = offline.point_in_time_join(entities, requests)
    arrow_s = time.perf_counter() - started
    frame = table.to_pandas()
    out["seconds"] = time.perf_counter() - started
    out["arrow_seconds"] = arrow_s
    out["rows_in"] = len(entities)
    out["rows_out"] = len(frame)
    out["rows_with_values"] = int(frame["f0"].notna().sum())
out["peak_rss_self_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
'''

FEAST_CHILD = r'''
import json, logging, os, random, resource, shutil, sys, time, warnings
warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)
from datetime import datetime, timedelta, timezone
import pandas as pd, pyarrow.parquet as pq
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
from feast.repo_config import RepoConfig
from feast.types import Float64
import feast
task, work = sys.argv[1], sys.argv[2]
spec = json.loads(sys.argv[3])
repo = f"{work}/feast-{task}-{spec.get('tag', 'x')}"
out = {"version": feast.__version__}
def rss_mib():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

def make_store(source, ttl_days, fresh):
    if fresh:
        shutil.rmtree(repo, ignore_errors=True)
    os.makedirs(f"{repo}/data", exist_ok=True)
    cfg = RepoConfig(project="bench", provider="local", registry=f"{repo}/data/registry.db",
                     online_store={"type": "sqlite", "path": f"{repo}/data/online.db"},
                     offline_store={"type": "file"}, entity_key_serialization_version=3, repo_path=repo)
    store = FeatureStore(config=cfg)
    entity = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
    view = FeatureView(name="stats", entities=[entity], ttl=timedelta(days=ttl_days),
                       schema=[Field(name=f"f{i}", dtype=Float64) for i in range(10)],
                       source=FileSource(path=source, timestamp_field="event_time"), online=True)
    store.apply([entity, view])
    return store

FEATS = [f"stats:f{i}" for i in range(10)]
if task == "materialize":
    rows = spec["rows"]
    source = f"{work}/feast-mat-{rows}.parquet"
    if not os.path.exists(source):
        pq.write_table(pq.read_table(f"{work}/mat.parquet").slice(0, rows), source)
    repo = spec["repo"]
    store = make_store(source, 30, fresh=True)
    out["rss_before_mib"] = rss_mib()
    started = time.perf_counter()
    store.materialize(datetime(2025, 12, 1, tzinfo=timezone.utc), datetime(2026, 1, 11, tzinfo=timezone.utc))
    out["seconds"] = time.perf_counter() - started
    out["rows"] = rows
elif task == "online":
    repo = spec["repo"]
    store = make_store(f"{work}/feast-mat-{spec['key_space']}.parquet", 30, fresh=False)
    rng = random.Random(spec["seed"])
    keys = [rng.randrange(spec["key_space"]) for _ in range(spec["calls"] + spec["warmup"])]
    get = store.get_online_features
    for k in keys[:spec["warmup"]]:
        get(features=FEATS, entity_rows=[{"driver_id": k}]).to_dict()
    lat = []
    perf = time.perf_counter_ns
    for k in keys[spec["warmup"]:]:
        s = perf(); get(features=FEATS, entity_rows=[{"driver_id": k}]).to_dict(); lat.append(perf() - s)
    lat.sort()
    out["one"] = {"p50_us": lat[len(lat) // 2] / 1e3, "p99_us": lat[int(len(lat) * 0.99)] / 1e3, "calls": len(lat)}
    got = get(features=FEATS, entity_rows=[{"driver_id": keys[0]}]).to_dict()
    assert got["f0"][0] is not None
    batches = [[rng.randrange(spec["key_space"]) for _ in range(100)] for _ in range(spec["batch_calls"] + 10)]
    for b in batches[:10]:
        get(features=FEATS, entity_rows=[{"driver_id": k} for k in b]).to_dict()
    lat = []
    for b in batches[10:]:
        s = perf(); get(features=FEATS, entity_rows=[{"driver_id": k} for k in b]).to_dict(); lat.append(perf() - s)
    lat.sort()
    out["hundred"] = {"p50_ms": lat[len(lat) // 2] / 1e6, "p99_ms": lat[int(len(lat) * 0.99)] / 1e6,
                      "calls": len(lat)}
elif task == "pit":
    store = make_store(f"{work}/pit_features.parquet", 2, fresh=True)
    entities = pd.read_parquet(f"{work}/pit_entities.parquet")
    store.get_historical_features(entity_df=entities.iloc[:1000], features=FEATS).to_df()  # warm-up
    started = time.perf_counter()
    frame = store.get_historical_features(entity_df=entities, features=FEATS).to_df()
    out["seconds"] = time.perf_counter() - started
    out["rows_in"] = len(entities)
    out["rows_out"] = len(frame)
    out["rows_with_values"] = int(frame["f0"].notna().sum())
out["peak_rss_self_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
'''


def run_child(python: Path | str, code: str, args: list[str], timeout: float = 3600) -> dict[str, Any]:
    """Run ``code`` under /usr/bin/time -v; return its JSON line plus wall time and peak RSS."""
    argv = ["/usr/bin/time", "-v", str(python), "-c", code, *args]
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{python} failed ({done.returncode}): {done.stderr[-3000:]}")
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    out: dict[str, Any] = json.loads(lines[-1])
    out["peak_rss_mib"] = int(rss.group(1)) / 1024 if rss else None
    out["child_wall_s"] = wall
    return out


def ensure_feast() -> dict[str, Any]:
    """Create benchmarks/.venvs/feast with Feast installed (once); report how it went."""
    venv = VENVS / "feast"
    python = venv / "bin" / "python"
    marker = venv / ".bench-installed"
    if marker.exists():
        return {"python": str(python), "installed": True, "install_s": None, "note": "reused"}
    started = time.perf_counter()
    try:
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
        subprocess.run([str(python), "-m", "pip", "install", "-q", FEAST_PIN], check=True,
                       timeout=INSTALL_TIMEOUT_S, capture_output=True, text=True)
        subprocess.run([str(python), "-c", "import feast"], check=True, timeout=300, capture_output=True)
    except subprocess.TimeoutExpired:
        return {"python": str(python), "installed": False, "install_s": time.perf_counter() - started,
                "note": f"pip install did not finish within {INSTALL_TIMEOUT_S} s"}
    except subprocess.CalledProcessError as exc:
        tail = (exc.stderr or "")[-500:] if isinstance(exc.stderr, str) else str(exc)
        return {"python": str(python), "installed": False, "install_s": time.perf_counter() - started,
                "note": f"install failed: {tail}"}
    marker.write_text("ok\n")
    return {"python": str(python), "installed": True, "install_s": time.perf_counter() - started, "note": "created"}


def make_data() -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    if all((WORK / f).exists() for f in ("mat.parquet", "pit_features.parquet", "pit_entities.parquet")):
        return
    subprocess.run([sys.executable, "-c", MAKE_DATA, str(WORK), str(N_MAT), str(N_PIT_ENTITIES),
                    str(PIT_PER_ENTITY), str(N_PIT_ROWS)], check=True)


def median_range(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _delete_redis_prefix(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.unlink(*keys)
    client.close()


def _versions() -> dict[str, str]:
    import duckdb
    import pandas
    import pyarrow

    import yarnit

    return {"yarnit": yarnit.__version__, "duckdb": duckdb.__version__, "pandas": pandas.__version__,
            "pyarrow": pyarrow.__version__, "python": platform.python_version(), "sqlite": __import__("sqlite3").sqlite_version}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="Interleaved repetitions.")
    parser.add_argument("--calls", type=int, default=20_000, help="Timed 1-entity reads per yarnit child.")
    parser.add_argument("--feast-calls", type=int, default=3_000, help="Timed 1-entity reads per Feast child.")
    parser.add_argument("--batch-calls", type=int, default=2_000, help="Timed 100-entity reads per yarnit child.")
    parser.add_argument("--feast-batch-calls", type=int, default=300, help="Timed 100-entity reads per Feast child.")
    parser.add_argument("--feast-mat-rows", type=int, default=100_000, help="Rows Feast materializes per rep.")
    parser.add_argument("--redis-rows", type=int, default=N_MAT, help="Rows materialized into Redis (once).")
    parser.add_argument("--skip-feast", action="store_true")
    parser.add_argument("--skip-redis", action="store_true")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "features.json")
    parser.add_argument("--md", type=Path, default=ROOT / "benchmarks" / "results" / "features.md")
    args = parser.parse_args()

    started = time.perf_counter()
    make_data()
    work = str(WORK)
    feast = {"installed": False, "note": "skipped (--skip-feast)"} if args.skip_feast else ensure_feast()
    yarnit_py = sys.executable
    sqlite_url = f"sqlite:///{WORK}/yarnit-online.db"
    redis_base = os.environ.get("YARNIT_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    redis_prefix = f"yarnit-bench-{uuid.uuid4().hex[:8]}:"
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in (
        "yarnit_materialize", "feast_materialize", "yarnit_online_sqlite", "yarnit_online_redis", "feast_online",
        "yarnit_pit", "feast_pit", "yarnit_materialize_redis")}
    feast_repo = f"{work}/feast-online-repo"

    def spec(**kw: Any) -> str:
        return json.dumps(kw)

    try:
        for rep in range(args.reps):
            print(f"rep {rep + 1}/{args.reps}", file=sys.stderr)
            # materialize (the last rep's stores are the ones read below)
            runs["yarnit_materialize"].append(run_child(yarnit_py, YARNIT_CHILD, [
                "materialize", work, spec(url=sqlite_url)]))
            if feast["installed"]:
                runs["feast_materialize"].append(run_child(feast["python"], FEAST_CHILD, [
                    "materialize", work, spec(rows=args.feast_mat_rows, repo=feast_repo)]))
            # online reads
            runs["yarnit_online_sqlite"].append(run_child(yarnit_py, YARNIT_CHILD, [
                "online", work, spec(url=sqlite_url, n_entities=1, seed=rep, key_space=N_MAT, calls=args.calls,
                                     warmup=2000, batch_calls=args.batch_calls)]))
            if feast["installed"]:
                runs["feast_online"].append(run_child(feast["python"], FEAST_CHILD, [
                    "online", work, spec(repo=feast_repo, seed=rep, key_space=args.feast_mat_rows,
                                         calls=args.feast_calls, warmup=300, batch_calls=args.feast_batch_calls)]))
            if not args.skip_redis:
                redis_url = f"{redis_base}?prefix={redis_prefix}"
                if rep == 0:
                    runs["yarnit_materialize_redis"].append(run_child(yarnit_py, YARNIT_CHILD, [
                        "materialize", work, spec(url=redis_url)]))
                runs["yarnit_online_redis"].append(run_child(yarnit_py, YARNIT_CHILD, [
                    "online", work, spec(url=redis_url, n_entities=1, seed=rep, key_space=N_MAT,
                                         calls=args.calls // 4, warmup=500, batch_calls=args.batch_calls // 2)]))
            # point-in-time join
            runs["yarnit_pit"].append(run_child(yarnit_py, YARNIT_CHILD, ["pit", work, spec()]))
            if feast["installed"]:
                runs["feast_pit"].append(run_child(feast["python"], FEAST_CHILD, ["pit", work, spec()]))
    finally:
        if not args.skip_redis:
            try:
                _delete_redis_prefix(redis_base, redis_prefix)
            except Exception as exc:  # noqa: BLE001 - report and go on
                print(f"could not delete Redis keys under {redis_prefix}: {exc}", file=sys.stderr)

    result = summarize(runs, feast, args)
    result["versions"] = _versions() | ({"feast": runs["feast_pit"][0]["version"]} if runs["feast_pit"] else {})
    result["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform(),
                         "load_average_at_end": os.getloadavg()}
    result["command"] = "python benchmarks/bench_features.py " + " ".join(sys.argv[1:])
    result["total_s"] = time.perf_counter() - started
    result["runs"] = runs
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    args.md.parent.mkdir(parents=True, exist_ok=True)
    args.md.write_text(render_markdown(result))
    print(json.dumps(result["summary"], indent=2))


def _ratios(ours: list[float], theirs: list[float]) -> dict[str, float] | None:
    if not ours or not theirs:
        return None
    return median_range([t / o for o, t in zip(ours, theirs, strict=False)])


def summarize(runs: dict[str, list[dict[str, Any]]], feast: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    s: dict[str, Any] = {}
    y1 = [r["one"]["p99_us"] for r in runs["yarnit_online_sqlite"]]
    y1_50 = [r["one"]["p50_us"] for r in runs["yarnit_online_sqlite"]]
    y100 = [r["hundred"]["p99_ms"] for r in runs["yarnit_online_sqlite"]]
    y100_50 = [r["hundred"]["p50_ms"] for r in runs["yarnit_online_sqlite"]]
    s["online_1x10_sqlite_p99_us"] = median_range(y1)
    s["online_1x10_sqlite_p50_us"] = median_range(y1_50)
    s["online_100x10_sqlite_p99_ms"] = median_range(y100)
    s["online_100x10_sqlite_p50_ms"] = median_range(y100_50)
    if runs["yarnit_online_redis"]:
        s["online_1x10_redis_p99_us"] = median_range([r["one"]["p99_us"] for r in runs["yarnit_online_redis"]])
        s["online_1x10_redis_p50_us"] = median_range([r["one"]["p50_us"] for r in runs["yarnit_online_redis"]])
        s["online_100x10_redis_p99_ms"] = median_range([r["hundred"]["p99_ms"] for r in runs["yarnit_online_redis"]])
        s["materialize_1m_redis_s"] = median_range([r["seconds"] for r in runs["yarnit_materialize_redis"]])
    s["pit_1m_s"] = median_range([r["seconds"] for r in runs["yarnit_pit"]])
    s["pit_1m_arrow_s"] = median_range([r["arrow_seconds"] for r in runs["yarnit_pit"]])
    s["pit_rows"] = {k: runs["yarnit_pit"][0][k] for k in ("rows_in", "rows_out", "rows_with_values")}
    s["materialize_1m_s"] = median_range([r["seconds"] for r in runs["yarnit_materialize"]])
    s["materialize_1m_peak_mib"] = median_range([r["peak_rss_mib"] for r in runs["yarnit_materialize"]])
    s["materialize_rows_per_s"] = median_range([r["rows"] / r["seconds"] for r in runs["yarnit_materialize"]])
    if runs["feast_online"]:
        f1 = [r["one"]["p99_us"] for r in runs["feast_online"]]
        f100 = [r["hundred"]["p99_ms"] for r in runs["feast_online"]]
        s["feast_online_1x10_p99_us"] = median_range(f1)
        s["feast_online_1x10_p50_us"] = median_range([r["one"]["p50_us"] for r in runs["feast_online"]])
        s["feast_online_100x10_p99_ms"] = median_range(f100)
        s["feast_online_100x10_p50_ms"] = median_range([r["hundred"]["p50_ms"] for r in runs["feast_online"]])
        s["ratio_online_1x10_p99"] = _ratios(y1, f1)
        s["ratio_online_100x10_p99"] = _ratios(y100, f100)
        s["ratio_online_1x10_p50"] = _ratios(y1_50, [r["one"]["p50_us"] for r in runs["feast_online"]])
        s["ratio_online_100x10_p50"] = _ratios(y100_50, [r["hundred"]["p50_ms"] for r in runs["feast_online"]])
    if runs["feast_pit"]:
        fp = [r["seconds"] for r in runs["feast_pit"]]
        s["feast_pit_1m_s"] = median_range(fp)
        s["feast_pit_rows"] = {k: runs["feast_pit"][0][k] for k in ("rows_in", "rows_out", "rows_with_values")}
        s["feast_pit_peak_mib"] = median_range([r["peak_rss_mib"] for r in runs["feast_pit"]])
        s["ratio_pit"] = _ratios([r["seconds"] for r in runs["yarnit_pit"]], fp)
    if runs["feast_materialize"]:
        fm = [r["rows"] / r["seconds"] for r in runs["feast_materialize"]]
        s["feast_materialize_rows"] = runs["feast_materialize"][0]["rows"]
        s["feast_materialize_s"] = median_range([r["seconds"] for r in runs["feast_materialize"]])
        s["feast_materialize_rows_per_s"] = median_range(fm)
        s["feast_materialize_peak_mib"] = median_range([r["peak_rss_mib"] for r in runs["feast_materialize"]])
        ym = [r["rows"] / r["seconds"] for r in runs["yarnit_materialize"]]
        s["ratio_materialize_per_row"] = median_range([y / f for y, f in zip(ym, fm, strict=False)])
    s["yarnit_pit_peak_mib"] = median_range([r["peak_rss_mib"] for r in runs["yarnit_pit"]])
    checks = {
        "online_1x10_sqlite_p99_us": s["online_1x10_sqlite_p99_us"]["median"] <= TARGETS["online_1x10_sqlite_p99_us"],
        "online_100x10_sqlite_p99_ms": s["online_100x10_sqlite_p99_ms"]["median"] <= TARGETS["online_100x10_sqlite_p99_ms"],
        "pit_1m_s": s["pit_1m_s"]["median"] <= TARGETS["pit_1m_s"],
        "pit_returns_every_row": s["pit_rows"]["rows_out"] == s["pit_rows"]["rows_in"],
        "materialize_1m_s": s["materialize_1m_s"]["median"] <= TARGETS["materialize_1m_s"],
        "materialize_1m_peak_mib": s["materialize_1m_peak_mib"]["max"] <= TARGETS["materialize_1m_peak_mib"],
    }
    if "online_1x10_redis_p99_us" in s:
        checks["online_1x10_redis_p99_us"] = s["online_1x10_redis_p99_us"]["median"] <= TARGETS["online_1x10_redis_p99_us"]
    for key in ("ratio_online_1x10_p99", "ratio_online_100x10_p99", "ratio_materialize_per_row"):
        if s.get(key):
            checks[key + "_ge_10"] = s[key]["median"] >= TARGETS["ratio_vs_feast"]
    return {"summary": s, "targets": TARGETS, "checks": checks, "feast": feast,
            "config": {"reps": args.reps, "calls": args.calls, "feast_calls": args.feast_calls,
                       "batch_calls": args.batch_calls, "feast_batch_calls": args.feast_batch_calls,
                       "feast_mat_rows": args.feast_mat_rows, "mat_rows": N_MAT,
                       "pit_entity_rows": N_PIT_ROWS, "pit_feature_rows": N_PIT_ENTITIES * PIT_PER_ENTITY}}


def _fmt(r: dict[str, float] | None, unit: str, digits: int = 1) -> str:
    if not r:
        return "n/a"
    return f"{r['median']:,.{digits}f} {unit} ({r['min']:,.{digits}f}–{r['max']:,.{digits}f})"


def render_markdown(result: dict[str, Any]) -> str:
    s, checks, v = result["summary"], result["checks"], result["versions"]
    feast = result["feast"]
    ok = {True: "✅", False: "❌"}
    lines = [
        "## Feature store: yarnit.features vs Feast (local provider)",
        "",
        f"Command: `{result['command']}` — {result['config']['reps']} interleaved repetitions, each system in its own "
        f"process; median (min–max). Machine: {result['machine']['cpus']} CPUs, load average at the end "
        f"{', '.join(f'{x:.1f}' for x in result['machine']['load_average_at_end'])} (a shared machine: p99s are "
        "noisy, ratios from the same run are what counts).",
        f"Versions: yarnit {v['yarnit']}, Feast {v.get('feast', 'not run')}, DuckDB {v['duckdb']}, pandas "
        f"{v['pandas']}, pyarrow {v['pyarrow']}, SQLite {v['sqlite']}, Python {v['python']}.",
        "",
        "| what | yarnit | Feast | ratio (Feast / yarnit) | target | met |",
        "|---|---|---|---|---|---|",
        f"| online read 1 entity × 10 features, SQLite, p99 (yarnit: with status + age) | "
        f"{_fmt(s['online_1x10_sqlite_p99_us'], 'µs')} | {_fmt(s.get('feast_online_1x10_p99_us'), 'µs')} | "
        f"{_fmt(s.get('ratio_online_1x10_p99'), '×')} | ≤ 25 µs, ≥ 10× | "
        f"{ok[checks['online_1x10_sqlite_p99_us']]} {ok.get(checks.get('ratio_online_1x10_p99_ge_10'), '')} |",
        f"| … p50 | {_fmt(s['online_1x10_sqlite_p50_us'], 'µs')} | {_fmt(s.get('feast_online_1x10_p50_us'), 'µs')} "
        f"| {_fmt(s.get('ratio_online_1x10_p50'), '×')} | | |",
        f"| online read 100 entities × 10 features, SQLite, p99 | {_fmt(s['online_100x10_sqlite_p99_ms'], 'ms', 3)} | "
        f"{_fmt(s.get('feast_online_100x10_p99_ms'), 'ms', 2)} | {_fmt(s.get('ratio_online_100x10_p99'), '×')} | "
        f"≤ 0.7 ms, ≥ 10× | {ok[checks['online_100x10_sqlite_p99_ms']]} "
        f"{ok.get(checks.get('ratio_online_100x10_p99_ge_10'), '')} |",
        f"| … p50 | {_fmt(s['online_100x10_sqlite_p50_ms'], 'ms', 3)} | "
        f"{_fmt(s.get('feast_online_100x10_p50_ms'), 'ms', 2)} | {_fmt(s.get('ratio_online_100x10_p50'), '×')} | | |",
    ]
    if "online_1x10_redis_p99_us" in s:
        lines += [
            f"| online read 1 × 10, Redis on loopback, p99 (p50) | {_fmt(s['online_1x10_redis_p99_us'], 'µs')} "
            f"({s['online_1x10_redis_p50_us']['median']:.0f} µs) | – | – | ≤ 500 µs | "
            f"{ok[checks['online_1x10_redis_p99_us']]} |",
            f"| online read 100 × 10, Redis, p99 | {_fmt(s['online_100x10_redis_p99_ms'], 'ms', 3)} | – | – | – | |",
        ]
    pit_rows = s["pit_rows"]
    feast_rows = s.get("feast_pit_rows")
    lines += [
        f"| point-in-time join, 1,000,000 entity rows × 10 features → pandas | {_fmt(s['pit_1m_s'], 's', 2)} "
        f"(Arrow: {s['pit_1m_arrow_s']['median']:.2f} s) | {_fmt(s.get('feast_pit_1m_s'), 's', 2)} | "
        f"{_fmt(s.get('ratio_pit'), '×')} | ≤ 1 s | {ok[checks['pit_1m_s']]} |",
        f"| … rows returned (of {pit_rows['rows_in']:,}) / rows with values | {pit_rows['rows_out']:,} / "
        f"{pit_rows['rows_with_values']:,} | "
        + (f"{feast_rows['rows_out']:,} / {feast_rows['rows_with_values']:,}" if feast_rows else "n/a")
        + f" | | every row | {ok[checks['pit_returns_every_row']]} |",
        f"| materialize 1,000,000 rows into SQLite | {_fmt(s['materialize_1m_s'], 's', 2)}, peak "
        f"{_fmt(s['materialize_1m_peak_mib'], 'MiB', 0)} | "
        + (f"{_fmt(s['feast_materialize_s'], 's', 1)} for {s['feast_materialize_rows']:,} rows, peak "
           f"{_fmt(s['feast_materialize_peak_mib'], 'MiB', 0)}" if "feast_materialize_s" in s else "n/a")
        + f" | {_fmt(s.get('ratio_materialize_per_row'), '× per row')} | ≤ 10 s, ≤ 1 GiB, ≥ 10× | "
        f"{ok[checks['materialize_1m_s']]} {ok[checks['materialize_1m_peak_mib']]} "
        f"{ok.get(checks.get('ratio_materialize_per_row_ge_10'), '')} |",
        f"| materialize rows/s | {s['materialize_rows_per_s']['median']:,.0f} | "
        + (f"{s['feast_materialize_rows_per_s']['median']:,.0f}" if "feast_materialize_rows_per_s" in s else "n/a")
        + " | | | |",
    ]
    if "materialize_1m_redis_s" in s:
        lines.append(f"| materialize 1,000,000 rows into Redis (once) | {_fmt(s['materialize_1m_redis_s'], 's', 2)} "
                     "| – | – | – | |")
    lines += [
        "",
        "Notes:",
        "- Same generated data for both systems (seeded): 1,000,000 rows × 10 float64 features for online and "
        "materialization; 1,000,000 feature rows (100,000 entities × 10 timestamps, TTL 2 days) and 1,000,000 "
        "entity rows (10 % of them for entities without features, some before any feature row) for the join.",
        "- yarnit's reads return each value with its status (present/missing/stale), event time and age by the "
        "injected clock; Feast's `to_dict()` returns values only. Feast reads from a table of "
        f"{result['config']['feast_mat_rows']:,} entities, yarnit from {result['config']['mat_rows']:,}.",
        "- Feast's point-in-time join drops entity rows that have no earlier feature row instead of returning "
        "nulls (and collapses duplicate entity rows); compare the row counts, not only the time. The rows that "
        "have values agree between the two systems.",
        "- p99 latencies on a shared 2-CPU machine are dominated by preemption when other jobs run (see the load "
        "average above): a check marked ❌ on a p99 with a p50 far below the target is the machine, not the code "
        "path; re-run on a quiet machine before drawing conclusions.",
        f"- Feast installation: {feast.get('note', '')}.",
        "",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
