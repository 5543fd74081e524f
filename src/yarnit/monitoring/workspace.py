"""Where a workspace keeps its monitoring, and one SLI source for all of a workspace's SLOs.

A workspace's SLOs live in ``$YARNIT_HOME/slos.yaml`` (written by
``yarnit slo apply``); the monitor's checkpoints, summaries and alerts live
under ``$YARNIT_HOME/monitoring/``. Each SLI kind is fed by one module:

* ``serving_availability``, ``serving_latency``: the prediction log
  (:mod:`yarnit.monitoring.predlog_source`);
* ``data_freshness``, ``model_freshness``, ``pipeline_success``,
  ``golden_correctness``: probes of the feature store, the datasets, the
  registry and the pipeline runs
  (:mod:`yarnit.monitoring.probes`);
* ``prediction_quality``, ``label_completeness``: the prediction log joined
  with labels (:mod:`yarnit.monitoring.quality`);
* ``input_completeness``: the traffic summaries' per-minute counts of rows
  with an empty input (:mod:`yarnit.monitoring.inputs`).

Each of those modules has ``for_workspace(workspace, spec, *, clock) ->
SLISource`` for the SLOs of its kinds; :class:`WorkspaceSLISource` builds the
ones a file needs, once, and sends each SLO to its own.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yarnit.core.clock import Clock
from yarnit.core.errors import ConfigError

from .counts import EventCounts
from .slo import SLO, SLOFile, load_slo_file

if TYPE_CHECKING:
    from yarnit.storage.workspace import Workspace

    from .burn import SLISource

SLO_FILENAME = "slos.yaml"

#: SLI kind -> the module whose ``for_workspace`` feeds it.
SOURCE_MODULES: dict[str, str] = {
    "serving_availability": "yarnit.monitoring.predlog_source",
    "serving_latency": "yarnit.monitoring.predlog_source",
    "data_freshness": "yarnit.monitoring.probes",
    "model_freshness": "yarnit.monitoring.probes",
    "pipeline_success": "yarnit.monitoring.probes",
    "golden_correctness": "yarnit.monitoring.probes",
    "prediction_quality": "yarnit.monitoring.quality",
    "label_completeness": "yarnit.monitoring.quality",
    "input_completeness": "yarnit.monitoring.inputs",
}

#: The sources that run an update module themselves before counting (see :meth:`WorkspaceSLISource.updated`).
UPDATED_BY: dict[str, tuple[str, ...]] = {"traffic": ("yarnit.monitoring.inputs",),
                                          "quality": ("yarnit.monitoring.quality",)}


class SourceUnavailable(ConfigError):
    """The module that counts an SLI kind is not installed in this build: that SLO has no source, hence no data."""

    def __init__(self, kind: str, module: str) -> None:
        super().__init__(f"SLI kind {kind!r} has no source in this installation (module {module} is missing): its "
                         "SLOs read as 'no source' until it is installed; the other SLOs are evaluated as usual.")
        self.kind, self.module = kind, module


def slo_path(home: str | Path) -> Path:
    """The workspace's SLO file."""
    return Path(home) / SLO_FILENAME


def monitoring_dir(home: str | Path) -> Path:
    """Where the monitor keeps checkpoints, summaries and alerts."""
    return Path(home) / "monitoring"


def prediction_log_dir(home: str | Path) -> Path:
    """The prediction log ``yarnit serve`` writes by default."""
    return Path(home) / "prediction_log"


def load_workspace_slos(home: str | Path) -> SLOFile | None:
    """The workspace's SLO file, or None when none was applied (a broken file raises, naming the field)."""
    path = slo_path(home)
    if not path.is_file():
        return None
    return load_slo_file(path)


class WorkspaceSLISource:
    """Every SLO of ``spec`` counted by the source of its SLI kind (built lazily, one per module)."""

    def __init__(self, workspace: Workspace, spec: SLOFile, *, clock: Clock | None = None) -> None:
        self.workspace = workspace
        self.spec = spec
        self.clock = clock or workspace.clock
        self._sources: dict[str, SLISource] = {}

    def source_for(self, slo: SLO) -> SLISource:
        module_name = SOURCE_MODULES.get(slo.sli)
        if module_name is None:  # parse_slo_file refuses unknown kinds; this guards a kind added without a source
            raise ConfigError(f"SLI kind {slo.sli!r} has no source; known: {', '.join(sorted(SOURCE_MODULES))}.")
        source = self._sources.get(module_name)
        if source is None:
            kinds = {kind for kind, name in SOURCE_MODULES.items() if name == module_name}
            sub = replace(self.spec, slos=tuple(s for s in self.spec.slos if s.sli in kinds))
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                if exc.name != module_name:  # a real import error inside the module: not ours to hide
                    raise
                raise SourceUnavailable(slo.sli, module_name) from None
            factory: Callable[..., SLISource] = module.for_workspace
            source = self._sources[module_name] = factory(self.workspace, sub, clock=self.clock)
        return source

    def counts(self, slo: SLO, *, until_s: float) -> EventCounts:
        return self.source_for(slo).counts(slo, until_s=until_s)

    @contextlib.contextmanager
    def one_read(self) -> Iterator[None]:
        """Sources that can (``one_read()``) read their log once for every SLO counted inside the block."""
        with contextlib.ExitStack() as stack:
            for source in list(self._sources.values()):
                hold = getattr(source, "one_read", None)
                if hold is not None:
                    stack.enter_context(hold())
            yield

    def updated(self, module: str, report: dict[str, Any], at_s: float) -> None:
        """The monitor brought ``yarnit.monitoring.<module>``'s windows up to ``at_s`` (its ``update`` report):
        the sources that would update them again before counting are told, so one pass reads the log once."""
        done: set[str] = set()
        for slo in self.spec.slos:
            name = SOURCE_MODULES.get(slo.sli)
            if name not in UPDATED_BY.get(module, ()) or name in done:
                continue
            done.add(name)
            try:
                mark = getattr(self.source_for(slo), "updated", None)
            except SourceUnavailable:
                continue
            if mark is not None:
                mark(report, at_s)

    def reports(self) -> dict[str, Any]:
        """What each source read last time (``last`` where a source keeps one), by module."""
        out: dict[str, Any] = {}
        for name, source in self._sources.items():
            last = getattr(source, "last", None)
            if last is not None:
                out[name.rsplit(".", 1)[-1]] = last.__dict__ if hasattr(last, "__dict__") else last
        return out


__all__ = ["SLO_FILENAME", "SOURCE_MODULES", "SourceUnavailable", "WorkspaceSLISource", "load_workspace_slos",
           "monitoring_dir", "prediction_log_dir", "slo_path"]
