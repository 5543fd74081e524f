"""Who is calling the API: bearer tokens, control-plane writes, and the actor recorded in audits.

Control-plane writes (any non-read method under ``/api/``) need a token with
the ``write`` role: a named token (``yarnit tokens issue``, checked against its
stored sha256 on every request, so a revoked one is refused at once) or the
legacy ``YARNIT_API_TOKEN``, which acts as the token named ``admin`` (compared
in constant time). While neither is configured (no YARNIT_API_TOKEN, no token
ever issued), only loopback may write, recorded as ``loopback:anonymous``.
Reads stay open; a read that sends a token is authenticated too (a wrong token
is a 401), so routes such as a dataset's rows can grant what the token's roles
allow (raw restricted columns).

The check is a middleware over the whole app rather than a dependency on each
route, so a route added later cannot forget it (MLflow's CVE-2026-0545 and
CVE-2026-2652 were routes that skipped their auth middleware). It stores the
caller in ``request.state.principal``; :func:`actor_of` is what routes record.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from yarnit.access import LOOPBACK, WRITE, Principal, Tokens
from yarnit.core.errors import YarnitError

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


def needs_token(method: str, path: str) -> bool:
    """True for every control-plane write: a non-read method on a path under /api/."""
    return method.upper() not in SAFE_METHODS and _is_api(path)


def _is_api(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


def principal_of(request: Request) -> Principal | None:
    """The authenticated caller of this request (None: a read without a token)."""
    return getattr(request.state, "principal", None)


def actor_of(request: Request) -> str:
    """The actor to record for this request's audit rows: ``token:<name>`` or ``loopback:anonymous``."""
    principal = principal_of(request)
    return principal.actor if principal is not None else "api:anonymous"


def _unauthorized(detail: str) -> JSONResponse:
    return JSONResponse({"error": "Unauthorized", "detail": detail}, status_code=401,
                        headers={"WWW-Authenticate": "Bearer"})


def token_middleware(tokens: Tokens) -> Callable[[Request, Callable[[Request], Awaitable[Response]]],
                                                 Awaitable[Response]]:
    async def middleware(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if not _is_api(request.url.path):
            return await call_next(request)
        header = request.headers.get("authorization")
        principal: Principal | None = None
        try:
            if header is not None:
                scheme, _, supplied = header.partition(" ")
                if scheme.lower() == "bearer" and supplied.strip():
                    principal = await run_in_threadpool(tokens.authenticate, supplied.strip())
                if principal is None:
                    return _unauthorized("The 'Authorization: Bearer <token>' header is malformed, or the token is "
                                         "wrong or revoked. Issue a token with: yarnit tokens issue NAME --role write")
            if needs_token(request.method, request.url.path):
                if principal is None:
                    configured = tokens.ws.settings.api_token is not None or \
                        await run_in_threadpool(tokens.any_issued)
                    if configured:
                        return _unauthorized("This control-plane write needs 'Authorization: Bearer <token>' with "
                                             "a token holding the 'write' role; the header is missing.")
                    client = request.client.host if request.client else ""
                    if client not in LOOPBACK_HOSTS:
                        return JSONResponse(
                            {"error": "Unauthorized", "detail": "No YARNIT_API_TOKEN is configured and no token "
                             "was issued, so control-plane writes are accepted only from loopback. Issue one "
                             "with 'yarnit tokens issue NAME --role write' and send 'Authorization: Bearer "
                             "<token>'."}, status_code=403)
                    principal = LOOPBACK
                elif not principal.has(WRITE):
                    return JSONResponse({"error": "Forbidden", "detail": f"{principal.actor} lacks the 'write' "
                                         "role that control-plane writes need."}, status_code=403)
        except YarnitError as exc:  # the metadata store did not answer: say so, never let the request through
            return JSONResponse({"error": type(exc).__name__, "detail": str(exc)}, status_code=503,
                                headers={"Retry-After": "1"})
        request.state.principal = principal
        return await call_next(request)

    return middleware


__all__ = ["actor_of", "needs_token", "principal_of", "token_middleware"]
