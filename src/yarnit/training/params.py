"""Pipeline parameters: declared with types (and ranges or choices), checked before any step runs.

A run's overrides (``--set key=value`` or ``config=`` in Python) name a
parameter for every step (``days``) or for one step (``train.trainer``). An
unknown key, or a value of the wrong type or out of range, is refused with the
key, the value and what is expected, before anything is recorded, so a typo
never changes a cache key silently and a bad value never fails halfway through.

Types are checked strictly by pydantic (``int`` refuses ``"3"`` and ``True``;
``float`` takes ints); a pipeline that declares nothing gets parameters
inferred from its defaults.

Example:
    >>> from yarnit.training import Pipeline, Step, ValueKind
    >>> p = Pipeline("demo", [Step("make", lambda ctx: {"n": {}}, outputs={"n": ValueKind.REF})],
    ...              config={"days": 3}, params=[Param("days", int, ge=1)])
    >>> try:
    ...     check_config(p, {"days": 0})
    ... except InvalidParameter as exc:
    ...     print(str(exc).split(";")[0])
    Parameter 'days' of pipeline 'demo' must be an integer >= 1
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter, ValidationError
from typing_extensions import is_typeddict

from yarnit.core.errors import InvalidInput

if TYPE_CHECKING:
    from .pipeline import Pipeline


class InvalidParameter(InvalidInput):
    """A run override names no parameter of the pipeline, or gives it a value it cannot take."""


@dataclass(frozen=True)
class Param:
    """One declared parameter: its name, type (an annotation such as ``int``, ``list[str]``,
    ``int | None``), an inclusive range for numbers and/or a closed set of choices, and a line of help.
    Its default is the pipeline's ``config[name]``."""

    name: str
    type: Any
    help: str = ""
    ge: float | None = None
    le: float | None = None
    choices: tuple[Any, ...] | None = None

    @cached_property
    def _adapter(self) -> TypeAdapter[Any]:
        return TypeAdapter(self.type)

    def expected(self) -> str:
        """What a valid value looks like, in words (``an integer in [2, 3660]``)."""
        if self.choices is not None:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        text = describe(self.type)
        if self.ge is not None and self.le is not None:
            return f"{text} in [{self.ge:g}, {self.le:g}]"
        if self.ge is not None:
            return f"{text} >= {self.ge:g}"
        if self.le is not None:
            return f"{text} <= {self.le:g}"
        return text

    def check(self, value: Any) -> Any:
        """The value, converted where lossless (an int for a float); raises :class:`ValueError` if invalid."""
        try:
            checked = self._adapter.validate_python(value, strict=True)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = "".join(f"[{p!r}]" for p in first["loc"])
            raise ValueError(f"{where + ': ' if where else ''}{first['msg']}") from None
        if self.choices is not None and checked not in self.choices:
            raise ValueError("not one of the choices")
        if isinstance(checked, (int, float)) and not isinstance(checked, bool):
            if (self.ge is not None and checked < self.ge) or (self.le is not None and checked > self.le):
                raise ValueError("out of range")
        return checked


_WORDS = {int: "an integer", float: "a number", str: "a text", bool: "true or false", dict: "a mapping",
          list: "a list", type(None): "null", Any: "any value"}

_PLURAL = {int: "integers", float: "numbers", str: "texts", bool: "booleans"}


def describe(annotation: Any) -> str:
    """An annotation in words: ``list[str]`` → ``a list of text``, ``int | None`` → ``an integer or null``."""
    if annotation in _WORDS:
        return _WORDS[annotation]
    if is_typeddict(annotation):
        return f"a mapping with some of the keys {', '.join(typing.get_type_hints(annotation))}"
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return describe(args[0])
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(a) for a in args)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (list, Sequence, tuple) and args:
        return f"a list of {_PLURAL.get(args[0], describe(args[0]))}"
    if origin in (dict, Mapping):
        return "a mapping"
    if origin is list and not args:
        return "a list"
    return getattr(annotation, "__name__", str(annotation))


def inferred(name: str, default: Any) -> Param:
    """A parameter declared only by its default: the default's type (any value when it is None)."""
    for kind in (bool, int, float, str, list, dict):
        if isinstance(default, kind):
            return Param(name, kind)
    return Param(name, Any)


def declared(pipeline: Pipeline) -> dict[str, Param]:
    """Every parameter of the pipeline: its declarations, completed by inference from the defaults of the
    pipeline's and its steps' config."""
    params = {p.name: p for p in pipeline.params or ()}
    for key, default in pipeline.config.items():
        params.setdefault(key, inferred(key, default))
    for step in pipeline.steps:
        for key, default in step.config.items():
            params.setdefault(key, inferred(key, default))
    return params


def _refuse_unknown(pipeline: Pipeline, key: str, known: Sequence[str], what: str) -> InvalidParameter:
    close = difflib.get_close_matches(key.rpartition(".")[2], known, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return InvalidParameter(
        f"Pipeline {pipeline.name!r} has no {what} {key!r}.{hint} Known parameters: {', '.join(sorted(known))} "
        "(prefix one with a step name, e.g. train.trainer, to set it for that step only)."
    )


def check_config(pipeline: Pipeline, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The overrides with every key known and every value valid (ints made floats where declared);
    raises :class:`InvalidParameter` on the first problem."""
    params = declared(pipeline)
    steps = {s.name for s in pipeline.steps}
    checked: dict[str, Any] = {}
    for key, value in overrides.items():
        if not isinstance(key, str) or not key:
            raise InvalidParameter(f"Parameter names are text; got {key!r}.")
        step, dot, name = key.rpartition(".")
        if dot and step not in steps:
            raise InvalidParameter(
                f"{key!r} names step {step!r}, but pipeline {pipeline.name!r} has only the steps: "
                f"{', '.join(s.name for s in pipeline.steps)}."
            )
        param = params.get(name if dot else key)
        if param is None:
            raise _refuse_unknown(pipeline, key, list(params), "parameter")
        try:
            checked[key] = param.check(value)
        except ValueError as exc:
            raise InvalidParameter(
                f"Parameter {key!r} of pipeline {pipeline.name!r} must be {param.expected()}; got {value!r} "
                f"({type(value).__name__}: {exc}). Fix the value (--set {key}=...)."
            ) from None
    return checked


__all__ = ["InvalidParameter", "Param", "check_config", "declared", "describe"]
