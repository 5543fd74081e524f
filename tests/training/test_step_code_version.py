"""A step's code version is computed once per process and step function (issue 18), and is still the sha256 of its
source, its ``version`` and the fingerprints of its packages: another function or another version is another key."""

from __future__ import annotations

import hashlib
import inspect
from typing import Any

from yarnit.training.pipeline import Step, ValueKind, package_fingerprint


def first(ctx: Any) -> dict[str, Any]:
    return {"out": 1}


def second(ctx: Any) -> dict[str, Any]:
    return {"out": 2}


def _expected(fn: Any, version: str) -> str:
    fingerprints = "\n".join(package_fingerprint(p) for p in sorted({fn.__module__.split(".")[0], "yarnit"}))
    return hashlib.sha256(f"{inspect.getsource(fn)}\n{version}\n{fingerprints}".encode()).hexdigest()


def test_a_step_code_version_is_its_source_version_and_packages_and_computed_once(monkeypatch) -> None:
    step = Step("s", first, outputs={"out": ValueKind.REPORT})
    expected = {(f, v): _expected(f, v) for f in (first, second) for v in ("", "2")}
    assert step.code_version() == expected[first, ""]
    calls: list[Any] = []
    real = inspect.getsource
    monkeypatch.setattr(inspect, "getsource", lambda fn: calls.append(fn) or real(fn))
    again = [Step("s", first, outputs={"out": ValueKind.REPORT}).code_version() for _ in range(3)]
    assert again == [expected[first, ""]] * 3 and calls == []  # kept: the source is not read again
    bumped = Step("s", first, outputs={"out": ValueKind.REPORT}, version="2")
    other = Step("s", second, outputs={"out": ValueKind.REPORT})
    assert bumped.code_version() == expected[first, "2"] != step.code_version()
    assert other.code_version() == expected[second, ""] != step.code_version()
    assert calls == [first, second]
