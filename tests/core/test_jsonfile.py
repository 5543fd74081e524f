"""state_json writes what json.dumps wrote for the loop, alert and incident state files (numbers stay numbers)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pytest

from yarnit.core.jsonfile import state_json


@dataclass
class _Event:
    seq: int
    at: str


def test_numpy_scalars_float_subclasses_tuples_and_int_keys_round_trip_as_json_dumps_reads_them() -> None:
    value = {"rate": np.float64(0.25), "n": np.int64(3), "ok": np.bool_(True), "pair": (1, 2), 7: "seven",
             "nested": {"z": 1, "a": [np.float32(0.5)]}, "events": [_Event(1, "t")]}
    back = json.loads(state_json(value))
    assert back == {"rate": 0.25, "n": 3, "ok": True, "pair": [1, 2], "7": "seven",
                    "nested": {"a": [0.5], "z": 1}, "events": [{"seq": 1, "at": "t"}]}
    assert isinstance(back["rate"], float) and isinstance(back["n"], int)
    assert list(json.loads(state_json({"b": 1, "a": 2}))) == ["a", "b"]  # sorted keys: stable files


def test_unknown_objects_are_refused_unless_text_is_asked_for() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        state_json({"x": object()})

    class Custom:
        def __str__(self) -> str:
            return "custom"

    assert json.loads(state_json({"x": Custom()}, text_fallback=True)) == {"x": "custom"}
    assert json.loads(state_json({"at": datetime(2026, 1, 2, tzinfo=UTC)})) == {"at": "2026-01-02T00:00:00+00:00"}
