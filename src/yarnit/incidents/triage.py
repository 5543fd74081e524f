"""Automatic triage: the changes that preceded an outage, ranked by lineage distance and by time.

Evidence, not conclusions: triage lists what changed in the workspace between
``outage_start - lookback`` and the detection, from the records each domain
already keeps, and says how close each change is to the affected model:

==========================  ==============================================  =========================
kind                        record                                          distance to model M
==========================  ==============================================  =========================
``alias_move``              ``alias_events`` (registry: promote, rollback)   0 for M's own aliases
``traffic_policy``          ``traffic_policy_events`` (router)               0 for M's own policy
``dataset_version``         ``dataset_versions``                             depth in M's upstream
                                                                             lineage; +1 for a new
                                                                             version of a dataset M
                                                                             was trained on
``feature_definition``      ``feature_views`` (a new definition version)     as datasets
``materialization``         ``feature_materializations``                     the view's distance + 1
``pipeline_run``            ``runs`` (failed or finished in the window)      depth of the run, or +1
                                                                             for another run of a
                                                                             pipeline that made M
``audit``                   ``audit_log`` (SLO file applied, overrides,      0 if it names M; a view's
                            feature views registered or annotated …)         record: the view's distance
``fault``                   a world's ``faults.json`` (injected faults)       unknown
==========================  ==============================================  =========================

"Upstream lineage" is :meth:`yarnit.data.Lineage.upstream` of the model
versions that served M around the outage (production at the outage start and
every version an alias move in the window touched). Items are ranked: on M's
lineage path first (smallest distance first), then related, then unrelated;
within a rank, changes *before* the outage start come before changes after it
(which cannot have caused it but may have made it worse), and the closest in
time first. Validation anomalies are not persisted by ``yarnit.data`` (a
validation that blocks an ingest raises); what persists of them is a failed
pipeline run, listed as such.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, or_, select

from yarnit.storage.schema import (
    alias_events,
    audit_log,
    dataset_versions,
    feature_materializations,
    feature_views,
    model_versions,
    runs,
    traffic_policy_events,
)

MAX_ITEMS = 200  # per incident: the rest is summarised as a count
MAX_ROWS = 2_000  # per record kind read


def _ts(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value


def _item(kind: str, record_id: str, at: datetime, summary: str, *, actor: str = "", subject: str = "",
          distance: int | None = None, relation: str = "unrelated", data_refs: Sequence[str] = (),
          detail: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": f"{kind}:{record_id}", "kind": kind, "at": at.isoformat(), "summary": summary, "actor": actor,
            "subject": subject, "lineage_distance": distance, "relation": relation, "data_refs": list(data_refs),
            "detail": detail or {}}


class _Lineage:
    """The upstream depths of the affected models' versions, by node, dataset name, view name and pipeline."""

    def __init__(self, ws: Any, model_version_ids: Iterable[str]) -> None:
        from yarnit.data import Lineage, Node

        self.nodes: dict[tuple[str, str], int] = {}
        lineage = Lineage(ws)
        for mv in model_version_ids:
            graph = lineage.upstream(Node("model_version", mv), depth=6)
            for node, depth in graph.depth.items():
                key = (node.kind, node.id)
                self.nodes[key] = min(depth, self.nodes.get(key, depth))
        self.dataset_names: dict[str, int] = {}
        self.view_names: dict[str, int] = {}
        self.pipelines: dict[str, int] = {}
        ds = [i for k, i in self.nodes if k == "dataset_version"]
        fv = [i for k, i in self.nodes if k == "feature_view"]
        rn = [i for k, i in self.nodes if k == "run"]
        with ws.metadata.begin() as conn:
            if ds:
                for vid, name in conn.execute(select(dataset_versions.c.id, dataset_versions.c.name)
                                              .where(dataset_versions.c.id.in_(ds[:500]))).all():
                    d = self.nodes[("dataset_version", vid)]
                    self.dataset_names[name] = min(d, self.dataset_names.get(name, d))
            if fv:
                for vid, name in conn.execute(select(feature_views.c.id, feature_views.c.name)
                                              .where(feature_views.c.id.in_(fv[:500]))).all():
                    d = self.nodes[("feature_view", vid)]
                    self.view_names[name] = min(d, self.view_names.get(name, d))
            if rn:
                for rid, pipeline in conn.execute(select(runs.c.id, runs.c.pipeline)
                                                  .where(runs.c.id.in_(rn[:500]))).all():
                    d = self.nodes[("run", rid)]
                    self.pipelines[pipeline] = min(d, self.pipelines.get(pipeline, d))

    def place(self, kind: str, node_id: str, name: str | None, names: dict[str, int]) -> tuple[int | None, str]:
        """(distance, relation) of a node: on the path, a sibling version of something on it, or unrelated."""
        if (kind, node_id) in self.nodes:
            return self.nodes[(kind, node_id)], "lineage"
        if name is not None and name in names:
            return names[name] + 1, "new version of an input"
        return None, "unrelated"


def _served_versions(ws: Any, models: Sequence[str], since: datetime, until: datetime,
                     outage_start: datetime) -> list[str]:
    """Model version ids that served ``models`` around the outage (production then, and every version moved)."""
    out: set[tuple[str, int]] = set()
    with ws.metadata.begin() as conn:
        rows = conn.execute(select(alias_events).where(alias_events.c.model_name.in_(list(models)))
                            .order_by(alias_events.c.id)).mappings().all()
    current: dict[tuple[str, str], int | None] = {}
    for r in rows:
        if _ts(r["at"]) <= outage_start:
            current[(r["model_name"], r["alias"])] = r["to_version"]
        if since <= _ts(r["at"]) <= until:
            for v in (r["from_version"], r["to_version"]):
                if v is not None:
                    out.add((r["model_name"], v))
    out.update((m, v) for (m, _a), v in current.items() if v is not None)
    if not out:
        return []
    with ws.metadata.begin() as conn:
        ids = conn.execute(select(model_versions.c.id, model_versions.c.model_name, model_versions.c.version)
                           .where(model_versions.c.model_name.in_(list(models)))).all()
    return sorted(i for i, m, v in ids if (m, v) in out)


def triage(ws: Any, *, models: Sequence[str], outage_start: datetime, detected_at: datetime,
           lookback_s: int = 7 * 86400, fault_files: Sequence[str | Path] = ()) -> list[dict[str, Any]]:
    """The changes between ``outage_start - lookback_s`` and ``detected_at``, ranked (see the module doc)."""
    since = outage_start - timedelta(seconds=lookback_s)
    until = detected_at
    models = list(models)
    lineage = _Lineage(ws, _served_versions(ws, models, since, until, outage_start)) if models else None
    items: list[dict[str, Any]] = []
    with ws.metadata.begin() as conn:
        for r in conn.execute(select(alias_events).where(and_(alias_events.c.at >= since, alias_events.c.at <= until))
                              .order_by(alias_events.c.id).limit(MAX_ROWS)).mappings():
            own = r["model_name"] in models
            items.append(_item(
                "alias_move", str(r["id"]), _ts(r["at"]),
                f"{r['action']}: {r['model_name']} {r['alias']} v{r['from_version']} -> v{r['to_version']}"
                + (f" ({r['reason']})" if r["reason"] else ""), actor=r["actor"],
                subject=f"model:{r['model_name']}", distance=0 if own else None,
                relation="the model itself" if own else "unrelated",
                detail={"model": r["model_name"], "alias": r["alias"], "from_version": r["from_version"],
                        "to_version": r["to_version"], "action": r["action"]}))
        for r in conn.execute(select(traffic_policy_events).where(and_(
                traffic_policy_events.c.at >= since, traffic_policy_events.c.at <= until))
                .order_by(traffic_policy_events.c.id).limit(MAX_ROWS)).mappings():
            own = r["model_name"] in models
            items.append(_item(
                "traffic_policy", str(r["id"]), _ts(r["at"]),
                f"traffic policy of {r['model_name']}: canary {r['from_canary_percent']} -> "
                f"{r['to_canary_percent']} %, shadow {r['from_shadow']} -> {r['to_shadow']}", actor=r["actor"],
                subject=f"model:{r['model_name']}", distance=0 if own else None,
                relation="the model itself" if own else "unrelated",
                detail={"model": r["model_name"], "to_canary_percent": r["to_canary_percent"],
                        "to_shadow": r["to_shadow"]}))
        for r in conn.execute(select(dataset_versions.c.id, dataset_versions.c.name, dataset_versions.c.version,
                                     dataset_versions.c.row_count, dataset_versions.c.created_at,
                                     dataset_versions.c.source)
                              .where(and_(dataset_versions.c.created_at >= since,
                                          dataset_versions.c.created_at <= until))
                              .order_by(dataset_versions.c.created_at).limit(MAX_ROWS)).mappings():
            distance, relation = (lineage.place("dataset_version", r["id"], r["name"], lineage.dataset_names)
                                  if lineage else (None, "unrelated"))
            ref = f"dataset:{r['name']}:v{r['version']}"
            items.append(_item("dataset_version", r["id"], _ts(r["created_at"]),
                               f"new dataset version {ref} ({r['row_count']} rows)", subject=ref, distance=distance,
                               relation=relation, data_refs=[ref],
                               detail={"rows": r["row_count"], "source": str(r["source"])[:200]}))
        for r in conn.execute(select(feature_views.c.id, feature_views.c.name, feature_views.c.number,
                                     feature_views.c.owner, feature_views.c.created_at)
                              .where(and_(feature_views.c.created_at >= since, feature_views.c.created_at <= until))
                              .order_by(feature_views.c.created_at).limit(MAX_ROWS)).mappings():
            distance, relation = (lineage.place("feature_view", r["id"], r["name"], lineage.view_names)
                                  if lineage else (None, "unrelated"))
            ref = f"feature_view:{r['name']}:v{r['number']}"
            items.append(_item("feature_definition", r["id"], _ts(r["created_at"]),
                               f"feature view definition {ref}", actor=r["owner"], subject=ref, distance=distance,
                               relation=relation, data_refs=[ref]))
        for r in conn.execute(select(feature_materializations).where(or_(
                and_(feature_materializations.c.started_at >= since, feature_materializations.c.started_at <= until),
                and_(feature_materializations.c.ended_at >= since, feature_materializations.c.ended_at <= until)))
                .order_by(feature_materializations.c.started_at).limit(MAX_ROWS)).mappings():
            base = lineage.view_names.get(r["view_name"]) if lineage else None
            at = _ts(r["ended_at"] or r["started_at"])
            items.append(_item(
                "materialization", r["id"], at,
                f"materialization of {r['view_name']} {r['state']} ({r['rows_written']} rows written"
                + (f"; error: {str(r['error'])[:120]}" if r["error"] else "") + ")",
                subject=f"feature_view:{r['view_name']}", distance=None if base is None else base + 1,
                relation="materializes an input" if base is not None else "unrelated",
                data_refs=[f"feature_view:{r['view_name']}"],
                detail={"state": r["state"], "mode": r["mode"], "rows_offered": r["rows_offered"],
                        "rows_written": r["rows_written"]}))
        for r in conn.execute(select(runs.c.id, runs.c.pipeline, runs.c.state, runs.c.started_at, runs.c.ended_at,
                                     runs.c.error).where(or_(and_(runs.c.started_at >= since,
                                                                  runs.c.started_at <= until),
                                                             and_(runs.c.ended_at >= since, runs.c.ended_at <= until)))
                              .order_by(runs.c.started_at).limit(MAX_ROWS)).mappings():
            if lineage is not None:
                distance, relation = lineage.place("run", r["id"], r["pipeline"], lineage.pipelines)
            else:
                distance, relation = None, "unrelated"
            at = _ts(r["ended_at"] or r["started_at"])
            items.append(_item("pipeline_run", r["id"], at,
                               f"pipeline {r['pipeline']} run {r['state']}"
                               + (f": {str(r['error'])[:160]}" if r["error"] else ""),
                               subject=f"pipeline:{r['pipeline']}", distance=distance, relation=relation,
                               detail={"state": r["state"], "pipeline": r["pipeline"]}))
        for r in conn.execute(select(audit_log).where(and_(audit_log.c.at >= since, audit_log.c.at <= until))
                              .order_by(audit_log.c.id).limit(MAX_ROWS)).mappings():
            subject = str(r["subject"])
            if r["action"] in ("feature_view.register",):
                continue  # listed above as a feature_definition
            own = any(subject == f"model:{m}" or subject.startswith(f"model:{m}:") for m in models)
            view = lineage.view_names.get(subject.split(":", 1)[0]) if lineage and \
                str(r["action"]).startswith("feature_view.") else None
            distance = 0 if own else (None if view is None else view + 1)
            relation = "the model itself" if own else ("an input's record" if view is not None else "unrelated")
            items.append(_item("audit", str(r["id"]), _ts(r["at"]), f"{r['action']} on {subject}", actor=r["actor"],
                               subject=subject, distance=distance, relation=relation))
    items.extend(_faults(ws.home, fault_files, since, until))
    return rank(items, outage_start)[:MAX_ITEMS]


def rank(items: list[dict[str, Any]], outage_start: datetime) -> list[dict[str, Any]]:
    """Sort: on the lineage path by distance, then unrelated; before the outage start first; closest in time first."""
    for item in items:
        gap = (outage_start - _ts(item["at"])).total_seconds()
        item["before_outage_s"] = gap
    def key(item: dict[str, Any]) -> tuple[int, int, bool, float]:
        d = item["lineage_distance"]
        return (0 if d is not None else 1, d if d is not None else 0, item["before_outage_s"] < 0,
                abs(item["before_outage_s"]))
    ranked = sorted(items, key=key)
    for n, item in enumerate(ranked, 1):
        item["rank"] = n
    return ranked


def _faults(home: Path, files: Sequence[str | Path], since: datetime, until: datetime) -> list[dict[str, Any]]:
    """Injected faults a world recorded (``faults.json``) whose window overlaps [since, until]."""
    paths = [Path(home) / f for f in files] or sorted(Path(home).glob("*/faults.json"))[:20]
    out = []
    for path in paths:
        try:
            if not path.resolve().is_relative_to(Path(home).resolve()):
                continue  # a path from a config file stays inside the workspace
            records = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError):
            continue
        if not isinstance(records, list):
            continue
        for n, f in enumerate(records[:200]):
            try:
                start, end = _ts(f["start"]), _ts(f["end"])
                name = str(f["name"])[:63]
            except (KeyError, TypeError, ValueError):
                continue
            if end < since or start > until:
                continue
            out.append(_item("fault", f"{path.parent.name}:{n}", start,
                             f"world fault {name} injected {start.isoformat()} .. {end.isoformat()}",
                             subject=f"world:{path.parent.name}",
                             detail={"name": name, "end": end.isoformat(), "spec": str(f.get("spec", ""))[:120],
                                     "book": str(f.get("book", ""))[:120]}))
    return out


__all__ = ["MAX_ITEMS", "rank", "triage"]
