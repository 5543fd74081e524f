"""A size limit on control-plane request bodies (``/api``), enforced before the body is read.

Control-plane bodies are a few hundred bytes (an alias move, a traffic
policy), yet nothing bounded them: a 50 MB POST was read whole, parsed, and
echoed back in the 422. This ASGI middleware answers 413 at once when the
declared ``Content-Length`` is over the limit, and counts the bytes of a body
without one (chunked), stopping with 413 as soon as the count passes the limit,
so at most ``max_bytes`` plus one chunk is ever held. The data plane has its
own limit (``ServingOptions.max_body_bytes``) in its handler.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Default limit: a thousand times the largest body the control plane takes today.
MAX_CONTROL_BODY_BYTES = 1 << 20


def _too_large(max_bytes: int) -> str:
    return (f"The request body is larger than the control plane accepts ({max_bytes:,} bytes). Control-plane "
            "bodies are small JSON objects; check what is being sent.")


class BodySizeLimit:
    """Refuse request bodies over ``max_bytes`` on paths under ``prefix`` with 413, before reading them."""

    def __init__(self, app: ASGIApp, *, max_bytes: int = MAX_CONTROL_BODY_BYTES, prefix: str = "/api") -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.prefix = prefix

    def _applies(self, scope: Scope) -> bool:
        path = scope.get("path", "")
        return scope["type"] == "http" and (path == self.prefix or path.startswith(self.prefix + "/"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._applies(scope):
            await self.app(scope, receive, send)
            return
        declared = next((v for k, v in scope.get("headers", ()) if k == b"content-length"), None)
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            status, detail = (413, _too_large(self.max_bytes)) if declared.isdigit() else (
                400, "The Content-Length header is not a whole number of bytes.")
            await _answer(send, status, detail)
            return
        received = 0
        started = answered = False

        async def counted() -> Message:
            # Past the limit, answer 413 here and tell the app the client left: raising instead would reach
            # FastAPI wrapped in the middlewares' task groups and come out as a 400 "error parsing the body".
            nonlocal received, answered
            if answered:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    if not started:
                        await _answer(send, 413, _too_large(self.max_bytes))
                    answered = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if answered:
                return  # the app's answer to the "disconnect": the client already has its 413
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, counted, guarded)


async def _answer(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"error": "RequestTooLarge" if status == 413 else "InvalidInput", "detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


__all__ = ["MAX_CONTROL_BODY_BYTES", "BodySizeLimit"]
