"""The state of the quality join: one SQLite file under the monitoring directory, and what the join is told.

:class:`QualityStore` holds the pending predictions, the labels waiting for
them, the hourly summaries, the per-minute SLI sums, the completeness counts,
the frozen estimates and the log checkpoint (``meta``). Every run of
:mod:`.quality` is one transaction over it. It is derived data: deleting the
file makes the next run rebuild it from the log (labels must then be ingested
again).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from yarnit.core.atomic import is_durable
from yarnit.core.errors import ConfigError
from yarnit.serving.predlog import DEFAULT_PII_FIELDS

from .quality_summary import QualitySummary
from .slo import SLOFile, parse_duration

QUALITY_SLIS = frozenset({"prediction_quality", "label_completeness"})
DB_NAME = "quality.sqlite3"
SCHEMA_VERSION = 1
DEFAULT_LABEL_DELAY_S = 86_400
QUALITY_WINDOW_S = 3600  # a prediction_quality minute is judged on the labelled predictions of the hour before it
HOUR_S = 3600
REFERENCE_S = 7 * 86_400  # CBPE's calibration map is fitted on the labelled predictions of the week before
#: Request fields a summary may be sliced by (never personal data: DEFAULT_PII_FIELDS are excluded).
SLICE_FIELDS = tuple(f for f in ("country", "language", "device", "currency", "product_type", "query_kind")
                     if f not in DEFAULT_PII_FIELDS)
#: ``meta`` key of the completeness changes (:meth:`QualityStore.note_completeness`), and how many are kept.
COMPLETENESS_KEY = "completeness_changes"
COMPLETENESS_CHANGES = 256
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_SLICE_VALUE = re.compile(r"^[A-Za-z0-9 _.:-]{1,32}$")



@dataclass(frozen=True)
class QualityConfig:
    """What the join needs to know; :func:`config_for` reads it from the workspace's SLO file."""

    kind: str = "click"  # the label kind that is the models' target (others are counted and ignored)
    label_delay_s: Mapping[str, int] = field(default_factory=dict)  # per model; DEFAULT_LABEL_DELAY_S otherwise
    default_label_delay_s: int = DEFAULT_LABEL_DELAY_S
    slice_fields: tuple[str, ...] = SLICE_FIELDS
    max_slice_values: int = 64
    max_future_s: float = 300.0
    max_early_s: float = 300.0
    unknown_grace_s: float = 3600.0

    def delay_s(self, model: str) -> int:
        return int(self.label_delay_s.get(model, self.default_label_delay_s))


def config_for(spec: SLOFile | None, **overrides: Any) -> QualityConfig:
    """Label delays from the ``label_completeness`` SLOs of ``spec`` (one without a model sets the default)."""
    delays: dict[str, int] = {}
    default = DEFAULT_LABEL_DELAY_S
    for slo in spec.slos if spec is not None else ():
        if slo.sli == "label_completeness" and "label_delay" in slo.params:
            seconds = parse_duration(slo.params["label_delay"], f"slos[{slo.name}].params.label_delay")
            if slo.model is None:
                default = seconds
            else:
                delays[slo.model] = seconds
    return QualityConfig(label_delay_s=delays, default_label_delay_s=default, **overrides)


def quality_db_path(home: str | Path) -> Path:
    from .workspace import monitoring_dir

    return monitoring_dir(home) / DB_NAME


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS predictions (
    request_id TEXT NOT NULL, idx INTEGER NOT NULL, model TEXT NOT NULL, version TEXT NOT NULL,
    time_s REAL NOT NULL, score REAL NOT NULL, slices TEXT NOT NULL, due_s REAL NOT NULL, expire_s REAL NOT NULL,
    label_value INTEGER, label_arrival_s REAL, counted INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (request_id, idx)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS predictions_due ON predictions (counted, due_s);
CREATE INDEX IF NOT EXISTS predictions_expire ON predictions (expire_s);
CREATE INDEX IF NOT EXISTS predictions_pending ON predictions (counted) WHERE label_value IS NULL;
CREATE TABLE IF NOT EXISTS labels (
    request_id TEXT NOT NULL, idx INTEGER NOT NULL, value INTEGER NOT NULL, event_s REAL NOT NULL,
    arrival_s REAL NOT NULL, ingested_s REAL NOT NULL, PRIMARY KEY (request_id, idx)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS summaries (
    model TEXT NOT NULL, version TEXT NOT NULL, slice TEXT NOT NULL, hour INTEGER NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (model, version, slice, hour)) WITHOUT ROWID;
-- the whole-traffic hours alone (the estimates' "which hours have none yet" reads these keys, not every slice's
-- summary text); added to older files when they are opened
CREATE INDEX IF NOT EXISTS summaries_whole ON summaries (hour, model, version) WHERE slice = '';
CREATE TABLE IF NOT EXISTS quality_minutes (
    model TEXT NOT NULL, minute INTEGER NOT NULL, n INTEGER NOT NULL, sum_p REAL NOT NULL, pos INTEGER NOT NULL,
    PRIMARY KEY (model, minute)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS completeness (
    model TEXT NOT NULL, minute INTEGER NOT NULL, good INTEGER NOT NULL, total INTEGER NOT NULL,
    PRIMARY KEY (model, minute)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS estimates (
    model TEXT NOT NULL, version TEXT NOT NULL, hour INTEGER NOT NULL, count INTEGER NOT NULL,
    estimated_auc REAL, estimated_accuracy REAL, estimated_ctr REAL, calibrated_by TEXT NOT NULL,
    realized_auc REAL, realized_accuracy REAL, realized_ctr REAL, labelled INTEGER, final INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (model, version, hour)) WITHOUT ROWID;
"""
_COUNTERS = ("records", "predictions", "duplicate_predictions", "unscored", "no_time", "labels_joined",
             "invalid", "future", "duplicate", "early", "unknown", "late", "ignored_kind", "completeness_events",
             "estimates", "estimates_scored", "not_shown")


class QualityStore:
    """The join's state: one SQLite file under the monitoring directory (derived data: delete it to rebuild)."""

    def __init__(self, path: str | Path, *, durable: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        self.conn.execute("PRAGMA journal_mode=WAL")
        # The join's writes are derived data: WAL's NORMAL level survives a killed process, and a power cut can at
        # worst lose the last passes, which the next one redoes from the log checkpoint kept in the same file.
        # Ingested labels are not derived: ``durable`` (their ingest) syncs every commit.
        self.conn.execute(f"PRAGMA synchronous={('FULL' if durable else 'NORMAL') if is_durable() else 'OFF'}")
        if _opened_before(self.path):
            return
        self.conn.executescript(_SCHEMA)
        with self.transaction():
            version = self.meta("schema_version")
            if version is None:
                self.set_meta("schema_version", SCHEMA_VERSION)
            elif version != SCHEMA_VERSION:
                raise ConfigError(f"{self.path} was written by another version of yarnit (schema {version}, this "
                                  f"one reads {SCHEMA_VERSION}). It holds derived data: delete it and run "
                                  "`yarnit monitor run` to rebuild it from the log and the labels.")
        _keep_open(self.path)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def meta(self, key: str) -> Any:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def set_meta(self, key: str, value: Any) -> None:
        self.conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET "
                          "value = excluded.value", (key, json.dumps(value, sort_keys=True)))

    def note_completeness(self, from_minute: int | None, added: int) -> None:
        """Say that the completeness counts changed from ``from_minute`` on (None: anywhere, e.g. rows deleted)
        by ``added`` events (what the change adds to the ``completeness_events`` counter).

        Each change gets a new token in ``meta.completeness_changes`` (the last :data:`COMPLETENESS_CHANGES`): a
        reader that remembers the token and the counter it last saw re-reads only the minutes changed since, and
        recounts the window when its token is gone (another file, or too many changes since), a change says
        None, or the counter moved by more than the changes noted (a writer of an older yarnit notes nothing).
        """
        changes = self.meta(COMPLETENESS_KEY) or []
        changes.append([secrets.token_hex(8), from_minute, int(added)])
        self.set_meta(COMPLETENESS_KEY, changes[-COMPLETENESS_CHANGES:])

    def counters(self) -> dict[str, int]:
        saved = self.meta("counters") or {}
        return {name: int(saved.get(name, 0)) for name in _COUNTERS}

    def summary(self, model: str, version: str, slice_: str, hour: int) -> QualitySummary:
        row = self.conn.execute("SELECT data FROM summaries WHERE model = ? AND version = ? AND slice = ? AND "
                                "hour = ?", (model, version, slice_, hour)).fetchone()
        return QualitySummary() if row is None else QualitySummary.from_json(_loads(row[0]))

    def put_summary(self, model: str, version: str, slice_: str, hour: int, summary: QualitySummary) -> None:
        self.conn.execute("INSERT INTO summaries VALUES (?, ?, ?, ?, ?) ON CONFLICT(model, version, slice, hour) DO "
                          "UPDATE SET data = excluded.data",
                          (model, version, slice_, hour, orjson.dumps(summary.to_json()).decode()))

    def merged(self, model: str, *, start_hour: int, end_hour: int, version: str | None = None,
               slice_: str | None = None, slice_field: str | None = None) -> dict[tuple[str, str], QualitySummary]:
        """(version, slice) -> the summaries of hours ``[start_hour, end_hour)`` merged; ``version`` and
        ``slice_`` keep only that version or slice (``""``: the whole traffic), ``slice_field`` only the slices
        of that field (``device=…``), and parse nothing else."""
        out: dict[tuple[str, str], QualitySummary] = {}
        # One seek per version on the key (model, version, slice, hour): a query on the model alone would read
        # every stored hour of every version and slice (tens of MB after a month) to keep a day of them.
        for v in [version] if version is not None else self.versions(model):
            sql = ("SELECT version, slice, data FROM summaries WHERE model = ? AND version = ? AND hour >= ? "
                   "AND hour < ?")
            args: list[Any] = [model, v, start_hour, end_hour]
            if slice_ is not None:
                sql, args = sql + " AND slice = ?", [*args, slice_]
            if slice_field is not None:  # "device=" <= slice < "device>": that field's values, a range of the key
                sql, args = sql + " AND slice >= ? AND slice < ?", [*args, f"{slice_field}=", f"{slice_field}>"]
            for version_, slice_value, data in self.conn.execute(sql, args):
                key = (version_, slice_value)
                if key not in out:
                    out[key] = QualitySummary()
                out[key].merge(_parsed(data, shared=True))  # added into a summary of our own: no copy needed
        return out

    def versions(self, model: str) -> list[str]:
        """The versions of ``model`` with summaries, each found by one seek on the key (never a scan)."""
        found: list[str] = []
        row = self.conn.execute("SELECT MIN(version) FROM summaries WHERE model = ?", (model,)).fetchone()
        while row is not None and row[0] is not None:
            found.append(row[0])
            row = self.conn.execute("SELECT MIN(version) FROM summaries WHERE model = ? AND version > ?",
                                    (model, row[0])).fetchone()
        return found

    def close(self) -> None:
        self.conn.close()



# -- connections: the schema checked once per file, and one idle connection kept open per file ---------------
# Closing the last connection to a WAL database checkpoints it (copies the WAL into the file and syncs it):
# with a store opened and closed several times a monitor pass, that was most of a pass's write cost. One idle
# connection per file and process stays open, so closes do not checkpoint; SQLite still checkpoints as the WAL
# grows (every 1,000 pages), and a killed process leaves a WAL that the next open recovers. A file replaced or
# deleted (derived data: the way to rebuild it) is a new inode, checked and kept afresh.
_KEPT: dict[tuple[str, int, int], sqlite3.Connection] = {}
_KEPT_LOCK = threading.Lock()
_KEPT_MAX = 64


def _identity(path: Path) -> tuple[str, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return str(path), st.st_dev, st.st_ino


def _opened_before(path: Path) -> bool:
    key = _identity(path)
    return key is not None and key in _KEPT


def _keep_open(path: Path) -> None:
    key = _identity(path)
    if key is None:
        return
    with _KEPT_LOCK:
        if key in _KEPT:
            return
        if len(_KEPT) >= _KEPT_MAX:  # many workspaces in one process (tests): let the oldest go
            _KEPT.pop(next(iter(_KEPT))).close()
        keeper = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        # one read maps the WAL index: from then on this connection counts as open, and closing another is
        # no longer closing the last one (a connection that never read does not count)
        keeper.execute("SELECT 1 FROM meta LIMIT 1").fetchall()
        _KEPT[key] = keeper


def _forget_kept() -> None:
    """In a forked child: the parent's idle connections are the parent's (never used, never closed here)."""
    _ABANDONED.extend(_KEPT.values())
    _KEPT.clear()


_ABANDONED: list[sqlite3.Connection] = []
os.register_at_fork(after_in_child=_forget_kept)


def _loads(data: str) -> Any:
    try:
        return orjson.loads(data)  # several times json's speed on these arrays
    except orjson.JSONDecodeError:
        return json.loads(data)  # written by json: a NaN or Infinity is legal there


def _parsed(data: str, *, shared: bool = False) -> QualitySummary:
    """A stored summary's text as a new :class:`QualitySummary` (merging adds in place, so never a shared one),
    or with ``shared`` the kept one itself, for a caller that only adds it into another summary.

    The parse is kept by text: a CBPE estimate merges the week of hourly summaries before each new hour, and
    the same stored texts come back hour after hour; a summary changed by newly joined labels is a new text.
    """
    cached = _PARSED.get(data)
    if cached is None:
        cached = QualitySummary.from_json(_loads(data))
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.clear()
        _PARSED[data] = cached
    return cached if shared else cached.copy()


_PARSED: dict[str, QualitySummary] = {}
_PARSED_MAX = 4096  # about a week of hourly summaries for a few versions and slices


__all__ = ["DEFAULT_LABEL_DELAY_S", "QUALITY_SLIS", "SLICE_FIELDS", "QualityConfig", "QualityStore", "config_for",
           "quality_db_path"]
