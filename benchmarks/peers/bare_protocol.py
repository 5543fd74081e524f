"""The floor of Python HTTP here: uvicorn's httptools protocol answering every POST from the parser itself.

No ASGI, no framework, no admission, no log: parse the JSON body, write a constant answer. The overload
scenario offers it the same open-loop load as yarnit, so its latency tail is what this machine gives any
Python server at that rate. Run as ``uvicorn bare_asgi:app --http bare_protocol:BareProtocol`` (the app
is never called for a POST).
"""

import json

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

PAYLOAD = b'{"predictions":[0.5]}'
ANSWER = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(PAYLOAD),
                                                                                               PAYLOAD)


class BareProtocol(HttpToolsProtocol):
    post = False

    def on_headers_complete(self):
        self.post = self.parser.get_method() == b"POST"
        if self.post:
            self.chunks = []
            return
        super().on_headers_complete()

    def on_body(self, body):
        if self.post:
            self.chunks.append(body)
            return
        super().on_body(body)

    def on_message_complete(self):
        if self.post:
            json.loads(b"".join(self.chunks))
            self.transport.write(ANSWER)
            return
        super().on_message_complete()
