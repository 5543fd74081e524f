"""Feature view records in the metadata store: versions, consumers and materialization runs.

Applying a definition whose version is already recorded is a no-op (owner and
description, which do not change values, are updated with an audit entry);
applying a changed definition records a new numbered version next to the old
ones. Consumers are the models that read a view: registered explicitly with
:meth:`FeatureRegistry.add_consumer`, or found in a model version's signature
under ``"features"`` (a list of ``view:feature`` references).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.exc import IntegrityError as SqlIntegrityError

from yarnit.core.errors import Conflict
from yarnit.core.ids import check_name, new_id
from yarnit.storage import Workspace
from yarnit.storage.schema import (
    audit_log,
    feature_consumers,
    feature_materializations,
    feature_views,
    model_versions,
)

from .definitions import FeatureView, check_unique
from .errors import FeatureViewNotFound


@dataclass(frozen=True)
class ViewVersion:
    """One recorded version of a feature view."""

    id: str
    number: int
    view: FeatureView
    created_at: datetime

    @property
    def name(self) -> str:
        return self.view.name

    @property
    def version(self) -> str:
        return self.view.version

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "number": self.number, "created_at": self.created_at.isoformat()} | self.view.to_dict()


@dataclass(frozen=True)
class Consumer:
    """A model (or other reader) that uses features of a view."""

    view_name: str
    consumer: str
    kind: str
    features: tuple[str, ...]
    source: str  # "registered" or "signature"

    def to_dict(self) -> dict[str, Any]:
        return {"view": self.view_name, "consumer": self.consumer, "kind": self.kind,
                "features": list(self.features), "source": self.source}


@dataclass(frozen=True)
class MaterializationRun:
    id: str
    view_name: str
    view_version: str
    mode: str
    state: str
    store: str
    window_start: datetime | None
    window_end: datetime
    rows_offered: int | None
    rows_written: int | None
    started_at: datetime
    ended_at: datetime | None
    error: str | None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.__dict__)
        for key in ("window_start", "window_end", "started_at", "ended_at"):
            out[key] = None if out[key] is None else out[key].isoformat()
        return out


def _to_version(row: Any) -> ViewVersion:
    data = dict(row["definition"]) | {"owner": row["owner"], "description": row["description"],
                                      "version": row["version"]}
    return ViewVersion(id=row["id"], number=row["number"], view=FeatureView.from_dict(data),
                       created_at=row["created_at"])


class FeatureRegistry:
    """Records feature view versions and their consumers in a workspace's metadata store."""

    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace

    # --- views ---------------------------------------------------------------------------------
    def apply(self, views: Iterable[FeatureView], *, actor: str = "cli") -> list[ViewVersion]:
        """Record each view (a new version if its definition changed); returns the recorded versions."""
        return [self._apply_one(view, actor) for view in check_unique(views)]

    def _apply_one(self, view: FeatureView, actor: str) -> ViewVersion:
        for _attempt in range(5):
            try:
                with self.ws.metadata.begin() as conn:
                    row = conn.execute(select(feature_views).where(and_(
                        feature_views.c.name == view.name, feature_views.c.version == view.version))
                    ).mappings().first()
                    now = self.ws.clock.now()
                    if row is not None:
                        if (row["owner"], row["description"]) != (view.owner, view.description):
                            conn.execute(update(feature_views).where(feature_views.c.id == row["id"]).values(
                                owner=view.owner, description=view.description))
                            conn.execute(insert(audit_log).values(
                                at=now, actor=actor, action="feature_view.annotate",
                                subject=f"{view.name}:v{row['number']}",
                                detail={"owner": [row["owner"], view.owner],
                                        "description_changed": row["description"] != view.description}))
                        break
                    number = (conn.execute(select(func.max(feature_views.c.number)).where(
                        feature_views.c.name == view.name)).scalar() or 0) + 1
                    conn.execute(insert(feature_views).values(
                        id=new_id("fv", self.ws.clock), name=view.name, number=number, version=view.version,
                        definition=view.definition(), owner=view.owner, description=view.description,
                        created_at=now))
                    conn.execute(insert(audit_log).values(
                        at=now, actor=actor, action="feature_view.register", subject=f"{view.name}:v{number}",
                        detail={"version": view.version}))
                break
            except SqlIntegrityError:
                continue  # a concurrent apply took the number or recorded the same version; look again
        else:  # pragma: no cover - needs five colliding writers in a row
            raise Conflict(f"Could not record feature view {view.name!r}: concurrent writers kept colliding; retry.")
        return self.get_version(view.name, view.version)

    def names(self) -> list[str]:
        with self.ws.metadata.begin() as conn:
            return [r[0] for r in conn.execute(select(feature_views.c.name).distinct().order_by(feature_views.c.name))]

    def get(self, name: str, number: int | None = None) -> ViewVersion:
        """Version ``number`` of view ``name`` (the newest when None)."""
        query = select(feature_views).where(feature_views.c.name == name)
        query = query.order_by(feature_views.c.number.desc()).limit(1) if number is None else query.where(
            feature_views.c.number == number)
        with self.ws.metadata.begin() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            raise FeatureViewNotFound(name, self.names(), number)
        return _to_version(row)

    def get_version(self, name: str, version: str) -> ViewVersion:
        """The recorded view ``name`` whose definition hashes to ``version``."""
        with self.ws.metadata.begin() as conn:
            row = conn.execute(select(feature_views).where(and_(
                feature_views.c.name == name, feature_views.c.version == version))).mappings().first()
        if row is None:
            raise FeatureViewNotFound(f"{name}@{version}", self.names())
        return _to_version(row)

    def versions(self, name: str) -> list[ViewVersion]:
        with self.ws.metadata.begin() as conn:
            rows = conn.execute(select(feature_views).where(feature_views.c.name == name)
                                .order_by(feature_views.c.number)).mappings().all()
        if not rows:
            raise FeatureViewNotFound(name, self.names())
        return [_to_version(r) for r in rows]

    def list(self) -> list[ViewVersion]:
        """The newest version of every view, by name."""
        newest = select(feature_views.c.name, func.max(feature_views.c.number).label("n")).group_by(
            feature_views.c.name).subquery()
        query = select(feature_views).join(newest, and_(
            feature_views.c.name == newest.c.name, feature_views.c.number == newest.c.n)).order_by(feature_views.c.name)
        with self.ws.metadata.begin() as conn:
            return [_to_version(r) for r in conn.execute(query).mappings().all()]

    # --- consumers -----------------------------------------------------------------------------
    def add_consumer(self, view_name: str, consumer: str, *, features: Sequence[str] = (),
                     kind: str = "model") -> Consumer:
        """Record that ``consumer`` (e.g. a model name) reads ``features`` of ``view_name`` (all if empty)."""
        view = self.get(view_name).view
        for name in features:
            view.feature(name)
        check_name("Consumer", consumer)
        now = self.ws.clock.now()
        with self.ws.metadata.begin() as conn:
            exists = conn.execute(select(feature_consumers.c.consumer).where(and_(
                feature_consumers.c.view_name == view_name, feature_consumers.c.consumer == consumer))).first()
            if exists:
                conn.execute(update(feature_consumers).where(and_(
                    feature_consumers.c.view_name == view_name, feature_consumers.c.consumer == consumer)).values(
                    kind=kind, features=list(features), registered_at=now))
            else:
                conn.execute(insert(feature_consumers).values(
                    view_name=view_name, consumer=consumer, kind=kind, features=list(features), registered_at=now))
        return Consumer(view_name, consumer, kind, tuple(features), "registered")

    def consumers(self, view_name: str | None = None) -> list[Consumer]:
        """Who reads each view: registered consumers plus models whose signature lists its features."""
        query = select(feature_consumers).order_by(feature_consumers.c.view_name, feature_consumers.c.consumer)
        if view_name is not None:
            query = query.where(feature_consumers.c.view_name == view_name)
        with self.ws.metadata.begin() as conn:
            out = [Consumer(r["view_name"], r["consumer"], r["kind"], tuple(r["features"] or ()), "registered")
                   for r in conn.execute(query).mappings()]
            signatures = conn.execute(select(model_versions.c.model_name, model_versions.c.signature)).all()
        known = {(c.view_name, c.consumer) for c in out}
        derived: dict[tuple[str, str], set[str]] = {}
        for model_name, signature in signatures:
            refs = (signature or {}).get("features") if isinstance(signature, dict) else None
            if not isinstance(refs, list):
                continue
            for ref in refs:
                if not isinstance(ref, str):
                    continue
                view, _, feature = ref.partition(":")
                if view_name is not None and view != view_name:
                    continue
                names = derived.setdefault((view, model_name), set())
                if feature:
                    names.add(feature)
        for (view, model_name), names in sorted(derived.items()):
            if (view, model_name) not in known:
                out.append(Consumer(view, model_name, "model", tuple(sorted(names)), "signature"))
        return out

    # --- materialization runs ------------------------------------------------------------------
    def start_run(self, view: FeatureView, *, mode: str, store: str, window_end: datetime) -> str:
        run_id = new_id("mat", self.ws.clock)
        with self.ws.metadata.begin() as conn:
            conn.execute(insert(feature_materializations).values(
                id=run_id, view_name=view.name, view_version=view.version, mode=mode, state="running",
                store=store[:256], window_end=window_end, started_at=self.ws.clock.now()))
        return run_id

    def finish_run(self, run_id: str, *, state: str, mode: str | None = None, window_start: datetime | None = None,
                   rows_offered: int | None = None, rows_written: int | None = None,
                   error: str | None = None) -> None:
        values: dict[str, Any] = {"state": state, "ended_at": self.ws.clock.now(), "window_start": window_start,
                                  "rows_offered": rows_offered, "rows_written": rows_written, "error": error}
        if mode is not None:
            values["mode"] = mode
        with self.ws.metadata.begin() as conn:
            conn.execute(update(feature_materializations).where(feature_materializations.c.id == run_id)
                         .values(**values))

    def runs(self, view_name: str, *, limit: int = 20) -> list[MaterializationRun]:
        query = (select(feature_materializations).where(feature_materializations.c.view_name == view_name)
                 .order_by(feature_materializations.c.started_at.desc(), feature_materializations.c.id.desc())
                 .limit(limit))
        with self.ws.metadata.begin() as conn:
            return [MaterializationRun(**dict(r)) for r in conn.execute(query).mappings()]


__all__ = ["Consumer", "FeatureRegistry", "MaterializationRun", "ViewVersion"]
