"""Dataset versions: immutable Parquet snapshots in the artifact store plus a manifest row.

Re-ingesting identical content returns the existing version instead of a new
one. The Parquet bytes are written (content-addressed) before the manifest
row, so a crash leaves either the whole version or none of it.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import and_, func, insert, select
from sqlalchemy.exc import IntegrityError as SqlIntegrityError

from yarnit.core.errors import InvalidInput, NotFound
from yarnit.core.hashing import sha256_bytes
from yarnit.core.ids import check_name, new_id
from yarnit.storage import Workspace
from yarnit.storage.schema import dataset_versions, lineage_edges


@dataclass(frozen=True)
class DatasetVersion:
    """One immutable snapshot of a named dataset."""

    id: str
    name: str
    version: int
    content_sha256: str
    artifact_sha256: str
    row_count: int
    schema: dict[str, str]
    source: str
    created_at: datetime
    parents: tuple[str, ...] = ()
    run_id: str | None = None
    retention_class: str | None = None
    pii_columns: tuple[str, ...] = ()
    statistics: dict[str, Any] = field(default_factory=dict)
    status: str = "active"

    @property
    def ref(self) -> str:
        return f"{self.name}:v{self.version}"


class DatasetNotFound(NotFound):
    def __init__(self, name: str, version: int | None = None) -> None:
        what = f"dataset {name!r}" if version is None else f"version {version} of dataset {name!r}"
        super().__init__(f"There is no {what}. List datasets with: yarnit data list")


def _row_to_version(row: Any) -> DatasetVersion:
    return DatasetVersion(
        id=row["id"],
        name=row["name"],
        version=row["version"],
        content_sha256=row["content_sha256"],
        artifact_sha256=row["artifact_sha256"],
        row_count=row["row_count"],
        schema=row["schema"],
        source=row["source"],
        created_at=row["created_at"],
        parents=tuple(row["parents"] or ()),
        run_id=row["run_id"],
        retention_class=row["retention_class"],
        pii_columns=tuple(row["pii_columns"] or ()),
        statistics=row["statistics"] or {},
        status=row["status"],
    )


def table_to_parquet_bytes(table: pa.Table) -> bytes:
    """Deterministic Parquet bytes for a table (same table → same bytes)."""
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd", write_statistics=True, store_schema=True)
    return sink.getvalue()


class Datasets:
    """Ingest and read dataset versions in a workspace."""

    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace

    def ingest_frame(
        self,
        name: str,
        frame: pd.DataFrame | pa.Table,
        *,
        source: str,
        parents: Sequence[str] = (),
        run_id: str | None = None,
        retention_class: str | None = None,
        pii_columns: Sequence[str] = (),
    ) -> DatasetVersion:
        """Record ``frame`` as a version of ``name`` (or return the identical existing one)."""
        check_name("Dataset", name)
        table = frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame, preserve_index=False)
        if table.num_columns == 0:
            raise InvalidInput(f"Dataset {name!r} from {source!r} has no columns; nothing to ingest.")
        missing = [c for c in pii_columns if c not in table.column_names]
        if missing:
            raise InvalidInput(
                f"PII columns {missing} are not in dataset {name!r}; its columns are {table.column_names}."
            )
        data = table_to_parquet_bytes(table)
        content = sha256_bytes(data)
        existing = self._find_by_content(name, content)
        if existing is not None:
            return existing
        ref = self.ws.artifacts.put_bytes(data)
        now = self.ws.clock.now()
        schema = {f.name: str(f.type) for f in table.schema}
        for _attempt in range(3):
            try:
                with self.ws.metadata.begin() as conn:
                    number = (
                        conn.execute(
                            select(func.max(dataset_versions.c.version)).where(dataset_versions.c.name == name)
                        ).scalar()
                        or 0
                    ) + 1
                    version_id = new_id("ds", self.ws.clock)
                    conn.execute(
                        insert(dataset_versions).values(
                            id=version_id, name=name, version=number, content_sha256=content,
                            artifact_sha256=ref.sha256, row_count=table.num_rows, schema=schema,
                            statistics=None, source=source, created_at=now, parents=list(parents),
                            run_id=run_id, retention_class=retention_class, pii_columns=list(pii_columns),
                            status="active",
                        )
                    )
                    for parent in parents:
                        conn.execute(insert(lineage_edges).values(
                            src_kind="dataset_version", src_id=parent, dst_kind="dataset_version",
                            dst_id=version_id, relation="derived_from", created_at=now))
                return self.get(name, number)
            except SqlIntegrityError:
                # Another writer took this version number or ingested the same content.
                existing = self._find_by_content(name, content)
                if existing is not None:
                    return existing
        raise InvalidInput(f"Could not record dataset {name!r}: concurrent writers kept colliding; retry.")

    def _find_by_content(self, name: str, content: str) -> DatasetVersion | None:
        with self.ws.metadata.begin() as conn:
            row = conn.execute(
                select(dataset_versions).where(
                    and_(dataset_versions.c.name == name, dataset_versions.c.content_sha256 == content)
                )
            ).mappings().first()
        return None if row is None else _row_to_version(row)

    def get(self, name: str, version: int | None = None) -> DatasetVersion:
        """A version of ``name`` (the newest when ``version`` is None)."""
        query = select(dataset_versions).where(dataset_versions.c.name == name)
        if version is None:
            query = query.order_by(dataset_versions.c.version.desc()).limit(1)
        else:
            query = query.where(dataset_versions.c.version == version)
        with self.ws.metadata.begin() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            raise DatasetNotFound(name, version)
        return _row_to_version(row)

    def list(self, name: str | None = None) -> list[DatasetVersion]:
        query = select(dataset_versions).order_by(dataset_versions.c.name, dataset_versions.c.version)
        if name is not None:
            query = query.where(dataset_versions.c.name == name)
        with self.ws.metadata.begin() as conn:
            return [_row_to_version(r) for r in conn.execute(query).mappings().all()]

    def read_table(self, version: DatasetVersion) -> pa.Table:
        """The version's rows, read from verified bytes."""
        with self.ws.artifacts.open_verified(version.artifact_sha256) as stream:
            return pq.read_table(stream)

    def read(self, version: DatasetVersion) -> pd.DataFrame:
        return self.read_table(version).to_pandas()


__all__ = ["DatasetNotFound", "DatasetVersion", "Datasets", "table_to_parquet_bytes"]
