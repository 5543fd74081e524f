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
* Rejected and shed requests (a 503 from admission, a 404, 408, 413 or 422:
  no prediction) are not one record each: under overload they outnumber the
  answers a hundred to one (30 s of overload once wrote 155 MB). The first
  ``exemplars`` (100) of each (model, protocol, status, error) in a window
  of ``aggregate_window_s``, and at most ``max_exemplars`` (1,000) in all,
  are logged as they are (with their request ids, for debugging); the rest
  only count, and the window ends with one
  ``role: "rejected"`` record per key holding how many were not logged
  (``count``) and their latencies. A request's total is thus its own
  records plus those counts.
* Retention: a segment is rotated by size (``max_segment_bytes``) or age
  (``max_segment_age_s``); at each rotation, segments whose last record is
  older than ``retention_s`` are deleted, then the oldest ones while the log
  is over ``max_total_bytes`` (never the newest segment of a run: another
  process may be writing it). :func:`prune_prediction_log` is the same policy
  for ``yarnit data retention``.
* A failed write (ENOSPC, EIO) loses nothing that was acknowledged and opens
  no file per retry: the batch goes back to the head of the queue, the
  writer backs off (0.1 s doubling to 5 s), and the next try rewrites it into
  the same segment file if nothing was acknowledged in it (truncated to its
  start), else into one new segment. Records that arrive meanwhile queue up
  to ``max_queue`` and are dropped and counted beyond it.
* Personal data: fields named in the policy (``user_id``, ``email`` … and a
  version's ``signature["pii"]``) are written as a keyed HMAC-SHA256 when a
  key is configured (``YARNIT_HMAC_KEY``), and dropped otherwise.
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
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
from collections.abc import Callable, Container, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson

from yarnit.core.atomic import atomic_write_bytes, is_durable
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
        if self.hmac_key is None:  # no key: personal fields are dropped (one comprehension, in the same order)
            return {key: value for key, value in instance.items() if key not in pii}
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
    aggregated: int = 0  # rejected or shed requests counted in a window record instead of logged one by one
    write_failures: int = 0  # failed writes or fsyncs (each retried after a back-off)
    pruned_segments: int = 0  # segments deleted by the retention policy


#: Status codes of requests answered without a prediction that are counted, past a few exemplars, rather than
#: logged one by one: shed (503) and rejected (4xx) requests. A 500 (a bug) is always logged.
AGGREGATED_STATUSES = frozenset((400, 404, 405, 408, 409, 413, 415, 422, 429, 503))
MAX_WINDOW_KEYS = 1_024  # distinct keys per window; more (e.g. a scanner's model names) fold into one
_BACKOFF_S = (0.1, 5.0)


class _Tally:
    """The rejected requests of one key in the current window: how many, how many logged, their latencies."""

    __slots__ = ("seen", "logged", "latency_sum_ms", "latency_max_ms", "first_id", "last_id")

    def __init__(self) -> None:
        self.seen = 0
        self.logged = 0
        self.latency_sum_ms = 0.0
        self.latency_max_ms = 0.0
        self.first_id: str | None = None
        self.last_id: str | None = None


def _summary(rows: list[Any]) -> dict[str, Any]:
    """What a record keeps of rows past :data:`MAX_LOGGED_ROWS`: how many, and a sha256 of their JSON."""
    data = orjson.dumps(rows, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS, default=str)
    return {"rows": len(rows), "sha256": hashlib.sha256(data).hexdigest(), "of": "rows"}


class PredictionLog:
    """Append-only, batched, fsynced segment files under ``directory``."""

    def __init__(self, directory: str | Path, clock: Clock, *, policy: LogPolicy | None = None,
                 max_queue: int = 100_000, flush_interval_s: float = 0.05,
                 max_segment_bytes: int = 64 << 20, fsync: bool = True,
                 on_segment: Callable[[str, set[tuple[Any, Any, Any]]], None] | None = None,
                 aggregate_window_s: float = 10.0, exemplars: int = 100, max_exemplars: int = 1_000,
                 retention_s: float | None = None, max_total_bytes: int | None = None,
                 max_segment_age_s: float = 3600.0) -> None:
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
        self.fsync = fsync and is_durable()  # a scratch workspace's process writes without fsync (core.atomic)
        self.aggregate_window_s = aggregate_window_s
        self.exemplars = exemplars  # per key and window
        self.max_exemplars = max_exemplars  # per window, all keys together
        self._window_logged = 0
        self.retention_s = retention_s
        self.max_total_bytes = max_total_bytes
        self.max_segment_age_s = max_segment_age_s
        self._window: dict[tuple[Any, ...], _Tally] = {}
        self._window_start = clock.now()
        self._window_started_s = clock.monotonic()
        self._window_lock = threading.Lock()
        self.aggregated = 0
        self.write_failures = 0
        self.pruned_segments = 0
        self._retry_at_s = 0.0  # monotonic time before which the writer does not retry after a failure
        self._backoff_s = 0.0
        self._segment_path: Path | None = None
        self._segment_opened_s = 0.0
        self._reuse_segment = False  # the next open truncates and reuses the failed segment (nothing acked in it)
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
        """Queue ``record`` for writing; False (and counted) if the queue is full or the log closed.

        A rejected or shed request past its key's exemplars in this window is
        counted instead (True: it is accounted for in the window's record).
        """
        if self._closing:
            self.dropped += 1
            return False
        if record.get("role") == "primary" and record.get("status") in AGGREGATED_STATUSES \
                and "predictions" not in record and self._counted(record):
            return True
        if len(self._queue) >= self.max_queue:
            self.dropped += 1
            return False
        return self._enqueue(record)

    def _counted(self, record: dict[str, Any]) -> bool:
        """Tally a rejected request in the window; True when it is only counted (its exemplars are logged)."""
        key = (record.get("model"), record.get("protocol"), record.get("status"), record.get("error"))
        latency_ms = float(record.get("latency_ms") or 0.0)
        with self._window_lock:
            window = self._window
            tally = window.get(key)
            if tally is None:
                if len(window) >= MAX_WINDOW_KEYS:
                    key = (key[0] if len(window) < 2 * MAX_WINDOW_KEYS else None, key[1], key[2], "other")
                    tally = window.get(key)
                if tally is None:
                    tally = window[key] = _Tally()
            tally.seen += 1
            if tally.logged < self.exemplars and self._window_logged < self.max_exemplars:
                tally.logged += 1
                self._window_logged += 1
                return False
            self.aggregated += 1
            tally.latency_sum_ms += latency_ms
            if latency_ms > tally.latency_max_ms:
                tally.latency_max_ms = latency_ms
            request_id = record.get("request_id")
            if tally.first_id is None:
                tally.first_id = request_id
            tally.last_id = request_id
            return True

    def _close_window(self, *, force: bool = False) -> None:
        """If the window is over (or ``force``), queue one count record per key that had unlogged requests."""
        if not force and self.clock.monotonic() - self._window_started_s < self.aggregate_window_s:
            return
        now = self.clock.now()
        with self._window_lock:
            window, self._window = self._window, {}
            self._window_logged = 0
            start, self._window_start = self._window_start, now
            self._window_started_s = self.clock.monotonic()
        for (model, protocol, status, error), tally in window.items():
            count = tally.seen - tally.logged
            if count <= 0:
                continue
            self._enqueue({"role": "rejected", "time": now, "window_start": start, "window_end": now,
                           "model": model, "protocol": protocol, "status": status, "error": error,
                           "count": count, "logged": tally.logged,
                           "latency_ms_mean": tally.latency_sum_ms / count, "latency_ms_max": tally.latency_max_ms,
                           "first_request_id": tally.first_id, "last_request_id": tally.last_id})

    def _enqueue(self, record: dict[str, Any]) -> bool:
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
        self._close_window(force=True)  # what was counted so far is written too
        target = self._last_seq
        if self._thread is None:
            return self.flushed_seq >= target
        self._wake.set()
        with self._flushed:
            return self._flushed.wait_for(lambda: self.flushed_seq >= target or self._thread is None,
                                          timeout=timeout_s)

    def close(self, timeout_s: float = 60.0) -> None:
        """Write out everything queued, fsync, and stop the writer (idempotent).

        Waits up to ``timeout_s`` for the writer: a failing disk ends it sooner (after the longest back-off),
        but a starved machine or a slow disk needs time, and 10 s returned before 5,000 queued records were
        written on a loaded CI machine (the records were then missing from the log a reader scanned next).
        """
        self._closing = True
        thread = self._thread
        if thread is not None:
            self._wake.set()
            thread.join(timeout=timeout_s)

    def stats(self) -> LogStats:
        return LogStats(self.enqueued, self.flushed_records, self.flushed_seq, self.dropped, self.lost,
                        len(self._queue), self.segments, self.aggregated, self.write_failures,
                        self.pruned_segments)

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
                self._close_window(force=self._closing)
                if self.clock.monotonic() >= self._retry_at_s or self._closing:
                    self._drain()
                if self._closing and (not self._queue or self._backoff_s >= _BACKOFF_S[1]):
                    break  # closing: done, or the disk still fails after the longest back-off (the rest is lost)
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
            if not self._write([queue.popleft() for _ in range(n)]):
                return

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

    def _write(self, batch: list[tuple[int, bytes]]) -> bool:
        """Write and fsync ``batch`` ((seq, line)...); on failure put it back at the head of the queue, back off."""
        data = b"".join([line for _seq, line in batch])
        size = len(data)
        try:
            if self._fd is None or self._segment_bytes + size > self.max_segment_bytes or (
                    self._segment_bytes and self.clock.monotonic() - self._segment_opened_s >= self.max_segment_age_s):
                self._open_segment()
            assert self._fd is not None
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            if self.fsync:
                os.fdatasync(self._fd)
        except OSError as exc:
            # Never trust a failed write/fsync (fsyncgate, RELIABILITY.md 5.2): the batch is written again,
            # after a back-off, into a segment cut back to what was acknowledged. If nothing was acknowledged
            # in this one it is reused (truncated), so a full disk does not leave a new empty file per retry.
            self.write_failures += 1
            self._backoff_s = min(max(self._backoff_s * 2, _BACKOFF_S[0]), _BACKOFF_S[1])
            self._retry_at_s = self.clock.monotonic() + self._backoff_s
            log.error("prediction log write failed (%s); %d records wait, retry in %.1f s", exc, len(batch),
                      self._backoff_s)
            self._queue.extendleft(reversed(batch))
            self._reuse_segment = self._segment_bytes == 0 and self._segment_path is not None
            if not self._reuse_segment and self._fd is not None:
                try:
                    os.ftruncate(self._fd, self._segment_bytes)  # best effort: cut the torn tail
                except OSError:
                    pass
            self._close_segment()
            return False
        self._segment_bytes += size
        self._backoff_s = 0.0
        self._report_segment()
        with self._flushed:
            self.flushed_records += len(batch)
            self.flushed_seq = batch[-1][0]
            self._flushed.notify_all()
        return True

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
        path = self._segment_path
        if self._reuse_segment and path is not None:
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_TRUNC
        else:
            self.segments += 1
            path = self._segment_path = self.directory / f"seg-{self._run}-{self.segments:06d}.log"
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
            self._rotated()
        self._segment_name, self._reported = path.name, set()
        self._fd = os.open(path, flags, 0o640)
        with contextlib.suppress(OSError):  # a filesystem without flock must not cost records
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # "being written": erase and prune leave it alone
        self._reuse_segment = False
        self._segment_bytes = 0
        self._segment_opened_s = self.clock.monotonic()
        if self.fsync:
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    def _rotated(self) -> None:
        """A new segment begins: apply the retention policy to the others (never fails the write)."""
        if self.retention_s is None and self.max_total_bytes is None:
            return
        cutoff = self.clock.now() - timedelta(seconds=self.retention_s) if self.retention_s is not None else None
        try:
            result = prune_prediction_log(self.directory, older_than=cutoff, max_total_bytes=self.max_total_bytes,
                                          keep=() if self._segment_path is None else (self._segment_path.name,))
        except OSError as exc:
            log.warning("prediction log retention failed: %s", exc)
            return
        self.pruned_segments += len(result.deleted)

    def _close_segment(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            finally:
                self._fd = None


_OPEN_LOGS: weakref.WeakSet[PredictionLog] = weakref.WeakSet()


def segment_paths(base: str | Path) -> list[Path]:
    """The log's segment files (``seg-*.log``) in name order, which is write order, from one directory listing:
    the monitor's readers list a month of hourly segments every pass, and sorting Path objects costs more.
    Inside :func:`shared_log_view` a directory is listed once."""
    view = _VIEW.get()
    key = str(base)
    listed = view.listings.get(key) if view is not None else None
    if listed is not None:
        return list(listed)
    base = Path(base)
    try:
        with os.scandir(base) as entries:
            names = sorted(e.name for e in entries if e.name.startswith("seg-") and e.name.endswith(".log"))
    except (FileNotFoundError, NotADirectoryError):
        return []
    paths = [base / name for name in names]
    if view is not None:
        view.listings[key] = paths
    return list(paths)


# -- one view of the log for the readers of one pass ------------------------------------------------------------
#: Reads larger than this in all are not kept by a view (a first pass over a month-long log reads it in bounded
#: chunks and must not hold it in memory).
VIEW_MAX_BYTES = 64 << 20


@dataclass(eq=False)  # kept in a WeakSet: hashed by identity
class _LogView:
    listings: dict[str, list[Path]] = field(default_factory=dict)
    stats: dict[str, os.stat_result] = field(default_factory=dict)
    reads: dict[tuple[str, int, int], SegmentRead] = field(default_factory=dict)  # (path, inode, offset)
    kept_bytes: int = 0
    generation: int = 0  # moved by clear(): a read begun before it is not kept

    def clear(self) -> None:
        self.generation += 1
        self.listings.clear()
        self.stats.clear()
        self.reads.clear()
        self.kept_bytes = 0


_VIEW: contextvars.ContextVar[_LogView | None] = contextvars.ContextVar("yarnit_predlog_view", default=None)
_VIEWS: weakref.WeakSet[_LogView] = weakref.WeakSet()  # every open view, for the rewriters to forget
_VIEWS_LOCK = threading.Lock()


@contextlib.contextmanager
def shared_log_view() -> Iterator[None]:
    """Inside the block, the log's incremental readers of this thread share one view of it: each directory is
    listed once, each segment stat-ed once, and the records decoded from a segment at an offset are handed to
    every reader that reads from that offset (the monitor's traffic summaries, quality join and SLI counts read
    the same new bytes each pass). What a reader sees is a prefix of the log as it is, as without a view: a
    segment created or grown meanwhile is read whole by the next pass. :func:`erase_from_prediction_log` and
    :func:`prune_prediction_log` empty every open view (erased records are never handed out); a nested block
    uses the outer view. Other threads (a server's writer, its API) never see the view."""
    if _VIEW.get() is not None:
        yield
        return
    view = _LogView()
    with _VIEWS_LOCK:
        _VIEWS.add(view)
    token = _VIEW.set(view)
    try:
        yield
    finally:
        _VIEW.reset(token)
        with _VIEWS_LOCK:
            _VIEWS.discard(view)


def _forget_views() -> None:
    with _VIEWS_LOCK:
        views = list(_VIEWS)
    for view in views:
        view.clear()


def segment_stat(path: str | Path) -> os.stat_result:
    """``os.stat`` of a segment (once per :func:`shared_log_view`); FileNotFoundError when it is gone."""
    view = _VIEW.get()
    if view is None:
        return os.stat(path)
    key = str(path)
    stat = view.stats.get(key)
    if stat is None:
        stat = view.stats[key] = os.stat(path)
    return stat


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
        read = read_segment(segment)
        scan.records.extend(read.records)
        scan.corrupt_lines += read.corrupt_lines
        scan.torn_tails += read.partial_tail
    return scan


@dataclass
class SegmentRead:
    """What :func:`read_segment` found from an offset: intact records, where the last whole line ends."""

    records: list[dict[str, Any]]
    end: int  # byte offset just past the last complete line read (where the next read starts)
    corrupt_lines: int = 0
    partial_tail: bool = False  # bytes after ``end`` without a newline (a torn tail, or a write in progress)


def read_segment(path: str | Path, offset: int = 0, max_bytes: int | None = None) -> SegmentRead:
    """The complete lines of one segment from byte ``offset`` on (for incremental readers).

    A last line without its newline is not consumed (``end`` stops before it):
    it is a write in progress or a crash's torn tail, and a later read sees it
    whole or never. ``max_bytes`` reads at most that many bytes (a bounded
    chunk; the next read starts at ``end``); a line longer than it gives no
    record and ``end == offset``: read it again without the limit.
    """
    view = _VIEW.get()
    key: tuple[str, int, int] | None = None
    generation = 0
    if view is not None:  # the records another reader of this pass decoded from here (never to be changed)
        generation = view.generation
        key = (str(path), segment_stat(path).st_ino, offset)
        kept = view.reads.get(key)
        if kept is not None and (max_bytes is None or kept.end - offset <= max_bytes):
            return kept
    with open(path, "rb") as stream:
        stream.seek(offset)
        data = stream.read() if max_bytes is None else stream.read(max_bytes)
    cut = data.rfind(b"\n") + 1
    read = SegmentRead(records=[], end=offset + cut, partial_tail=cut < len(data))
    for line in data[:cut].split(b"\n")[:-1]:
        record = _parse_line(line)
        if record is None:
            read.corrupt_lines += 1
        else:
            read.records.append(record)
    if view is not None and key is not None and (max_bytes is None or len(data) < max_bytes) \
            and view.kept_bytes + cut <= VIEW_MAX_BYTES and view.generation == generation:
        view.reads[key] = read  # the whole rest of the segment as it was: the same for every reader from here
        view.kept_bytes += cut
    return read


@dataclass(frozen=True)
class PruneResult:
    """What :func:`prune_prediction_log` deleted and kept (segment file names and bytes)."""

    deleted: list[str]
    deleted_bytes: int
    kept: int
    kept_bytes: int
    live_kept: int = 0  # segments a running server still writes (it holds their flock): never deleted


#: (path, inode, size) -> last record time: a segment that did not grow has the same last record, so each
#: rotation's retention pass reads only the segments written since (not every segment's tail, every time).
_LAST_TIMES: dict[tuple[str, int, int], datetime | None] = {}


def _last_time(segment: Path) -> datetime | None:
    """The time of the segment's last intact record (its tail is read, not the whole file; cached by size)."""
    stat = segment.stat()
    key = (str(segment), stat.st_ino, stat.st_size)
    if key in _LAST_TIMES:
        return _LAST_TIMES[key]
    when = _read_last_time(segment)
    if len(_LAST_TIMES) > 8192:
        _LAST_TIMES.clear()
    _LAST_TIMES[key] = when
    return when


def _read_last_time(segment: Path) -> datetime | None:
    with open(segment, "rb") as stream:
        size = stream.seek(0, os.SEEK_END)
        stream.seek(max(0, size - (256 << 10)))
        lines = stream.read().split(b"\n")[:-1]  # the last piece is a torn tail or empty
    for line in reversed(lines):
        record = _parse_line(line)
        if record is not None and isinstance(record.get("time"), str):
            try:
                when = datetime.fromisoformat(record["time"])
            except ValueError:
                continue
            return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)
    return None


def prune_prediction_log(directory: str | Path, *, older_than: datetime | None = None,
                         max_total_bytes: int | None = None, keep: Container[str] = (),
                         dry_run: bool = False) -> PruneResult:
    """Delete prediction-log segments by the retention policy; the log's own rotation and ``yarnit data retention``.

    * ``older_than``: segments whose last record is older are deleted (a
      segment with no intact record counts as old).
    * ``max_total_bytes``: then the oldest segments, while the rest is larger.

    A segment whose writer holds its ``flock`` (a live server appending to
    it) and the names in ``keep`` are never deleted; a closed run's last
    segment is as prunable as any other. Segment names sort by time (run ids
    are time-ordered). ``dry_run`` only reports what would be deleted.
    """
    base = Path(directory)
    if not dry_run:
        _forget_views()
    segments = sorted(base.glob("seg-*.log")) if base.is_dir() else []
    cutoff = older_than if older_than is None or older_than.tzinfo is not None else \
        older_than.replace(tzinfo=timezone.utc)
    sizes = {segment.name: segment.stat().st_size for segment in segments}
    deleted: list[str] = []
    live = 0
    total = sum(sizes.values())
    for segment in segments:
        name = segment.name
        if name in keep:
            continue
        old = False
        if cutoff is not None:
            last = _last_time(segment)
            old = last is None or last < cutoff
        if not (old or (max_total_bytes is not None and total > max_total_bytes)):
            continue
        with _idle_segment(segment) as fd:
            if fd is None:
                live += 1
                continue
            if not dry_run:
                segment.unlink(missing_ok=True)
        deleted.append(name)
        total -= sizes[name]
    if deleted and not dry_run:
        _forget_views()
    return PruneResult(deleted=deleted, deleted_bytes=sum(sizes[n] for n in deleted),
                       kept=len(segments) - len(deleted), kept_bytes=total, live_kept=live)


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
    _forget_views()
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
            _forget_views()  # before and after: no view hands out a record read from the old file
            report.segments_rewritten += 1
            report.records_removed += removed
    return report


__all__ = [
    "DEFAULT_PII_FIELDS",
    "LogErasure",
    "LogPolicy",
    "LogScan",
    "LogStats",
    "PredictionLog",
    "PruneResult",
    "SegmentRead",
    "erase_from_prediction_log",
    "prune_prediction_log",
    "read_prediction_log",
    "read_segment",
    "scan_prediction_log",
    "segment_stat",
    "shared_log_view",
    "segment_paths",
]
