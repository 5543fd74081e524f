"""Erasing a data subject from the feature store (a ``SubjectEraser`` for ``yarnit data forget``).

Every version of every feature view keyed by a subject column (by default
``user_id``) loses the subject's rows, both offline (the Parquet day files
are rewritten) and online (the entity's row is deleted), so neither a
training set nor a serving read can bring them back. Views with composite
keys are not searched; :attr:`FeatureStoreEraser.unchecked` names them.
"""

from __future__ import annotations

from collections.abc import Sequence

from ._codec import ViewCodec
from .online import table_name
from .store import FeatureStore


class FeatureStoreEraser:
    name = "feature-store"

    def __init__(self, store: FeatureStore, *, subject_columns: Sequence[str] = ("user_id",)) -> None:
        self.store = store
        self.subject_columns = tuple(subject_columns)
        self.unchecked: list[str] = []

    def erase(self, subject_id: str) -> int:
        removed = 0
        for current in self.store.registry.list():
            for version in self.store.registry.versions(current.name):
                view = version.view
                keys = [f for f in view.entities if f.name in self.subject_columns]
                if not keys:
                    continue
                if len(view.entities) != 1:
                    self.unchecked.append(f"{view.name}@{view.version}")
                    continue
                (field,) = keys
                value: object = subject_id
                if field.dtype != "string":
                    if not subject_id.lstrip("-").isdigit():
                        continue  # an integer-keyed view cannot hold this subject
                    value = int(subject_id)
                removed += self.store.offline.erase(view, field.name, value)
                removed += self.store.online.delete(table_name(view), [ViewCodec(view).storage_key(value)])
        return removed


__all__ = ["FeatureStoreEraser"]
