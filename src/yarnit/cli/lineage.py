"""``yarnit lineage show REF --upstream|--downstream``: what a dataset, feature view, model, deployment or
prediction-log segment was made from, and what was made from it; ``yarnit lineage export`` as OpenLineage."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.tree import Tree

from yarnit.core.atomic import atomic_write_text
from yarnit.core.errors import InvalidInput
from yarnit.data import Lineage, LineageGraph, Node

from .common import JSON_OPTION, cli_errors, console, emit, workspace

app = typer.Typer(help="Lineage of datasets, runs, features, models and deployments.", no_args_is_help=True)


def _tree(graph: LineageGraph) -> Tree:
    def label(node: Node) -> str:
        mark = " [red](tainted)[/]" if node.tainted else ""
        status = f" [dim]{node.status}[/]" if node.status and node.status not in ("active", "ok") else ""
        return f"{node.label or node.id}{status}{mark}"

    children: dict[Node, list[tuple[str, Node]]] = {}
    for edge in graph.edges:
        parent, child = (edge.src, edge.dst) if graph.direction == "down" else (edge.dst, edge.src)
        children.setdefault(parent, []).append((edge.relation, child))
    root = Tree(label(graph.root))
    shown = {graph.root}

    def add(branch: Tree, node: Node) -> None:
        for relation, child in children.get(node, []):
            sub = branch.add(f"[dim]{relation}[/] {label(child)}")
            if child not in shown:
                shown.add(child)
                add(sub, child)

    add(root, graph.root)
    return root


REF_HELP = ("dataset:NAME:vN, model:NAME:vN, feature_view:NAME[:vN], KIND:ID (deployment:7, prediction_log:seg-…) "
            "or an id (ds_…, mv_…, fv_…, mat_…, run_…).")


@app.command("show")
@cli_errors
def show(ref: str = typer.Argument(..., help=REF_HELP),
         up: bool = typer.Option(False, "--upstream", "--up", help="What REF was made from."),
         down: bool = typer.Option(False, "--downstream", "--down", help="What was made from REF."),
         depth: int | None = typer.Option(None, min=1, help="Stop after this many hops."),
         as_json: bool = JSON_OPTION) -> None:
    """Show the lineage of REF upstream (--up), downstream (--down) or both (neither flag)."""
    directions = [d for d, on in (("up", up), ("down", down)) if on] or ["up", "down"]
    with workspace() as ws:
        lineage = Lineage(ws)
        node = lineage.resolve(ref)
        graphs = {d: (lineage.upstream(node, depth=depth) if d == "up" else lineage.downstream(node, depth=depth))
                  for d in directions}
    data = {d: g.to_dict() for d, g in graphs.items()}

    def human() -> None:
        for d, g in graphs.items():
            console.print(f"[bold]{'upstream' if d == 'up' else 'downstream'}[/]")
            console.print(_tree(g))

    emit(data if len(data) > 1 else next(iter(data.values())), as_json, human)


@app.command("export")
@cli_errors
def export(ref: str = typer.Argument(..., help=REF_HELP),
           format: str = typer.Option("openlineage", "--format", help="Export format: openlineage."),  # noqa: A002
           namespace: str = typer.Option("yarnit", "--namespace", help="OpenLineage namespace of jobs and datasets."),
           output: Path | None = typer.Option(None, "--output", "-o", help="Write here instead of stdout."),
           ) -> None:
    """Export everything linked to REF as OpenLineage run events, one JSON object a line (for Marquez:
    POST each line to /api/v1/lineage)."""
    if format != "openlineage":
        raise InvalidInput(f"--format {format!r} is not supported; the one export format is: openlineage.")
    from yarnit.data.openlineage import openlineage_json

    with workspace() as ws:
        lineage = Lineage(ws)
        events = openlineage_json(ws, lineage.connected(lineage.resolve(ref)), namespace=namespace)
    text = "".join(json.dumps(e, sort_keys=True) + "\n" for e in events)
    if output is None:
        sys.stdout.write(text)
        return
    atomic_write_text(output, text)
    console.print(f"{len(events)} OpenLineage events → {output}")


__all__ = ["app"]
