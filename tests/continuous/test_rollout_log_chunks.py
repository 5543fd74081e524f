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


def _served(i: int) -> bytes:
    canary = i % 3 == 0
    record = {"request_id": f"r{i}", "time": f"2026-01-05T{i // 60:02d}:{i % 60:02d}:00+00:00",
              "role": "shadow" if i % 7 == 0 else "primary", "model": "ctr" if i % 11 else "other",
              "status": [200, 200, 200, 503, 404][i % 5], "version": 2 if canary else 1,
              "routed": "canary" if canary else "production", "alias": "canary" if canary else "production",
              "served_by": "model" if i % 13 else "fallback", "latency_ms": 1.0 + i % 17,
              "predictions": [((i * 7 + k) % 100) / 100 for k in range(12)], "features": {"x": "y" * 200}}
    text = json.dumps(record)
    return f"{zlib.crc32(text.encode()):08x} {text}\n".encode()


def test_gather_from_kept_slim_chunks_equals_gather_from_whole_records(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(rollout, "_CHUNK_BYTES", 4096)
    log = tmp_path / "log"
    log.mkdir()
    (log / "seg-00000001.log").write_bytes(b"".join(_served(i) for i in range(400)))
    windows = [(1767571200.0 + a * 60, 1767571200.0 + b * 60) for a, b in ((0, 400), (100, 250), (390, 400))]

    def gathered() -> list:
        out = []
        for start, end in windows:
            for shadow in (None, 2):
                out.append(rollout.gather(log, "ctr", start_s=start, end_s=end, shadow_version=shadow))
        return out

    rollout._CHUNKS.clear()
    rollout._PARSED.clear()
    slim = gathered()
    assert rollout._PARSED and gathered() == slim  # the second pass from the kept chunks
    rollout._CHUNKS.clear()
    rollout._PARSED.clear()
    monkeypatch.setattr(rollout, "_slim", lambda record: record)  # whole records, as before the slim chunks
    assert gathered() == slim
    assert slim[0][0].requests > 0 and slim[0][1].requests > 0 and slim[1][0].requests > 0
    rollout._CHUNKS.clear()
    rollout._PARSED.clear()
