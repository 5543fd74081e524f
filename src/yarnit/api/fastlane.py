"""The HTTP fast lane: uvicorn's httptools protocol, answering the data plane's POSTs from the parser itself.

Through ASGI every request costs a scope dict, a task, an event and two
``send`` awaits (about 14 µs of uvicorn's own code on the benchmark machine),
and an admitted request waits one more loop turn for the scoring gate. Here
:class:`DataPlaneProtocol` takes ``POST /v1/models/{name}:predict`` and
``POST /v2/models/{name}/infer`` straight from the parser's callbacks and
drives the data plane's :class:`~yarnit.api.dataplane.Exchange` steps:

* headers complete: :meth:`~yarnit.api.dataplane.DataPlaneMiddleware.begin`
  checks them (a body over the limit is answered 413 at once and the
  connection closed, so a huge body is never read);
* message complete: :meth:`~yarnit.api.dataplane.DataPlaneMiddleware.admit`
  admits or sheds it (only now: a slow body holds no slot), then
  :meth:`~yarnit.api.dataplane.DataPlaneMiddleware.parse`,
  then :meth:`~yarnit.api.dataplane.DataPlaneMiddleware.score` on the spot
  while the turn's scoring budget lasts, else in the lane's FIFO
  (:class:`LaneLoop`); the answer is written to the socket directly;
* a model that scores on the pool: a task runs
  :meth:`~yarnit.api.dataplane.DataPlaneMiddleware.finish`.

Slow and hostile clients: a request must arrive whole (headers and body)
within ``read_timeout_s``, else it is answered 408 and its connection closed
(one timer, armed only for a request still incomplete after a read); a
connection that never sends a byte is swept as idle after the keep-alive
timeout; and one client address may hold at most
``max_connections_per_client`` connections (more are answered 503 and closed
at once).

While a request waits (FIFO or pool) its connection counts as busy, so a
pipelined request behind it waits its turn on uvicorn's path, as uvicorn
would make it. Everything else (other routes and methods, ``Expect:
100-continue``, a query string or escapes in the path, a client that does
not read its answers) takes uvicorn's own ASGI path, where the same
data-plane handler answers: one implementation, two drivers.

**Why a FIFO, not scoring everything on the spot.** Scoring every request as
it is read makes a loop turn as long as all the ready requests' scoring; a
request that arrives meanwhile waits in the kernel's socket buffer, where
admission cannot see it, and under overload it is shed only after it has
waited. With a budget per turn, every turn reads (and admits or sheds)
everything that is ready before it scores much: a shed request gets its 503
within about a turn, and the queue of admitted requests is the FIFO, where
admission sees it. A newcomer is shed at once when the oldest request in
the FIFO has waited longer than ``max_queue_delay_ms`` (it would wait about
as long), or when ``max_in_flight`` requests are already admitted.

uvicorn's internals are used here (``HttpToolsProtocol``, its per-request
``cycle`` and ``pipeline``, ``server_state.default_headers``): the tests in
``tests/api/test_fastlane.py`` drive this protocol through real sockets, so
an upgrade of uvicorn that changes them fails there. pyproject.toml pins
uvicorn and httptools to the versions those tests pass on (docs/design.md
says how to move the pin).
"""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Callable
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from yarnit.core.errors import InvalidInput
from yarnit.serving import RequestTooLarge
from yarnit.serving.admission import AdmissionController

from .dataplane import DataPlaneMiddleware, Exchange, RequestTimeout

STANDING_S = 0.1  # CoDel's interval: a queue over the delay target for this long is a standing queue
# While the FIFO holds admitted requests, scoring gets at least this share of the loop against reading (and
# shedding): a slice of the FIFO may last SCORE_SHARE / (1 - SCORE_SHARE) times the last turn's reading.
SCORE_SHARE = 2 / 3  # 0.5 left 1,024 closed-loop clients 80 % of the peak (5,300 503s/s); 2/3 gave ~100 % (ad hoc)
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


class LaneLoop:
    """The fast lane's state on one event loop: the scoring budget of a turn, and the FIFO of deferred requests.

    A *turn* is one pass of the loop over the sockets that are ready. The
    lane scores the requests it reads in a turn on the spot until they have
    taken ``turn_budget_ms``; later ones wait in a FIFO, which is scored
    between two polls in slices of the same budget. So every turn reads, and
    admits or sheds, everything that arrived before it scores much: a shed
    request is answered within about a turn, whatever the queue of admitted
    ones, and the queue that builds under overload is this FIFO, where
    admission sees it, not the kernel's socket buffers, where it cannot.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, admission: AdmissionController,
                 monotonic: Callable[[], float], budget_s: float, max_per_client: int = 1 << 30) -> None:
        self.loop = loop
        self.max_per_client = max_per_client
        self.clients: dict[str, int] = {}  # open connections per client address
        self.refused_connections = 0  # connections closed at once: their address had max_per_client open
        self.admission = admission
        self.monotonic = monotonic
        self.budget_s = budget_s
        delay_ms = admission.limits.max_queue_delay_ms
        self.target_s = math.inf if delay_ms is None else delay_ms / 1000.0
        self.above_since: float | None = None  # since when the oldest request's wait has been over the target
        self.in_turn = False
        self.spent_s = 0.0  # scoring time taken by requests read in this turn
        self.turn_started = 0.0
        self.read_s = 0.0  # the time the last turn spent reading (and admitting or shedding), scoring excluded
        self.score_ratio = SCORE_SHARE / (1.0 - SCORE_SHARE)
        self.deferred: deque[tuple[DataPlaneProtocol, Exchange, float]] = deque()  # (..., when it was deferred)
        self.deferrals = 0  # requests that waited in the FIFO, since start
        self._running = False  # a slice of the FIFO is scheduled

    def wait_s(self) -> float:
        """How long a request admitted now would wait in the FIFO, for admission's ``max_queue_delay_ms``.

        The age of the oldest request in the FIFO: a measurement, not a
        model, so requests of any size count for what they really cost, and
        a newcomer would wait about as long. As in CoDel, only a *standing*
        queue counts: while the age has been over the target for less than
        ``STANDING_S`` it is reported at the target, so a burst or one slow
        turn (at 8 concurrent 100-row batches the FIFO holds ~3 ms of work)
        sheds nobody, and a queue that stays long sheds newcomers until it
        drains. Also starts the turn's budget on the first request a turn
        reads.
        """
        if not self.in_turn:
            self.in_turn = True
            self.spent_s = 0.0
            self.turn_started = self.monotonic()
            self.loop.call_soon(self._end)  # runs once this turn's I/O callbacks are done
        deferred = self.deferred
        if not deferred:
            self.above_since = None
            return 0.0
        now = self.monotonic()
        age = now - deferred[0][2]
        if age <= self.target_s:
            self.above_since = None
            return age
        if self.above_since is None:
            self.above_since = now
        return age if now - self.above_since >= STANDING_S else self.target_s

    def _end(self) -> None:
        if self.in_turn:
            self.in_turn = False
            self.read_s += max(0.0, self.monotonic() - self.turn_started - self.spent_s)

    def sweep(self, connections: set[Any], timeout_s: float) -> None:
        """Close the lane's keep-alive connections idle for ``timeout_s``; again every second.

        uvicorn arms a timer per answer for this (about 0.7 µs a request);
        one pass a second over the connections does the same job.
        """
        now = self.loop.time()
        for connection in list(connections):
            idle_since = getattr(connection, "idle_since", None)
            if idle_since is not None and now - idle_since >= timeout_s and not connection.transport.is_closing():
                connection.transport.close()
        self.loop.call_later(1.0, self.sweep, connections, timeout_s)

    def open_connection(self, host: str) -> bool:
        """Count a new connection from ``host``; False (not counted) when it already has ``max_per_client``."""
        held = self.clients.get(host, 0)
        if held >= self.max_per_client:
            self.refused_connections += 1
            return False
        self.clients[host] = held + 1
        return True

    def close_connection(self, host: str) -> None:
        held = self.clients.get(host, 0) - 1
        if held > 0:
            self.clients[host] = held
        else:
            self.clients.pop(host, None)

    def may_score_now(self) -> bool:
        """Nobody is queued ahead (FIFO, nor at the ASGI path's gate) and this turn's budget is not spent."""
        return not self.deferred and self.spent_s < self.budget_s and self.admission.gate_free

    def defer(self, connection: DataPlaneProtocol, ex: Exchange) -> None:
        self.deferred.append((connection, ex, self.monotonic()))
        self.deferrals += 1
        if not self._running:
            self._running = True
            self.loop.call_soon(self._slice)

    def _slice(self) -> None:
        """Score deferred requests, oldest first, for one budget (at least one), then let the loop poll.

        The budget is ``turn_budget_ms``, or longer after a turn that spent
        long reading: at least ``SCORE_SHARE`` of the loop's time goes to the
        FIFO while it holds requests. Reading a request and answering 503 is
        cheap, but not free (about a third of an answered request): under a
        flood, slices of a fixed 0.1 ms between turns that read hundreds of
        requests each left scoring a few percent of the CPU, and 256
        closed-loop clients got 200 answers a second.
        """
        self._end()  # a ready callback runs after the poll: this turn's reading is over
        read_s, self.read_s = self.read_s, 0.0
        budget = max(self.budget_s, read_s * self.score_ratio)
        deferred = self.deferred
        started = self.monotonic()
        try:
            while deferred:
                connection, ex, _since = deferred.popleft()
                if connection.waiting is not ex:
                    continue  # its client left; connection_lost logged it
                connection.score_deferred(ex)
                if self.monotonic() - started >= budget:
                    break
        finally:  # even if an answer failed to go out, the rest of the FIFO keeps its turn
            if deferred:
                self.loop.call_soon(self._slice)
            else:
                self._running = False


class _Unread:
    """uvicorn sets a cycle's ``message_event`` when the connection is lost; nobody reads a body here."""

    @staticmethod
    def set() -> None:
        return None


class _Busy:
    """Stands in for uvicorn's request cycle while an exchange waits (the lane's FIFO, or the scoring pool).

    uvicorn reads ``self.cycle`` to queue pipelined requests behind it
    (``response_complete``), to stop keep-alive at shutdown (``keep_alive``)
    and to signal a lost connection (``disconnected``, ``message_event``).
    """

    __slots__ = ("response_complete", "keep_alive", "disconnected")
    message_event = _Unread()

    def __init__(self, keep_alive: bool) -> None:
        self.response_complete = False
        self.keep_alive = keep_alive
        self.disconnected = False


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
        self.exchange: Exchange | None = None  # the request the parser is reading
        self.waiting: Exchange | None = None  # a request of this connection waiting in the lane's FIFO
        self.busy: _Busy | None = None  # stands in for uvicorn's cycle while the exchange is not answered
        self.dropping = False  # the rest of this request's body is read and dropped (answered 413 and closing)
        self.chunks: list[bytes] = []
        self.size = 0
        self.keep_alive = True
        self.idle_since: float | None = None  # loop time of the last answer, while no request is in progress
        self.reading_since: float | None = None  # loop time a request's first byte came, until it is complete
        self.read_timer: asyncio.TimerHandle | None = None
        self.host: str | None = None  # the client address counted in the lane's per-client connections
        self._head_source: object = None
        self._head = b""
        if self.plane is not None:
            service = self.plane.service
            self.monotonic = service.clock.monotonic
            self.limit = service.options.max_body_bytes
            self.read_timeout_s = service.options.read_timeout_s
            lane = self.plane.lane
            if not isinstance(lane, LaneLoop) or lane.loop is not self.loop:
                lane = self.plane.lane = LaneLoop(self.loop, service.admission, self.monotonic,
                                                  service.options.turn_budget_ms / 1000.0,
                                                  service.options.max_connections_per_client)
                lane.sweep(self.connections, self.timeout_keep_alive)
            self.lane: LaneLoop = lane

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self.plane is None:
            return
        self.idle_since = self.loop.time()  # a connection that never sends a byte is swept as idle
        if not self.client:  # a Unix socket: no client address to count by
            return
        host = self.client[0]
        if not self.lane.open_connection(host):
            # One address may hold only so many connections: thousands of idle or slow ones would hold
            # the process's file descriptors and memory. Refused at once, with a reason, before any read.
            body = (b'{"error":"TooManyConnections","detail":"This address already has %d open connections, '
                    b'the limit per client. Reuse a keep-alive connection instead of opening more."}'
                    % self.lane.max_per_client)
            transport.write(b"".join((STATUS_LINE[503], self._default_head(), b"content-type: application/json\r\n"
                                      b"content-length: ", str(len(body)).encode(), b"\r\nretry-after: 1\r\n"
                                      b"connection: close\r\n\r\n", body)))
            transport.close()
            return
        self.host = host

    def data_received(self, data: bytes) -> None:
        self.idle_since = None
        super().data_received(data)
        if self.reading_since is not None and self.read_timer is None and self.plane is not None \
                and not self.transport.is_closing():
            # A request is still incomplete after this read: time it (only slow requests pay for a timer).
            self.read_timer = self.loop.call_at(self.reading_since + self.read_timeout_s, self._read_timed_out)

    def _read_timed_out(self) -> None:
        """A request has been arriving for ``read_timeout_s``: answer 408 and close the connection.

        A slow body holds no admission slot (admission waits for the body),
        but it holds a connection and its buffers: a client that sends
        headers and a few bytes of body and then waits (slowloris) is cut
        off here, as is one that trickles its headers.
        """
        self.read_timer = None
        since = self.reading_since
        if since is None or self.transport.is_closing():
            return
        due = since + self.read_timeout_s
        if self.loop.time() < due or self.flow.read_paused:  # a newer request, or we stopped reading, not it
            self.read_timer = self.loop.call_at(max(due, self.loop.time() + self.read_timeout_s / 4),
                                                self._read_timed_out)
            return
        self.reading_since = None
        plane = self.plane
        assert plane is not None
        ex = self.exchange
        if ex is not None:  # the lane's request: answered (408, unless its headers were answered already) and logged
            if not ex.answered:
                plane.fail(ex, RequestTimeout(self.read_timeout_s))
            self._refuse(ex)
            return
        cycle = self.cycle
        if cycle is None or cycle.response_complete or not getattr(cycle, "response_started", True):
            # Headers still arriving, or uvicorn's ASGI path waiting for the body: nothing is being written.
            body = RequestTimeout(self.read_timeout_s).args[0].encode()
            self.transport.write(b"".join((STATUS_LINE[408], self._default_head(),
                                           b"content-type: text/plain; charset=utf-8\r\ncontent-length: ",
                                           str(len(body)).encode(), b"\r\nconnection: close\r\n\r\n", body)))
        self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.read_timer is not None:
            self.read_timer.cancel()
            self.read_timer = None
        if self.host is not None:
            self.lane.close_connection(self.host)
            self.host = None
        for ex in (self.exchange, self.waiting):
            if ex is not None:  # the client left mid-request: free its slot, log it, answer nobody
                assert self.plane is not None
                if not ex.answered:
                    self.plane.fail(ex, InvalidInput("The client disconnected before its request was answered."))
                self.plane.complete(ex)
        self.exchange = self.waiting = None
        super().connection_lost(exc)

    # -- parser callbacks ------------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        if self.plane is None:
            super().on_message_begin()
            return
        self.reading_since = self.loop.time()
        # uvicorn's ASGI scope is built only if the request takes uvicorn's path (see on_headers_complete).
        self.url = b""
        self.expect_100_continue = False
        self.headers = []

    def on_headers_complete(self) -> None:
        plane = self.plane
        if plane is not None and not self.expect_100_continue and self.parser.get_method() == b"POST" \
                and (self.cycle is None or self.cycle.response_complete) and not self.flow.write_paused \
                and not self.parser.should_upgrade():
            route = fast_route(self.url)
            if route is not None:
                self.keep_alive = self.parser.get_http_version() != "1.0" and self.parser.should_keep_alive()
                self.chunks.clear()
                self.size = 0
                ex = self.exchange = plane.begin(route[0], route[1], self.headers)
                if ex.status == 413:  # the declared body is over the limit: answer now, never read it
                    self._refuse(ex)
                return
        self.exchange = None
        if plane is not None:  # build the scope uvicorn's on_message_begin would have, keeping what was parsed
            url, headers, expect = self.url, self.headers, self.expect_100_continue
            super().on_message_begin()
            self.url, self.headers, self.expect_100_continue = url, headers, expect
            self.scope["headers"] = headers
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
        self.reading_since = None
        ex = self.exchange
        if ex is None:
            if self.dropping:
                self.dropping = False
            else:
                super().on_message_complete()
            return
        plane = self.plane
        assert plane is not None
        self.exchange = None
        if not ex.answered:
            body = self.chunks[0] if len(self.chunks) == 1 else b"".join(self.chunks)
            self.chunks.clear()
            # Admitted only now that the body is here (a slow body holds no slot), then parsed.
            admitted = plane.admit(ex, self.lane.wait_s())
            if admitted and not plane.parses_inline(body):  # a big body: parsed (and scored) on the scoring pool
                self._start_offload(ex, body)
                return
            if admitted and plane.parse(ex, body):
                if not plane.inline(ex):  # the scoring pool: a task waits for it
                    self._start_offload(ex, b"")
                    return
                lane = self.lane
                if not lane.may_score_now():
                    self.waiting = ex
                    self._make_busy()
                    lane.defer(self, ex)
                    return
                started = self.monotonic()
                plane.score(ex)
                lane.spent_s += self.monotonic() - started
        self._respond(ex)

    def _make_busy(self) -> _Busy:
        """Mark the connection busy (uvicorn queues a pipelined request behind it) until the answer is written."""
        busy = self.busy = self.cycle = _Busy(self.keep_alive)  # type: ignore[assignment]
        return busy

    def score_deferred(self, ex: Exchange) -> None:
        """Its turn in the FIFO (:meth:`LaneLoop._slice`): score it and answer."""
        assert self.plane is not None
        self.waiting = None
        self.plane.score(ex, waited=True)
        self._respond(ex)

    def _start_offload(self, ex: Exchange, body: bytes) -> None:
        busy = self._make_busy()
        task = self.loop.create_task(self._offload(ex, busy, body))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    async def _offload(self, ex: Exchange, busy: _Busy, body: bytes) -> None:
        plane = self.plane
        assert plane is not None
        try:
            await plane.finish(ex, body)  # parsed already (body b""), or a big body finish parses on the pool
        finally:
            if busy.disconnected:  # the client is gone: nothing to write; log it still
                busy.response_complete = True
                self.busy = None
                if ex.answered:
                    plane.complete(ex)
            elif ex.answered:
                self._respond(ex)

    # -- the answer ------------------------------------------------------------------------------------
    def _refuse(self, ex: Exchange) -> None:
        """Answer at once and close (a body over the limit, a request too slow): the rest is never worth reading."""
        self.exchange = None
        self._respond(ex, close=True)
        self.dropping = True

    def _respond(self, ex: Exchange, close: bool = False) -> None:
        """Write ``ex``'s answer, log it, and make the connection ready for its next request."""
        busy, self.busy = self.busy, None
        if busy is not None:
            busy.response_complete = True
            close = close or not busy.keep_alive  # uvicorn's shutdown asked to close once answered
        body = ex.body
        assert body is not None
        close = close or not self.keep_alive
        head = [STATUS_LINE[ex.status], self._default_head(), b"content-type: ", ex.content_type, b"\r\ncontent-length: ",
                str(len(body)).encode(), b"\r\nx-request-id: ", (ex.request_id or "").encode(), b"\r\n"]
        for name, value in ex.headers:
            head += (name, b": ", value, b"\r\n")
        head.append(b"connection: close\r\n\r\n" if close else b"\r\n")
        head.append(body)
        assert self.plane is not None
        self.plane.writing(ex)
        self.transport.write(b"".join(head))
        try:
            self.plane.complete(ex)
        finally:
            if close:
                self.transport.close()
            self._answered()

    def _answered(self) -> None:
        """uvicorn's ``on_response_complete`` without a keep-alive timer per answer (see LaneLoop.sweep)."""
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        else:
            self.idle_since = self.loop.time()

    def _default_head(self) -> bytes:
        """uvicorn's default headers (date, server) as bytes; the server replaces the list once a second."""
        source = self.server_state.default_headers
        if source is not self._head_source:
            self._head = b"".join(name + b": " + value + b"\r\n" for name, value in source)
            self._head_source = source
        return self._head


__all__ = ["DataPlaneProtocol", "LaneLoop", "fast_route", "find_plane"]
