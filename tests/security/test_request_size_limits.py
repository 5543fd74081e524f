"""Request-size limits on every route (issue 22): an oversized body, declared or chunked, is refused with a 4xx
(413 where the route takes a body; a write without a body parameter may answer before reading it), never a 5xx, and the server never hangs on it; it keeps answering.

Over a real socket: a server that waits for a body it will not read, or that reads a body it should refuse,
only shows up there.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from testsupport import TOKEN

from yarnit.api import create_app
from yarnit.api.app import iter_api_routes
from yarnit.api.limits import MAX_CONTROL_BODY_BYTES
from yarnit.api.server import BackgroundServer
from yarnit.serving import ServingOptions
from yarnit.storage import Workspace

DATA_PLANE_LIMIT = 256 << 10  # the data plane's limit, lowered from 16 MiB so the test sends little
CHUNK = 64 << 10
TIMEOUT_S = 30.0  # generous: a hang is a wait past this, not a slow answer


def _concrete(path: str) -> str:
    values = {"name": "ctr", "alias": "canary", "action": "roll-back", "model": "ctr", "version": "1",
              "incident_id": "inc_1", "task": "t", "kind": "dataset_version", "node_id": "ds_1",
              "run_id": "run_" + "0" * 26, "evaluation_id": "ev_" + "0" * 26, "loadtest_id": "lt_" + "0" * 26}
    for key, value in values.items():
        path = path.replace("{" + key + "}", value)
    assert "{" not in path, path
    return path


def _send(port: int, method: str, path: str, size: int, *, chunked: bool) -> int:
    """Send ``size`` bytes of JSON-looking body; the status of the answer (a body the server refused early may
    be cut off mid-send: what matters is what it answered)."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as sock:
        framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}"
        head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
                f"Content-Type: application/json\r\n{framing}\r\n\r\n").encode()
        sock.sendall(head)
        filler = b'{"x": "' + b"a" * (CHUNK - 9) + b'"}'
        try:
            sent = 0
            while sent < size:
                piece = filler[: min(CHUNK, size - sent)]
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                sent += len(piece)
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before the body ended: read its answer
        answer = b""
        try:
            while b"\r\n" not in answer:
                got = sock.recv(4096)
                if not got:
                    break
                answer += got
        except ConnectionResetError:
            pass
        assert answer.startswith(b"HTTP/1.1 "), f"{method} {path}: no answer within {TIMEOUT_S} s ({answer[:80]!r})"
        return int(answer.split()[1])


@pytest.fixture
def server(token_ws: Workspace) -> Iterator[tuple[BackgroundServer, list[tuple[str, str]]]]:
    app = create_app(token_ws, refresh_s=0.0, serving=ServingOptions(max_body_bytes=DATA_PLANE_LIMIT,
                                                                      log_fsync=False))
    # the data plane reads its body itself (no body parameter), under its own limit
    routes = sorted((m, r.path, r.body_field is not None or r.path.startswith(("/v1/", "/v2/")))
                    for r in iter_api_routes(app.routes) for m in r.methods)
    try:
        with BackgroundServer(app) as running:
            yield running, routes
    finally:
        app.state.serving.close()


def _health(port: int) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as sock:
        sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return int(sock.recv(4096).split()[1])


def test_every_route_that_takes_a_body_refuses_an_oversized_one_with_413(server) -> None:
    running, routes = server
    writes = [(m, p, body) for m, p, body in routes if m in ("POST", "PUT", "PATCH", "DELETE")]
    assert sum(body for *_, body in writes) >= 20, f"the inventory found only {len(writes)} routes that take a body"
    problems = []
    for method, template, takes_body in writes:
        path = _concrete(template)
        limit = MAX_CONTROL_BODY_BYTES if path.startswith("/api") else DATA_PLANE_LIMIT
        for chunked in (False, True):
            status = _send(running.port, method, path, limit + CHUNK, chunked=chunked)
            # a write without a body parameter (ack, step) may answer before reading: any 4xx, never a 5xx
            if status != 413 if takes_body else not 400 <= status < 500:
                problems.append(f"{method} {template} ({'chunked' if chunked else 'Content-Length'}): {status}")
    assert not problems, "not refused with 413:\n" + "\n".join(problems)
    assert _health(running.port) == 200


def test_a_body_sent_to_a_route_that_takes_none_is_a_4xx_or_ignored_never_a_5xx_or_a_hang(server) -> None:
    running, routes = server
    reads = [p for m, p, _ in routes if m == "GET"]
    assert len(reads) >= 40
    problems = []
    for template in reads:
        path = _concrete(template)
        for send_as in ("GET", "POST"):  # a body on a read, and a write method the route does not have
            if send_as == "POST" and any(m == "POST" and p == template for m, p, _ in routes):
                continue
            status = _send(running.port, send_as, path, MAX_CONTROL_BODY_BYTES + CHUNK, chunked=send_as == "POST")
            if status >= 500 or (send_as == "POST" and not 400 <= status < 500):
                problems.append(f"{send_as} {template}: {status}")
    assert not problems, "\n".join(problems)
    assert _health(running.port) == 200
