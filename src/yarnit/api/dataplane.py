"""Data plane: the v1 protocol and the Open Inference Protocol v2, without a framework on the request path.

``POST /v1/models/{name}:predict`` (``{"instances": [...]}``) and
``POST /v2/models/{name}/infer`` (OIP v2 tensors) are answered by
:class:`DataPlaneMiddleware`: no pydantic models, no per-request dependency
injection, JSON parsed and written with orjson. It works on one
:class:`Exchange` per request, in steps that two drivers run: the HTTP fast
lane (:mod:`yarnit.api.fastlane`, straight from uvicorn's parser; what
``yarnit serve`` runs) and a plain ASGI layer in front of the FastAPI stack
(for what the lane hands over, and for other ASGI servers). The same two
routes are declared on the FastAPI router too, with their full request and
response schemas, so they appear in ``/openapi.json`` (and in the auth
inventory); those declarations delegate to the very same handler, so there
is one implementation.

Every answer names the model, the version and the path that produced it
(``served_by``: model | previous | fallback), in the body and in
``x-yarnit-*`` headers. Bad input is a 4xx with a reason, never a 5xx:
malformed JSON, wrong shapes or types, NaN/inf and unknown fields are 422, an
unknown model 404, a body over the limit 413, and a request shed by
admission control 503 with ``Retry-After``. Every request, whatever its
outcome, is written to the prediction log.

:func:`install` wires the serving stack into an app (see ``api/app.py``). The
two wire formats (decoding, encoding, their JSON Schemas) are in
:mod:`yarnit.api.codecs`.
"""

from __future__ import annotations

import bisect
import hashlib
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import APIRouter, FastAPI, Path, Request, Response
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from yarnit.core.errors import InvalidInput, NotFound, YarnitError
from yarnit.serving import (
    InferenceService,
    Overloaded,
    Prediction,
    RequestTooLarge,
    ServingCollector,
    ServingOptions,
)
from yarnit.serving.admission import ScoringTimeout, Ticket, scores_inline
from yarnit.serving.metrics import loaded_versions
from yarnit.serving.onlinefeatures import FeatureSource
from yarnit.serving.predlog import MAX_LOGGED_ROWS
from yarnit.serving.runtime import ModelState
from yarnit.serving.service import retired_versions

from .codecs import (
    CLASS_OUTPUTS,
    ERROR_SCHEMA,
    RANKING_OUTPUTS,
    REQUEST_ID,
    SERVED_BY,
    V1_REQUEST,
    V1_RESPONSE,
    V2_REQUEST,
    V2_RESPONSE,
    encode_v1,
    encode_v2,
    error_body,
    loads,
    parse_v1,
    parse_v2,
    v2_answer,
)
from . import binary
from .errors import status_for

if TYPE_CHECKING:
    from yarnit.storage import Workspace

    from .metrics import ApiMetrics

log = logging.getLogger("yarnit.api.dataplane")

NAME_PATTERN = r"^[a-z][a-z0-9_.-]{0,62}$"
_NAME = re.compile(NAME_PATTERN)
_REQUEST_ID = REQUEST_ID
V1_TEMPLATE = "/v1/models/{name}:predict"
UNKNOWN_MODEL = "_unknown"  # the metrics label of requests for a model that is not served
# Bodies over this are parsed on the scoring pool, not on the event loop: a 15 MB OIP v2 body took 2.2 s of
# the loop to parse (every other request, health checks and 503s included, waited behind it). 64 KiB parses
# in well under a millisecond.
PARSE_INLINE_BYTES = 64 << 10
V2_TEMPLATE = "/v2/models/{name}/infer"
_JSON = (b"content-type", b"application/json")


def route_of(path: str) -> tuple[str, str] | None:
    """``(protocol, model name)`` when ``path`` is a data-plane POST route, else None."""
    if path.endswith(":predict") and path.startswith("/v1/models/"):
        return "v1", path[11:-8]
    if path.endswith("/infer") and path.startswith("/v2/models/"):
        return "v2", path[11:-6]
    return None


# -- OpenAPI: the routes' responses and headers (the bodies' schemas are in codecs) -------------------------
_ANSWER_HEADERS = {
    "x-request-id": {"schema": {"type": "string"}, "description": "The request id (also in the prediction log)"},
    "x-yarnit-model-version": {"schema": {"type": "string"}, "description": "Version that answered (0: heuristic)"},
    "x-yarnit-served-by": {"schema": SERVED_BY, "description": "Which path answered"},
}


def _error_response(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": ERROR_SCHEMA}}}
    if headers:
        out["headers"] = headers
    return out


def _responses(ok_schema: dict[str, Any]) -> dict[int | str, dict[str, Any]]:
    return {
        200: {"description": "Scores, with the model, version and path that answered", "headers": _ANSWER_HEADERS,
              "content": {"application/json": {"schema": ok_schema}}},
        404: _error_response("No such model, or it has no production version"),
        408: {"description": "The request did not arrive whole within the server's read timeout (a slow or "
                             "stalled client); the connection is closed. Send the whole request at once, or retry.",
              "content": {"application/json": {"schema": ERROR_SCHEMA}, "text/plain": {"schema": {"type": "string"}}}},
        413: _error_response("The body is over the size limit"),
        422: _error_response("Malformed JSON, wrong shape or type, NaN/inf, unknown field"),
        503: _error_response("Shed by admission control (queue full or deadline passed in the queue)",
                             {"Retry-After": {"schema": {"type": "string"}, "description": "Seconds to wait"}}),
    }


_HEADER_PARAMS = [
    {"name": "x-request-id", "in": "header", "required": False,
     "schema": {"type": "string", "pattern": _REQUEST_ID.pattern},
     "description": "Your request id (else the server makes one)"},
    {"name": "x-yarnit-deadline-ms", "in": "header", "required": False,
     "schema": {"type": "string", "pattern": r"^[1-9][0-9]{0,5}$"},
     "description": "A tighter deadline for this request, in whole ms (capped at the server's)"},
]


def _openapi_extra(schema: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}},
            "parameters": _HEADER_PARAMS}


# -- the handler: one exchange per request, driven by the ASGI path or by the HTTP fast lane --------------
class RequestTimeout(InvalidInput):
    """The request did not arrive whole within the read timeout (408; the connection is closed)."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__(f"The request did not arrive whole within {timeout_s:g} s (headers and body). Send the "
                         "body at once, or over a faster link; the connection is closed.")
        self.timeout_s = timeout_s


class Exchange:
    """One data-plane request, from its headers to its answer.

    :meth:`DataPlaneMiddleware.begin` opens it from the headers and may
    answer it at once (shed, a bad header, an unknown name, a body over the
    limit). The ASGI path then runs :meth:`~DataPlaneMiddleware.finish`
    (wait for the gate's turn, or go to the scoring pool); the HTTP fast
    lane runs :meth:`~DataPlaneMiddleware.parse` and
    :meth:`~DataPlaneMiddleware.score` on its own schedule (or ``finish``
    for the pool). :meth:`~DataPlaneMiddleware.complete` logs and counts it
    once the answer is sent.
    """

    __slots__ = ("protocol", "name", "started", "written", "request_id", "deadline_s", "length", "status", "error",
                 "prediction", "instances", "key", "echo_id", "ticket", "body", "headers", "logged", "named", "routed",
                 "binary_length", "binary_out", "content_type")

    def __init__(self, protocol: str, name: str, started: float) -> None:
        self.protocol, self.name, self.started = protocol, name, started
        # when the answer was handed to the transport (:meth:`DataPlaneMiddleware.writing`), None until then
        self.written: float | None = None
        self.request_id: str | None = None
        self.deadline_s: float | None = None
        self.length = -1  # Content-Length, -1 when absent
        self.status = 200
        self.error: str | None = None
        self.prediction: Prediction | None = None
        self.instances: list[dict[str, Any]] | None = None
        self.key: str | None = None
        self.echo_id: str | None = None
        self.ticket: Ticket | None = None  # held from admission until scored
        self.body: bytes | None = None  # the answer's body, once answered
        self.headers: Sequence[tuple[bytes, bytes]] = ()  # the answer's own headers (besides type and length)
        self.logged: dict[str, Any] | None = None  # what the log keeps of a big request instead of its instances
        self.routed: str | None = None  # the alias a request that failed without an answer was routed to
        self.named = False  # the client named the request (x-request-id): an OIP v2 body id does not rename it
        self.binary_length: int | None = None  # Inference-Header-Content-Length: OIP v2 binary tensors follow
        self.binary_out = False  # the OIP v2 answer goes as binary tensors (api/binary.py)
        self.content_type = _JSON[1]

    @property
    def answered(self) -> bool:
        return self.body is not None


class DataPlaneMiddleware:
    """Answers the data-plane POSTs itself; passes everything else to the wrapped app.

    The HTTP fast lane (:mod:`yarnit.api.fastlane`) drives the same
    :class:`Exchange` steps straight from the HTTP parser, without an ASGI
    task per request.
    """

    def __init__(self, app: ASGIApp, service: InferenceService, metrics: ApiMetrics | None = None) -> None:
        self.app = app
        self.service = service
        self.metrics = metrics
        self.lane: Any = None  # the HTTP fast lane's per-loop state (fastlane.LaneLoop), made by the lane
        self._tally = _Tally(metrics)
        if metrics is not None:
            metrics.before_scrape.append(self.flush_metrics)
        self._shed_answers: dict[tuple[str, int], tuple[bytes, tuple[tuple[bytes, bytes], ...]]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            route = route_of(scope["path"])
            if route is not None:
                await self.handle(route[0], route[1], scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def handle(self, protocol: str, name: str, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI path: read the body, wait for the turn to score, answer, log."""
        ex = self.begin(protocol, name, scope["headers"])
        try:
            if not ex.answered:
                try:
                    body = await _read_body(receive, self.service.options.max_body_bytes)
                except Exception as exc:
                    self.fail(ex, exc)
                else:
                    if self.admit(ex):  # only once the body is here: a slow body holds no slot
                        await self.finish(ex, body)
        finally:
            self._leave(ex)  # cancelled while reading the body: free its slot
        assert ex.body is not None
        self.writing(ex)
        try:
            await send({"type": "http.response.start", "status": ex.status, "headers": [
                (b"content-type", ex.content_type), (b"content-length", str(len(ex.body)).encode()), (b"x-request-id", (ex.request_id or
                                                                                           "").encode()),
                *ex.headers]})
            await send({"type": "http.response.body", "body": ex.body})
        finally:
            self.complete(ex)

    def begin(self, protocol: str, name: str, headers: Sequence[tuple[bytes, bytes]]) -> Exchange:
        """Open an exchange from the request line and headers, or answer it at once (bad header, unknown name,
        a declared body over the limit). Admission comes later (:meth:`admit`), once the body is complete."""
        service = self.service
        ex = Exchange(protocol, name, service.clock.monotonic())
        try:
            for header, value in headers:
                if header == b"content-length":
                    ex.length = int(value) if value.isdigit() else -1
                elif header == b"x-request-id":
                    request_id = value.decode("latin-1")
                    if not _REQUEST_ID.match(request_id):
                        raise InvalidInput("x-request-id must be 1-64 characters of A-Z a-z 0-9 . _ : -")
                    ex.request_id, ex.named = request_id, True
                elif header == b"x-yarnit-deadline-ms":
                    ex.deadline_s = _deadline(value, service.options.deadline_ms)
                elif header == binary.HEADER:
                    ex.binary_length = binary.header_length(value)
            if ex.request_id is None:
                ex.request_id = service.new_request_id()
            if ex.length > service.options.max_body_bytes:
                raise RequestTooLarge(ex.length, service.options.max_body_bytes)
            if "/versions/" in name:
                raise NotFound("Versioned inference (/v2/models/{name}/versions/{v}/infer) is not served: yarnit "
                               "answers with the version its aliases route to (see x-yarnit-model-version). "
                               "POST /v2/models/{name}/infer instead.")
            if not _NAME.match(name):
                raise NotFound(f"There is no model named {name[:80]!r}: model names are 1-63 lowercase letters, "
                               "digits, '_', '.' or '-'. List models with: yarnit models list")
        except Exception as exc:
            self.fail(ex, exc)
        return ex

    def admit(self, ex: Exchange, wait_s: float | None = None) -> bool:
        """Admit ``ex`` (its body is complete), or answer it 503 at once; True when admitted.

        Admission waits for the whole body: a client that sends headers and
        then trickles its body (slowloris) would otherwise hold a slot of
        ``max_in_flight`` for as long as it likes, and 64 of them shed
        everybody. ``wait_s`` is how long it would wait for its turn to score
        (the fast lane's FIFO), for admission's queue-delay limit.
        """
        admission = self.service.admission
        ticket = admission.try_enter(ex.deadline_s, wait_s)
        if ticket is None:
            # Shed before the body is parsed, with an answer encoded once (shedding must stay cheap when the
            # server is over its capacity). Still counted, and logged in the prediction log's shed counts.
            ex.status, ex.error = 503, admission.shed_reason
            ex.body, ex.headers = self._shed_answer(ex.error, admission.limits.retry_after_s, ex.request_id or "")
            return False
        ex.ticket = ticket
        return True

    def parse(self, ex: Exchange, body: bytes) -> bool:
        """Parse the body into ``ex``'s instances; False when that answered it (bad input is a 4xx)."""
        try:
            self._parse(ex, body)
        except Exception as exc:
            self.fail(ex, exc)
            return False
        return True

    def inline(self, ex: Exchange) -> bool:
        """Whether ``ex`` (parsed) scores on the event loop (:func:`scores_inline`), else on the scoring pool."""
        service = self.service
        assert ex.instances is not None
        state = service.runtime.loaded_state(ex.name)
        if state is not None and service.router.forced_fallback(ex.name):
            # Falling back (an emergency switch): the fallback version answers, or the heuristic's table lookup.
            state = ModelState(state.model, state.fallback, heuristic=state.heuristic)
        return scores_inline(state, service.router.policy(ex.name).canary_percent,
                             len(ex.instances), service.admission.limits.inline_budget_ms / 1000.0)

    def score(self, ex: Exchange, *, waited: bool = False) -> None:
        """Score a parsed, admitted, inline ``ex`` right here and answer it (errors become its answer).

        ``waited``: it waited for its turn, so it is shed instead if its
        deadline passed meanwhile (as :meth:`AdmissionController.acquire` does).
        """
        try:
            if waited:
                self.service.admission.check_deadline(ex.ticket)  # type: ignore[arg-type]
            self._predict(ex)
            self._leave(ex)
            self._answer(ex)
        except Exception as exc:
            self.fail(ex, exc)

    async def finish(self, ex: Exchange, body: bytes) -> None:
        """Score ``ex`` on the event loop's terms: wait for the gate's turn, or go to the scoring pool."""
        service = self.service
        admission = service.admission
        ticket = ex.ticket
        assert ticket is not None
        try:
            try:
                if ex.instances is None and not self.parses_inline(body):
                    await self._parse_on_pool(ex, body)
                    inline = self.inline(ex)
                    if inline:
                        await admission.acquire(ticket)
                elif ex.instances is None:  # parse in turn: parsing is scoring work too
                    await admission.acquire(ticket)
                    self._parse(ex, body)
                    inline = self.inline(ex)
                else:
                    inline = self.inline(ex)
                    if inline:
                        await admission.acquire(ticket)
                if inline:
                    self._predict(ex)
                else:  # slow to score: off the loop, so health checks, 503s and other models keep answering
                    admission.release_gate(ticket)
                    assert ex.instances is not None and ex.request_id is not None
                    ex.prediction = await _offloaded(service, ex.name, ex.instances, ex.key, ex.request_id,
                                                     ticket.entered_s + ticket.deadline_s)
            finally:
                self._leave(ex)
            self._answer(ex)
        except Exception as exc:
            self.fail(ex, exc)

    def fail(self, ex: Exchange, exc: BaseException) -> None:
        """Answer ``ex`` with the error ``exc`` (4xx/503 with a reason; 500 for a bug) and free its slot."""
        self._leave(ex)
        ex.prediction = None
        ex.content_type = _JSON[1]  # errors are JSON, whatever the request asked for
        ex.routed = getattr(exc, "routed", None)  # set by InferenceService.predict once the router chose
        if isinstance(exc, Overloaded):  # its deadline passed while it waited for its turn
            ex.status, ex.error = 503, exc.reason
            ex.headers = ((b"retry-after", str(exc.retry_after_s).encode()),)
            ex.body = error_body(exc, ex.request_id)
        elif isinstance(exc, YarnitError):
            ex.status = 413 if isinstance(exc, RequestTooLarge) else 408 if isinstance(exc, RequestTimeout) \
                else status_for(exc)
            ex.error = type(exc).__name__
            ex.headers = ((b"retry-after", str(self.service.options.retry_after_s).encode()),) \
                if ex.status == 503 else ()
            ex.body = error_body(exc, ex.request_id)
        else:  # a bug: answer 500 with no internals, keep the trace in the server log
            log.error("data-plane request %s failed", ex.request_id, exc_info=exc)
            ex.status, ex.error, ex.headers = 500, type(exc).__name__, ()
            ex.body = orjson.dumps({"error": "InternalError", "detail": "The server failed to answer this "
                                    "request; it has been logged with its request id.",
                                    "request_id": ex.request_id})

    def writing(self, ex: Exchange) -> None:
        """Stamp the moment ``ex``'s answer is handed to the transport: the end of its latency.

        Latency ends here, not when :meth:`complete` runs after the write: once the bytes are on the socket the
        client may act on them before this thread runs again, and a client that moves the injected clock (the
        simulated world sends its next page at the next page's time) would otherwise lend its step to this
        request's latency (seen as 5-minute latencies on a CPU-starved machine)."""
        ex.written = self.service.clock.monotonic()

    def complete(self, ex: Exchange) -> None:
        """The answer is sent (or the client is gone): count it and write it to the prediction log."""
        service = self.service
        latency = (service.clock.monotonic() if ex.written is None else ex.written) - ex.started
        name, error = ex.name, ex.error
        # Metrics are labelled by model: a name that is not served (a typo, a scanner) is counted under
        # one label, or every distinct name would add series and memory for good (the log record keeps
        # the requested name in its error field).
        if ex.prediction is None and service.runtime.loaded_state(name) is None:
            name, error = UNKNOWN_MODEL, f"{error}: {name[:80]}"
        service.record(request_id=ex.request_id or "", protocol=ex.protocol, model=name, status=ex.status,
                       latency_s=latency, prediction=ex.prediction, error=error, key=ex.key, routed=ex.routed,
                       instances=ex.logged or ex.instances)  # type: ignore[arg-type]  # a big one: its summary
        if self.metrics is not None:
            self._observe(ex.protocol, name, ex.status, latency, ex.prediction)

    def _leave(self, ex: Exchange) -> None:
        if ex.ticket is not None:
            self.service.admission.leave(ex.ticket)
            ex.ticket = None

    def _parse(self, ex: Exchange, body: bytes) -> None:
        ex.instances, ex.key, ex.echo_id, ex.binary_out = self._decode(ex.protocol, ex.name, body, ex.binary_length)
        if ex.echo_id is not None and not ex.named:
            ex.request_id = ex.echo_id  # the OIP v2 body named the request: log it (and join labels) by that name

    def _decode(self, protocol: str, name: str, body: bytes,
                binary_length: int | None = None) -> tuple[list[dict[str, Any]], str | None, str | None, bool]:
        """(instances, routing key, OIP v2 id to echo, whether the answer goes as binary tensors)."""
        service = self.service
        max_instances = service.options.max_instances
        if binary_length is not None:
            if protocol == "v1":
                raise InvalidInput("Inference-Header-Content-Length (binary tensors) is an OIP v2 extension; the "
                                   "v1 protocol takes JSON only. POST /v2/models/{name}/infer, or drop the header.")
            header, raw = binary.split(body, binary_length)
            payload = loads(header)
            binary.attach_inputs(payload, raw)
        else:
            payload = loads(body)
        if protocol == "v1":
            instances, key = parse_v1(payload, max_instances)
            return instances, key, None, False
        instances, key, echo_id = parse_v2(payload, lambda: _columns(service, name), max_instances)
        return instances, key, echo_id, binary.output_requested(payload)

    def parses_inline(self, body: bytes) -> bool:
        """Whether ``body`` is small enough to parse on the event loop (else :meth:`finish` parses it on the pool)."""
        return len(body) <= PARSE_INLINE_BYTES

    async def _parse_on_pool(self, ex: Exchange, body: bytes) -> None:
        """Parse a big body on the scoring pool: the event loop keeps answering meanwhile.

        The pool thread only returns values; ``ex`` is changed here, on the
        loop, so a parse that outlives its deadline cannot touch an exchange
        that was already answered.
        """
        service = self.service
        ticket = ex.ticket
        assert ticket is not None

        def decode() -> tuple[tuple[list[dict[str, Any]], str | None, str | None, bool], str]:
            # hashlib lets go of the GIL on big buffers: the digest costs the loop nothing
            return self._decode(ex.protocol, ex.name, body, ex.binary_length), hashlib.sha256(body).hexdigest()

        try:
            (ex.instances, ex.key, ex.echo_id, ex.binary_out), digest = await service.admission.pool.run(
                decode, ticket.entered_s + ticket.deadline_s - service.clock.monotonic())
        except ScoringTimeout:
            raise Overloaded("deadline", service.admission.limits.retry_after_s) from None
        if ex.echo_id is not None and not ex.named:
            ex.request_id = ex.echo_id
        if len(ex.instances) > MAX_LOGGED_ROWS:  # the log keeps the row count and the body's digest
            ex.logged = {"rows": len(ex.instances), "sha256": digest, "of": "request body"}

    def _predict(self, ex: Exchange) -> None:
        ticket = ex.ticket
        assert ticket is not None and ex.instances is not None
        ex.prediction = self.service.predict(ex.name, ex.instances, key=ex.key, request_id=ex.request_id,
                                             deadline_at_s=ticket.entered_s + ticket.deadline_s)

    def _answer(self, ex: Exchange) -> None:
        p = ex.prediction
        assert p is not None
        ex.headers = ((b"x-yarnit-model-version", str(p.model_version).encode()),
                      (b"x-yarnit-served-by", p.served_by.encode()))
        if ex.binary_out:  # OIP v2 binary tensors: a JSON header, then each output's raw bytes
            ex.body, length = binary.encode_outputs(v2_answer(p, ex.echo_id))
            ex.content_type = b"application/octet-stream"
            ex.headers += ((binary.HEADER, str(length).encode()),)
            return
        ex.body = encode_v1(p) if ex.protocol == "v1" else encode_v2(p, ex.echo_id)

    def _shed_answer(self, reason: str, retry_after_s: int,
                     request_id: str) -> tuple[bytes, tuple[tuple[bytes, bytes], ...]]:
        """The 503 body and headers of a shed request: what ``error_body(Overloaded(...))`` gives, byte for byte."""
        answer = self._shed_answers.get((reason, retry_after_s))
        if answer is None:
            whole = error_body(Overloaded(reason, retry_after_s), "")
            prefix = whole[:whole.rindex(b'"request_id":') + len(b'"request_id":')]
            answer = self._shed_answers[(reason, retry_after_s)] = (
                prefix, ((b"retry-after", str(retry_after_s).encode()),))
        prefix, headers = answer
        return prefix + orjson.dumps(request_id) + b"}", headers

    def _observe(self, protocol: str, name: str, status: int, latency: float, prediction: Prediction | None) -> None:
        """Count the request's HTTP series and ``yarnit_predictions_total`` (added to Prometheus at scrape time)."""
        tally = self._tally
        key = (protocol, status)
        tally.requests[key] = tally.requests.get(key, 0) + 1
        histogram = tally.latency.get(protocol)
        if histogram is None:
            histogram = tally.latency[protocol] = _Pending(len(tally.bounds))
        histogram.counts[bisect.bisect_left(tally.bounds, latency)] += 1
        histogram.total += latency
        if prediction is not None:
            label = (name, prediction.model_version, prediction.served_by)
            tally.predictions[label] = tally.predictions.get(label, 0) + len(prediction.values)

    def flush_metrics(self) -> None:
        """Add the counts kept since the last scrape to the Prometheus series (the app calls it at scrape time).

        Counting in plain numbers on the request path and adding them to
        Prometheus's locked values once per scrape saves about 1.4 µs a
        request, a tenth of what a shed request costs in Python.
        """
        metrics, tally = self.metrics, self._tally
        if metrics is None:
            return
        for (protocol, status), n in tally.requests.items():
            if n:
                template = V1_TEMPLATE if protocol == "v1" else V2_TEMPLATE
                metrics.requests.labels("POST", template, str(status)).inc(n)
                tally.requests[(protocol, status)] = 0
        for protocol, pending in tally.latency.items():
            if pending.total or any(pending.counts):
                child = metrics.latency.labels("POST", V1_TEMPLATE if protocol == "v1" else V2_TEMPLATE)
                pending.add_to(child)
        answered: set[tuple[str, str]] = set()
        for (name, version, served_by), n in tally.predictions.items():
            if n:
                metrics.predictions.labels(name, str(version), served_by).inc(n)
                tally.predictions[(name, version, served_by)] = 0
                answered.add((name, str(version)))
        self._forget_retired(answered)

    def _forget_retired(self, answered: set[tuple[str, str]]) -> None:
        """Drop ``yarnit_predictions_total``'s series (and their tally keys) of retired versions.

        The rule is the serving series' (:func:`~yarnit.serving.service.retired_versions`): loaded, answered
        since the last scrape, or one of the three newest. Without it a process that hot-swaps kept two series
        and a Prometheus child per version it ever served (a 150-swap run: 56 → 414 series).
        """
        metrics, tally = self.metrics, self._tally
        assert metrics is not None
        seen: dict[str, set[str]] = {}
        for name, version, _served_by in tally.predictions:
            seen.setdefault(name, set()).add(str(version))
        forget = retired_versions(seen, loaded_versions(self.service.runtime), answered)
        for key in [k for k in tally.predictions if (k[0], str(k[1])) in forget]:
            del tally.predictions[key]
            metrics.predictions.remove(key[0], str(key[1]), key[2])  # a label set never added is no error


class _Pending:
    """A histogram's observations since the last scrape: counts per bucket (Prometheus's own bounds) and sum."""

    __slots__ = ("counts", "total")

    def __init__(self, buckets: int) -> None:
        self.counts = [0] * buckets
        self.total = 0.0

    def add_to(self, child: Any) -> None:
        """Add them to a ``prometheus_client`` histogram child (its per-bucket values and sum), then reset."""
        child._sum.inc(self.total)  # noqa: SLF001 - no public API adds n observations at once
        for i, n in enumerate(self.counts):
            if n:
                child._buckets[i].inc(n)  # noqa: SLF001
                self.counts[i] = 0
        self.total = 0.0


class _Tally:
    """The data plane's metric counts since the last scrape, in plain numbers."""

    def __init__(self, metrics: ApiMetrics | None) -> None:
        self.requests: dict[tuple[str, int], int] = {}
        self.latency: dict[str, _Pending] = {}
        self.predictions: dict[tuple[str, int, str], int] = {}
        # The histogram's upper bounds, +Inf last: a value goes to the first bound >= it, as observe() does.
        self.bounds: list[float] = list(metrics.latency.labels("POST", V1_TEMPLATE)._upper_bounds) \
            if metrics is not None else [math.inf]  # noqa: SLF001


async def _offloaded(service: InferenceService, name: str, instances: list[dict[str, Any]], key: str | None,
                     request_id: str, deadline_at_s: float) -> Prediction:
    """``service.predict`` on the scoring pool; past the deadline, the fallback answers (and is counted)."""
    loading = service.load_pending(name)
    if loading is not None:  # loading and warming a version is not charged to the request's deadline
        started = service.clock.monotonic()
        await service.admission.pool.run(loading, service.options.load_timeout_s)
        deadline_at_s += service.clock.monotonic() - started
    try:
        return await service.admission.pool.run(
            lambda: service.predict(name, instances, key=key, request_id=request_id, deadline_at_s=deadline_at_s),
            deadline_at_s - service.clock.monotonic())
    except ScoringTimeout:
        # The thread cannot be stopped; its late answer is dropped. A deadline already passed makes the
        # service skip every model and answer with the heuristic, reason "timeout" (counted as a fallback).
        return service.predict(name, instances, key=key, request_id=request_id, deadline_at_s=-math.inf)


def _deadline(value: bytes, cap_ms: float) -> float:
    if not (value.isdigit() and 0 < len(value) <= 6 and value[:1] != b"0"):
        raise InvalidInput(f"x-yarnit-deadline-ms must be a whole number of milliseconds in [1, 999999]; got "
                           f"{value[:20].decode('latin-1')!r}.")
    return min(float(value), cap_ms) / 1000.0


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise InvalidInput("The client disconnected before sending the whole body.")
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise RequestTooLarge(size, limit)
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _columns(service: InferenceService, name: str) -> list[str]:
    state = service.runtime.state(name)
    loaded = state.production or state.previous or state.fallback
    inputs = loaded.version.signature.get("inputs", {}) if loaded is not None else {}
    return list(inputs) if isinstance(inputs, dict) else []


# -- the FastAPI side: documentation, metadata and readiness -----------------------------------------
router = APIRouter(tags=["data plane"])
ModelName = Path(pattern=NAME_PATTERN, description="Model name", max_length=63)


class _Delegate(Response):
    """Hands the raw ASGI call to the data-plane handler (used when the middleware is not in front)."""

    def __init__(self, plane: DataPlaneMiddleware, protocol: str, name: str) -> None:
        super().__init__()
        self.plane, self.protocol, self.name = plane, protocol, name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.plane.handle(self.protocol, self.name, scope, receive, send)


def _plane(request: Request) -> DataPlaneMiddleware:
    plane = getattr(request.app.state, "dataplane", None)
    if plane is None:
        plane = DataPlaneMiddleware(request.app, request.app.state.serving, getattr(request.app.state, "metrics",
                                                                                     None))
        request.app.state.dataplane = plane
    return plane


@router.post(V1_TEMPLATE, response_model=None, responses=_responses(V1_RESPONSE),
             openapi_extra=_openapi_extra(V1_REQUEST), summary="v1 predict")
async def v1_predict(request: Request, name: str = ModelName) -> Response:
    """Score ``instances`` (feature dicts) with the version routed to (production, or canary for its share)."""
    return _Delegate(_plane(request), "v1", name)


@router.post(V2_TEMPLATE, response_model=None, responses=_responses(V2_RESPONSE),
             openapi_extra=_openapi_extra(V2_REQUEST), summary="Open Inference Protocol v2 infer")
async def v2_infer(request: Request, name: str = ModelName) -> Response:
    """Open Inference Protocol v2: one input tensor per feature column (or one [N, F] tensor)."""
    return _Delegate(_plane(request), "v2", name)


_METADATA_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: _error_response("No such model, or it has no production version"),
    503: _error_response("The registry cannot be read now"),
}


def _service(request: Request) -> InferenceService:
    service: InferenceService = request.app.state.serving
    return service


@router.get("/v2/models/{name}", responses=_METADATA_RESPONSES, summary="OIP v2 model metadata")
def v2_model_metadata(request: Request, name: str = ModelName) -> dict[str, Any]:
    state = _service(request).runtime.state(name)
    loaded = state.production or state.previous or state.fallback
    if loaded is None:
        raise NotFound(f"Model {name!r} has no loadable version behind production; see: yarnit models show {name}")
    signature = loaded.version.signature
    inputs = signature.get("inputs", {}) if isinstance(signature.get("inputs"), dict) else {}
    versions = sorted({str(m.version.version) for m in (state.production, state.canary, state.shadow,
                                                        state.previous, state.fallback) if m is not None}, key=int)
    return {
        "name": name,
        "versions": versions,
        "platform": f"yarnit-{loaded.version.artifact_format.value}",
        "inputs": [{"name": f, "datatype": "BYTES" if t == "string" else "BOOL" if t == "bool" else "FP64",
                    "shape": [-1]} for f, t in inputs.items()],
        "outputs": RANKING_OUTPUTS if signature.get("output") == "ranking" else CLASS_OUTPUTS if
        signature.get("output") == "class" else [{"name": "probability", "datatype": "FP64", "shape": [-1]}],
        **({"parameters": {"classes": list(signature.get("classes") or [])}} if signature.get("output") == "class"
           else {}),
    }


@router.get("/v2/models/{name}/ready", responses=_METADATA_RESPONSES, summary="OIP v2 model readiness")
def v2_model_ready(request: Request, name: str = ModelName) -> Response:
    runtime = _service(request).runtime
    state = runtime.state(name)
    ready, why = runtime.serves_production(name)
    if not ready:  # not loaded, or stuck on another version than the registry names
        return JSONResponse({"name": name, "ready": False, "reason": why,
                             "version": str(state.production.version.version) if state.production else ""},
                            status_code=503, headers={"Retry-After": "1"})
    return JSONResponse({"name": name, "ready": True, "version": str(state.production.version.version)})


# -- wiring ----------------------------------------------------------------------------------------------
def install(app: FastAPI, workspace: Workspace, *, options: ServingOptions | None = None,
            refresh_s: float | None = None, feature_source: FeatureSource | None = None) -> InferenceService:
    """Put the serving stack into ``app``: routes, the fast path, metrics, shutdown flush.

    Call it after every other ``app.middleware(...)``: the fast path must be
    the outermost layer (data-plane requests need no token and are counted
    by the handler itself).
    """
    opts = options or ServingOptions()
    if refresh_s is not None:
        opts = replace(opts, refresh_s=refresh_s)
    service = InferenceService.for_workspace(workspace, opts, feature_source=feature_source)
    app.state.serving = service
    app.state.runtime = service.runtime
    metrics: ApiMetrics | None = getattr(app.state, "metrics", None)
    if metrics is not None:
        metrics.registry.register(ServingCollector(service))

        def set_version_gauge(event: Any) -> None:
            if event.outcome == "swapped" and event.to_version is not None:
                metrics.model_version.labels(event.model, event.alias).set(event.to_version)

        service.runtime.listeners.append(set_version_gauge)
    app.include_router(router)
    app.add_middleware(DataPlaneMiddleware, service=service, metrics=metrics)
    app.router.on_shutdown.append(service.close)
    return service


def asgi_entry(app: FastAPI) -> ASGIApp:
    """What to hand the ASGI server: the data plane's fast path in front of the whole app.

    Inside the app the same middleware already answers the data plane; in
    front of it, requests also skip FastAPI's own per-request work (its
    telemetry check and middleware plumbing), which matters at 10k req/s.
    Lifespan events and every other route pass straight through.
    """
    return DataPlaneMiddleware(app, app.state.serving, getattr(app.state, "metrics", None))


__all__ = ["DataPlaneMiddleware", "Exchange", "RequestTimeout", "asgi_entry", "install", "route_of", "router"]
