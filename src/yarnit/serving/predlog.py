"""The prediction log: every data-plane request, durable, append-only, with drops counted.

Each request (answered, failed, shed or rejected; not only 200s) becomes one
record: request id, time, model and version, alias and answering path,
status, latency, the instances as the privacy policy allows, the online
features that fell back to defaults, the predictions. Shadow scores are
records too (``role: shadow``). The log feeds monitoring, the label join and
skew checks.

How it stays cheap and durable:

* The request path serialises the record (one ``orjson.dumps``, a few µs,
  after the response is sent) and appends the line to a bounded in-memory
  queue. When the queue is full the record is dropped and counted
  (``dropped``), never blocking the request: the count is exported so a
  lossy log is visible. Serialising in the writer thread cost more CPU in
  all (two threads taking turns at the GIL), did not spare the event loop
  (which waits for the GIL while the writer runs Python) and fell behind a
  busy loop, which gave the GIL back only every switch interval (5 ms).
* A writer thread drains the queue every ``flush_interval_s``: it appends
  what was queued to the current segment file and ``fdatasync``s it, holding
  the GIL only to join the lines. Only then are the records *acknowledged*
  (``flushed_seq``); a ``kill -9`` after that loses none of them. A failed
  fsync is not retried (fsyncgate, RELIABILITY.md 5.2): the batch is counted
  as lost and a new segment begins.
* Segment files (``seg-<run>-<n>.log``) are append-only; each line is
  ``<crc32 hex> <json>``, so a line torn by a crash is detected and skipped
  by :func:`scan_prediction_log`.
* A writer holds an exclusive ``flock`` on the segment it appends to, so
  :func:`erase_from_prediction_log` (deletion requests) and
  :func:`prune_prediction_log` (retention) rewrite or remove only segments
  that no live process is writing; a lock dies with its process.
* Personal data: fields named in the policy (``user_id``, ``email`` … and a
  version's ``signature["pii"]``) are written as a keyed HMAC-SHA256 when a
  key is configured (``YARNIT_HMAC_KEY``), and dropped otherwise.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import hmac
import itertools
import logging
import os
import threading
import weakref
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from yarnit.core.atomic import atomic_write_bytes
from yarnit.core.clock import Clock
from yarnit.core.ids import new_id

log = logging.getLogger("yarnit.serving.predlog")

DEFAULT_PII_FIELDS = frozenset({"user_id", "email", "phone", "ip", "ip_address", "address", "full_name",
                                "name", "session_id", "device_id"})
_HASH_PREFIX = "hmac-sha256:"
# Past this many rows a record keeps the row count and a sha256 of its instances (and predictions) instead of
# the rows: one 15 MB OIP v2 request made a 71 MB line, encoded on the event loop and held in the queue. (A
# body big enough to be parsed off the loop comes with the sha256 of the request body, hashed there.)
MAX_LOGGED_ROWS = 1000


@dataclass(frozen=True)
class LogPolicy:
    """Which instance fields are personal data, and the key that pseudonymises them."""

    pii_fields: frozenset[str] = DEFAULT_PII_FIELDS
    hmac_key: bytes | None = field(default=None, repr=False)
    log_instances: bool = True

    def pseudonymise(self, value: Any) -> str | None:
        if self.hmac_key is None:
            return None
        digest = hmac.new(self.hmac_key, str(value).encode("utf-8"), hashlib.sha256).hexdigest()
        return _HASH_PREFIX + digest[:32]

    def apply(self, instance: Mapping[str, Any], extra_pii: Iterable[str] = ()) -> dict[str, Any]:
        """The instance as it may be logged: PII fields hashed with the key, or dropped.

        An instance with no personal data is returned as it is (not copied).
        """
        pii = self.pii_fields.union(extra_pii) if extra_pii else self.pii_fields
        if pii.isdisjoint(instance):
            return instance if type(instance) is dict else dict(instance)
        out: dict[str, Any] = {}
        for key, value in instance.items():
            if key in pii:
                hashed = self.pseudonymise(value)
                if hashed is not None:
                    out[key] = hashed
            else:
                out[key] = value
        return out


@dataclass(frozen=True)
class LogStats:
    enqueued: int
    flushed_records: int
    flushed_seq: int
    dropped: int
    lost: int
    queue_depth: int
    segments: int


def _summary(rows: list[Any]) -> dict[str, Any]:
    """What a record keeps of rows past :data:`MAX_LOGGED_ROWS`: how many, and a sha256 of their JSON."""
    data = orjson.dumps(rows, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS, default=str)
    return {"rows": len(rows), "sha256": hashlib.sha256(data).hexdigest(), "of": "rows"}


class PredictionLog:
    """Append-only, batched, fsynced segment files under ``directory``."""

    def __init__(self, directory: str | Path, clock: Clock, *, policy: LogPolicy | None = None,
                 max_queue: int = 100_000, flush_interval_s: float = 0.05,
                 max_segment_bytes: int = 64 << 20, fsync: bool = True,
                 on_segment: Callable[[str, set[tuple[Any, Any, Any]]], None] | None = None) -> None:
        self.directory = Path(directory)
        # Lineage: told (segment file name, {(model, version, alias)}) when a segment first holds a deployment.
        self.on_segment = on_segment
        self._served: set[tuple[Any, Any, Any]] = set()
        self._segment_name = ""
        self._reported: set[tuple[Any, Any, Any]] = set()
        self.clock = clock
        self.policy = policy or LogPolicy()
        self.max_queue = max_queue
        self.flush_interval_s = flush_interval_s
        self.max_segment_bytes = max_segment_bytes
        self.fsync = fsync
        self._queue: deque[tuple[int, bytes]] = deque()  # (seq, encoded line)
        self._seq = itertools.count(1)
        self._last_seq = 0
        self.enqueued = 0
        self.dropped = 0
        self.lost = 0
        self.flushed_records = 0
        self.flushed_seq = 0
        self.segments = 0
        self._run = ""
        self._fd: int | None = None
        self._segment_bytes = 0
        self._wake = threading.Event()
        self._flushed = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    # -- producer side (request path) -------------------------------------------------
    def append(self, record: dict[str, Any]) -> bool:
        """Queue ``record`` for writing; False (and counted) if the queue is full or the log closed."""
        if self._closing or len(self._queue) >= self.max_queue:
            self.dropped += 1
            return False
        if self._thread is None:
            self._start()
        seq = next(self._seq)
        if self.on_segment is not None:
            self._served.add((record.get("model"), record.get("version"), record.get("alias")))
        record["seq"] = seq
        line = self._encode(record)
        self._last_seq = seq
        self._queue.append((seq, line))
        self.enqueued += 1
        return True

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Block until every record queued so far is durable; True if it happened in time."""
        target = self._last_seq
        if self._thread is None:
            return self.flushed_seq >= target
        self._wake.set()
        with self._flushed:
            return self._flushed.wait_for(lambda: self.flushed_seq >= target or self._thread is None,
                                          timeout=timeout_s)

    def close(self, timeout_s: float = 10.0) -> None:
        """Write out everything queued, fsync, and stop the writer (idempotent)."""
        self._closing = True
        thread = self._thread
        if thread is not None:
            self._wake.set()
            thread.join(timeout=timeout_s)

    def stats(self) -> LogStats:
        return LogStats(self.enqueued, self.flushed_records, self.flushed_seq, self.dropped, self.lost,
                        len(self._queue), self.segments)

    # -- writer side --------------------------------------------------------------------
    def _start(self) -> None:
        with self._start_lock:
            if self._thread is not None:
                return
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o750)
            self._run = new_id("plog", self.clock)
            thread = threading.Thread(target=self._loop, name="yarnit-predlog", daemon=True)
            self._thread = thread
            thread.start()
            _OPEN_LOGS.add(self)

    def _loop(self) -> None:
        try:
            while True:
                self._wake.wait(self.flush_interval_s)
                self._wake.clear()
                self._drain()
                if self._closing and not self._queue:
                    break
        finally:
            self._close_segment()
            with self._flushed:
                self._thread = None
                self._flushed.notify_all()

    def _drain(self) -> None:
        # Only what is queued now: records that arrive meanwhile wait for the next interval. Draining until
        # the queue was empty meant, under steady traffic, a write and an fdatasync for every few records
        # (each fsync found new ones): over a hundred a second instead of twenty, and measured in-process,
        # ~5 µs of system CPU per request.
        queue = self._queue
        pending = len(queue)
        while pending > 0:
            n = min(pending, 10_000)
            pending -= n
            lines: list[bytes] = []
            last_seq = 0
            for _ in range(n):
                last_seq, line = queue.popleft()
                lines.append(line)
            self._write(lines, last_seq)

    def _encode(self, record: dict[str, Any]) -> bytes:
        """One log line: ``<crc32 hex> <json>\\n``, personal data hashed or dropped per the policy."""
        instances = record.get("instances")
        if instances is not None:
            if not self.policy.log_instances:
                record["instances"] = None
            elif type(instances) is dict:
                pass  # already a summary of a big request (made off the event loop by the data plane)
            elif len(instances) > MAX_LOGGED_ROWS:
                record["instances"] = _summary(instances)
            else:
                extra = record.pop("pii", ())
                record["instances"] = [self.policy.apply(i, extra) for i in instances]
        predictions = record.get("predictions")
        if predictions is not None and len(predictions) > MAX_LOGGED_ROWS:
            record["predictions"] = _summary(predictions)
        key = record.get("key")
        if key is not None:
            record["key"] = self.policy.pseudonymise(key)
        payload = orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS,
                               default=str)
        return b"%08x %s\n" % (zlib.crc32(payload), payload)

    def _write(self, batch: list[bytes], last_seq: int) -> None:
        data = b"".join(batch)
        size = len(data)
        try:
            if self._fd is None or self._segment_bytes + size > self.max_segment_bytes:
                self._open_segment()
            assert self._fd is not None
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            if self.fsync:
                os.fdatasync(self._fd)
            self._segment_bytes += size
        except OSError as exc:
            # Never retry a failed write/fsync as if it had worked: count the batch
            # as lost and start a fresh segment for what comes next.
            log.error("prediction log write failed, %d records lost: %s", len(batch), exc)
            self.lost += len(batch)
            self._close_segment()
            return
        self._report_segment()
        with self._flushed:
            self.flushed_records += len(batch)
            self.flushed_seq = last_seq
            self._flushed.notify_all()

    def _report_segment(self) -> None:
        """Tell ``on_segment`` the (model, version, alias) triples new to the current segment (writer thread).

        The set is swapped, not iterated, because the request path adds to it concurrently; a record appended
        between a batch's write and the swap is credited to this segment though it lands in the next one.
        """
        if self.on_segment is None or not self._served:
            return
        served, self._served = self._served, set()
        new = served - self._reported
        if new:
            self._reported |= new
            self.on_segment(self._segment_name, new)

    def _open_segment(self) -> None:
        self._close_segment()
        self.segments += 1
        path = self.directory / f"seg-{self._run}-{self.segments:06d}.log"
        self._segment_name, self._reported = path.name, set()
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        with contextlib.suppress(OSError):  # a filesystem without flock must not cost records
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # "being written": erase and prune leave it alone
        self._segment_bytes = 0
        if self.fsync:
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    def _close_segment(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            finally:
                self._fd = None


_OPEN_LOGS: weakref.WeakSet[PredictionLog] = weakref.WeakSet()


@atexit.register
def _close_open_logs() -> None:  # a normal exit flushes too (kill -9 loses only unacknowledged records)
    for prediction_log in list(_OPEN_LOGS):
        prediction_log.close(timeout_s=5.0)


@dataclass
class LogScan:
    """What :func:`scan_prediction_log` found."""

    records: list[dict[str, Any]]
    torn_tails: int = 0  # last line of a segment cut by a crash (expected after kill -9)
    corrupt_lines: int = 0  # bad lines that are not a segment's last (should never happen)


def _parse_line(line: bytes) -> dict[str, Any] | None:
    if len(line) < 10 or line[8:9] != b" ":
        return None
    payload = line[9:]
    try:
        if int(line[:8], 16) != zlib.crc32(payload):
            return None
        record = orjson.loads(payload)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def scan_prediction_log(directory: str | Path) -> LogScan:
    """Every intact record in the log, in write order, with counts of torn and corrupt lines."""
    scan = LogScan(records=[])
    base = Path(directory)
    if not base.is_dir():
        return scan
    for segment in sorted(base.glob("seg-*.log")):
        data = segment.read_bytes()
        lines = data.split(b"\n")
        complete, tail = lines[:-1], lines[-1]
        for line in complete:
            record = _parse_line(line)
            if record is None:
                scan.corrupt_lines += 1
            else:
                scan.records.append(record)
        if tail:
            scan.torn_tails += 1
    return scan


def read_prediction_log(directory: str | Path) -> Iterator[dict[str, Any]]:
    """The intact records of the log (torn tails skipped)."""
    yield from scan_prediction_log(directory).records


@dataclass
class LogErasure:
    """What :func:`erase_from_prediction_log` did: segments searched and rewritten, records removed, and the
    live segments (being written by a running server) that still hold matching records."""

    segments_searched: int = 0
    segments_rewritten: int = 0
    records_removed: int = 0
    live_segments_with_matches: list[str] = field(default_factory=list)


def _holds(value: Any, needles: frozenset[str]) -> bool:
    if isinstance(value, str):
        return value in needles
    if isinstance(value, dict):
        return any(_holds(v, needles) for v in value.values())
    if isinstance(value, list):
        return any(_holds(v, needles) for v in value)
    return False


@contextlib.contextmanager
def _idle_segment(path: Path) -> Iterator[int | None]:
    """An fd of ``path`` locked against writers, or None when a live writer holds it."""
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield None
            return
        yield fd
    finally:
        os.close(fd)


def erase_from_prediction_log(directory: str | Path, needles: Iterable[str]) -> LogErasure:
    """Remove every record holding one of ``needles`` (a subject's id and its keyed hashes) from the log.

    Every segment is searched (any string value of a record, at any depth). A segment no process is
    writing is rewritten without the matching records (atomically: a new file renamed over the old);
    a segment a running server still appends to is left alone and named in ``live_segments_with_matches``.
    Lines torn by a crash that contain a needle are dropped too.
    """
    wanted = frozenset(n for n in needles if n)
    raw = [n.encode() for n in wanted]
    report = LogErasure()
    base = Path(directory)
    if not base.is_dir() or not wanted:
        return report
    for segment in sorted(base.glob("seg-*.log")):
        report.segments_searched += 1
        with _idle_segment(segment) as fd:
            data = segment.read_bytes()
            if not any(n in data for n in raw):
                continue
            kept: list[bytes] = []
            removed = 0
            *complete, tail = data.split(b"\n")
            for line in complete:
                record = _parse_line(line)
                hit = _holds(record, wanted) if record is not None else any(n in line for n in raw)
                if hit:
                    removed += 1
                else:
                    kept.append(line + b"\n")
            if tail and any(n in tail for n in raw):
                removed += 1
            elif tail:
                kept.append(tail)
            if not removed:
                continue
            if fd is None:
                report.live_segments_with_matches.append(segment.name)
                continue
            atomic_write_bytes(segment, b"".join(kept), mode=0o640)  # temp file, fsync, rename, fsync dir
            report.segments_rewritten += 1
            report.records_removed += removed
    return report


@dataclass
class LogPrune:
    """What :func:`prune_prediction_log` did."""

    segments_removed: list[str] = field(default_factory=list)
    bytes_removed: int = 0
    live_segments_kept: int = 0


def _newest_time(data: bytes) -> datetime | None:
    newest: datetime | None = None
    for line in data.split(b"\n"):
        record = _parse_line(line)
        if record is None or not isinstance(record.get("time"), str):
            continue
        try:
            when = datetime.fromisoformat(record["time"])
        except ValueError:
            continue
        newest = when if newest is None or when > newest else newest
    return newest


def prune_prediction_log(directory: str | Path, *, older_than: datetime, dry_run: bool = False) -> LogPrune:
    """Delete every segment whose newest record is older than ``older_than`` (retention), unless it is live.

    A segment with no readable time is kept. ``dry_run`` only reports what would go.
    """
    report = LogPrune()
    base = Path(directory)
    if not base.is_dir():
        return report
    for segment in sorted(base.glob("seg-*.log")):
        with _idle_segment(segment) as fd:
            if fd is None:
                report.live_segments_kept += 1
                continue
            data = segment.read_bytes()
            newest = _newest_time(data)
            if newest is None or newest >= older_than:
                continue
            report.segments_removed.append(segment.name)
            report.bytes_removed += len(data)
            if not dry_run:
                segment.unlink()
    return report


__all__ = [
    "DEFAULT_PII_FIELDS",
    "LogErasure",
    "LogPolicy",
    "LogPrune",
    "LogScan",
    "LogStats",
    "PredictionLog",
    "erase_from_prediction_log",
    "prune_prediction_log",
    "read_prediction_log",
    "scan_prediction_log",
]
