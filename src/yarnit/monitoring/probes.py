"""SLIs that are not requests: data and model freshness, pipeline success and golden correctness, from records.

:func:`for_workspace` gives an :class:`~yarnit.monitoring.burn.SLISource` for
the SLOs of kinds ``data_freshness``, ``model_freshness`` and
``pipeline_success``. Nothing here is sampled live and kept: every count is
recomputed from timestamps the workspace already records, so a monitor that
restarts (or runs for the first time over a month of history) gets exactly the
counts it would have had running all along.

**Freshness** (data and model) is a one-minute probe (OpenSLO's timeslices):
at each whole minute ``s`` (epoch seconds divisible by 60) up to the clock's
now, the probe asks "is the newest thing at most ``max_age`` old at ``s``?",
and its answer is one event, counted in the minute that ends at ``s`` (bucket
``[s - 60, s)``), so the probe taken at a minute boundary is in the window
that ends there. The thing's *data time* at ``s`` is given by the newest
record made at or before ``s``:

* ``feature_view``: the ``window_end`` of the view's newest **succeeded**
  materialization that had ended by ``s`` (any version of the view; failed
  runs change nothing online, so the data simply ages). That is the online
  store's watermark, not the newest event time inside it: a source that stops
  producing rows while materialization keeps running is not seen here (the
  live ``yarnit_feature_freshness_seconds`` gauge sees it);
* ``dataset``: the newest version's data time, ``retain_from`` when recorded
  (a version rewritten by ``forget`` keeps its original's, so an erasure does
  not make old data look fresh) else ``created_at``;
* ``model_freshness``: the ``created_at`` of the version the model's
  ``production`` alias pointed at, from the audited alias history (a rollback
  to an older version makes the model older; a deleted alias is a bad probe).

Probes start at the first record (before a view is first materialized there is
nothing to be fresh: no event, so the SLO reads ``no_data``, not bad). What is
*exact*: the number of probes and which are good, given the records — the
state is taken as constant between records, which is how the records define
it. What is *approximate*: only the meaning of "data time" stated above.

**Pipeline success**: every finished run of ``pipeline`` (every pipeline
without it) is one event in the minute it ended, good when it ``succeeded``;
a run whose lease expired (the process died) is a bad event at its lease's
end. Running runs are not counted yet. Exact.

**Golden correctness** (the golden-data prober, RELIABILITY.md target 8):
every golden record a finished run of ``pipeline`` (every pipeline without it)
injected is one event in the minute the run ended, good when it came out
correct; the run's metrics ``golden.injected`` and ``golden.correct`` (written
by the run's ``golden`` step, kept when that step fails) are the counts, so
correct/injected per run is the SLI. A run that never reached its golden step
injected nothing and counts nothing here (``pipeline_success`` counts it).
Exact.

Example:
    >>> counts = timeline_counts([(0.0, 0.0)], max_age_s=120, until_s=300, span_s=3600)
    >>> counts.window(end_s=300, window_s=300)   # probes at 60..300 s: ages 60, 120 good; 180, 240, 300 bad
    (2, 5)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import and_, func, select

from yarnit.core.clock import Clock
from yarnit.core.errors import ConfigError

from .counts import EventCounts
from .slo import SLO, SLOFile, parse_duration

PROBE_SLIS = frozenset({"data_freshness", "model_freshness", "pipeline_success", "golden_correctness"})
PROBE_S = 60  # one probe per minute: the evaluator's bucket
MAX_RECORDS = 100_000  # records read per SLO per evaluation (a month of one-minute materializations is 43,200)


def timeline_counts(changes: Sequence[tuple[float, float | None]], *, max_age_s: float, until_s: float,
                    span_s: int) -> EventCounts:
    """One-minute freshness probes over a timeline of records, as good/total counts.

    ``changes`` are ``(recorded_at_s, data_time_s)`` pairs: from ``recorded_at_s`` on, the newest data has
    time ``data_time_s`` (``None``: there is none, a bad probe). The probe at each whole minute ``s`` in
    ``(until_s - span_s, until_s]`` at or after the first record uses the newest record with
    ``recorded_at_s <= s`` and is good when ``s - data_time_s <= max_age_s``; it counts in bucket
    ``[s - 60, s)``.
    """
    counts = EventCounts.for_span(span_s, bucket_s=PROBE_S)
    if not changes:
        return counts
    order = sorted(range(len(changes)), key=lambda i: changes[i][0])  # stable: equal times keep record order
    at = np.array([changes[i][0] for i in order], dtype=np.float64)
    data = np.array([np.nan if changes[i][1] is None else changes[i][1] for i in order], dtype=np.float64)
    last = math.floor(until_s / PROBE_S) * PROBE_S
    first = max(math.ceil(at[0] / PROBE_S) * PROBE_S, last - span_s + PROBE_S)
    if first > last:
        return counts
    probes = np.arange(first, last + PROBE_S, PROBE_S, dtype=np.float64)
    index = np.searchsorted(at, probes, side="right") - 1  # >= 0: every probe is at or after the first record
    known = data[index]
    with np.errstate(invalid="ignore"):
        good = (~np.isnan(known)) & (probes - known <= max_age_s)
    # Runs of equal answers become one add_span each: a month of probes is a handful of calls.
    edges = np.flatnonzero(np.diff(good.astype(np.int8))) + 1
    starts = np.concatenate(([0], edges))
    ends = np.concatenate((edges, [len(probes)]))
    for lo, hi in zip(starts.tolist(), ends.tolist(), strict=True):
        counts.add_span(probes[lo] - PROBE_S, probes[hi - 1], good_per_bucket=int(good[lo]), total_per_bucket=1)
    return counts


def event_counts(events: Sequence[tuple[float, bool]], *, until_s: float, span_s: int) -> EventCounts:
    """Discrete events ``(at_s, good)`` up to ``until_s``, each counted in its own minute."""
    counts = EventCounts.for_span(span_s, bucket_s=PROBE_S)
    for at_s, ok in sorted(events):
        if at_s <= until_s:
            counts.add(at_s, good=1 if ok else 0, total=1)
    return counts


@dataclass
class ProbeReport:
    """What the last counts read: records per SLO (by id)."""

    records: dict[str, int] = field(default_factory=dict)


class ProbeSource:
    """The probe SLOs of ``spec``, recounted from the workspace's records at every :meth:`counts`."""

    def __init__(self, workspace: Any, spec: SLOFile, *, clock: Clock) -> None:
        self.workspace = workspace
        self.spec = spec
        self.clock = clock
        self.last = ProbeReport()

    def counts(self, slo: SLO, *, until_s: float) -> EventCounts:
        if slo.sli not in PROBE_SLIS:
            raise ConfigError(f"SLO {slo.name!r} has sli {slo.sli!r}; probes count only: "
                              f"{', '.join(sorted(PROBE_SLIS))}.")
        kind, name = _target(slo)  # a probe without its subject is refused here, naming the field
        span_s = max([slo.window_s, *slo.windows_s()])
        since = _when(until_s - span_s)
        until = _when(until_s)
        if slo.sli == "pipeline_success":
            events = self._runs(slo.params.get("pipeline"), since, until)
            self.last.records[slo.id] = len(events)
            return event_counts(events, until_s=until_s, span_s=span_s)
        if slo.sli == "golden_correctness":
            runs = self._golden(slo.params.get("pipeline"), since, until)
            self.last.records[slo.id] = len(runs)
            counts = EventCounts.for_span(span_s, bucket_s=PROBE_S)
            for at_s, correct, injected in sorted(runs):
                if at_s <= until_s:
                    counts.add(at_s, good=correct, total=injected)
            return counts
        reader = {"feature_view": self._materializations, "dataset": self._datasets, "model": self._production}[kind]
        changes = reader(name, since, until)
        self.last.records[slo.id] = len(changes)
        max_age_s = parse_duration(slo.params["max_age"], f"SLO {slo.name} params.max_age")
        return timeline_counts(changes, max_age_s=max_age_s, until_s=until_s, span_s=span_s)

    # -- the records ----------------------------------------------------------------------------
    def _rows(self, query: Any) -> list[Any]:
        with self.workspace.metadata.begin() as conn:
            return list(conn.execute(query.limit(MAX_RECORDS)).mappings())

    def _materializations(self, view: str, since: datetime, until: datetime) -> list[tuple[float, float | None]]:
        from yarnit.storage.schema import feature_materializations as t

        done = and_(t.c.view_name == view, t.c.state == "succeeded", t.c.ended_at.is_not(None),
                    t.c.ended_at <= until)
        before = self._rows(select(t.c.ended_at, t.c.window_end).where(and_(done, t.c.ended_at < since))
                            .order_by(t.c.ended_at.desc()).limit(1))
        inside = self._rows(select(t.c.ended_at, t.c.window_end).where(and_(done, t.c.ended_at >= since))
                            .order_by(t.c.ended_at))
        return [(r["ended_at"].timestamp(), r["window_end"].timestamp()) for r in [*before, *inside]]

    def _datasets(self, name: str, since: datetime, until: datetime) -> list[tuple[float, float | None]]:
        from yarnit.storage.schema import dataset_versions as t

        mine = and_(t.c.name == name, t.c.created_at <= until)
        columns = (t.c.created_at, t.c.retain_from)
        # The newest data by then is the running maximum (a rewrite made later carries an older time).
        rows = self._rows(select(*columns).where(and_(mine, t.c.created_at < since))
                          .order_by(func.coalesce(t.c.retain_from, t.c.created_at).desc()).limit(1))
        rows += self._rows(select(*columns).where(and_(mine, t.c.created_at >= since)).order_by(t.c.created_at))
        rows.sort(key=lambda r: r["created_at"])
        out: list[tuple[float, float | None]] = []
        newest = -math.inf
        for r in rows:
            newest = max(newest, (r["retain_from"] or r["created_at"]).timestamp())
            out.append((r["created_at"].timestamp(), newest))
        return out

    def _production(self, model: str, since: datetime, until: datetime) -> list[tuple[float, float | None]]:
        from yarnit.storage.schema import alias_events as e
        from yarnit.storage.schema import model_versions as v

        moves = and_(e.c.model_name == model, e.c.alias == "production", e.c.at <= until)
        created = select(v.c.created_at).where(and_(v.c.model_name == model, v.c.version == e.c.to_version)) \
            .scalar_subquery()
        columns = (e.c.at, e.c.to_version, created.label("created_at"))
        rows = self._rows(select(*columns).where(and_(moves, e.c.at < since)).order_by(e.c.at.desc(), e.c.id.desc())
                          .limit(1))
        rows += self._rows(select(*columns).where(and_(moves, e.c.at >= since)).order_by(e.c.at, e.c.id))
        return [(r["at"].timestamp(), None if r["created_at"] is None else r["created_at"].timestamp())
                for r in rows]

    def _runs(self, pipeline: str | None, since: datetime, until: datetime) -> list[tuple[float, bool]]:
        from yarnit.storage.schema import runs as t

        mine = [] if pipeline is None else [t.c.pipeline == pipeline]
        ended = self._rows(select(t.c.ended_at, t.c.state).where(and_(
            *mine, t.c.state != "running", t.c.ended_at.is_not(None), t.c.ended_at >= since, t.c.ended_at <= until)))
        events = [(r["ended_at"].timestamp(), r["state"] == "succeeded") for r in ended]
        # A run whose process died never ends: it is a failure once its lease has expired (as RunStore reads it).
        from yarnit.training.runs import DEFAULT_LEASE_S

        running = self._rows(select(t.c.started_at, t.c.heartbeat_at, t.c.lease_s).where(and_(
            *mine, t.c.state == "running")))
        for r in running:
            expired = (r["heartbeat_at"] or r["started_at"]) + timedelta(seconds=r["lease_s"] or DEFAULT_LEASE_S)
            if since <= expired <= until:
                events.append((expired.timestamp(), False))
        return events

    def _golden(self, pipeline: str | None, since: datetime, until: datetime) -> list[tuple[float, int, int]]:
        """``(ended_at_s, correct, injected)`` of each finished run in the window that injected golden records."""
        from yarnit.storage.schema import runs as t

        mine = [] if pipeline is None else [t.c.pipeline == pipeline]
        ended = self._rows(select(t.c.ended_at, t.c.metrics).where(and_(
            *mine, t.c.state != "running", t.c.ended_at.is_not(None), t.c.ended_at >= since, t.c.ended_at <= until)))
        out = []
        for r in ended:
            metrics = r["metrics"] or {}
            injected, correct = metrics.get("golden.injected"), metrics.get("golden.correct")
            if isinstance(injected, int) and isinstance(correct, int) and injected > 0:
                out.append((r["ended_at"].timestamp(), max(0, min(correct, injected)), injected))
        return out


def _target(slo: SLO) -> tuple[str, str]:
    """What the probe watches: (``feature_view`` | ``dataset`` | ``model``, its name)."""
    if slo.sli == "model_freshness":
        if slo.model is None:
            raise ConfigError(f"SLO {slo.name!r} (sli model_freshness) needs model: the model whose production "
                              "version must stay young.")
        return "model", slo.model
    if slo.sli == "data_freshness":
        given = [k for k in ("feature_view", "dataset") if slo.params.get(k) is not None]
        if len(given) != 1:
            raise ConfigError(f"SLO {slo.name!r} (sli data_freshness) needs exactly one of params.feature_view or "
                              f"params.dataset (what to probe), got {', '.join(given) or 'neither'}.")
        name = slo.params[given[0]]
        if not isinstance(name, str) or not name or len(name) > 63:
            raise ConfigError(f"SLO {slo.name!r} params.{given[0]} must be a name (at most 63 characters), got "
                              f"{str(name)[:80]!r}.")
        return given[0], name
    return "pipeline", str(slo.params.get("pipeline") or "")


def _when(epoch_s: float) -> datetime:
    from datetime import timezone

    return datetime.fromtimestamp(epoch_s, tz=timezone.utc)


def for_workspace(workspace: Any, spec: SLOFile, *, clock: Clock) -> ProbeSource:
    """The data freshness, model freshness and pipeline success SLOs of ``spec`` over ``workspace``'s records."""
    return ProbeSource(workspace, spec, clock=clock)


__all__ = ["PROBE_SLIS", "ProbeReport", "ProbeSource", "event_counts", "for_workspace", "timeline_counts"]
