"""docs/reliability.md cannot drift from the suite: every test it names exists and would be collected, every
benchmark it names exists, and each of RELIABILITY.md's 24 targets is listed exactly once.

The tests are found with ``ast`` (fast: nothing is imported): the file must exist and be named ``test_*.py``, the
function (or ``Class::method``) must be defined there with a name pytest collects, and not be skipped
unconditionally. Rows whose status is ``pending (hNN)`` name tests another helper is still writing; they are
checked once the status changes.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "reliability.md"
NODE = re.compile(r"`(tests/[^`:\s]+\.py)::([^`\s\[]+)(?:\[[^`]*\])?`")
BENCH = re.compile(r"`(benchmarks/[^`\s]+\.py)`")
STATUSES = ("green", "partial", "gap", "pending")


def tables(text: str) -> list[list[dict[str, str]]]:
    """Every markdown table of ``text`` as a list of rows (header cell → cell text)."""
    found, lines = [], text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("|") and i + 1 < len(lines) and re.match(r"^\|[-| :]+\|$", lines[i + 1]):
            header = [c.strip() for c in lines[i].strip("|").split("|")]
            rows, i = [], i + 2
            while i < len(lines) and lines[i].startswith("|"):
                cells = [c.strip() for c in lines[i].strip().strip("|").split("|")]
                rows.append(dict(zip(header, cells, strict=False)))
                i += 1
            found.append(rows)
        else:
            i += 1
    return found


@cache
def defined(path: Path) -> dict[str, list[ast.expr]]:
    """Test names pytest would collect from ``path`` (``name`` or ``Class::name``) → their decorators."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: dict[str, list[ast.expr]] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
            names[node.name] = node.decorator_list
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name.startswith("test"):
                    names[f"{node.name}::{item.name}"] = item.decorator_list
    return names


def _skipped_always(decorators: list[ast.expr]) -> bool:
    return any(re.fullmatch(r"pytest\.mark\.skip(\(.*\))?", ast.unparse(d), re.DOTALL) for d in decorators)


def problems_of(node_path: str, name: str) -> str | None:
    path = ROOT / node_path
    if not path.is_file():
        return f"{node_path}: no such file"
    if not re.fullmatch(r"test_\w+\.py", path.name):
        return f"{node_path}: pytest does not collect a file with this name"
    found = defined(path)
    if name not in found:
        return f"{node_path}::{name}: no such test in the file"
    if _skipped_always(found[name]):
        return f"{node_path}::{name}: skipped unconditionally, so it proves nothing"
    return None


def _rows() -> list[dict[str, str]]:
    return [row for table in tables(PAGE.read_text(encoding="utf-8")) for row in table]


def test_every_named_test_exists_and_would_be_collected() -> None:
    checked, problems = 0, []
    for row in _rows():
        cell = row.get("tests")
        if cell is None or row.get("status", "").startswith("pending"):
            continue
        for node_path, name in NODE.findall(cell):
            checked += 1
            if (problem := problems_of(node_path, name)) is not None:
                problems.append(problem)
    assert checked >= 60, f"only {checked} tests named: the page or its parser is broken"
    assert not problems, "docs/reliability.md names tests that are not there:\n" + "\n".join(problems)


def test_each_of_the_24_targets_is_listed_once_with_a_status_and_its_tests() -> None:
    targets = next(t for t in tables(PAGE.read_text(encoding="utf-8")) if t and "#" in t[0] and "target" in t[0])
    numbers = [int(row["#"]) for row in targets]
    assert numbers == list(range(1, 25)), numbers
    for row in targets:
        status = row["status"]
        assert status.startswith(STATUSES), (row["#"], status)
        assert NODE.search(row["tests"]), f"target {row['#']} names no test"
        if status != "green":
            assert len(row["last figure"]) > 20, f"target {row['#']} is {status} but does not say what is missing"


def test_every_benchmark_and_peer_named_exists() -> None:
    perf = next(t for t in tables(PAGE.read_text(encoding="utf-8")) if t and "benchmark" in t[0])
    assert len(perf) >= 30
    missing = [p for row in perf for p in BENCH.findall(row["benchmark"] + row["peer"]) if not (ROOT / p).is_file()]
    assert not missing, missing
    assert all(BENCH.search(row["benchmark"]) for row in perf)


@pytest.mark.parametrize(("node", "expected"), [
    ("tests/test_reliability_page.py::test_every_named_test_exists_and_would_be_collected", None),
    ("tests/test_reliability_page.py::test_no_such_name", "no such test"),
    ("tests/no_such_file.py::test_x", "no such file"),
    ("tests/conftest.py::clock", "does not collect"),
])
def test_the_checker_catches_a_wrong_name(node: str, expected: str | None) -> None:
    node_path, name = node.split("::", 1)
    problem = problems_of(node_path, name)
    assert (problem is None) if expected is None else (expected in (problem or "")), problem
