"""What the HTTP layer answers when something goes wrong: one table of status codes, safe bodies.

* :data:`ERROR_STATUS` maps the error families to status codes, once.
* A client never sees an absolute server path: a message that names one (the
  metadata store's ``sqlite:////srv/…/yarnit.db``, an artifact file) is sent
  with the path replaced by ``<server path>``; the full text goes to the
  server log, where the operator who can act on it reads it.
* A request that fails validation is answered 422 with where and why, never
  with the offending value: FastAPI's default echoes the whole input (a 50 MB
  body came back in the 422), and an echoed ``NaN`` or ``1e999`` made the
  answer itself unserialisable (a 500).
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
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
from yarnit.core.text import visible_controls

log = logging.getLogger("yarnit.api")

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

# An absolute path, alone or after a URL scheme with an empty host (sqlite:////srv/ws/yarnit.db, file:///x).
_PATH = re.compile(r"(?:\b[a-z][a-z0-9+.-]*:/{2,3})?(?<![\w.-])/[^\s'\"`<>|,;()\[\]{}]+")
MAX_DETAIL_CHARS = 2000


def _is_server_path(candidate: str) -> bool:
    """True when ``candidate`` names a place on this server's file system (its first directory exists).

    Route paths such as ``/api/models/ctr`` or ``/v2/health/ready`` start with
    a directory no server has, so advice that names them stays intact.
    """
    path = re.sub(r"^[a-z][a-z0-9+.-]*:/{2,3}", "/", candidate)
    first = path.lstrip("/").split("/", 1)[0]
    return bool(first) and os.path.isdir("/" + first)


def client_safe(message: str) -> str:
    """``message`` without absolute server paths or control characters, and at most 2,000 characters."""
    text = _PATH.sub(lambda m: "<server path>" if _is_server_path(m.group(0)) else m.group(0), message)
    text = visible_controls(text)
    return text if len(text) <= MAX_DETAIL_CHARS else text[:MAX_DETAIL_CHARS - 3] + "..."


def status_for(exc: YarnitError) -> int:
    for family in type(exc).__mro__:
        if family in ERROR_STATUS:
            return ERROR_STATUS[family]  # type: ignore[index]
    return 500


async def yarnit_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, YarnitError)
    status = status_for(exc)
    detail = client_safe(str(exc))
    if detail != str(exc) or status >= 500:  # the operator gets the full text (paths included) in the log
        log.log(logging.ERROR if status >= 500 else logging.INFO, "%s %s → %d %s: %s", request.method,
                request.url.path, status, type(exc).__name__, exc)
    headers = {"Retry-After": "1"} if status == 503 else None
    return JSONResponse({"error": type(exc).__name__, "detail": detail}, status_code=status, headers=headers)


def _problem(error: Any) -> dict[str, Any]:
    """One validation problem: where (``loc``), what kind and the message; never the input value."""
    ctx = error.get("ctx") or {}
    limits = {k: v for k, v in ctx.items() if k in ("ge", "gt", "le", "lt", "min_length", "max_length",
                                                     "pattern", "expected") and isinstance(v, (int, str))}
    out = {"loc": [p if isinstance(p, (int, str)) else str(p) for p in error.get("loc", ())][:10],
           "type": str(error.get("type", "invalid")), "msg": client_safe(str(error.get("msg", "")))[:500]}
    return out | ({"ctx": limits} if limits else {})


async def validation_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    """422 naming each bad field and the rule it broke, without echoing what the client sent.

    The body keeps FastAPI's documented shape (``{"detail": [{"loc", "msg", "type"}]}``, the
    ``HTTPValidationError`` schema in /openapi.json) minus the ``input`` member.
    """
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": [_problem(e) for e in exc.errors()[:20]]}, status_code=422)


def install_error_handlers(app: Any) -> None:
    """Register the handlers above on a FastAPI app (the one call ``create_app`` makes)."""
    app.add_exception_handler(YarnitError, yarnit_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)


__all__ = ["ERROR_STATUS", "client_safe", "install_error_handlers", "status_for", "validation_error_handler",
           "yarnit_error_handler"]
