"""Lineage: one graph over dataset versions, feature views, materializations, runs, models, deployments
and prediction-log segments.

Edges live in the ``lineage_edges`` table (``src → dst`` with a relation) and
are recorded where the thing happens, each domain with one call:

=====================  ==========================================  ==============================
where                  edge                                        relation
=====================  ==========================================  ==============================
data (ingest)          dataset_version → dataset_version           ``derived_from``
data (ingest)          run → dataset_version                       ``produced``
features (backfill)    dataset_version → feature_view (``fv_…``)   ``computed_from``
features (materialize) feature_view → materialization (``mat_…``)  ``materialized``
training (runner)      dataset/model version → run (made by another) ``read_by``
registry (register)    dataset_version → model_version             ``trained_on``
registry (register)    feature_view → model_version                ``features_for``
registry (set_alias)   model_version → deployment (alias event)    ``deployed_as``
serving (predlog)      deployment → prediction_log (segment file)  ``logged_to``
=====================  ==========================================  ==============================

A model version's producing run is linked implicitly from
``model_versions.run_id``. Upstream and downstream queries walk the graph
breadth-first, one indexed query per level, on SQLite and PostgreSQL alike;
:mod:`yarnit.data.openlineage` exports it as OpenLineage run events.

Nodes can be *tainted* (built from data that had to be forgotten); a taint on
a model version is also set in the registry, where it blocks promotion.

Example:
    >>> from yarnit.core import Settings, SimulatedClock, utc
    >>> from yarnit.storage import open_workspace
    >>> import tempfile
    >>> ws = open_workspace(Settings.for_home(tempfile.mkdtemp()), SimulatedClock(utc(2026, 1, 1)))
    >>> lineage = Lineage(ws)
    >>> lineage.record(Node("dataset_version", "ds_a"), Node("feature_view", "fv_b"), "materialized_from")
    >>> [n.id for n in lineage.downstream(Node("dataset_version", "ds_a")).nodes]
    ['ds_a', 'fv_b']
    >>> ws.close()
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import Connection, and_, insert, select

from yarnit.core.errors import InvalidInput, NotFound
from yarnit.core.ids import parse_versioned_ref
from yarnit.storage import Workspace
from yarnit.storage.schema import (
    alias_events,
    dataset_versions,
    feature_materializations,
    feature_views,
    lineage_edges,
    lineage_taints,
    model_versions,
)

log = logging.getLogger("yarnit.data.lineage")

Direction = Literal["up", "down"]
Walk = Literal["up", "down", "both"]
KINDS: tuple[str, ...] = ("dataset_version", "run", "feature_view", "materialization", "model_version",
                          "deployment", "prediction_log", "schema")
_PREFIXES = {"ds_": "dataset_version", "mv_": "model_version", "run_": "run", "fv_": "feature_view",
             "mat_": "materialization"}
_KIND = re.compile(r"^[a-z][a-z_]{0,31}$")


@dataclass(frozen=True)
class Node:
    """A vertex of the lineage graph: a kind and an id (plus a readable label when known)."""

    kind: str
    id: str
    label: str = field(default="", compare=False)
    status: str | None = field(default=None, compare=False)
    taints: tuple[str, ...] = field(default=(), compare=False)

    @property
    def tainted(self) -> bool:
        return bool(self.taints)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "id": self.id, "label": self.label or self.id, "status": self.status,
                "tainted": self.tainted, "taints": list(self.taints)}


@dataclass(frozen=True)
class Edge:
    src: Node
    dst: Node
    relation: str
    created_at: Any = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"src": {"kind": self.src.kind, "id": self.src.id}, "dst": {"kind": self.dst.kind, "id": self.dst.id},
                "relation": self.relation}


@dataclass(frozen=True)
class LineageGraph:
    """What a query reached: the root first, then nodes in breadth-first order, and the edges walked."""

    root: Node
    direction: Walk
    nodes: list[Node]
    edges: list[Edge]
    depth: dict[Node, int]

    def of_kind(self, kind: str) -> list[Node]:
        return [n for n in self.nodes if n.kind == kind and n != self.root]

    def to_dict(self) -> dict[str, Any]:
        return {"root": self.root.to_dict(), "direction": self.direction,
                "nodes": [n.to_dict() | {"depth": self.depth[n]} for n in self.nodes],
                "edges": [e.to_dict() for e in self.edges]}


class Lineage:
    """Record and query lineage edges and taints in a workspace."""

    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace

    # -- writing -----------------------------------------------------------
    def record(self, src: Node, dst: Node, relation: str, *, conn: Connection | None = None) -> None:
        """Add the edge ``src → dst`` (idempotent)."""
        for node in (src, dst):
            if not _KIND.match(node.kind) or not node.id or len(node.id) > 128:
                raise InvalidInput(f"Lineage node {node.kind!r}:{node.id!r} is not valid: kind is a lowercase word "
                                   f"(e.g. {', '.join(KINDS)}), id 1-128 characters.")
        if conn is None:
            with self.ws.metadata.begin() as own:
                self._insert(own, src, dst, relation)
        else:
            self._insert(conn, src, dst, relation)

    def _insert(self, conn: Connection, src: Node, dst: Node, relation: str) -> None:
        exists = conn.execute(select(lineage_edges.c.id).where(and_(
            lineage_edges.c.src_kind == src.kind, lineage_edges.c.src_id == src.id,
            lineage_edges.c.dst_kind == dst.kind, lineage_edges.c.dst_id == dst.id,
            lineage_edges.c.relation == relation))).first()
        if exists is None:
            conn.execute(insert(lineage_edges).values(src_kind=src.kind, src_id=src.id, dst_kind=dst.kind,
                                                      dst_id=dst.id, relation=relation,
                                                      created_at=self.ws.clock.now()))

    def taint(self, node: Node, reason: str, *, request_id: str | None = None,
              conn: Connection | None = None) -> None:
        """Mark ``node`` as built from data that must not be used any more."""
        values = {"node_kind": node.kind, "node_id": node.id, "reason": reason, "request_id": request_id,
                  "created_at": self.ws.clock.now()}
        if conn is None:
            with self.ws.metadata.begin() as own:
                own.execute(insert(lineage_taints).values(**values))
        else:
            conn.execute(insert(lineage_taints).values(**values))

    def taints(self, node: Node) -> list[str]:
        with self.ws.metadata.begin() as conn:
            rows = conn.execute(select(lineage_taints.c.reason).where(and_(
                lineage_taints.c.node_kind == node.kind, lineage_taints.c.node_id == node.id))
                .order_by(lineage_taints.c.id)).all()
        return [r[0] for r in rows]

    # -- recording, one call from each domain (see the table above) ----------
    def record_feature_sources(self, view_name: str, view_version: str, dataset_ids: Iterable[str]) -> None:
        """The dataset versions a feature view version was computed from (features: backfill)."""
        with self.ws.metadata.begin() as conn:
            view_id = _feature_view_id(conn, view_name, view_version)
            for dataset_id in dataset_ids:
                if view_id is not None:
                    self._insert(conn, Node("dataset_version", dataset_id), Node("feature_view", view_id),
                                 "computed_from")

    def record_materialization(self, view_name: str, view_version: str, materialization_id: str) -> None:
        """A materialization run of a feature view version (features: materialize)."""
        with self.ws.metadata.begin() as conn:
            view_id = _feature_view_id(conn, view_name, view_version)
            if view_id is not None:
                self._insert(conn, Node("feature_view", view_id), Node("materialization", materialization_id),
                             "materialized")

    def record_run_inputs(self, run_id: str, entries: dict[str, dict[str, Any]]) -> None:
        """The dataset and model versions a pipeline run's step read through ``ref`` inputs (training: runner),
        when another run made them: a cached select, a reproduction, a ranker bundling its click model."""
        refs = [e.get("value") for e in entries.values() if e.get("kind") == "ref" and isinstance(e.get("value"), dict)]
        ids = {v["id"] for ref in refs for v in (ref, *ref.values()) if isinstance(v, dict)
               and isinstance(v.get("id"), str) and v["id"].startswith(("ds_", "mv_"))}
        if not ids:
            return
        with self.ws.metadata.begin() as conn:
            for table, kind in ((dataset_versions, "dataset_version"), (model_versions, "model_version")):
                for node_id, made_by in conn.execute(select(table.c.id, table.c.run_id)
                                                     .where(table.c.id.in_(sorted(ids)))).all():
                    if made_by != run_id:  # its own output is already linked as ``produced``
                        self._insert(conn, Node(kind, node_id), Node("run", run_id), "read_by")

    def record_feature_inputs(self, conn: Connection, model_version_id: str, signature: Any) -> None:
        """The feature views a model version reads (its signature's ``view:feature`` references), at their
        newest recorded version (registry: register, inside its transaction)."""
        refs = signature.get("features") if isinstance(signature, dict) else None
        names = sorted({r.partition(":")[0] for r in refs if isinstance(r, str)}) if isinstance(refs, list) else []
        for name in names:
            row = conn.execute(select(feature_views.c.id).where(feature_views.c.name == name)
                               .order_by(feature_views.c.number.desc()).limit(1)).first()
            if row is not None:
                self._insert(conn, Node("feature_view", row[0]), Node("model_version", model_version_id),
                             "features_for")

    def record_deployment(self, conn: Connection, model_version_id: str, alias_event_id: int) -> None:
        """An alias move (promotion, rollback) that put a model version behind an alias (registry: set_alias)."""
        self._insert(conn, Node("model_version", model_version_id), Node("deployment", str(alias_event_id)),
                     "deployed_as")

    def record_prediction_segment(self, segment: str, served: Iterable[tuple[Any, Any, Any]]) -> None:
        """Which deployments (model, version, alias) wrote records into a prediction-log segment (serving).

        The edge starts at the newest alias move that put that version behind that alias, or at the model
        version itself when none did (a fallback answer, a version served without an alias).
        """
        with self.ws.metadata.begin() as conn:
            for model, version, alias in sorted({(str(m), v, str(a or "")) for m, v, a in served
                                                 if m and isinstance(v, int)}):
                move = conn.execute(select(alias_events.c.id).where(and_(
                    alias_events.c.model_name == model, alias_events.c.alias == alias,
                    alias_events.c.to_version == version)).order_by(alias_events.c.id.desc()).limit(1)).first()
                if move is not None:
                    self._insert(conn, Node("deployment", str(move[0])), Node("prediction_log", segment), "logged_to")
                    continue
                mv = conn.execute(select(model_versions.c.id).where(and_(
                    model_versions.c.model_name == model, model_versions.c.version == version))).first()
                if mv is not None:
                    self._insert(conn, Node("model_version", mv[0]), Node("prediction_log", segment), "logged_to")

    def prediction_log_recorder(self) -> Callable[[str, set[tuple[Any, Any, Any]]], None]:
        """A callback for :class:`~yarnit.serving.predlog.PredictionLog`: records segment edges on a daemon
        thread, so a slow or unavailable database never holds up the log's writer (and its fsyncs)."""

        def record(segment: str, served: set[tuple[Any, Any, Any]]) -> None:
            def run() -> None:
                try:
                    self.record_prediction_segment(segment, served)
                except Exception:  # noqa: BLE001 - lineage is best effort here; the log itself is intact
                    log.exception("could not record the lineage of prediction-log segment %s", segment)

            threading.Thread(target=run, name="yarnit-lineage-predlog", daemon=True).start()

        return record

    # -- references --------------------------------------------------------
    def resolve(self, ref: str) -> Node:
        """A node from ``dataset:NAME[:vN]``, ``model:NAME:vN``, ``KIND:ID``, an id (``ds_…``, ``mv_…``,
        ``run_…``) or ``NAME:vN`` (a dataset, else a model)."""
        text = ref.strip()
        for prefix, kind in _PREFIXES.items():
            if text.startswith(prefix):
                return self._describe([Node(kind, text)])[0]
        head, _, rest = text.partition(":")
        if head == "dataset":
            return self._dataset_node(rest)
        if head == "model":
            return self._model_node(rest)
        if head == "feature_view" and rest and not rest.startswith("fv_"):
            return self._feature_view_node(rest)
        if head in KINDS and rest:
            return self._describe([Node(head, rest)])[0]
        try:
            return self._dataset_node(text)
        except NotFound:
            try:
                return self._model_node(text)
            except (NotFound, InvalidInput):
                pass
        raise NotFound(f"Lineage reference {ref!r} matches no dataset version or model version. Use "
                       "dataset:NAME:vN, model:NAME:vN, KIND:ID or an id such as ds_… / mv_… / run_….")

    def _dataset_node(self, text: str) -> Node:
        from .versions import Datasets  # local: versions imports nothing from here at import time

        version = Datasets(self.ws).resolve(text)
        return self._describe([Node("dataset_version", version.id)])[0]

    def _feature_view_node(self, text: str) -> Node:
        name, number = parse_versioned_ref("Feature view", text, usage="use feature_view:NAME[:vN].")
        query = select(feature_views.c.id).where(feature_views.c.name == name)
        query = query.order_by(feature_views.c.number.desc()) if number is None else query.where(
            feature_views.c.number == number)
        with self.ws.metadata.begin() as conn:
            row = conn.execute(query.limit(1)).first()
        if row is None:
            raise NotFound(f"Feature view {name!r} has no {'versions' if number is None else f'version {number}'}. "
                           "See the views with: yarnit features list")
        return self._describe([Node("feature_view", row[0])])[0]

    def _model_node(self, text: str) -> Node:
        name, number = parse_versioned_ref("Model", text, usage="use model:NAME:vN (e.g. model:ctr:v3).")
        if number is None:
            raise InvalidInput(f"Model reference {text[:80]!r} needs a version: model:NAME:vN.")
        with self.ws.metadata.begin() as conn:
            row = conn.execute(select(model_versions.c.id).where(and_(
                model_versions.c.model_name == name, model_versions.c.version == number))).first()
        if row is None:
            raise NotFound(f"Model {name!r} has no version {number}. See versions with: yarnit models show {name}")
        return self._describe([Node("model_version", row[0])])[0]

    # -- queries -----------------------------------------------------------
    def upstream(self, node: Node, *, depth: int | None = None) -> LineageGraph:
        """Everything ``node`` was made from, transitively."""
        return self._walk(node, "up", depth)

    def downstream(self, node: Node, *, depth: int | None = None) -> LineageGraph:
        """Everything made from ``node``, transitively."""
        return self._walk(node, "down", depth)

    def connected(self, node: Node, *, depth: int | None = None) -> LineageGraph:
        """Everything linked to ``node`` by any path, whichever way its edges point (what an export needs:
        the siblings of a node's descendants too, such as the other datasets a model was trained on)."""
        return self._walk(node, "both", depth)

    def _walk(self, root: Node, direction: Walk, max_depth: int | None) -> LineageGraph:
        seen: dict[tuple[str, str], int] = {(root.kind, root.id): 0}
        order: list[tuple[str, str]] = [(root.kind, root.id)]
        edges: list[tuple[tuple[str, str], tuple[str, str], str, Any]] = []
        frontier = [(root.kind, root.id)]
        level = 0
        with self.ws.metadata.begin() as conn:
            while frontier and (max_depth is None or level < max_depth):
                level += 1
                ways: tuple[Direction, ...] = ("up", "down") if direction == "both" else (direction,)
                found = [(way, edge) for way in ways for edge in self._neighbours(conn, frontier, way)]
                frontier = []
                for way, (src, dst, relation, at) in found:
                    edges.append((src, dst, relation, at))
                    nxt = dst if way == "down" else src
                    if nxt not in seen:
                        seen[nxt] = level
                        order.append(nxt)
                        frontier.append(nxt)
        described = {(n.kind, n.id): n for n in self._describe([Node(k, i) for k, i in order])}
        nodes = [described[key] for key in order]
        unique_edges = {(s, d, r): at for s, d, r, at in edges}
        return LineageGraph(root=nodes[0], direction=direction, nodes=nodes,
                            edges=[Edge(described[s], described[d], r, at) for (s, d, r), at in unique_edges.items()
                                   if s in described and d in described],
                            depth={described[k]: v for k, v in seen.items()})

    def _neighbours(self, conn: Connection, frontier: Sequence[tuple[str, str]],
                    direction: Direction) -> list[tuple[tuple[str, str], tuple[str, str], str, Any]]:
        wanted = set(frontier)
        ids = sorted({i for _k, i in frontier})
        out: list[tuple[tuple[str, str], tuple[str, str], str, Any]] = []
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            column = lineage_edges.c.src_id if direction == "down" else lineage_edges.c.dst_id
            rows = conn.execute(select(lineage_edges).where(column.in_(chunk))
                                .order_by(lineage_edges.c.id)).mappings().all()
            for r in rows:
                src, dst = (r["src_kind"], r["src_id"]), (r["dst_kind"], r["dst_id"])
                if (src if direction == "down" else dst) in wanted:
                    out.append((src, dst, r["relation"], r["created_at"]))
            # Implicit edges: a model version's producing run.
            if direction == "up":
                mv = [i for k, i in frontier if k == "model_version" and i in chunk]
                if mv:
                    for mv_id, run_id, at in conn.execute(select(model_versions.c.id, model_versions.c.run_id,
                                                                 model_versions.c.created_at)
                                                          .where(model_versions.c.id.in_(mv))).all():
                        if run_id:
                            out.append((("run", run_id), ("model_version", mv_id), "produced", at))
            else:
                runs = [i for k, i in frontier if k == "run" and i in chunk]
                if runs:
                    for mv_id, run_id, at in conn.execute(select(model_versions.c.id, model_versions.c.run_id,
                                                                 model_versions.c.created_at)
                                                          .where(model_versions.c.run_id.in_(runs))).all():
                        out.append((("run", run_id), ("model_version", mv_id), "produced", at))
        return out

    def _describe(self, nodes: Iterable[Node]) -> list[Node]:
        """Fill in labels, status and taints for nodes."""
        items = list(nodes)
        labels: dict[tuple[str, str], tuple[str, str | None]] = {}
        with self.ws.metadata.begin() as conn:
            ds_ids = [n.id for n in items if n.kind == "dataset_version"]
            mv_ids = [n.id for n in items if n.kind == "model_version"]
            for start in range(0, max(len(ds_ids), 1), 500):
                chunk = ds_ids[start:start + 500]
                if chunk:
                    for r in conn.execute(select(dataset_versions.c.id, dataset_versions.c.name,
                                                 dataset_versions.c.version, dataset_versions.c.status)
                                          .where(dataset_versions.c.id.in_(chunk))).all():
                        labels[("dataset_version", r[0])] = (f"dataset:{r[1]}:v{r[2]}", r[3])
            for start in range(0, max(len(mv_ids), 1), 500):
                chunk = mv_ids[start:start + 500]
                if chunk:
                    for r in conn.execute(select(model_versions.c.id, model_versions.c.model_name,
                                                 model_versions.c.version, model_versions.c.tainted)
                                          .where(model_versions.c.id.in_(chunk))).all():
                        labels[("model_version", r[0])] = (f"model:{r[1]}:v{r[2]}", "tainted" if r[3] else "ok")
            labels.update(_labels(conn, items))
            taint_rows = []
            all_ids = sorted({n.id for n in items})
            for start in range(0, len(all_ids), 500):
                taint_rows += conn.execute(select(lineage_taints.c.node_kind, lineage_taints.c.node_id,
                                                  lineage_taints.c.reason)
                                           .where(lineage_taints.c.node_id.in_(all_ids[start:start + 500]))
                                           .order_by(lineage_taints.c.id)).all()
        taints: dict[tuple[str, str], list[str]] = {}
        for kind, node_id, reason in taint_rows:
            taints.setdefault((kind, node_id), []).append(reason)
        out = []
        for n in items:
            label, status = labels.get((n.kind, n.id), (n.label or f"{n.kind}:{n.id}", n.status))
            out.append(Node(n.kind, n.id, label=label, status=status, taints=tuple(taints.get((n.kind, n.id), ()))))
        return out


def _feature_view_id(conn: Connection, name: str, version: str) -> str | None:
    row = conn.execute(select(feature_views.c.id).where(and_(feature_views.c.name == name,
                                                             feature_views.c.version == version))).first()
    return None if row is None else str(row[0])


def _labels(conn: Connection, items: Sequence[Node]) -> dict[tuple[str, str], tuple[str, str | None]]:
    """Readable labels for feature views, materializations and deployments (one query per kind)."""
    out: dict[tuple[str, str], tuple[str, str | None]] = {}
    fv = [n.id for n in items if n.kind == "feature_view"][:500]
    if fv:
        for r in conn.execute(select(feature_views.c.id, feature_views.c.name, feature_views.c.number)
                              .where(feature_views.c.id.in_(fv))).all():
            out[("feature_view", r[0])] = (f"feature_view:{r[1]}:v{r[2]}", None)
    mat = [n.id for n in items if n.kind == "materialization"][:500]
    if mat:
        for r in conn.execute(select(feature_materializations.c.id, feature_materializations.c.view_name,
                                     feature_materializations.c.state).where(
                                         feature_materializations.c.id.in_(mat))).all():
            out[("materialization", r[0])] = (f"materialization:{r[1]}:{r[0]}", r[2])
    moves = [int(n.id) for n in items if n.kind == "deployment" and n.id.isdigit() and len(n.id) <= 18][:500]
    if moves:
        for r in conn.execute(select(alias_events.c.id, alias_events.c.model_name, alias_events.c.alias,
                                     alias_events.c.to_version, alias_events.c.action)
                              .where(alias_events.c.id.in_(moves))).all():
            out[("deployment", str(r[0]))] = (f"deployment:{r[1]}:{r[2]}→v{r[3]}#{r[0]}", r[4])
    return out


__all__ = ["KINDS", "Direction", "Walk", "Edge", "Lineage", "LineageGraph", "Node"]
