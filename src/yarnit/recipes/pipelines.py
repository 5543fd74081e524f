"""Built-in pipelines, by name (``yarnit pipeline run yarnit-ctr``, ``yarnit-recs``, ``yarnit-ranker``,
``yarnit-intent``)."""

from __future__ import annotations

from collections.abc import Callable

from yarnit.core.errors import InvalidInput
from yarnit.training import Pipeline

from .ctr import ctr_pipeline
from .intent import intent_pipeline
from .ranker import ranker_pipeline
from .recs_pipeline import recs_pipeline

BUILTIN_PIPELINES: dict[str, Callable[[], Pipeline]] = {
    "yarnit-ctr": ctr_pipeline,  # the click model
    "yarnit-recs": recs_pipeline,  # the five recommenders, in one artifact
    "yarnit-ranker": ranker_pipeline,  # production click model + recommenders + rules, served as yarnit-ranker
    "yarnit-intent": intent_pipeline,  # query intent from human labels (yarnit labels publish)
}


def builtin_pipeline(name: str) -> Pipeline:
    try:
        return BUILTIN_PIPELINES[name]()
    except KeyError:
        raise InvalidInput(
            f"No built-in pipeline named {name!r}; built-ins: {', '.join(BUILTIN_PIPELINES)}. "
            "Or pass a Python file that defines `pipeline`."
        ) from None


__all__ = ["BUILTIN_PIPELINES", "builtin_pipeline"]
