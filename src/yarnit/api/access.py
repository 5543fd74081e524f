"""Dataset rows over HTTP, as every consumer sees them, and the audit of raw restricted reads.

``GET /api/datasets/{name}/versions/{version}/rows`` returns restricted columns
only through their compliant transform; ``raw=COLUMN`` (with ``purpose``) needs a
bearer token holding the ``read-restricted`` role and is audited like every raw
read (:class:`yarnit.access.RestrictedReads`). PII columns and the subject
column are never returned here unless named in ``raw`` (and so restricted,
authorized and audited). ``GET /api/access/reads`` lists the audit and needs a
token.
"""

from __future__ import annotations

import base64
import math
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request

from yarnit.access import RestrictedReads
from yarnit.core.errors import Unauthorized
from yarnit.data import Datasets

from .auth import principal_of

router = APIRouter(prefix="/api", tags=["access"])

DatasetName = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_.-]{0,62}$")]
VersionNumber = Annotated[int, Path(ge=1, le=2_147_483_647)]
ColumnQuery = Annotated[list[str], Query(max_length=200, description="Column to return (repeat; default: all)")]
RawQuery = Annotated[list[str], Query(max_length=50, description="Restricted column to return raw (needs the role)")]
MAX_ROWS = 1000


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


@router.get("/datasets/{name}/versions/{version}/rows")
def dataset_rows(name: DatasetName, version: VersionNumber, request: Request, column: ColumnQuery = [],  # noqa: B006
                 raw: RawQuery = [],  # noqa: B006
                 purpose: Annotated[str, Query(max_length=1000)] = "",
                 offset: Annotated[int, Query(ge=0, le=2**40)] = 0,
                 limit: Annotated[int, Query(ge=1, le=MAX_ROWS)] = 100) -> dict[str, Any]:
    """Rows of a version: restricted columns through their compliant transform, ``raw`` ones audited."""
    ws = request.app.state.workspace
    dv = Datasets(ws).get(name, version)
    table = RestrictedReads(ws).read_dataset(dv, columns=column or None, raw=raw, principal=principal_of(request),
                                             purpose=purpose, via="http")
    private = (set(dv.pii_columns) | ({dv.subject_column} if dv.subject_column else set())) - set(raw)
    table = table.drop_columns([c for c in table.column_names if c in private])
    rows = [{k: _json_value(v) for k, v in row.items()} for row in table.slice(offset, limit).to_pylist()]
    return {"dataset": dv.ref, "row_count": table.num_rows, "offset": offset, "columns": table.column_names,
            "raw": sorted(raw), "omitted": sorted(private & set(dv.schema)), "rows": rows}


@router.get("/access/reads")
def restricted_read_log(request: Request, dataset: Annotated[str | None, Query(max_length=200)] = None,
                        limit: Annotated[int, Query(ge=1, le=10_000)] = 100) -> list[dict[str, Any]]:
    """Audited raw reads of restricted columns, newest first (needs a token)."""
    if principal_of(request) is None:
        raise Unauthorized("The restricted-read audit needs 'Authorization: Bearer <token>'.")
    return [r.to_dict() for r in RestrictedReads(request.app.state.workspace).log(source_ref=dataset, limit=limit)]


__all__ = ["router"]
