"""Control-plane writes need the bearer token; reads and the data plane stay open.

The check is a middleware over the whole app rather than a dependency on each
route, so a route added later cannot forget it (MLflow's CVE-2026-0545 and
CVE-2026-2652 were routes that skipped their auth middleware).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from fastapi import Request, Response
from fastapi.responses import JSONResponse

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def needs_token(method: str, path: str) -> bool:
    """True for every control-plane write: a non-read method on a path under /api/."""
    return method.upper() not in SAFE_METHODS and (path == "/api" or path.startswith("/api/"))


def token_middleware(token: str | None) -> Callable[[Request, Callable[[Request], Awaitable[Response]]],
                                                    Awaitable[Response]]:
    expected = token.encode() if token else None

    async def middleware(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if needs_token(request.method, request.url.path):
            if expected is None:
                client = request.client.host if request.client else ""
                if client not in LOOPBACK:
                    return JSONResponse(
                        {"error": "Unauthorized", "detail": "No YARNIT_API_TOKEN is configured, so control-plane "
                         "writes are accepted only from loopback. Set YARNIT_API_TOKEN on the server and send "
                         "'Authorization: Bearer <token>'."},
                        status_code=403,
                    )
            else:
                header = request.headers.get("authorization", "")
                scheme, _, supplied = header.partition(" ")
                if scheme.lower() != "bearer" or not hmac.compare_digest(supplied.strip().encode(), expected):
                    return JSONResponse(
                        {"error": "Unauthorized", "detail": "This control-plane write needs "
                         "'Authorization: Bearer <YARNIT_API_TOKEN>'; the header is missing or the token is wrong."},
                        status_code=401,
                        headers={"WWW-Authenticate": "Bearer"},
                    )
        return await call_next(request)

    return middleware


__all__ = ["needs_token", "token_middleware"]
