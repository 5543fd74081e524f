"""The limit of the Python HTTP stack here: parse the JSON body, answer a constant. No framework."""

import json


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    json.loads(body)
    payload = b'{"predictions":[0.5]}'
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))]})
    await send({"type": "http.response.body", "body": payload})
