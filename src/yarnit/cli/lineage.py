"""``yarnit lineage show REF --up|--down``: what a dataset or model was made from, and what was made from it."""

from __future__ import annotations

import typer
from rich.tree import Tree

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


@app.command("show")
@cli_errors
def show(ref: str = typer.Argument(..., help="dataset:NAME:vN, model:NAME:vN, KIND:ID or an id (ds_…, mv_…)."),
         up: bool = typer.Option(False, "--up", help="What REF was made from."),
         down: bool = typer.Option(False, "--down", help="What was made from REF."),
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


__all__ = ["app"]
