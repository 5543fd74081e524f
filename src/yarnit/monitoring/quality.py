"""Prediction quality with delayed labels: the prediction log joined with labels as they arrive.

The join key is ``(request id, instance index)``: the request id the client
named (``X-Request-Id``, or an OIP v2 body ``id``; else the server's own,
echoed in every answer) and the position of the instance in that request. It
identifies no shopper, so labels can be exported, stored and joined without
personal data. The YarnIt world sends such ids (``HttpRanker``) and exports
its clicks, purchases and fraud flags by them (``yarnit.world.request_labels``).

What :func:`update` does, incrementally, in one SQLite transaction (state in
``monitoring/quality.sqlite3``):

1. reads the prediction-log segments from a checkpoint (byte offset and inode
   per segment, as :mod:`.predlog_source` does): each answered request adds
   its scores to the hour's :class:`~.quality_summary.QualitySummary` of its
   model, version and slices, and one pending row per instance;
2. joins the labels ingested meanwhile (:func:`ingest_labels`) with those
   rows: the labelled part of the summaries, and per-minute sums for the
   ``prediction_quality`` SLI;
3. counts ``label_completeness``: a prediction whose label is due (its time
   plus the model's ``label_delay``, from the workspace's SLO file, default
   1 day) is one event in the minute it became due, good when its label had
   arrived by then;
4. freezes, for each hour that ended, a CBPE estimate of its AUC, accuracy
   and CTR from the scores alone, and once the hour's labels are due scores
   the estimate against the realized values (``estimates`` table).

Because the offsets and everything derived from the records commit together,
a crash re-reads nothing twice and skips nothing; ``kill -9`` leaves the last
committed state (SQLite's journal). Never a crash on bad labels: a label is
counted and dropped when it is malformed (``invalid``), arrives later than the
clock's now plus ``max_future_s`` (``future``: a skewed clock), repeats one
already joined or ingested (``duplicate``), happened before its prediction
(``early``), or names no prediction once ``unknown_grace_s`` has passed
(``unknown``; the log may trail the labels a little). A label that arrives
after its due time still counts for quality (``late``), not for completeness.

Where things are: :mod:`.labels` reads label files, :mod:`.quality_store`
holds the state, :mod:`.quality_summary` the histograms and their metrics;
this module runs the join and answers the SLIs and reports.

Bounded: a pending prediction row lives until twice its label delay has
passed; summaries are one sparse histogram per hour, model, version and
slice value; slices are a fixed list of request fields (never personal data),
at most ``max_slice_values`` values each (the rest are ``_other``).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from yarnit.core.clock import Clock
from yarnit.core.errors import ConfigError, InvalidInput, NotFound
from yarnit.serving.predlog import read_segment, segment_paths, segment_stat

from .counts import EventCounts
from .labels import NOT_SHOWN, IngestReport, ingest_labels, read_label_rows
from .predlog_source import record_time
from .quality_store import (
    _COUNTERS,
    COMPLETENESS_CHANGES,
    COMPLETENESS_KEY,
    _REQUEST_ID,
    _SLICE_VALUE,
    DEFAULT_LABEL_DELAY_S,
    HOUR_S,
    QUALITY_SLIS,
    QUALITY_WINDOW_S,
    REFERENCE_S,
    SLICE_FIELDS,
    QualityConfig,
    QualityStore,
    config_for,
    quality_db_path,
)
from .quality_summary import QualitySummary, calibration_map
from .slo import SLO, SLOFile

JOIN_PAGE = 50_000  # labels joined per page
MAX_CACHED_SUMMARIES = 1000  # hourly summaries held in memory during a run (≈80 KB each) before writing back


_STR_OR_NONE = frozenset((str, type(None)))


def _unit_scores(scores: list[Any]) -> bool:
    """``all(type(s) in (float, int) and 0.0 <= s <= 1.0 for s in scores)``, one numpy pass for plain floats
    (a NaN fails both comparisons in either form)."""
    if set(map(type, scores)) == {float}:
        values = np.array(scores, dtype=np.float64)
        return bool(((values >= 0.0) & (values <= 1.0)).all())
    return all(type(s) in (float, int) and 0.0 <= s <= 1.0 for s in scores)


# -- the incremental join ---------------------------------------------------------------------------------
class QualityJoin:
    """One run of the join over a workspace's log and labels (see the module docstring)."""

    def __init__(self, store: QualityStore, log_dir: Path, config: QualityConfig, clock: Clock) -> None:
        self.store, self.log_dir, self.config, self.clock = store, log_dir, config, clock
        self._summaries: dict[tuple[str, str, str, int], QualitySummary] = {}
        self._minutes: dict[tuple[str, int], list[float]] = defaultdict(lambda: [0, 0.0, 0])

    def run(self) -> dict[str, Any]:
        now_s = self.clock.now().timestamp()
        with self.store.transaction():
            counters = self.store.counters()
            before = dict(counters)
            read = self._read_log(counters)
            self._join(counters, now_s)
            self._flush()
            self._complete(counters, now_s)
            self._estimate(counters, now_s)
            self.store.set_meta("counters", counters)
        pending = self.store.conn.execute("SELECT count(*) FROM predictions WHERE label_value IS NULL").fetchone()[0]
        waiting = self.store.conn.execute("SELECT count(*) FROM labels").fetchone()[0]
        return {"now": datetime.fromtimestamp(now_s, timezone.utc).isoformat(), **read,
                "this_run": {k: counters[k] - before[k] for k in _COUNTERS if counters[k] != before[k]},
                "totals": counters, "pending_predictions": pending, "labels_waiting": waiting}

    # 1. the log
    def _read_log(self, counters: dict[str, int]) -> dict[str, Any]:
        store = self.store
        offsets: dict[str, list[int]] = store.meta("offsets") or {}
        segments = segment_paths(self.log_dir)
        seen = {p.name for p in segments}
        offsets = {name: cp for name, cp in offsets.items() if name in seen}
        slice_values: dict[str, dict[str, list[str]]] = store.meta("slice_values") or {}
        read_bytes = 0
        for path in segments:
            try:
                stat = segment_stat(path)
            except FileNotFoundError:
                continue
            cp = offsets.get(path.name)
            if cp is not None and (cp[1] != stat.st_ino or stat.st_size < cp[0]):
                offsets[path.name] = [stat.st_size, stat.st_ino]  # rewritten by erasure: go on from its end
                continue
            offset = cp[0] if cp is not None else 0
            if stat.st_size <= offset:
                continue
            try:
                segment = read_segment(path, offset)
            except FileNotFoundError:  # pruned meanwhile
                continue
            read_bytes += segment.end - offset
            for record in segment.records:
                self._record(record, counters, slice_values)
            offsets[path.name] = [segment.end, stat.st_ino]
        store.set_meta("offsets", offsets)
        store.set_meta("slice_values", slice_values)
        return {"segments": len(segments), "bytes_read": read_bytes}

    def _record(self, record: Mapping[str, Any], counters: dict[str, int],
                slice_values: dict[str, dict[str, list[str]]]) -> None:
        if record.get("role") != "primary" or record.get("status") != 200:
            return
        counters["records"] += 1
        scores = record.get("predictions")
        request_id, model = record.get("request_id"), record.get("model")
        if not isinstance(scores, list) or not scores or not isinstance(model, str) or not isinstance(
                request_id, str) or not _REQUEST_ID.match(request_id) or not _unit_scores(scores):
            counters["unscored"] += 1  # a ranking model's slates, or no request id: nothing to join
            return
        at_s = record_time(record)
        if at_s is None:
            counters["no_time"] += 1
            return
        version = str(record.get("version", ""))
        instances = record.get("instances")
        instances = instances if isinstance(instances, list) and len(instances) == len(scores) else None
        pii = set(record.get("pii") or ()) if isinstance(record.get("pii"), list) else set()
        delay = self.config.delay_s(model)
        hour = math.floor(at_s / HOUR_S)
        fields = [name for name in self.config.slice_fields if name not in pii]
        encoded: dict[tuple[Any, ...], tuple[list[str], str]] = {}  # an instance's slice values -> (slices, JSON)
        rows, slices_of = [], []
        for index, score in enumerate(scores):
            instance = instances[index] if instances else None
            if isinstance(instance, dict):
                key = tuple(map(instance.get, fields))
                if not _STR_OR_NONE.issuperset(map(type, key)):  # only plain values slice (a key must be hashable)
                    key = tuple(v if isinstance(v, (str, int)) else None for v in key)
            else:
                key = ()
            found = encoded.get(key)
            if found is None:
                slices = self._slices(model, dict(zip(fields, key, strict=False)), slice_values) if key else []
                found = encoded[key] = (slices, json.dumps(slices))
            slices_of.append(found[0])
            rows.append((request_id, index, model, version, at_s, float(score), found[1], at_s + delay,
                         at_s + 2 * delay))
        conn = self.store.conn
        before = conn.total_changes
        conn.executemany("INSERT OR IGNORE INTO predictions (request_id, idx, model, version, time_s, score, slices, "
                         "due_s, expire_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        added = conn.total_changes - before
        counters["predictions"] += added
        counters["duplicate_predictions"] += len(rows) - added
        kept = range(len(rows))
        if added != len(rows):  # a request id used twice: only the instances first seen count
            first = {r[0] for r in conn.execute("SELECT idx FROM predictions WHERE request_id = ? AND time_s = ?",
                                                (request_id, at_s))}
            kept = [i for i in kept if i in first]
        by_slice: dict[str, list[float]] = defaultdict(list)
        for i in kept:
            score = rows[i][5]
            by_slice[""].append(score)
            for slice_ in slices_of[i]:
                by_slice[slice_].append(score)
        for slice_, values in by_slice.items():
            self._summary(model, version, slice_, hour).add_predictions(values)

    def _slices(self, model: str, values: Mapping[str, Any],
                slice_values: dict[str, dict[str, list[str]]]) -> list[str]:
        """``name=value`` for each slice field with a short, plain value (the ``max_slice_values``-th on: _other)."""
        out = []
        known = slice_values.setdefault(model, {})
        for name, value in values.items():
            if value is None:
                continue
            text = str(value)
            if not _SLICE_VALUE.match(text):
                continue
            seen = known.setdefault(name, [])
            if text not in seen:
                if len(seen) >= self.config.max_slice_values:
                    text = "_other"
                else:
                    seen.append(text)
            out.append(f"{name}={text}")
        return out

    def _summary(self, model: str, version: str, slice_: str, hour: int) -> QualitySummary:
        key = (model, version, slice_, hour)
        summary = self._summaries.get(key)
        if summary is None:
            if len(self._summaries) >= MAX_CACHED_SUMMARIES:  # bounded memory: write back (same transaction)
                self._flush_summaries()
            summary = self._summaries[key] = self.store.summary(*key)
        return summary

    # 2. labels
    def _join(self, counters: dict[str, int], now_s: float) -> None:
        conn = self.store.conn
        after: tuple[str, int] = ("", -1)
        while True:  # in pages of JOIN_PAGE labels, by key: memory stays bounded however many wait
            rows = conn.execute(
                "SELECT l.request_id, l.idx, l.value, l.event_s, l.arrival_s, l.ingested_s, p.model, p.version, "
                "p.time_s, p.score, p.slices, p.due_s, p.label_value FROM labels l LEFT JOIN predictions p "
                "ON p.request_id = l.request_id AND p.idx = l.idx WHERE (l.request_id, l.idx) > (?, ?) "
                "ORDER BY l.request_id, l.idx LIMIT ?", (*after, JOIN_PAGE)).fetchall()
            if not rows:
                return
            self._join_page(rows, counters, now_s)
            after = (rows[-1][0], rows[-1][1])

    def _join_page(self, rows: list[Any], counters: dict[str, int], now_s: float) -> None:
        conn = self.store.conn
        done: list[tuple[str, int]] = []
        joined: list[tuple[int, float, str, int]] = []
        labelled: dict[tuple[str, str, str, int], tuple[list[float], list[int]]] = defaultdict(lambda: ([], []))
        withdrawn: dict[tuple[str, str, str, int], tuple[list[float], list[int]]] = defaultdict(lambda: ([], []))
        unshown: list[tuple[str, int]] = []
        decoded: dict[str, list[str]] = {}
        for (request_id, index, value, event_s, arrival_s, ingested_s, model, version, time_s, score, slices, due_s,
             label_value) in rows:
            if model is None:
                if now_s - ingested_s >= self.config.unknown_grace_s:
                    counters["unknown"] += 1
                    done.append((request_id, index))
                continue
            done.append((request_id, index))
            if label_value is not None:
                counters["duplicate"] += 1
                continue
            if value == NOT_SHOWN:  # never shown: out of completeness and of the predictions awaiting labels
                counters["not_shown"] += 1
                unshown.append((request_id, index))
                names = decoded.get(slices)
                if names is None:
                    names = decoded[slices] = ["", *json.loads(slices)]
                for slice_ in names:
                    scores, _values = withdrawn[(model, version, slice_, math.floor(time_s / HOUR_S))]
                    scores.append(score)
                continue
            if event_s < time_s - self.config.max_early_s:
                counters["early"] += 1
                continue
            counters["labels_joined"] += 1
            if arrival_s > due_s:
                counters["late"] += 1
            joined.append((value, arrival_s, request_id, index))
            hour = math.floor(time_s / HOUR_S)
            names = decoded.get(slices)
            if names is None:
                names = decoded[slices] = ["", *json.loads(slices)]
            for slice_ in names:
                scores, values = labelled[(model, version, slice_, hour)]
                scores.append(score)
                values.append(value)
            minute = self._minutes[(model, math.floor(time_s / 60))]
            minute[0] += 1
            minute[1] += score
            minute[2] += value
        for (model, version, slice_, hour), (scores, values) in labelled.items():
            self._summary(model, version, slice_, hour).add_labelled(np.asarray(scores), np.asarray(values))
        for (model, version, slice_, hour), (scores, _values) in withdrawn.items():
            self._summary(model, version, slice_, hour).remove_predictions(np.asarray(scores))
        conn.executemany(f"UPDATE predictions SET label_value = {NOT_SHOWN}, counted = 1 WHERE request_id = ? AND "
                         "idx = ?", unshown)
        conn.executemany("UPDATE predictions SET label_value = ?, label_arrival_s = ? WHERE request_id = ? AND "
                         "idx = ?", joined)
        conn.executemany("DELETE FROM labels WHERE request_id = ? AND idx = ?", done)

    def _flush_summaries(self) -> None:
        for key, summary in self._summaries.items():
            self.store.put_summary(*key, summary)
        self._summaries.clear()

    def _flush(self) -> None:
        self._flush_summaries()
        self.store.conn.executemany(
            "INSERT INTO quality_minutes VALUES (?, ?, ?, ?, ?) ON CONFLICT(model, minute) DO UPDATE SET "
            "n = n + excluded.n, sum_p = sum_p + excluded.sum_p, pos = pos + excluded.pos",
            [(model, minute, int(n), float(s), int(p)) for (model, minute), (n, s, p) in self._minutes.items()])

    # 3. completeness, and forgetting predictions past their late labels
    def _complete(self, counters: dict[str, int], now_s: float) -> None:
        conn = self.store.conn
        due, earliest = conn.execute("SELECT count(*), MIN(due_s) FROM predictions WHERE counted = 0 AND due_s <= ?",
                                     (now_s,)).fetchone()
        conn.execute(
            "INSERT INTO completeness (model, minute, good, total) SELECT model, CAST(due_s / 60 AS INTEGER) AS m, "
            "SUM(label_arrival_s IS NOT NULL AND label_arrival_s <= due_s), COUNT(*) FROM predictions "
            "WHERE counted = 0 AND due_s <= ? GROUP BY model, m ON CONFLICT(model, minute) DO UPDATE SET "
            "good = good + excluded.good, total = total + excluded.total", (now_s,))
        conn.execute("UPDATE predictions SET counted = 1 WHERE counted = 0 AND due_s <= ?", (now_s,))
        conn.execute("DELETE FROM predictions WHERE +counted = 1 AND expire_s <= ?", (now_s,))  # the expire_s index
        counters["completeness_events"] += due
        if due:  # saved with the counters, in this run's transaction
            self.store.note_completeness(math.floor(earliest / 60), due)

    # 4. estimates before labels, scored once the labels are due
    def _estimate(self, counters: dict[str, int], now_s: float) -> None:
        conn, store = self.store.conn, self.store
        last_hour = math.floor(now_s / HOUR_S) - 1  # hours that have ended
        # the keys from the whole-traffic index (summaries_whole), then the text of the few hours without an
        # estimate: a join that selected the text read every stored summary's row, every pass
        todo = conn.execute(
            "SELECT s.model, s.version, s.hour FROM summaries s LEFT JOIN estimates e ON e.model = s.model "
            "AND e.version = s.version AND e.hour = s.hour WHERE s.slice = '' AND s.hour <= ? AND e.hour IS NULL",
            (last_hour,)).fetchall()
        for model, version, hour in todo:
            (data,) = conn.execute("SELECT data FROM summaries WHERE model = ? AND version = ? AND slice = '' AND "
                                   "hour = ?", (model, version, hour)).fetchone()
            summary = QualitySummary.from_json(json.loads(data))
            reference = store.merged(model, start_hour=hour - REFERENCE_S // HOUR_S, end_hour=hour,
                                     version=version, slice_="").get((version, ""))
            mapping = calibration_map(reference) if reference is not None else None
            estimate = summary.estimate(mapping)
            conn.execute("INSERT INTO estimates (model, version, hour, count, estimated_auc, estimated_accuracy, "
                         "estimated_ctr, calibrated_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         (model, version, hour, estimate["count"], estimate["auc"], estimate["accuracy"],
                          estimate["ctr"], estimate["calibrated_by"]))
            counters["estimates"] += 1
        open_rows = conn.execute("SELECT model, version, hour FROM estimates WHERE final = 0").fetchall()
        for model, version, hour in open_rows:
            if (hour + 1) * HOUR_S + self.config.delay_s(model) > now_s:
                continue
            realized = store.summary(model, version, "", hour).metrics()
            conn.execute("UPDATE estimates SET realized_auc = ?, realized_accuracy = ?, realized_ctr = ?, "
                         "labelled = ?, final = 1 WHERE model = ? AND version = ? AND hour = ?",
                         (realized["auc"], realized["accuracy"], realized["ctr"], realized["labelled"], model,
                          version, hour))
            counters["estimates_scored"] += 1


def update(workspace: Any, *, clock: Clock | None = None, config: QualityConfig | None = None) -> dict[str, Any]:
    """Read new log segments, join the labels ingested since, count completeness, estimate and score (JSON-able)."""
    from .workspace import load_workspace_slos, prediction_log_dir

    clock = clock or workspace.clock
    config = config or config_for(load_workspace_slos(workspace.home))
    store = QualityStore(quality_db_path(workspace.home))
    try:
        return QualityJoin(store, prediction_log_dir(workspace.home), config, clock).run()
    finally:
        store.close()


# -- SLIs --------------------------------------------------------------------------------------------------
def _band(slo: SLO) -> tuple[float, float]:
    raw = slo.params.get("calibration_band", [0.8, 1.25])
    if not (isinstance(raw, (list, tuple)) and len(raw) == 2 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in raw)
            and 0 < raw[0] <= 1 <= raw[1]):
        raise ConfigError(f"slos[{slo.name}].params.calibration_band must be [low, high] with 0 < low <= 1 <= high "
                          f"(mean prediction / observed rate), got {raw!r}. The default is [0.8, 1.25].")
    return float(raw[0]), float(raw[1])


def _ratio_min(slo: SLO) -> float:
    raw = slo.params.get("ctr_ratio_min", 0.9)
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not 0 < raw <= 10:
        raise ConfigError(f"slos[{slo.name}].params.ctr_ratio_min must be a number in (0, 10], got {raw!r}.")
    return float(raw)


def quality_events(minutes: Mapping[int, tuple[int, float, int]], baseline: Mapping[int, tuple[int, float, int]],
                   *, band: tuple[float, float], ratio_min: float,
                   window_min: int = QUALITY_WINDOW_S // 60) -> dict[int, bool]:
    """minute -> good, for every minute with labelled predictions (``minutes``: minute -> (n, Σ p, positives)).

    A minute is judged on the labelled predictions of the ``window_min``
    minutes ending with it: calibration ``Σ p / positives`` inside ``band``
    (no positive at all is out of band), and, when the baseline has labelled
    predictions in the same minutes, CTR at least ``ratio_min`` times the
    baseline's. A minute without labels is no event (not a good one).
    """
    out: dict[int, bool] = {}
    if not minutes:
        return out
    keys = sorted(minutes)
    lo, hi = keys[0] - window_min + 1, keys[-1]

    def cumulative(series: Mapping[int, tuple[int, float, int]]) -> np.ndarray:
        table = np.zeros((hi - lo + 2, 3))
        for minute, (n, s, p) in series.items():
            if lo <= minute <= hi:
                table[minute - lo + 1] = (n, s, p)
        return np.cumsum(table, axis=0)

    own, base = cumulative(minutes), cumulative(baseline)
    for minute in keys:
        if minutes[minute][0] <= 0:
            continue
        end, start = minute - lo + 1, max(minute - window_min + 1 - lo, 0)
        n, s, p = own[end] - own[start]
        bn, _bs, bp = base[end] - base[start]
        calibrated = p > 0 and band[0] * p <= s <= band[1] * p
        ctr_ok = bn <= 0 or p * bn >= ratio_min * bp * n
        out[minute] = bool(calibrated and ctr_ok)
    return out


class QualitySource:
    """``prediction_quality`` and ``label_completeness`` counts from the join's state (an SLISource).

    :meth:`counts` first brings the state up to the clock's now (:func:`update`, at most once per instant).
    """

    def __init__(self, workspace: Any, spec: SLOFile, *, clock: Clock, config: QualityConfig | None = None) -> None:
        self.workspace, self.spec, self.clock = workspace, spec, clock
        self.config = config
        self.last: dict[str, Any] | None = None
        self._refreshed_at: float | None = None
        # model -> (last change token seen, completeness_events then, first minute, minutes, good, total)
        self._kept_completeness: dict[str | None, tuple[Any, int, int, np.ndarray, np.ndarray, np.ndarray]] = {}

    def refresh(self) -> dict[str, Any]:
        now_s = self.clock.now().timestamp()
        if self._refreshed_at != now_s or self.last is None:
            self.last = update(self.workspace, clock=self.clock, config=self.config)
            self._refreshed_at = now_s
        return self.last

    def updated(self, report: dict[str, Any], at_s: float) -> None:
        """The monitor ran :func:`update` at ``at_s`` with the workspace's own SLO file: do not run it again then."""
        from .workspace import load_workspace_slos

        if self.config is None or self.config == config_for(load_workspace_slos(self.workspace.home)):
            self.last, self._refreshed_at = report, at_s

    def counts(self, slo: SLO, *, until_s: float) -> EventCounts:
        if slo.sli not in QUALITY_SLIS:
            raise ConfigError(f"SLO {slo.name!r} has SLI {slo.sli!r}; this source counts only "
                              f"{', '.join(sorted(QUALITY_SLIS))}.")
        self.refresh()
        counts = EventCounts.for_span(max([slo.window_s, *slo.windows_s()]))
        first = math.floor((until_s - counts.capacity * 60) / 60)
        last = math.ceil(until_s / 60) - 1
        store = QualityStore(quality_db_path(self.workspace.home))
        try:
            conn = store.conn
            if slo.sli == "label_completeness":
                minutes, good, total = self._completeness(store, slo.model, first)
                keep = minutes <= last
                if keep.any():
                    counts.add_many(minutes[keep] * 60, good=good[keep], total=total[keep])
                return counts
            baseline_model = slo.params.get("baseline")
            lo = first - QUALITY_WINDOW_S // 60

            def series(model: str | None, exclude: str | None) -> dict[int, tuple[int, float, int]]:
                clause, args = ("model = ?", (model,)) if model is not None else ("model != ?", (exclude or "",))
                return {int(m): (int(n), float(s), int(p)) for m, n, s, p in conn.execute(
                    f"SELECT minute, SUM(n), SUM(sum_p), SUM(pos) FROM quality_minutes WHERE {clause} AND minute >= ? "
                    "AND minute <= ? GROUP BY minute", (*args, lo, last))}

            own = series(slo.model, str(baseline_model) if baseline_model is not None else None)
            base = series(str(baseline_model), None) if baseline_model is not None else {}
            events = quality_events(own, base, band=_band(slo), ratio_min=_ratio_min(slo))
            kept = sorted((m, int(g)) for m, g in events.items() if m >= first)
            if kept:
                counts.add_many([m * 60 for m, _g in kept], good=[g for _m, g in kept], total=[1] * len(kept))
            return counts
        finally:
            store.close()


    def _completeness(self, store: QualityStore, model: str | None,
                      first: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(minute, good, total) of ``model``'s completeness from minute ``first`` on, sorted by minute.

        Kept between calls with the last change token and ``completeness_events`` counter seen
        (:meth:`QualityStore.note_completeness`): a pass re-reads only the minutes changed since (the hour's
        newly due predictions), not 28 days of them. It recounts from ``first`` when its token is gone, a change
        since says None, or the counter moved by more than the changes noted since.
        """
        changes = store.meta(COMPLETENESS_KEY) or []
        events = store.counters()["completeness_events"]
        kept = self._kept_completeness.get(model)
        since: int | None = first  # the first minute to (re-)read; None: nothing changed
        if kept is not None and kept[2] <= first:
            token, seen_events = kept[0], kept[1]
            tokens = [c[0] for c in changes]
            after = None
            if token in tokens:
                after = changes[tokens.index(token) + 1:]
            elif token is None and len(changes) < COMPLETENESS_CHANGES:  # none noted then: every one since is here
                after = changes
            if after is not None and all(c[1] is not None for c in after) \
                    and seen_events + sum(int(c[2]) for c in after) == events:
                since = max(first, min(int(c[1]) for c in after)) if after else None
        if since is not None:
            where, args = ("", ()) if model is None else (" AND model = ?", (model,))
            rows = store.conn.execute(f"SELECT minute, SUM(good), SUM(total) FROM completeness WHERE minute >= ?"
                                      f"{where} GROUP BY minute ORDER BY minute", (since, *args)).fetchall()
            fresh = np.array(rows, dtype=np.int64).reshape(-1, 3)
            if since == first or kept is None:
                arrays = fresh[:, 0], fresh[:, 1], fresh[:, 2]
            else:
                cut = int(np.searchsorted(kept[3], since))
                arrays = tuple(np.concatenate([old[:cut], fresh[:, i]]) for i, old in enumerate(kept[3:]))
        else:
            arrays = kept[3:]  # type: ignore[index,assignment]
        start = int(np.searchsorted(arrays[0], first))
        minutes, good, total = (a[start:] for a in arrays)
        self._kept_completeness[model] = (changes[-1][0] if changes else None, events, first, minutes, good, total)
        return minutes, good, total


def for_workspace(workspace: Any, spec: SLOFile, *, clock: Clock) -> QualitySource:
    """The quality SLOs of ``spec`` over the workspace's prediction log and ingested labels."""
    for slo in spec.slos:  # bad params fail when the source is built, naming the field
        if slo.sli == "prediction_quality":
            _band(slo), _ratio_min(slo)
    return QualitySource(workspace, spec, clock=clock, config=config_for(spec))


# -- reports -------------------------------------------------------------------------------------------------
def quality_report(workspace: Any, model: str, *, window_s: int, by: str | None = None,
                   clock: Clock | None = None) -> dict[str, Any]:
    """Realized quality (with 95 % intervals) and the CBPE estimate of the predictions still without labels.

    Groups: one per version (and per value of ``by``, a slice field) over the
    hours that overlap ``[now - window_s, now]``; estimates frozen before the
    labels came, scored against them, are listed under ``estimate_history``.
    """
    clock = clock or workspace.clock
    if by is not None and by not in SLICE_FIELDS:
        raise InvalidInput(f"Cannot slice by {by!r}: quality is summarized by {', '.join(SLICE_FIELDS)}.")
    if window_s <= 0:
        raise InvalidInput(f"The window must be positive, got {window_s} s.")
    now_s = clock.now().timestamp()
    start_hour, end_hour = math.floor((now_s - window_s) / HOUR_S), math.floor(now_s / HOUR_S) + 1  # to now, incl.
    store = QualityStore(quality_db_path(workspace.home))
    try:
        # only what is shown is parsed: the whole traffic (slice "") or the slices of ``by``
        merged = store.merged(model, start_hour=start_hour, end_hour=end_hour, slice_="" if by is None else None,
                              slice_field=by)
        if not merged:
            _require_known_model(workspace, store, model)
        groups = []
        for (version, slice_), summary in sorted(merged.items()):
            if by is None and slice_ != "":
                continue
            if by is not None and not slice_.startswith(f"{by}="):
                continue
            pending = QualitySummary(n=summary.n - summary.pos - summary.neg, p=summary.p - summary.lab_p)
            mapping = calibration_map(summary)
            groups.append({"version": version, "slice": slice_.split("=", 1)[1] if slice_ else None,
                           "realized": summary.metrics(), "pending": pending.count,
                           "estimate": pending.estimate(mapping)})
        history = [dict(zip(("version", "hour", "count", "estimated_auc", "realized_auc", "estimated_ctr",
                             "realized_ctr", "estimated_accuracy", "realized_accuracy", "labelled", "calibrated_by"),
                            row, strict=True))
                   for row in store.conn.execute(
                       "SELECT version, hour, count, estimated_auc, realized_auc, estimated_ctr, realized_ctr, "
                       "estimated_accuracy, realized_accuracy, labelled, calibrated_by FROM estimates WHERE model = ? "
                       "AND final = 1 AND hour >= ? AND hour < ? ORDER BY version, hour",
                       (model, start_hour, end_hour))]
        for row in history:
            row["start"] = datetime.fromtimestamp(row.pop("hour") * HOUR_S, timezone.utc).isoformat()
            row["auc_error"] = None if row["estimated_auc"] is None or row["realized_auc"] is None else \
                row["estimated_auc"] - row["realized_auc"]
        errors = [abs(r["auc_error"]) for r in history if r["auc_error"] is not None]
        good, total = store.conn.execute(
            "SELECT COALESCE(SUM(good), 0), COALESCE(SUM(total), 0) FROM completeness WHERE model = ? AND "
            "minute >= ? AND minute <= ?", (model, math.floor((now_s - window_s) / 60), math.floor(now_s / 60))
        ).fetchone()
        return {"model": model, "window_s": window_s, "by": by, "now": clock.now().isoformat(), "groups": groups,
                "label_completeness": {"good": int(good), "total": int(total),
                                       "ratio": good / total if total else None},
                "estimate_history": history,
                "estimate_mean_abs_auc_error": sum(errors) / len(errors) if errors else None,
                "skips": store.counters()}
    finally:
        store.close()


def _require_known_model(workspace: Any, store: QualityStore, model: str) -> None:
    """NotFound for a name that is neither registered nor in the quality summaries (a typo is not an empty report)."""
    if store.conn.execute("SELECT 1 FROM summaries WHERE model = ? LIMIT 1", (model,)).fetchone() is not None:
        return
    from yarnit.registry import ModelRegistry

    if ModelRegistry(workspace).exists(model):
        return
    known = sorted({str(r[0]) for r in store.conn.execute("SELECT DISTINCT model FROM summaries")})
    raise NotFound(f"model {model!r} has no quality summarized and is not registered; known: "
                   f"{', '.join(known) or 'none'}.")


def report_json(report: Mapping[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=True, default=str)


__all__ = ["DEFAULT_LABEL_DELAY_S", "QUALITY_SLIS", "SLICE_FIELDS", "IngestReport", "QualityConfig", "QualityJoin",
           "QualitySource", "QualityStore", "config_for", "for_workspace", "ingest_labels", "quality_db_path",
           "quality_events", "quality_report", "read_label_rows", "update"]
