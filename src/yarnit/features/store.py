"""FeatureStore: the registry, the offline store and the online store of one workspace, used together.

Example:
    >>> from datetime import timedelta
    >>> import pandas as pd
    >>> from yarnit.core import Settings, SimulatedClock, utc
    >>> from yarnit.storage import open_workspace
    >>> from yarnit.features import FeatureStore, feature_view
    >>> import tempfile
    >>> home = tempfile.mkdtemp()
    >>> ws = open_workspace(Settings.for_home(home), SimulatedClock(utc(2026, 1, 5)))
    >>> @feature_view(entities={"user_id": "string"}, features={"clicks_7d": "int64"}, ttl=timedelta(days=2),
    ...               sources=("clicks",))
    ... def user_clicks(clicks: pd.DataFrame) -> pd.DataFrame:
    ...     return clicks
    >>> store = FeatureStore(ws)
    >>> clicks = pd.DataFrame({"user_id": ["u1", "u2"], "clicks_7d": [3, 5],
    ...                        "event_time": pd.to_datetime(["2026-01-03", "2026-01-04"], utc=True)})
    >>> store.backfill(user_clicks, sources={"clicks": clicks}).rows
    2
    >>> store.materialize("user_clicks").rows_written
    2
    >>> [r.values["clicks_7d"] for r in store.read_online("user_clicks", ["u1", "u2"])]
    [3, 5]
    >>> entities = pd.DataFrame({"user_id": ["u1", "u2"],
    ...                          "event_time": pd.to_datetime(["2026-01-03T12:00", "2026-01-03T12:00"], utc=True)})
    >>> store.training_frame(entities, ["user_clicks:clicks_7d"])["clicks_7d"].tolist()
    [3.0, nan]
    >>> store.close(); ws.close()
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from yarnit.core.errors import InvalidInput
from yarnit.core.settings import redact_url
from yarnit.storage import Workspace

from .definitions import FeatureView, SourceData, restricted_cause
from .errors import FeatureComputeError, NaiveTimestamp
from .freshness import Freshness, view_freshness
from .materialize import MaterializationResult, Progress, materialize
from .offline import OfflineStore, OfflineWrite, backfill
from .online import OnlineFeatures, OnlineRow, OnlineStore, open_online_store, parse_refs
from .online_targets import record_online_store
from .registry import FeatureRegistry, ViewVersion
from .skew import ServingLog, SkewReport, skew_report

__all__ = ["FeatureStore"]


class FeatureStore:
    """Feature views of a workspace: define, backfill, materialize, serve, join, check skew and freshness.

    Args:
        workspace: the open workspace (metadata store, clock, home directory).
        online_url: the online store (default: the workspace's ``online_store_url``).
        online: an already open online store (overrides ``online_url``).
        offline_root: where offline Parquet lives (default: ``$YARNIT_HOME/features/offline``).
        actor: who the audit log names for definitions this store records, its own ``apply`` and the implicit
            one of ``backfill`` (the CLI passes ``user:<os user>``; default ``cli``).
    """

    def __init__(self, workspace: Workspace, *, online_url: str | None = None, online: OnlineStore | None = None,
                 offline_root: str | Path | None = None, actor: str = "cli") -> None:
        self.ws = workspace
        self.actor = actor
        self.clock = workspace.clock
        self.registry = FeatureRegistry(workspace)
        self.offline = OfflineStore(Path(offline_root) if offline_root else workspace.home / "features" / "offline")
        self.online_url = online.url if online is not None else (online_url or workspace.settings.online_store_url)
        self._online = online
        self._owns_online = online is None

    @property
    def online(self) -> OnlineStore:
        if self._online is None:
            self._online = open_online_store(self.online_url)
        return self._online

    def close(self) -> None:
        if self._online is not None and self._owns_online:
            self._online.close()
            self._online = None

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- definitions ---------------------------------------------------------------------------
    def apply(self, views: Iterable[FeatureView], *, actor: str | None = None) -> list[ViewVersion]:
        """Record definitions in the registry (a changed definition becomes a new version), audited as
        ``actor`` (default: the store's)."""
        return self.registry.apply(views, actor=actor or self.actor)

    def view(self, name: str, number: int | None = None) -> FeatureView:
        """The registered view ``name`` (newest version unless ``number``)."""
        return self.registry.get(name, number).view

    def _resolve(self, view: str | FeatureView) -> FeatureView:
        return view if isinstance(view, FeatureView) else self.view(view)

    # --- offline -------------------------------------------------------------------------------
    def sources_for(self, view: FeatureView) -> dict[str, pd.DataFrame]:
        """The newest dataset version of each source of ``view``, as its compliant view (book CH4-R3): a
        restricted column is replaced by its declared compliant transform's output (``age`` → ``age_band``)."""
        return self._compliant_sources(view)[0]

    def _compliant_sources(self, view: FeatureView) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
        from yarnit.data import Datasets, Lineage
        from yarnit.data.restricted import compliant_table, restrictions_of

        datasets = Datasets(self.ws)
        frames, restricted, used = {}, {}, []
        for name in view.sources:
            version = datasets.get(name)
            restrictions = restrictions_of(self.ws, version)
            restricted[name] = (version.ref, restrictions)
            frames[name] = compliant_table(datasets.read_table(version), restrictions).to_pandas()
            used.append(version.id)
        self.apply([view])  # lineage names the recorded view version
        Lineage(self.ws).record_feature_sources(view.name, view.version, used)
        return frames, restricted

    def backfill(self, view: FeatureView, *, sources: Mapping[str, SourceData] | None = None,
                 start: datetime | None = None, end: datetime | None = None,
                 progress: Progress | None = None) -> OfflineWrite:
        """Register ``view`` and compute it over ``sources`` (default: workspace datasets) into the offline store.

        Workspace datasets are read as their compliant view; a definition that reads a restricted column raw
        fails with :class:`~yarnit.data.restricted.RestrictedColumn`, naming the compliant column to use.
        """
        self.apply([view])
        if sources is not None:
            return backfill(view, dict(sources), self.offline, start=start, end=end, progress=progress)
        frames, restricted = self._compliant_sources(view)
        try:
            return backfill(view, dict(frames), self.offline, start=start, end=end, progress=progress)
        except FeatureComputeError as exc:
            error = restricted_cause(view, exc, restricted)
            if error is exc:
                raise
            raise error from exc

    def write_offline(self, view: FeatureView, rows: SourceData) -> OfflineWrite:
        """Register ``view`` and store precomputed rows of it (replacing the days they cover)."""
        self.apply([view])
        return self.offline.write(view, rows)

    def training_frame(self, entity_rows: pd.DataFrame | pa.Table, features: Sequence[str], *,
                       timestamp_column: str = "event_time", full_names: bool = False,
                       views: Sequence[FeatureView] | None = None) -> pd.DataFrame:
        """A point-in-time-correct training set: every entity row plus the requested features.

        ``features`` are ``view:feature`` references (or ``view`` for all its
        features) of registered views (or of ``views`` when given).
        """
        known = {v.name: v for v in views} if views is not None else self._views_for(features)
        wanted = parse_refs(features, known)
        requests = [(known[name], names) for name, names in wanted.items()]
        table = self.offline.point_in_time_join(entity_rows, requests, timestamp_column=timestamp_column,
                                                full_names=full_names)
        return table.to_pandas()

    def _views_for(self, refs: Sequence[str]) -> dict[str, FeatureView]:
        if isinstance(refs, str):
            raise InvalidInput(f"features must be a list of 'view:feature' references, got the string {refs!r}.")
        out: dict[str, FeatureView] = {}
        for ref in refs:
            name = str(ref).partition(":")[0]
            if name not in out:
                out[name] = self.view(name)
        return out

    # --- online --------------------------------------------------------------------------------
    def materialize(self, view: str | FeatureView, *, full: bool = False, end: datetime | None = None,
                    chunk_rows: int = 100_000, progress: Progress | None = None) -> MaterializationResult:
        """Copy the newest offline values into the online store (incremental unless ``full``); recorded as a run."""
        resolved = self._resolve(view)
        if isinstance(view, FeatureView):
            self.apply([view])
        window_end = end if end is not None else self.clock.now()
        if window_end.tzinfo is None:
            raise NaiveTimestamp(f"Materialization end {window_end.isoformat()!r}")
        run_id = self.registry.start_run(resolved, mode="full" if full else "incremental",
                                         store=redact_url(self.online_url), window_end=window_end)
        record_online_store(self.ws, self.online_url)  # forget must reach this store even after a switch
        try:
            result = materialize(resolved, self.offline, self.online, clock=self.clock, full=full, end=window_end,
                                 chunk_rows=chunk_rows, progress=progress)
        except BaseException as exc:
            self.registry.finish_run(run_id, state="failed", error=f"{type(exc).__name__}: {exc}"[:2000])
            raise
        self.registry.finish_run(run_id, state="succeeded", mode=result.mode, window_start=result.window_start,
                                 rows_offered=result.rows_offered, rows_written=result.rows_written)
        from yarnit.data import Lineage  # local, like sources_for: features do not import data at load time

        Lineage(self.ws).record_materialization(resolved.name, resolved.version, run_id)
        return result

    def reader(self, names: Sequence[str] | None = None, *, log: ServingLog | None = None) -> OnlineFeatures:
        """An online reader for registered views (all of them by default), optionally logging for skew checks."""
        views = [self.view(n) for n in names] if names is not None else [v.view for v in self.registry.list()]
        return OnlineFeatures(self.online, views, self.clock, log=log)

    def read_online(self, name: str, keys: Sequence[Any]) -> list[OnlineRow]:
        """Online values of view ``name`` for ``keys`` (for serving, keep a :meth:`reader` instead)."""
        return OnlineFeatures(self.online, [self.view(name)], self.clock).read(name, keys)

    # --- monitoring ----------------------------------------------------------------------------
    def freshness(self, names: Sequence[str] | None = None) -> list[Freshness]:
        views = [self.view(n) for n in names] if names is not None else [v.view for v in self.registry.list()]
        return [view_freshness(v, self.online, self.clock) for v in views]

    def serving_log(self, *, sample_rate: float = 0.01, seed: int = 0, flush_rows: int = 10_000) -> ServingLog:
        """A serving log under ``$YARNIT_HOME/features/serving_log`` (attach it to a :meth:`reader`)."""
        return ServingLog(self.ws.home / "features" / "serving_log", sample_rate=sample_rate, seed=seed,
                          flush_rows=flush_rows)

    def skew(self, name: str, *, since: datetime | None = None, until: datetime | None = None,
             max_mismatch_rate: float = 0.0, tolerance: float = 1e-9) -> SkewReport:
        """Compare what serving logged for view ``name`` with the offline recomputation."""
        view = self.view(name)
        logged = self.serving_log().read(view, since=since, until=until)
        return skew_report(view, logged, self.offline, max_mismatch_rate=max_mismatch_rate, tolerance=tolerance)
