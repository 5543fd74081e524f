"""Serving SLI counts from the prediction log, read incrementally from a checkpoint.

:class:`PredictionLogSource` is an :class:`~yarnit.monitoring.burn.SLISource`
over the segment files of :mod:`yarnit.serving.predlog`. Which records count:

* only requests: ``role: primary`` records count one each, ``role: rejected``
  window records (requests shed or rejected past their exemplars) count their
  ``count``; shadow scores are not requests and never count;
* an SLO with a ``model`` counts only that model's requests; with an ``alias``
  param only requests routed to that alias (``routed``, the router's choice, failed requests included;
  older records without it: the alias that answered; rejected windows carry no alias,
  so they count only for SLOs without one);
* **serving_availability**: total = every request except client errors (4xx
  other than 429: a malformed body, an unknown model or a slow client are not
  the service being down, the SRE convention); good = answered 200 by the
  model itself (``served_by: model``): a fallback, a 5xx, a shed 503 or a 429
  is bad;
* **serving_latency**: total = requests answered 200 (by any path; errors spend
  the availability budget, not this one); good = ``latency_ms`` at most the
  SLO's ``threshold_ms``.

Other SLI kinds are not in the log: their series stays empty (``no_data``).

Each record is counted in the minute of its own ``time`` (a rejected window at
its end), so out-of-order and skewed records land where they belong; a record
older than the SLO's ring, later than the clock's now plus ``max_future_s``
(a skewed clock would otherwise push the ring forward and wipe it), or with
no readable time is counted in ``skipped``, never an error.

Incremental and crash-safe: the checkpoint holds, per segment file, the byte
offset just past the last complete line read (and its inode); the counts and
the checkpoint are one JSON state file written atomically, so a crash before
the write re-reads from the old offsets into the old counts (nothing counted
twice) and one after it starts from the new ones (nothing skipped). A torn or
half-written last line is not consumed until it is whole. A segment rewritten
by erasure (new inode) keeps what was counted and goes on from its end; a
deleted one leaves the checkpoint. A state written for another SLO file (its
fingerprint differs) is discarded and the log re-read.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from yarnit.core.atomic import UNSYNCED_OPS, atomic_write_bytes
from yarnit.core.clock import Clock
from yarnit.core.errors import ConfigError, InvalidInput
from yarnit.serving.predlog import read_segment, segment_paths, segment_stat

from .counts import EventCounts
from .slo import SLO, SLOFile

LOG_SLIS = frozenset({"serving_availability", "serving_latency"})
STATE_VERSION = 2  # 2: each series' buckets as three arrays (k, good, total)
MAX_COUNT = 1 << 40  # a window record claiming more requests than this is not believed


def is_client_error(status: int) -> bool:
    """A 4xx the client caused (not 429, which is the service refusing load): outside availability's total."""
    return 400 <= status < 500 and status != 429


def classify(slo: SLO, record: Mapping[str, Any]) -> tuple[int, int]:
    """(good, total) that one prediction-log record adds to ``slo``'s SLI (0, 0 when it does not count)."""
    role = record.get("role")
    if role not in ("primary", "rejected") or slo.sli not in LOG_SLIS:
        return 0, 0
    if slo.model is not None and record.get("model") != slo.model:
        return 0, 0
    alias = slo.params.get("alias")
    if alias is not None and (role == "rejected" or (record.get("routed") or record.get("alias")) != alias):
        return 0, 0
    status = record.get("status")
    if not isinstance(status, int) or isinstance(status, bool):
        return 0, 0
    n = 1
    if role == "rejected":
        n = record.get("count")
        if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= MAX_COUNT:
            return 0, 0
    if slo.sli == "serving_availability":
        if is_client_error(status):
            return 0, 0
        return (n if status == 200 and record.get("served_by") == "model" else 0), n
    if status != 200 or role != "primary":  # latency: requests answered with a prediction
        return 0, 0
    latency = record.get("latency_ms")
    fast = isinstance(latency, (int, float)) and not isinstance(latency, bool) and math.isfinite(latency) \
        and latency <= float(slo.params["threshold_ms"])
    return (1 if fast else 0), 1


def record_time(record: Mapping[str, Any]) -> float | None:
    """Epoch seconds of a record's ``time`` (ISO 8601; no zone means UTC), None when unreadable."""
    value = record.get("time")
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


@dataclass
class ReadReport:
    """What one :meth:`PredictionLogSource.refresh` read, and the totals since the state began."""

    segments: int = 0  # segment files seen
    bytes_read: int = 0
    records: int = 0  # intact records read this time
    corrupt_lines: int = 0  # bad lines this time (never expected: torn tails are not consumed)
    skipped: int = 0  # requests too old for the ring, too far in the future or without a time (since the start)
    reset: bool = False  # the saved state did not fit the SLO file and was discarded


@dataclass
class _Checkpoint:
    offset: int
    inode: int



def _series_state(series: EventCounts) -> dict[str, Any]:
    """One series as saved: its dropped count and its non-empty buckets as three arrays."""
    keys, good, total = series.bucket_arrays()
    return {"dropped": series.dropped, "k": keys, "good": good, "total": total}

@dataclass
class PredictionLogSource:
    """Serving availability and latency counts of ``spec``'s SLOs from the log in ``directory``.

    ``state_path`` (optional) is where the counts and the per-segment offsets
    persist between runs; without it each new source re-reads the whole log.
    """

    directory: Path
    spec: SLOFile
    clock: Clock
    state_path: Path | None = None
    max_future_s: float = 300.0
    last: ReadReport = field(default_factory=ReadReport)
    _series: dict[str, EventCounts] = field(default_factory=dict)
    _offsets: dict[str, _Checkpoint] = field(default_factory=dict)
    _hold: bool = field(default=False, init=False, repr=False)  # inside one_read() (then _held_read: read once)
    _held_read: bool = field(default=False, init=False, repr=False)
    _skipped: int = 0

    def __post_init__(self) -> None:
        self.directory = Path(self.directory)
        self._fresh()
        if self.state_path is not None:
            self.state_path = Path(self.state_path)
            self._load()

    # -- the SLISource protocol -------------------------------------------------------
    def counts(self, slo: SLO, *, until_s: float) -> EventCounts:
        """``slo``'s counts after reading what the log gained since the last read."""
        if slo.id not in self._series:
            raise ConfigError(f"SLO {slo.name!r} is not in the SLO file this source was built for; known: "
                              f"{', '.join(s.name for s in self.spec.slos)}.")
        if not (self._hold and self._held_read):
            self.refresh()
            self._held_read = self._hold
        return self._series[slo.id]

    @contextlib.contextmanager
    def one_read(self) -> Iterator[None]:
        """Inside the block the log is read once, by the first :meth:`counts` (a monitor pass counts several SLOs
        of one log at one instant: listing and stat-ing a month of segments once is enough)."""
        self._hold, self._held_read = True, False
        try:
            yield
        finally:
            self._hold = False

    # -- reading ------------------------------------------------------------------------
    def refresh(self) -> ReadReport:
        """Read every segment from its checkpoint, count the new records, save the state if anything changed."""
        report = ReadReport(reset=self.last.reset)
        segments = segment_paths(self.directory)
        seen = {p.name for p in segments}
        changed = any(name not in seen for name in self._offsets)
        self._offsets = {name: cp for name, cp in self._offsets.items() if name in seen}
        future_s = self.clock.now().timestamp() + self.max_future_s
        for path in segments:
            try:
                stat = segment_stat(path)
            except FileNotFoundError:  # pruned meanwhile
                continue
            report.segments += 1
            cp = self._offsets.get(path.name)
            if cp is not None and (cp.inode != stat.st_ino or stat.st_size < cp.offset):
                # Rewritten by erasure: its records were counted already; go on from its new end.
                self._offsets[path.name] = _Checkpoint(stat.st_size, stat.st_ino)
                changed = True
                continue
            offset = cp.offset if cp is not None else 0
            if stat.st_size <= offset:
                continue
            try:
                read = read_segment(path, offset)
            except FileNotFoundError:  # pruned meanwhile
                continue
            if read.end == offset:
                continue
            report.bytes_read += read.end - offset
            report.records += len(read.records)
            report.corrupt_lines += read.corrupt_lines
            for record in read.records:
                self._count(record, future_s)
            self._offsets[path.name] = _Checkpoint(read.end, stat.st_ino)
            changed = True
        report.skipped = self.skipped
        self.last = report
        if changed and self.state_path is not None:
            self._save()
        return report

    @property
    def skipped(self) -> int:
        """Requests not counted: no readable time, too far ahead of the clock, or older than an SLO's ring."""
        return self._skipped

    def _count(self, record: Mapping[str, Any], future_s: float) -> None:
        hits = [(slo, good, total) for slo in self.spec.slos for good, total in [classify(slo, record)] if total]
        if not hits:
            return
        at_s = record_time(record)
        if at_s is None or at_s > future_s:
            self._skipped += max(total for _slo, _good, total in hits)
            return
        lost = 0
        for slo, good, total in hits:
            counts = self._series[slo.id]
            before = counts.dropped
            counts.add(at_s, good=good, total=total)
            lost = max(lost, counts.dropped - before)
        self._skipped += lost  # a request is skipped once, however many SLOs' rings it was too old for

    # -- state ----------------------------------------------------------------------------
    def _fresh(self) -> None:
        self._series = {slo.id: EventCounts.for_span(max([slo.window_s, *slo.windows_s()])) for slo in self.spec.slos}
        self._offsets = {}
        self._skipped = 0

    def fingerprint(self) -> str:
        """What the counts depend on: each SLO's id, SLI, model, params and ring size."""
        parts = [[slo.id, slo.sli, slo.model, sorted((k, str(v)) for k, v in slo.params.items()),
                  self._series[slo.id].capacity] for slo in self.spec.slos]
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]

    def _save(self) -> None:
        assert self.state_path is not None
        state = {"version": STATE_VERSION, "fingerprint": self.fingerprint(), "skipped": self._skipped,
                 "offsets": {name: {"offset": cp.offset, "inode": cp.inode}
                             for name, cp in sorted(self._offsets.items())},
                 "series": {sid: _series_state(s) for sid, s in self._series.items()}}
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        # derived data, rewritten every pass: atomic, not synced (a state lost to a power cut is an older
        # checkpoint whose counts match its offsets, or unreadable and recounted from the log)
        atomic_write_bytes(self.state_path, orjson.dumps(state, option=orjson.OPT_SERIALIZE_NUMPY), mode=0o600,
                           ops=UNSYNCED_OPS)

    def _load(self) -> None:
        assert self.state_path is not None
        try:
            state = json.loads(self.state_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError, UnicodeDecodeError):
            state = None
        try:
            if not isinstance(state, dict) or state.get("version") != STATE_VERSION \
                    or state.get("fingerprint") != self.fingerprint():
                raise ValueError("state from another SLO file or version")
            offsets = {str(name): _Checkpoint(int(cp["offset"]), int(cp["inode"]))
                       for name, cp in state["offsets"].items()}
            for sid, saved in state["series"].items():
                series = self._series[sid]
                keys = np.asarray(saved["k"], dtype=np.int64)
                good, total = np.asarray(saved["good"], dtype=np.int64), np.asarray(saved["total"], dtype=np.int64)
                if not keys.shape == good.shape == total.shape:
                    raise ValueError("a series' bucket arrays differ in length")
                if len(keys):
                    series.add_many(keys * series.bucket_s, good=good, total=total)
                series.dropped = int(saved["dropped"])
            self._offsets, self._skipped = offsets, int(state["skipped"])
        except (ValueError, KeyError, TypeError, AttributeError, OverflowError, InvalidInput):
            # An unusable state is recomputed from the log (the counts are derived data, the log is the truth).
            self._fresh()
            self.last = ReadReport(reset=True)


def default_state_path(home: str | Path, spec: SLOFile, log_dir: str | Path) -> Path:
    """Where a workspace keeps the checkpoint of one service's SLOs over one log directory."""
    where = hashlib.sha256(str(Path(log_dir).resolve()).encode()).hexdigest()[:12]
    return Path(home) / "monitoring" / f"slo-{spec.service}-predlog-{where}.json"


def for_workspace(workspace: Any, spec: SLOFile, *, clock: Clock) -> PredictionLogSource:
    """The serving SLOs of ``spec`` over the workspace's prediction log, checkpointed under its monitoring dir."""
    from .workspace import prediction_log_dir

    directory = prediction_log_dir(workspace.home)
    return PredictionLogSource(directory, spec, clock, state_path=default_state_path(workspace.home, spec, directory))


__all__ = ["LOG_SLIS", "PredictionLogSource", "ReadReport", "classify", "default_state_path", "for_workspace",
           "is_client_error", "record_time"]
