"""The OIP v2 fast path (one tensor per feature) parses exactly as the full path, errors included."""

from __future__ import annotations

from typing import Any

import pytest

from yarnit.api import codecs
from yarnit.core.errors import InvalidInput


def _tensor(name: str, datatype: str, data: list[Any], shape: list[Any] | None = None) -> dict[str, Any]:
    return {"name": name, "shape": [len(data)] if shape is None else shape, "datatype": datatype, "data": data}


BODIES = [
    [_tensor("fiber", "BYTES", ["merino"]), _tensor("price", "FP64", [12.0])],
    [_tensor("fiber", "BYTES", ["merino", "acrylic"], [2, 1]), _tensor("price", "FP32", [12, 3.5], [2, 1])],
    [_tensor("n", "INT64", [2**63 - 1, -(2**63)]), _tensor("gift", "BOOL", [True, False])],
    [_tensor("a", "FP64", [1.0]), _tensor("a", "FP64", [2.0])],  # a repeated name: the last one wins
    [_tensor("n", "INT64", [2**63])],  # too large to score
    [_tensor("n", "FP64", [1.5, 2**64])],
    [_tensor("gift", "INT8", [True])],  # a bool is not an integer
    [_tensor("price", "FP64", ["12"])],
    [_tensor("price", "FP64", [[12.0]], [1, 1])],  # nested data: the full path flattens it
    [_tensor("price", "FP64", [1.0, 2.0], [1, 2])],  # one [N, F] matrix
    [_tensor("price", "FP64", [1.0]), _tensor("fiber", "BYTES", ["a", "b"])],  # rows differ
    [_tensor("price", "FP64", [1.0], [True])],
    [_tensor("price", "FP64", [])],
    [_tensor("", "FP64", [1.0])],
    [_tensor("price", "FP128", [1.0])],
    [_tensor("price", "FP64", [1.0]) | {"parameters": {}}],
    [_tensor("price", "FP64", [1.0]) | {"unit": "usd"}],
    [["price"]],
]


@pytest.mark.parametrize("inputs", BODIES)
def test_the_fast_path_gives_what_the_full_path_gives(inputs: list[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    def parse() -> object:
        try:
            return codecs.parse_v2({"inputs": inputs}, lambda: ["price", "discount"], 3)
        except InvalidInput as exc:
            return f"422: {exc}"

    fast = parse()
    monkeypatch.setattr(codecs, "_feature_columns", lambda inputs, max_instances: None)
    assert fast == parse()
