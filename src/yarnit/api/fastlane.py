"""The HTTP fast lane: uvicorn's httptools protocol, answering the data plane's POSTs from the parser itself.

Through ASGI every request costs a scope dict, a task, an event and two
``send`` awaits (about 14 µs of uvicorn's own code on the benchmark machine),
and an admitted request waits one more loop turn for the scoring gate. Here
:class:`DataPlaneProtocol` takes ``POST /v1/models/{name}:predict`` and
``POST /v2/models/{name}/infer`` straight from the parser's callbacks and
drives the data plane's :class:`~yarnit.api.dataplane.Exchange` steps:

* headers complete: :meth:`~yarnit.api.dataplane.DataPlaneMiddleware.begin`
  (admit or shed; a body over the limit is answered 413 at once and the
  connection closed, so a huge body is never read);
* message complete: :meth:`~yarnit.api.dataplane.DataPlaneMiddleware.finish_now`
  parses and scores on the spot when nobody waits for the scoring gate and
  the model scores inline; the answer is written to the socket directly;
* otherwise (the gate is busy, the model scores on the pool) a task runs
  :meth:`~yarnit.api.dataplane.DataPlaneMiddleware.finish` and the connection
  counts as busy, so a pipelined request behind it waits its turn as uvicorn
  would make it.

Everything else (other routes and methods, ``Expect: 100-continue``, a query
string or escapes in the path, a pipelined request behind a busy one, a
client that does not read its answers) takes uvicorn's own ASGI path,
where the same data-plane handler answers: one implementation, two drivers.

**How long did a request wait before the server read it?** With requests
answered on the spot there is no queue in the server: under overload the
queue is in the kernel's socket buffers, out of admission's sight. The lane
estimates each request's wait (:class:`LoopTurns`) and admission sheds it
when the estimate is over ``max_queue_delay_ms`` (reason ``queue``). Two
bounds, the smaller one wins:

* a client sends its next request on a keep-alive connection only after it
  has read the previous answer (no pipelining here), so the request is at
  most as old as the time since that answer was written;
* a request read in this loop turn was not there when the previous turn
  read the sockets, so it is at most as old as the previous turn's length
  plus how far into this turn the loop is.

uvicorn's internals are used here (``HttpToolsProtocol``, its per-request
``cycle`` and ``pipeline``, ``server_state.default_headers``): the tests in
``tests/api/test_fastlane.py`` drive this protocol through real sockets, so
an upgrade of uvicorn that changes them fails there.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from yarnit.core.errors import InvalidInput
from yarnit.serving import RequestTooLarge

from .dataplane import DataPlaneMiddleware, Exchange

_V1_PREFIX, _V1_SUFFIX = b"/v1/models/", b":predict"
_V2_PREFIX, _V2_SUFFIX = b"/v2/models/", b"/infer"


def fast_route(url: bytes) -> tuple[str, str] | None:
    """``(protocol, name)`` of a data-plane URL the lane takes, else None (the ASGI path takes it)."""
    if b"?" in url or b"%" in url:
        return None
    if url.endswith(_V1_SUFFIX) and url.startswith(_V1_PREFIX):
        return "v1", url[11:-8].decode("latin-1")
    if url.endswith(_V2_SUFFIX) and url.startswith(_V2_PREFIX):
        return "v2", url[11:-6].decode("latin-1")
    return None


def find_plane(app: Any) -> DataPlaneMiddleware | None:
    """The data-plane handler in front of ``app``, through uvicorn's own wrappers (proxy headers...)."""
    for _ in range(8):
        if isinstance(app, DataPlaneMiddleware):
            return app
        app = getattr(app, "app", None)
        if app is None:
            return None
    return None


class LoopTurns:
    """When the event loop's turns that read data-plane requests began and ended (see the module docstring)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, monotonic: Callable[[], float]) -> None:
        self.loop = loop
        self.monotonic = monotonic
        self.in_turn = False
        self.started = -math.inf
        self.previous_s = 0.0  # length of the previous turn

    def waited(self, now: float, since_answer: float) -> float:
        """An upper bound on how long a request read now waited, or ``since_answer`` if that is smaller."""
        if not self.in_turn:
            self.in_turn = True
            self.started = now
            self.loop.call_soon(self._end)  # runs once this turn's I/O callbacks are done
        return min(since_answer, self.previous_s + (now - self.started))

    def _end(self) -> None:
        self.in_turn = False
        self.previous_s = self.monotonic() - self.started


class _Busy:
    """Stands in for uvicorn's request cycle while an exchange finishes in a task.

    uvicorn reads ``self.cycle`` to queue pipelined requests behind it
    (``response_complete``), to stop keep-alive at shutdown (``keep_alive``)
    and to signal a lost connection (``disconnected``, ``message_event``).
    """

    __slots__ = ("response_complete", "keep_alive", "disconnected", "message_event")

    def __init__(self, keep_alive: bool) -> None:
        self.response_complete = False
        self.keep_alive = keep_alive
        self.disconnected = False
        self.message_event = asyncio.Event()


class DataPlaneProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the data plane's fast lane (see the module docstring).

    Pass it to uvicorn as ``http=DataPlaneProtocol`` (``--http
    yarnit.api.fastlane:DataPlaneProtocol``) with the app from
    :func:`~yarnit.api.dataplane.asgi_entry`. Without a data-plane handler in
    front of the app it is uvicorn's protocol, unchanged.
    """

    def __init__(self, config: Config, server_state: ServerState, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.plane = find_plane(self.app) if not self.root_path else None
        self.exchange: Exchange | None = None  # the request being read (a task owns one that finishes later)
        self.dropping = False  # the rest of this request's body is read and dropped (answered 413 and closing)
        self.chunks: list[bytes] = []
        self.size = 0
        self.keep_alive = True
        self.answered_at = -math.inf
        self.turns: LoopTurns | None = None
        self._head_source: object = None
        self._head = b""
        if self.plane is not None:
            service = self.plane.service
            self.monotonic = service.clock.monotonic
            self.limit = service.options.max_body_bytes
            turns = self.plane.turns
            if turns is None or turns.loop is not self.loop:
                turns = self.plane.turns = LoopTurns(self.loop, self.monotonic)
            self.turns = turns

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self.plane is not None:
            self.answered_at = self.monotonic()  # a new connection's first request is no older than it

    def connection_lost(self, exc: Exception | None) -> None:
        ex = self.exchange
        if ex is not None:  # the client left mid-request: free its slot, log it, answer nobody
            self.exchange = None
            assert self.plane is not None
            if not ex.answered:
                self.plane.fail(ex, InvalidInput("The client disconnected before sending the whole body."))
            self.plane.complete(ex)
        super().connection_lost(exc)

    # -- parser callbacks ------------------------------------------------------------------------------
    def on_headers_complete(self) -> None:
        plane = self.plane
        if plane is not None and not self.expect_100_continue and self.parser.get_method() == b"POST" \
                and (self.cycle is None or self.cycle.response_complete) and not self.flow.write_paused \
                and not self.parser.should_upgrade():
            route = fast_route(self.url)
            if route is not None:
                assert self.turns is not None
                now = self.monotonic()
                self.keep_alive = self.parser.get_http_version() != "1.0" and self.parser.should_keep_alive()
                self.chunks.clear()
                self.size = 0
                ex = self.exchange = plane.begin(route[0], route[1], self.headers,
                                                 self.turns.waited(now, now - self.answered_at))
                if ex.status == 413:  # the declared body is over the limit: answer now, never read it
                    self._refuse(ex)
                return
        self.exchange = None
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        ex = self.exchange
        if ex is None:
            if not self.dropping:
                super().on_body(body)
            return
        if ex.answered:
            return  # shed or refused: the body is read and dropped
        self.size += len(body)
        if self.size > self.limit:  # no Content-Length (chunked) and the body grew over the limit
            assert self.plane is not None
            self.plane.fail(ex, RequestTooLarge(self.size, self.limit))
            self._refuse(ex)
            return
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        ex = self.exchange
        if ex is None:
            if self.dropping:
                self.dropping = False
            else:
                super().on_message_complete()
            return
        if not ex.answered:
            plane = self.plane
            assert plane is not None
            body = self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)
            self.chunks.clear()
            if not plane.finish_now(ex, body):
                self.exchange = None  # the task owns it now
                busy = self.cycle = _Busy(self.keep_alive)  # type: ignore[assignment]
                task = self.loop.create_task(self._finish(ex, body, busy))
                task.add_done_callback(self.tasks.discard)
                self.tasks.add(task)
                return
        self._respond(ex)

    async def _finish(self, ex: Exchange, body: bytes, busy: _Busy) -> None:
        plane = self.plane
        assert plane is not None
        try:
            await plane.finish(ex, body)
        finally:
            busy.response_complete = True
            if busy.disconnected:  # the client is gone: nothing to write; log it still
                if ex.answered:
                    plane.complete(ex)
            elif ex.answered:
                self._respond(ex, close=not busy.keep_alive)

    # -- the answer ------------------------------------------------------------------------------------
    def _refuse(self, ex: Exchange) -> None:
        """Answer a body over the limit at once and close: the rest of it is never worth reading."""
        self._respond(ex, close=True)
        self.dropping = True

    def _respond(self, ex: Exchange, close: bool = False) -> None:
        """Write ``ex``'s answer, log it, and make the connection ready for its next request."""
        self.exchange = None
        body = ex.body
        assert body is not None
        close = close or not self.keep_alive
        head = [STATUS_LINE[ex.status], self._default_head(), b"content-type: application/json\r\ncontent-length: ",
                str(len(body)).encode(), b"\r\nx-request-id: ", (ex.request_id or "").encode(), b"\r\n"]
        for name, value in ex.headers:
            head += (name, b": ", value, b"\r\n")
        head.append(b"connection: close\r\n\r\n" if close else b"\r\n")
        head.append(body)
        self.transport.write(b"".join(head))
        assert self.plane is not None
        try:
            self.plane.complete(ex)
        finally:
            self.answered_at = self.monotonic()
            if close:
                self.transport.close()
            self.on_response_complete()

    def _default_head(self) -> bytes:
        """uvicorn's default headers (date, server) as bytes; the server replaces the list once a second."""
        source = self.server_state.default_headers
        if source is not self._head_source:
            self._head = b"".join(name + b": " + value + b"\r\n" for name, value in source)
            self._head_source = source
        return self._head


__all__ = ["DataPlaneProtocol", "LoopTurns", "fast_route", "find_plane"]
