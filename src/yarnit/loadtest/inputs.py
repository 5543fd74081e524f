"""Hard inputs for a load test: distinct real requests from the prediction log, the heaviest first.

Book ch. 15 case 4: a staging load test is worth what its inputs are worth. Synthetic probes are
easy (short, all alike) and a repeated input can be answered from a cache, so neither says how the
version behaves on the traffic it will get. Here the inputs are instances that production actually
served (``role: primary``, status 200, this model), as the log kept them (personal fields already
hashed or dropped by the log's policy):

* **distinct**: each instance once (compared as canonical JSON), so within a run no request repeats
  another while distinct ones last; the staging servers also run without the prediction cache, so a
  repeat could not be answered from memory either;
* **hard**: the newest ``pool_factor`` x as many distinct instances as needed are gathered, and the
  heaviest are kept (most bytes as JSON: the most fields, the longest values, a ranker's longest
  candidate lists), in the order they were served;
* **bounded**: segments are read newest first, and reading stops once enough are found or
  ``max_bytes`` of the log have been read.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from yarnit.serving.predlog import read_segment, segment_paths

POOL_FACTOR = 4
MAX_LOG_BYTES = 256 << 20


@dataclass(frozen=True)
class HardInputs:
    """The rows chosen (JSON bytes of one instance each) and how they were found."""

    rows: list[bytes]
    distinct_seen: int  # distinct instances gathered before choosing the heaviest
    records_read: int
    bytes_read: int


def _instances(record: dict[str, Any], model: str) -> list[Any]:
    if record.get("role") != "primary" or record.get("model") != model or record.get("status") != 200:
        return []
    instances = record.get("instances")
    return instances if isinstance(instances, list) else []  # a dict is a big request's summary, no rows


def hard_inputs(log_dir: str | Path, model: str, n: int, *, pool_factor: int = POOL_FACTOR,
                max_bytes: int = MAX_LOG_BYTES) -> HardInputs:
    """Up to ``n`` distinct instances of ``model`` from the log in ``log_dir`` (fewer if it holds fewer)."""
    want = max(1, n) * max(1, pool_factor)
    seen: dict[bytes, int] = {}  # canonical JSON -> order of first sight, newest first
    records = read_bytes = 0
    for path in reversed(segment_paths(log_dir)):
        if len(seen) >= want or read_bytes >= max_bytes:
            break
        try:
            read = read_segment(path, 0, max_bytes=max_bytes - read_bytes)
        except FileNotFoundError:  # pruned meanwhile
            continue
        read_bytes += read.end
        for record in reversed(read.records):
            records += 1
            for instance in _instances(record, model):
                if not isinstance(instance, dict) or not instance:
                    continue
                key = orjson.dumps(instance, option=orjson.OPT_SORT_KEYS)
                if key not in seen:
                    seen[key] = len(seen)
            if len(seen) >= want:
                break
    heaviest = sorted(seen, key=len, reverse=True)[:n]
    heaviest.sort(key=seen.__getitem__, reverse=True)  # oldest first: the order they were served in
    return HardInputs(rows=heaviest, distinct_seen=len(seen), records_read=records, bytes_read=read_bytes)


def request_bodies(rows: list[bytes], count: int, start: int = 0) -> bytes:
    """``count`` v1 request bodies (``{"instances": [row]}``), one per line, from ``rows[start:]`` round-robin."""
    return b"".join(b'{"instances":[' + rows[(start + i) % len(rows)] + b"]}\n" for i in range(count))


__all__ = ["HardInputs", "hard_inputs", "request_bodies"]
