"""Erasing a data subject from the feature store (a ``SubjectEraser`` for ``yarnit data forget``).

Every version of every feature view with a subject column among its entity
keys (``user_id`` by default, also as one part of a composite key) loses the
subject's rows:

* offline: the Parquet day files are rewritten without them;
* online: in *every* store the workspace ever materialized into (the current
  one, and any it has since switched away from, see
  :mod:`~yarnit.features.online_targets`). A single-key view loses the
  subject's entity; a composite-key view loses every entity whose key has the
  subject in that part (found by scanning the table's keys).

Then it looks again, and reports what it searched and anything that remains
with the reason (a store that cannot be reached, a store whose password is
not recorded), so the deletion receipt never claims more than was done.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from yarnit.core.errors import YarnitError
from yarnit.core.settings import redact_url
from yarnit.data.deletion import ErasureReport

from ._codec import ViewCodec
from .definitions import FeatureView
from .online import OnlineStore, open_online_store, table_name
from .online_targets import online_store_urls, recorded_form
from .store import FeatureStore


def _key_value(view: FeatureView, column: str, subject_id: str) -> Any:
    """The subject as a value of ``column`` in ``view`` (None when that column cannot hold it)."""
    dtype = next(f.dtype for f in view.entities if f.name == column)
    if dtype == "string":
        return subject_id
    text = subject_id.strip()
    return int(text) if text.lstrip("-").isdigit() else None


class FeatureStoreEraser:
    """Removes a subject from every subject-keyed feature view, offline and in every online store."""

    name = "feature-store"

    def __init__(self, store: FeatureStore, *, subject_columns: Sequence[str] = ("user_id",)) -> None:
        self.store = store
        self.subject_columns = tuple(subject_columns)

    def _views(self) -> list[tuple[FeatureView, list[str]]]:
        """Every registered view version keyed (partly) by a subject column, with those columns."""
        out = []
        for current in self.store.registry.list():
            for version in self.store.registry.versions(current.name):
                keys = [f.name for f in version.view.entities if f.name in self.subject_columns]
                if keys:
                    out.append((version.view, keys))
        return out

    def _stores(self, report: ErasureReport) -> list[tuple[str, OnlineStore, bool]]:
        """(shown URL, store, opened here) for the current store and every store ever materialized into."""
        current = recorded_form(self.store.online_url) or redact_url(self.store.online_url)
        stores: list[tuple[str, OnlineStore, bool]] = [(current, self.store.online, False)]
        for url in online_store_urls(self.store.ws):
            if url == current:
                continue
            if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
                report.searched.append(f"online store {url} (its file no longer exists)")
                continue
            if "***" in url:
                report.remaining.append({
                    "where": f"online store {url}",
                    "why": "its password is not recorded (credentials never are); set YARNIT_ONLINE_STORE to "
                           "that store and run the deletion again"})
                continue
            try:
                stores.append((url, open_online_store(url), True))
            except YarnitError as exc:
                report.remaining.append({"where": f"online store {url}", "why": f"cannot be opened: {exc}"})
        return stores

    def erase(self, subject_id: str) -> ErasureReport:
        report = ErasureReport(self.name)
        views = self._views()
        stores = self._stores(report)
        try:
            for view, columns in views:
                for column in columns:
                    value = _key_value(view, column, subject_id)
                    if value is None:
                        continue  # an integer column cannot hold this subject
                    # Online first: a composite view's keys are also read from the offline rows.
                    for url, online, _ in stores:
                        self._erase_online(report, url, online, view, column, value)
                    report.removed += self.store.offline.erase(view, column, value)
                    left = self._offline_rows(view, column, value)
                    report.searched.append(f"feature view {table_name(view)} (offline, by {column})")
                    if left:
                        report.remaining.append({"where": f"feature view {table_name(view)} offline",
                                                 "why": f"{left} rows still hold the subject after the rewrite"})
        finally:
            for _url, online, opened in stores:
                if opened:
                    online.close()
        return report

    def _offline_rows(self, view: FeatureView, column: str, value: Any) -> int:
        rows = 0
        for path in self.store.offline.files(view):
            values = pq.read_table(path, columns=[column]).column(column)
            rows += int(pc.sum(pc.fill_null(pc.equal(values, pa.scalar(value)), False)).as_py() or 0)
        return rows

    def _erase_online(self, report: ErasureReport, url: str, online: OnlineStore, view: FeatureView,
                      column: str, value: Any) -> None:
        table = table_name(view)
        where = f"feature view {table} in online store {url}"
        try:
            if table not in online.tables():
                return
            codec = ViewCodec(view)
            if len(view.entities) == 1:
                keys = [codec.storage_key(value)]
                report.removed += online.delete(table, keys)
                left = sum(blob is not None for blob in online.get_many(table, keys))
            else:
                part = list(view.entity_names).index(column)
                report.removed += online.delete(table, self._matching_keys(online, table, codec, part, value))
                left = len(self._matching_keys(online, table, codec, part, value))
        except YarnitError as exc:
            report.remaining.append({"where": where, "why": f"the store did not answer: {exc}"})
            return
        report.searched.append(where)
        if left:
            report.remaining.append({"where": where, "why": f"{left} entities still hold the subject"})

    @staticmethod
    def _matching_keys(online: OnlineStore, table: str, codec: ViewCodec, part: int, value: Any) -> list[Any]:
        return [k for k in online.keys(table) if codec.key_values(k)[part] == value]


__all__ = ["FeatureStoreEraser"]
