"""Errors on the dashboard's pages answered as pages: a 404 for an unknown model or run, a 422 for a bad picker value.

The pages (``/`` and ``/ui/…``, except the static script) get an HTML page in the layout with the status, what
went wrong (the same client-safe text the JSON API sends) and where to go next; every other path keeps the
API's JSON errors (:mod:`yarnit.api.errors`). The status code is the same either way.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from yarnit.core.errors import YarnitError

from ..errors import (
    _problem,
    client_safe,
    status_for,
    validation_error_handler,
    yarnit_error_handler,
)
from .layout import esc, link, page

TITLES = {400: "Bad request", 401: "Not signed in", 403: "Not allowed", 404: "Not found", 405: "Method not allowed",
          409: "Conflict", 422: "Cannot show this page", 500: "Server error", 503: "Unavailable"}


def is_page(path: str) -> bool:
    """True for the dashboard's HTML routes (``/`` and ``/ui/…`` but not ``/ui/static/…``)."""
    return path == "/" or (path.startswith("/ui/") and not path.startswith("/ui/static/"))


def error_page(status: int, detail: str, problems: list[str] | None = None) -> HTMLResponse:
    title = TITLES.get(status, "Error")
    listed = "".join(f"<li>{esc(p)}</li>" for p in problems or [])
    body = (f'<p role="alert"><strong>HTTP {status}.</strong> {esc(detail)}</p>'
            + (f"<ul>{listed}</ul>" if listed else "")
            + f"<p>{link('/', 'Back to the overview')} · {link('/ui/runs', 'Pipeline runs')} · "
              f"{link('/ui/incidents', 'Incidents')}</p>")
    return HTMLResponse(page(f"{title} (HTTP {status})", body), status_code=status,
                        headers={"Cache-Control": "no-store"})


async def _yarnit_error(request: Request, exc: Exception) -> Response:
    if not is_page(request.url.path):
        return await yarnit_error_handler(request, exc)
    assert isinstance(exc, YarnitError)
    await yarnit_error_handler(request, exc)  # the same server-side logging as the API's answer
    return error_page(status_for(exc), client_safe(str(exc)))


async def _validation_error(request: Request, exc: Exception) -> Response:
    if not is_page(request.url.path):
        return await validation_error_handler(request, exc)
    assert isinstance(exc, RequestValidationError)
    problems = [f"{' → '.join(str(p) for p in e['loc'] if p not in ('query', 'path'))}: {e['msg']}"
                for e in (_problem(x) for x in exc.errors()[:20])]
    return error_page(422, "Some of the page's address is not valid; change it as said below.", problems)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if not is_page(request.url.path) or exc.status_code < 400:
        return await http_exception_handler(request, exc)
    detail = (f"There is no dashboard page at {request.url.path}." if exc.status_code == 404
              else str(exc.detail))
    response = error_page(exc.status_code, detail)
    for key, value in (exc.headers or {}).items():
        response.headers[key] = value
    return response


def install_error_pages(app: Any) -> None:
    """Answer the pages' errors as pages; call after :func:`yarnit.api.errors.install_error_handlers`."""
    app.add_exception_handler(YarnitError, _yarnit_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)


__all__ = ["error_page", "install_error_pages", "is_page"]
