"""The shop's HTTP client over plain http: what it reads back from a server, byte for byte (issue 18, h38).

A scripted socket server answers each request with the bytes a test gives it, so the framings a server may
choose (a length, chunks, a close), informational answers and an idle close are each seen once.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from yarnit.world.traffic import _KeepAlive


class _Scripted:
    """A loopback server: for each connection, reads requests and writes the scripted answers, in order.

    ``script`` is a list per connection of answers (bytes); None closes the connection there, without reading on.
    """

    def __init__(self, script: list[list[bytes | None]]) -> None:
        self.script = script
        self.requests: list[bytes] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        for answers in self.script:
            conn, _ = self.sock.accept()
            with conn:
                buffer = b""
                for answer in answers:
                    if answer is None:  # close now, without reading what the client may send
                        break
                    while b"\r\n\r\n" not in buffer:
                        buffer += conn.recv(65536)
                    head, _, buffer = buffer.partition(b"\r\n\r\n")
                    length = int(next(line.split(b":", 1)[1] for line in head.split(b"\r\n")
                                      if line.lower().startswith(b"content-length:")))
                    while len(buffer) < length:
                        buffer += conn.recv(65536)
                    self.requests.append(head + b"\r\n\r\n" + buffer[:length])
                    buffer = buffer[length:]
                    conn.sendall(answer)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def scripted() -> Iterator[type[_Scripted]]:
    servers: list[_Scripted] = []

    def make(script: list[list[bytes | None]]) -> _Scripted:
        server = _Scripted(script)
        servers.append(server)
        return server

    yield make  # type: ignore[misc]
    for server in servers:
        server.close()


def test_reads_answers_framed_by_length_by_chunks_and_after_an_informational_one(scripted) -> None:
    server = scripted([[
        b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\nContent-Type: application/json\r\n\r\n{\"a\": [1]}\n",
        b"HTTP/1.1 422 Unprocessable Entity\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\n{\"e\"\r\n3\r\n: 1\r\n1\r\n}\r\n"
        b"0\r\nX-Trailer: t\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}",
    ]])
    client = _KeepAlive(server.url + "/base/", 5.0)
    assert client.post_json("/v1/models/ctr:predict", {"instances": [{"x": 1}]}, {"x-request-id": "r-1"}) == \
        (200, b"{\"a\": [1]}\n")
    assert client.post_json("/p", [], {}) == (422, b"{\"e\": 1}")
    assert client.post_json("/p", [], {}) == (200, b"{}")
    first = server.requests[0]
    assert first.startswith(b"POST /base/v1/models/ctr:predict HTTP/1.1\r\n")
    assert b"\r\nx-request-id: r-1\r\n" in first and b"\r\ncontent-type: application/json\r\n" in first
    assert first.endswith(b"\r\n\r\n" + b'{"instances":[{"x":1}]}')
    assert len(server.requests) == 3  # one connection for all three


def test_a_connection_closed_while_idle_is_opened_again_and_the_request_sent_once_more(scripted) -> None:
    server = scripted([
        [b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1", None],  # answers once, then closes while idle
        [b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2"],
    ])
    client = _KeepAlive(server.url, 5.0)
    assert client.post_json("/p", 1, {}) == (200, b"1")
    assert client.post_json("/p", 2, {}) == (200, b"2")
    assert [r.rsplit(b"\r\n\r\n", 1)[1] for r in server.requests] == [b"1", b"2"]


def test_an_answer_that_closes_is_read_to_the_end_and_the_next_request_opens_a_connection(scripted) -> None:
    server = scripted([
        [b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\nbusy"],
        [b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"],
        [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nno"],
    ])
    client = _KeepAlive(server.url, 5.0)
    assert client.post_json("/p", 1, {}) == (503, b"busy")
    assert client.post_json("/p", 2, {}) == (200, b"ok")  # HTTP/1.0 without keep-alive: closed after it
    assert client.post_json("/p", 3, {}) == (200, b"no")
    assert len(server.requests) == 3


def test_a_truncated_answer_raises_and_drops_the_connection(scripted) -> None:
    import http.client

    server = scripted([[b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", None]])
    client = _KeepAlive(server.url, 5.0)
    with pytest.raises(http.client.IncompleteRead):
        client.post_json("/p", 1, {})
    assert client._conn is None


@pytest.mark.parametrize("framing", [b"Content-Length: -5\r\n\r\n", b"Content-Length: 5_0\r\n\r\n",
                                     b"Transfer-Encoding: chunked\r\n\r\nzz\r\n"])
def test_a_malformed_length_or_chunk_size_is_an_http_error_not_a_wrong_body(scripted, framing: bytes) -> None:
    import http.client

    server = scripted([[b"HTTP/1.1 200 OK\r\n" + framing, None]])
    client = _KeepAlive(server.url, 5.0)
    with pytest.raises(http.client.HTTPException, match="malformed"):
        client.post_json("/p", 1, {})
    assert client._conn is None
