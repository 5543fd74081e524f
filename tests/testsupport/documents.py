"""Hypothesis strategies for configuration documents (SLO files, schemas): any JSON value, and a base
document with a few random changes, each recorded as (operation, path, key or value)."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import strategies as st

SCALARS = (st.none() | st.booleans() | st.integers(min_value=-(2**80), max_value=2**80) | st.floats()
           | st.text(max_size=10))
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)
Change = tuple[str, tuple[Any, ...], Any]


def mutated(base: dict[str, Any], values: st.SearchStrategy[Any] = JSON, *,
            max_changes: int = 3) -> st.SearchStrategy[tuple[dict[str, Any], list[Change]]]:
    """``base`` with 1 to ``max_changes`` changes: a node replaced by one of ``values``, a key deleted, or an
    unknown key added; with the list of changes made."""

    @st.composite
    def build(draw: st.DrawFn) -> tuple[dict[str, Any], list[Change]]:
        doc = copy.deepcopy(base)
        changes: list[Change] = []
        for _ in range(draw(st.integers(1, max_changes))):
            path: list[Any] = []
            node: Any = doc
            while isinstance(node, (dict, list)) and node and not draw(st.sampled_from([False, False, True])):
                key = draw(st.sampled_from(sorted(node, key=str) if isinstance(node, dict) else range(len(node))))
                path.append(key)
                node = node[key]
            parent: Any = doc
            for key in path[:-1]:
                parent = parent[key]
            operation = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
            if operation == "add" and isinstance(node, dict):
                key = draw(st.text(min_size=1, max_size=8))
                node[key] = copy.deepcopy(draw(values))  # drawn values may be shared: later changes edit them
                changes.append(("add", tuple(path), key))
            elif operation == "delete" and path and isinstance(parent, dict):
                del parent[path[-1]]
                changes.append(("delete", tuple(path), None))
            elif path:
                parent[path[-1]] = value = copy.deepcopy(draw(values))
                changes.append(("replace", tuple(path), value))
        return doc, changes

    return build()
