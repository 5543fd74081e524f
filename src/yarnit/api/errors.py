"""The one table from error families to HTTP status codes."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse

from yarnit.core.errors import (
    Conflict,
    Forbidden,
    IntegrityError,
    InvalidInput,
    NotFound,
    Unauthorized,
    Unavailable,
    UnsafeArtifact,
    YarnitError,
)

ERROR_STATUS: dict[type[YarnitError], int] = {
    InvalidInput: 422,
    NotFound: 404,
    Conflict: 409,
    Unauthorized: 401,
    Forbidden: 403,
    Unavailable: 503,
    IntegrityError: 500,
    UnsafeArtifact: 500,
}


def status_for(exc: YarnitError) -> int:
    for family in type(exc).__mro__:
        if family in ERROR_STATUS:
            return ERROR_STATUS[family]  # type: ignore[index]
    return 500


async def yarnit_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, YarnitError)
    status = status_for(exc)
    headers = {"Retry-After": "1"} if status == 503 else None
    return JSONResponse({"error": type(exc).__name__, "detail": str(exc)}, status_code=status, headers=headers)


__all__ = ["ERROR_STATUS", "status_for", "yarnit_error_handler"]
