"""Issue 20: an ingest that stores smaller row groups than the chunks it profiles (the ctr log: 262,144-row Dask
parts, 1M-row profiles) converts and writes one row group at a time and profiles each chunk's rows read back a
column at a time: the same file and the same statistics as holding each chunk whole, without holding one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from yarnit.data import Datasets
from yarnit.data.privacy import suppress
from yarnit.storage import Workspace

from .conftest import HMAC_KEY


def _log(rows: int, seed: int = 0) -> pa.Table:
    """A log with every kind of column the profile treats differently, and more distinct ids than a chunk's
    value counts keep (so their distinct count is the merge's lower bound, which depends on the chunks)."""
    rng = np.random.default_rng(seed)
    price = rng.gamma(2.0, 5.0, rows)
    price[rng.random(rows) < 0.05] = np.nan
    user = np.where(np.arange(rows) < 2500, "u-gone", np.char.add("u", rng.integers(0, 300, rows).astype(str)))
    return pa.table({
        "impression_id": pa.array(np.char.add("i", np.arange(rows).astype(str))),
        "user_id": pa.array(user),
        "country": pa.array(np.array(["DE", "FR", "US", None], dtype=object)[rng.integers(0, 4, rows)]),
        "price": pa.array(price),
        "position": pa.array(rng.integers(1, 11, rows)),
        "clicks_7d": pa.array(rng.integers(0, 5000, rows)),
        "clicked": pa.array(rng.random(rows) < 0.2),
        "event_time": pa.array(np.datetime64("2026-01-01") + rng.integers(0, 10**9, rows).astype("timedelta64[ms]"),
                               pa.timestamp("ms", tz="UTC")),
    })


@pytest.mark.parametrize("forgotten", [False, True], ids=["all rows", "a chunk's rows all suppressed"])
def test_small_row_groups_keep_the_file_and_the_statistics_of_whole_chunks(
        sqlite_ws: Workspace, forgotten: bool) -> None:
    sqlite_ws.settings = replace(sqlite_ws.settings, hmac_key=HMAC_KEY)
    if forgotten:  # the first 2,500 rows (the first chunk of 2,500) are one subject's: every one is dropped
        with sqlite_ws.metadata.begin() as conn:
            suppress(conn, sqlite_ws, "u-gone", receipt_id="r1")
    log = _log(10_700)
    batches = log.to_batches(max_chunksize=700)  # batches that straddle the chunks and the row groups
    datasets = Datasets(sqlite_ws)
    common = {"source": "test", "subject": "user_id"}
    whole = datasets.ingest_batches("whole", batches, chunk_rows=2500, **common)
    parts = datasets.ingest_batches("parts", batches, chunk_rows=2500, row_group_rows=500, **common)
    stored = pq.ParquetFile(sqlite_ws.artifacts.verify(parts.artifact_sha256))
    sizes = [stored.metadata.row_group(g).num_rows for g in range(stored.num_row_groups)]
    same = pq.read_table(sqlite_ws.artifacts.verify(whole.artifact_sha256))
    assert max(sizes) == 500 and stored.read().to_pandas().equals(same.to_pandas())  # pandas: NaN equals NaN
    assert parts.row_count == whole.row_count == 10_700 - 2500 * forgotten
    assert parts.statistics == whole.statistics  # equal to the last bit, slices included
    ids = parts.stats().columns["impression_id"]  # type: ignore[union-attr]
    assert not ids.distinct_exact and ids.distinct == 2500  # the largest chunk's count: chunks of 2,500 as before
    assert parts.privacy["suppressed_rows"] == whole.privacy["suppressed_rows"] == 2500 * forgotten


_MEASURE = """
import json, sys
import numpy as np, pyarrow as pa
from yarnit.core.settings import Settings
from yarnit.data import Datasets
from yarnit.storage.workspace import open_workspace

def batches():
    for start in range(0, 400_000, 25_000):  # made one at a time: only what the ingest keeps stays
        ids = np.arange(start, start + 25_000)
        yield pa.table({f"c{k}": pa.array(np.char.add(f"c{k}-", ids.astype("U12"))) for k in range(24)})

ws = open_workspace(Settings.for_home(sys.argv[1]))
pool = pa.default_memory_pool()
before = pool.max_memory()
rows = {"row_group_rows": 25_000} if sys.argv[2] == "parts" else {}
Datasets(ws).ingest_batches("log", batches(), source="test", chunk_rows=200_000, no_subject="test ids", **rows)
peak = pool.max_memory() - before
chunk = sum(b.nbytes for _, b in zip(range(8), batches()))  # 8 batches: one profiled chunk
print(json.dumps({"peak": peak, "chunk": chunk}))
"""


def test_the_ingest_of_small_row_groups_never_holds_a_whole_chunk(tmp_path: Path) -> None:
    """Arrow's own peak (its pool's ``max_memory``, each ingest in a fresh process), profiling 200,000-row chunks
    of 24 columns of distinct strings (a chunk is 62 MB): stored in 25,000-row groups, the ingest holds a row
    group and a column or two of a chunk with the profile's scratch for them, not the chunk. Measured three
    times each: 36 to 39 MB, against 95 to 145 MB with whole chunks; before this change small row groups held
    as much as whole chunks (103 to 121 MB)."""
    src = Path(__file__).resolve().parents[2] / "src"
    peaks = {}
    for mode in ("whole", "parts"):
        out = subprocess.run([sys.executable, "-c", _MEASURE, str(tmp_path / mode), mode], capture_output=True,
                             text=True, check=True, env=os.environ | {"PYTHONPATH": str(src)}, timeout=600)
        peaks[mode] = json.loads(out.stdout.strip().splitlines()[-1])["peak"]
    assert peaks["parts"] < 0.6 * peaks["whole"], peaks


def test_reading_a_chunk_back_in_two_threads_never_fails(tmp_path: Path) -> None:
    """Two columns are read back at a time. When both threads shared one ``ParquetFile``, a 90-day select
    failed with "ReadRangeCache did not find matching cache entry" (4 of 40 reads of a 50,000-row-group file).
    Each read has its own reader now. A race: this test failed in one of two runs on the shared reader."""
    from yarnit.data.versions import _parquet_writer, _profile_back

    path = tmp_path / "log.parquet"
    rng = np.random.default_rng(0)
    writer = None
    for _ in range(16):
        table = pa.table({f"c{k}": pa.array(rng.normal(size=20_000)) for k in range(8)}
                         | {"s": pa.array(np.char.add("x", rng.integers(0, 10**6, 20_000).astype(str)))})
        writer = writer or _parquet_writer(path, table.schema)
        writer.write_table(table, row_group_size=20_000)
    assert writer is not None
    writer.close()
    for _ in range(40):
        assert len(_profile_back(path, [20_000] * 16, 4, [])) == 4
