"""Lineage: one graph over dataset versions, runs, feature materializations, models and deployments.

Edges live in the ``lineage_edges`` table (``src → dst`` with a relation such
as ``derived_from``, ``produced``, ``trained_on``, ``materialized_from``,
``deployed_as``); any domain records its own with :meth:`Lineage.record`. A
model version's producing run is linked implicitly from
``model_versions.run_id``. Upstream and downstream queries walk the graph
breadth-first, one indexed query per level, on SQLite and PostgreSQL alike.

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

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import Connection, and_, insert, select

from yarnit.core.errors import InvalidInput, NotFound
from yarnit.core.ids import parse_versioned_ref
from yarnit.storage import Workspace
from yarnit.storage.schema import dataset_versions, lineage_edges, lineage_taints, model_versions

Direction = Literal["up", "down"]
KINDS: tuple[str, ...] = ("dataset_version", "run", "feature_view", "materialization", "model_version",
                          "deployment", "schema")
_PREFIXES = {"ds_": "dataset_version", "mv_": "model_version", "run_": "run"}
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

    def to_dict(self) -> dict[str, Any]:
        return {"src": {"kind": self.src.kind, "id": self.src.id}, "dst": {"kind": self.dst.kind, "id": self.dst.id},
                "relation": self.relation}


@dataclass(frozen=True)
class LineageGraph:
    """What a query reached: the root first, then nodes in breadth-first order, and the edges walked."""

    root: Node
    direction: Direction
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

    def _walk(self, root: Node, direction: Direction, max_depth: int | None) -> LineageGraph:
        seen: dict[tuple[str, str], int] = {(root.kind, root.id): 0}
        order: list[tuple[str, str]] = [(root.kind, root.id)]
        edges: list[tuple[tuple[str, str], tuple[str, str], str]] = []
        frontier = [(root.kind, root.id)]
        level = 0
        with self.ws.metadata.begin() as conn:
            while frontier and (max_depth is None or level < max_depth):
                level += 1
                found = self._neighbours(conn, frontier, direction)
                frontier = []
                for src, dst, relation in found:
                    edges.append((src, dst, relation))
                    nxt = dst if direction == "down" else src
                    if nxt not in seen:
                        seen[nxt] = level
                        order.append(nxt)
                        frontier.append(nxt)
        described = {(n.kind, n.id): n for n in self._describe([Node(k, i) for k, i in order])}
        nodes = [described[key] for key in order]
        unique_edges = list(dict.fromkeys(edges))
        return LineageGraph(root=nodes[0], direction=direction, nodes=nodes,
                            edges=[Edge(described[s], described[d], r) for s, d, r in unique_edges
                                   if s in described and d in described],
                            depth={described[k]: v for k, v in seen.items()})

    def _neighbours(self, conn: Connection, frontier: Sequence[tuple[str, str]],
                    direction: Direction) -> list[tuple[tuple[str, str], tuple[str, str], str]]:
        wanted = set(frontier)
        ids = sorted({i for _k, i in frontier})
        out: list[tuple[tuple[str, str], tuple[str, str], str]] = []
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            column = lineage_edges.c.src_id if direction == "down" else lineage_edges.c.dst_id
            rows = conn.execute(select(lineage_edges).where(column.in_(chunk))
                                .order_by(lineage_edges.c.id)).mappings().all()
            for r in rows:
                src, dst = (r["src_kind"], r["src_id"]), (r["dst_kind"], r["dst_id"])
                if (src if direction == "down" else dst) in wanted:
                    out.append((src, dst, r["relation"]))
            # Implicit edges: a model version's producing run.
            if direction == "up":
                mv = [i for k, i in frontier if k == "model_version" and i in chunk]
                if mv:
                    for mv_id, run_id in conn.execute(select(model_versions.c.id, model_versions.c.run_id)
                                                      .where(model_versions.c.id.in_(mv))).all():
                        if run_id:
                            out.append((("run", run_id), ("model_version", mv_id), "produced"))
            else:
                runs = [i for k, i in frontier if k == "run" and i in chunk]
                if runs:
                    for mv_id, run_id in conn.execute(select(model_versions.c.id, model_versions.c.run_id)
                                                      .where(model_versions.c.run_id.in_(runs))).all():
                        out.append((("run", run_id), ("model_version", mv_id), "produced"))
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


__all__ = ["KINDS", "Direction", "Edge", "Lineage", "LineageGraph", "Node"]
