"""Schema versions: every curated schema is stored, numbered and never changed in place.

Registering a schema whose content equals an existing version of the same name
returns that version, so re-running a pipeline with an unchanged YAML file does
not create schema churn; any change (a widened range, a new PII tag) is a new
version that dataset manifests point to.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, insert, select
from sqlalchemy.exc import IntegrityError as SqlIntegrityError

from yarnit.core.errors import Conflict
from yarnit.core.ids import check_name, new_id
from yarnit.storage import Workspace
from yarnit.storage.schema import dataset_schemas

from .errors import SchemaNotFound
from .schema import DatasetSchema


@dataclass(frozen=True)
class SchemaVersion:
    """One stored version of a named schema."""

    id: str
    name: str
    version: int
    content_sha256: str
    schema: DatasetSchema
    source: str
    created_at: datetime

    @property
    def ref(self) -> str:
        return f"{self.name}:schema-v{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "version": self.version, "content_sha256": self.content_sha256,
                "source": self.source, "created_at": self.created_at.isoformat(), "document": self.schema.to_dict()}


def _row(row: Any) -> SchemaVersion:
    return SchemaVersion(id=row["id"], name=row["name"], version=row["version"],
                         content_sha256=row["content_sha256"],
                         schema=DatasetSchema.from_dict(row["document"], path=f"stored schema {row['name']}"),
                         source=row["source"], created_at=row["created_at"])


class Schemas:
    """Register and look up schema versions in a workspace."""

    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace

    def register(self, name: str, schema: DatasetSchema, *, source: str = "") -> SchemaVersion:
        """Store ``schema`` as the next version of ``name`` (or return the identical existing one)."""
        check_name("Schema", name)
        document = schema.to_dict()
        content = schema.content_sha256()
        for attempt in range(20):
            existing = self._by_content(name, content)
            if existing is not None:
                return existing
            try:
                with self.ws.metadata.begin() as conn:
                    number = (conn.execute(select(func.max(dataset_schemas.c.version))
                                           .where(dataset_schemas.c.name == name)).scalar() or 0) + 1
                    conn.execute(insert(dataset_schemas).values(
                        id=new_id("sch", self.ws.clock), name=name, version=number, content_sha256=content,
                        document=document, source=source or schema.source or "", created_at=self.ws.clock.now()))
                return self.get(name, number)
            except SqlIntegrityError:
                time.sleep(0.005 * (attempt + 1))  # a concurrent writer took the number; look again
        raise Conflict(f"Could not register schema {name!r}: concurrent writers kept colliding. Retry.")

    def _by_content(self, name: str, content: str) -> SchemaVersion | None:
        with self.ws.metadata.begin() as conn:
            row = conn.execute(select(dataset_schemas).where(and_(
                dataset_schemas.c.name == name, dataset_schemas.c.content_sha256 == content))).mappings().first()
        return None if row is None else _row(row)

    def get(self, name: str, version: int | None = None) -> SchemaVersion:
        """A version of ``name`` (the newest when ``version`` is None)."""
        query = select(dataset_schemas).where(dataset_schemas.c.name == name)
        query = (query.order_by(dataset_schemas.c.version.desc()).limit(1) if version is None
                 else query.where(dataset_schemas.c.version == version))
        with self.ws.metadata.begin() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            raise SchemaNotFound(name, version)
        return _row(row)

    def get_by_id(self, schema_id: str) -> SchemaVersion:
        with self.ws.metadata.begin() as conn:
            row = conn.execute(select(dataset_schemas).where(dataset_schemas.c.id == schema_id)).mappings().first()
        if row is None:
            raise SchemaNotFound(schema_id)
        return _row(row)

    def find(self, name: str) -> SchemaVersion | None:
        """The newest version of ``name``, or None when there is none."""
        try:
            return self.get(name)
        except SchemaNotFound:
            return None

    def versions(self, name: str) -> list[SchemaVersion]:
        with self.ws.metadata.begin() as conn:
            rows = conn.execute(select(dataset_schemas).where(dataset_schemas.c.name == name)
                                .order_by(dataset_schemas.c.version)).mappings().all()
        return [_row(r) for r in rows]


__all__ = ["SchemaVersion", "Schemas"]
