"""Pipelines: DAGs of steps with typed inputs and outputs, defined in Python.

Example:
    >>> def make(ctx):
    ...     return {"n": {"value": ctx.config["n"]}}
    >>> def double(ctx, n):
    ...     return {"twice": {"value": 2 * n["value"]}}
    >>> p = Pipeline("demo", [
    ...     Step("make", make, outputs={"n": ValueKind.REF}, config={"n": 21}),
    ...     Step("double", double, inputs={"n": "make.n"}, outputs={"twice": ValueKind.REF}),
    ... ])
    >>> [s.name for s in p.order()]
    ['make', 'double']
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from yarnit.core.errors import InvalidInput
from yarnit.core.ids import check_name

from .values import ValueKind

StepFn = Callable[..., dict[str, Any]]


@dataclass(frozen=True)
class Step:
    """One step: ``fn(ctx, **inputs) -> {output name: value}``.

    ``inputs`` maps a parameter of ``fn`` to ``"<step>.<output>"``. ``config``
    holds the step's own settings (merged over the run's config keys of the
    same name). Transient failures (:class:`TransientStepError`, connection
    errors) are retried ``retries`` times with exponential backoff.
    """

    name: str
    fn: StepFn
    outputs: Mapping[str, ValueKind]
    inputs: Mapping[str, str] = field(default_factory=dict)
    config: Mapping[str, Any] = field(default_factory=dict)
    retries: int = 0
    backoff_s: float = 0.5
    timeout_s: float | None = None
    cacheable: bool = True
    version: str = ""  # bump to invalidate caches when behaviour changes outside fn's source
    reuse_in_reproduction: bool = False  # data selection: a reproduction reuses the recorded data versions
    # A step that can run on Dask: a check of its merged config that raises when that config cannot use Dask
    # (a trainer without Dask support). Only such steps get the Dask client; their cache key records it.
    dask: Callable[[Mapping[str, Any]], None] | None = None

    def code_version(self) -> str:
        """sha256 of the step's code: its function's source, ``version``, and every source file of the
        package it lives in and of yarnit (a change in a helper it calls, such as a feature transform,
        must invalidate the cache too)."""
        return _code_version(self.fn, self.version)


@functools.lru_cache(maxsize=256)
def _code_version(fn: StepFn, version: str) -> str:
    """:meth:`Step.code_version`, once per process and step function, as :func:`package_fingerprint` is (a loop
    runs the same steps hundreds of times; ``inspect.getsource`` re-reads and re-tokenizes the file each call)."""
    try:
        source = inspect.getsource(fn)
    except (OSError, TypeError):
        source = f"{fn.__module__}.{getattr(fn, '__qualname__', repr(fn))}"
    packages = sorted({(getattr(fn, "__module__", None) or "").split(".")[0], "yarnit"} - {""})
    fingerprints = "\n".join(package_fingerprint(p) for p in packages)
    return hashlib.sha256(f"{source}\n{version}\n{fingerprints}".encode()).hexdigest()


@functools.lru_cache(maxsize=64)
def package_fingerprint(package: str) -> str:
    """sha256 over the Python source files of an imported top-level package (one file for a plain module).

    Computed once per process (about 10 ms for yarnit). Packages that are not
    imported, or have no files (built-ins), fingerprint as their name.
    """
    module = sys.modules.get(package)
    if module is None:
        return package
    digest = hashlib.sha256(package.encode())
    roots = [Path(p) for p in getattr(module, "__path__", [])]
    files: list[tuple[str, Path]] = []
    for root in roots:
        files += [(str(f.relative_to(root)), f) for f in root.rglob("*.py")]
    module_file = getattr(module, "__file__", None)
    if not roots and module_file:
        files.append((Path(module_file).name, Path(module_file)))
    for name, path in sorted(files):
        try:
            digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
        except OSError:
            digest.update(name.encode() + b"\0?\0")
    return digest.hexdigest()


class PipelineDefinitionError(InvalidInput):
    """The pipeline's graph is wrong: a cycle, a missing input, a duplicate or unknown step."""


@dataclass(frozen=True)
class Pipeline:
    name: str
    steps: Sequence[Step]
    config: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    params: Sequence[Any] | None = None  # Param declarations (yarnit.training.params); undeclared keys are inferred

    def step(self, name: str) -> Step:
        for s in self.steps:
            if s.name == name:
                return s
        raise PipelineDefinitionError(
            f"Pipeline {self.name!r} has no step {name!r}; its steps are: {', '.join(s.name for s in self.steps)}."
        )

    def order(self) -> list[Step]:
        """The steps in an order that respects every input (raises on a broken graph)."""
        check_name("Pipeline", self.name)
        undeclared = sorted({p.name for p in self.params or ()} - set(self.config))
        if undeclared:
            raise PipelineDefinitionError(
                f"Pipeline {self.name!r} declares parameters {undeclared} without a default in its config; add them."
            )
        by_name: dict[str, Step] = {}
        for s in self.steps:
            check_name("Step", s.name)
            if s.name in by_name:
                raise PipelineDefinitionError(f"Pipeline {self.name!r} defines step {s.name!r} twice; rename one.")
            if not s.outputs:
                raise PipelineDefinitionError(f"Step {s.name!r} declares no outputs; declare what it produces.")
            by_name[s.name] = s
        deps: dict[str, set[str]] = {}
        for s in self.steps:
            params = inspect.signature(s.fn).parameters
            deps[s.name] = set()
            for param, source in s.inputs.items():
                if param not in params and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
                    raise PipelineDefinitionError(
                        f"Step {s.name!r} maps input {param!r}, but {s.fn.__name__}() has no such parameter."
                    )
                producer, _, output = source.partition(".")
                if producer not in by_name:
                    raise PipelineDefinitionError(
                        f"Step {s.name!r} takes {param!r} from unknown step {producer!r}; known steps: "
                        f"{', '.join(by_name)}."
                    )
                if output not in by_name[producer].outputs:
                    raise PipelineDefinitionError(
                        f"Step {s.name!r} takes {param!r} from {source!r}, but {producer!r} produces only: "
                        f"{', '.join(by_name[producer].outputs)}."
                    )
                deps[s.name].add(producer)
        ordered: list[Step] = []
        state: dict[str, str] = {}

        def visit(name: str, path: list[str]) -> None:
            if state.get(name) == "done":
                return
            if state.get(name) == "visiting":
                cycle = " → ".join([*path[path.index(name):], name])
                raise PipelineDefinitionError(f"Pipeline {self.name!r} has a cycle: {cycle}. Remove one edge.")
            state[name] = "visiting"
            for dep in sorted(deps[name]):
                visit(dep, [*path, name])
            state[name] = "done"
            ordered.append(by_name[name])

        for s in self.steps:
            visit(s.name, [])
        return ordered

    def ancestors(self, names: set[str]) -> set[str]:
        """``names`` and every step they depend on, directly or not."""
        by_name = {s.name: s for s in self.steps}
        todo, seen = list(names), set()
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            todo.extend(src.split(".")[0] for src in by_name[name].inputs.values())
        return seen

    def subset(self, names: set[str]) -> Pipeline:
        """The pipeline restricted to ``names`` and their ancestors (same name, same config)."""
        keep = self.ancestors(names)
        return Pipeline(self.name, [s for s in self.steps if s.name in keep], self.config, self.description,
                        self.params)


__all__ = ["Pipeline", "PipelineDefinitionError", "Step", "StepFn"]
