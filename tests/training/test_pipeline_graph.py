from __future__ import annotations

from typing import Any

import pytest

from yarnit.training import Pipeline, PipelineDefinitionError, Step, ValueKind


def produce(ctx: Any) -> dict[str, Any]:
    return {"out": {}}


def consume(ctx: Any, x: Any) -> dict[str, Any]:
    return {"out": {}}


def test_a_cycle_is_named() -> None:
    p = Pipeline("p", [Step("a", consume, inputs={"x": "b.out"}, outputs={"out": ValueKind.REF}),
                       Step("b", consume, inputs={"x": "a.out"}, outputs={"out": ValueKind.REF})])
    with pytest.raises(PipelineDefinitionError, match="has a cycle: a → b → a"):
        p.order()


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([Step("a", consume, inputs={"x": "ghost.out"}, outputs={"out": ValueKind.REF})],
         "takes 'x' from unknown step 'ghost'; known steps: a"),
        ([Step("a", produce, outputs={"out": ValueKind.REF}),
          Step("b", consume, inputs={"x": "a.nope"}, outputs={"out": ValueKind.REF})],
         r"takes 'x' from 'a.nope', but 'a' produces only: out"),
        ([Step("a", produce, outputs={"out": ValueKind.REF}), Step("a", produce, outputs={"out": ValueKind.REF})],
         "defines step 'a' twice"),
        ([Step("a", produce, outputs={"out": ValueKind.REF}),
          Step("b", consume, inputs={"y": "a.out"}, outputs={"out": ValueKind.REF})],
         r"maps input 'y', but consume\(\) has no such parameter"),
        ([Step("a", produce, outputs={})], "declares no outputs"),
        ([Step("Bad Name", produce, outputs={"out": ValueKind.REF})], "Step name 'Bad Name' is not valid"),
    ],
)
def test_broken_graphs_are_refused_with_the_reason(steps: list[Step], message: str) -> None:
    with pytest.raises(PipelineDefinitionError if "valid" not in message else ValueError, match=message):
        Pipeline("p", steps).order()


def test_subset_keeps_ancestors_only() -> None:
    p = Pipeline("p", [Step("a", produce, outputs={"out": ValueKind.REF}),
                       Step("b", consume, inputs={"x": "a.out"}, outputs={"out": ValueKind.REF}),
                       Step("c", consume, inputs={"x": "a.out"}, outputs={"out": ValueKind.REF})])
    assert [s.name for s in p.subset({"b"}).order()] == ["a", "b"]
