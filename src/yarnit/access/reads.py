"""Reads of datasets that hold restricted columns: compliant by default, raw only with the role, audited.

``RestrictedReads.read_dataset`` is the one path through which a restricted
column's raw values leave a dataset version (the Python API, ``yarnit access
read``, ``GET /api/datasets/…/rows`` and fairness evaluation all call it).
Without ``raw`` it returns the compliant view (:mod:`yarnit.data.restricted`).
With ``raw`` it needs a named, unrevoked token with the ``read-restricted``
role and a purpose, and it writes the audit row (who, which columns, which
dataset version, why, when on the workspace clock) *before* reading: the role
check and the audit row are one transaction, so a revoked token is refused and
no raw value is returned without its row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import pyarrow as pa
from sqlalchemy import insert, select

from yarnit.core.errors import InvalidInput
from yarnit.data import DatasetVersion
from yarnit.data.restricted import columns_to_read, read_compliant, restrictions_of
from yarnit.storage import Workspace
from yarnit.storage.schema import restricted_reads

from .tokens import READ_RESTRICTED, Principal, Tokens

Via = Literal["python", "cli", "http"]


@dataclass(frozen=True)
class RestrictedRead:
    """One audited raw read of restricted columns."""

    id: int
    at: datetime
    actor: str
    via: str
    source_kind: str
    source_ref: str
    columns: tuple[str, ...]
    purpose: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "at": self.at.isoformat(), "actor": self.actor, "via": self.via,
                "source_kind": self.source_kind, "source_ref": self.source_ref, "columns": list(self.columns),
                "purpose": self.purpose}


class RestrictedReads:
    """The audited path to restricted columns, and its audit trail."""

    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace

    def read_dataset(self, version: DatasetVersion, *, columns: Sequence[str] | None = None, raw: Sequence[str] = (),
                     principal: Principal | None = None, purpose: str = "", via: Via = "python") -> pa.Table:
        """Rows of ``version``: restricted columns as their compliant outputs, those in ``raw`` raw (audited).

        ``columns`` (None: all) may name compliant outputs (``age_band``) and the ``raw`` columns.
        """
        restrictions = restrictions_of(self.ws, version)
        not_restricted = [c for c in raw if c not in restrictions]
        if not_restricted:
            raise InvalidInput(f"--raw names {not_restricted}, which are not restricted columns of {version.ref} "
                               f"(restricted: {sorted(restrictions) or 'none'}); read them as ordinary columns.")
        columns_to_read(columns, restrictions, where=version.ref, raw=raw)  # refuse before auditing
        if raw:
            self.record(principal, raw, "dataset_version", version.ref, purpose, via)
        return read_compliant(self.ws, version, columns=columns, raw=raw)

    def record(self, principal: Principal | None, columns: Sequence[str], source_kind: str, source_ref: str,
               purpose: str, via: Via) -> None:
        """Check the role and write the audit row, in one transaction (call before the raw values are read)."""
        purpose = " ".join(purpose.split())
        if not purpose:
            raise InvalidInput(f"A raw read of restricted columns {sorted(columns)} of {source_ref} needs a purpose "
                               "(kept in the audit trail), e.g. --purpose 'fairness audit Q3 for legal'.")
        if len(purpose) > 1000:
            raise InvalidInput(f"The purpose is {len(purpose)} characters long; keep it under 1000.")
        with self.ws.metadata.begin() as conn:
            Tokens(self.ws).require(conn, principal, READ_RESTRICTED,
                                    f"a raw read of {sorted(columns)} of {source_ref}")
            assert principal is not None  # require() refuses None
            conn.execute(insert(restricted_reads).values(
                at=self.ws.clock.now(), actor=principal.actor, via=via, source_kind=source_kind,
                source_ref=source_ref[:256], columns=sorted(columns), purpose=purpose))

    def log(self, *, source_ref: str | None = None, limit: int = 100) -> list[RestrictedRead]:
        """Audited raw reads, newest first (optionally of one source, e.g. ``shoppers:v1``)."""
        query = select(restricted_reads).order_by(restricted_reads.c.id.desc()).limit(limit)
        if source_ref is not None:
            query = query.where(restricted_reads.c.source_ref == source_ref)
        with self.ws.metadata.begin() as conn:
            rows = conn.execute(query).mappings().all()
        return [RestrictedRead(id=r["id"], at=r["at"], actor=r["actor"], via=r["via"], source_kind=r["source_kind"],
                               source_ref=r["source_ref"], columns=tuple(r["columns"]), purpose=r["purpose"])
                for r in rows]


__all__ = ["RestrictedRead", "RestrictedReads"]
