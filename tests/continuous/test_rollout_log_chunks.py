"""A rollout step reads only the log chunks that reach its stage, and never misses a record (incl. appended ones)."""

from __future__ import annotations

import json
import zlib

from yarnit.continuous import rollout


def _line(i: int) -> bytes:
    record = json.dumps({"request_id": f"r{i}", "time": f"2026-01-05T{i // 60:02d}:{i % 60:02d}:00+00:00",
                         "role": "primary", "model": "ctr", "status": 200, "pad": "x" * 300})
    return f"{zlib.crc32(record.encode()):08x} {record}\n".encode()


def test_old_chunks_are_skipped_new_lines_are_read_and_a_rewrite_starts_over(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(rollout, "_CHUNK_BYTES", 4096)  # ~12 records a chunk
    path = tmp_path / "seg-1.log"
    path.write_bytes(b"".join(_line(i) for i in range(300)))
    start = 1767571200.0 + 200 * 60  # 2026-01-05T03:20
    ids = [r["request_id"] for r in rollout._records_since(path, start)]
    assert {f"r{i}" for i in range(200, 300)} <= set(ids) and len(ids) < 120  # whole old chunks skipped
    with path.open("ab") as f:
        f.write(b"".join(_line(i) for i in range(300, 320)) + _line(320)[:50])  # and a torn tail
    ids = [r["request_id"] for r in rollout._records_since(path, start)]
    assert {f"r{i}" for i in range(200, 320)} <= set(ids) and "r320" not in ids
    assert ids == [r["request_id"] for r in rollout._records_since(path, start)]  # from the cache: the same
    path.unlink()
    path.write_bytes(b"".join(_line(i) for i in range(5)))  # rewritten (an erasure): a new file
    assert [r["request_id"] for r in rollout._records_since(path, 0.0)] == [f"r{i}" for i in range(5)]
