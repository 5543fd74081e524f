"""Golden sets: a fixed, versioned evaluation set per model, rebuilt when deletion or retention touches it.

A golden set is a dataset version named ``<model>-golden`` (immutable,
content-addressed, with lineage like every dataset). Every evaluation of the
model reuses the same version, so its metrics compare across model versions
and catch sudden regressions (book ch. 5). Deletion requests and retention
rewrite or expire dataset versions; then the golden set follows the rewrite,
or is rebuilt from current data, and the evaluation says so: metrics on a
rebuilt golden set are not comparable with earlier ones (book ch. 15, case 1:
dynamic test sets that respect deletion).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd

from yarnit.core.ids import check_name
from yarnit.storage import Workspace


@dataclass(frozen=True)
class GoldenSet:
    """The golden set version in use and what happened to it (``note``: empty when nothing changed)."""

    dataset_id: str
    ref: str
    rows: int
    rebuilt: bool
    note: str


class GoldenSets:
    """Find or (re)build the golden set of a model in a workspace."""

    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace

    @staticmethod
    def dataset_name(model_name: str) -> str:
        return check_name("Dataset", f"{model_name}-golden")

    def ensure(self, model_name: str, build: Callable[[], pd.DataFrame], *, source: str,
               parents: Sequence[str] = (), run_id: str | None = None,
               retention_class: str | None = None) -> GoldenSet:
        """The model's golden set: the newest active version, its rewrite, or a new one built by ``build()``."""
        from yarnit.data import DatasetNotFound, Datasets

        datasets = Datasets(self.ws)
        name = self.dataset_name(model_name)
        try:
            newest = datasets.get(name)
        except DatasetNotFound:
            newest = None
        if newest is not None and newest.active:
            note = ""
            older = [v for v in datasets.list(name) if v.version < newest.version]
            if older:
                note = (f"golden set {newest.ref} replaced v{older[-1].version} ({older[-1].status}); metrics on it "
                        "are "
                        "not comparable with evaluations on earlier golden versions")
            return GoldenSet(newest.id, newest.ref, newest.row_count, False, note)
        if newest is not None:
            replacement = datasets.replacement(newest)
            if replacement is not None and replacement.active:
                return GoldenSet(replacement.id, replacement.ref, replacement.row_count, False,
                                 f"golden set {newest.ref} was {newest.status} and rewritten as {replacement.ref}; "
                                 "metrics are not comparable with evaluations on the old version")
        frame = build()
        version = datasets.ingest_frame(name, frame, source=source,
                                        parents=[*parents, *([newest.id] if newest is not None else [])],
                                        run_id=run_id, retention_class=retention_class)
        note = "" if newest is None else (f"golden set {newest.ref} was {newest.status}; rebuilt as {version.ref} from "
                                          "current data, so metrics are not comparable with earlier evaluations")
        return GoldenSet(version.id, version.ref, version.row_count, newest is not None, note)

    def read(self, golden: GoldenSet, columns: Sequence[str] | None = None) -> pd.DataFrame:
        from yarnit.data import Datasets

        datasets = Datasets(self.ws)
        version = datasets.get_by_id(golden.dataset_id)
        return datasets.read_table(version, columns=columns).to_pandas()


__all__ = ["GoldenSet", "GoldenSets"]
