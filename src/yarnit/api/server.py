"""Running the app with uvicorn: in the foreground (``yarnit serve``) or in a background thread."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import uvicorn
from fastapi import FastAPI
from starlette.types import ASGIApp

from yarnit.core.errors import Unavailable

from .dataplane import asgi_entry
from .fastlane import DataPlaneProtocol


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _entry(app: FastAPI) -> ASGIApp:
    """What uvicorn serves: the data plane's handler in front of ``app`` when it serves models."""
    return app if getattr(app.state, "serving", None) is None else asgi_entry(app)


class BackgroundServer:
    """uvicorn serving ``app`` on a loopback port in a daemon thread (demo, tests), with the HTTP fast lane."""

    def __init__(self, app: FastAPI, *, host: str = "127.0.0.1", port: int | None = None,
                 timeout_keep_alive: int = 5) -> None:
        self.app = app
        self.host = host
        self.port = port or free_port(host)
        self.server = uvicorn.Server(
            uvicorn.Config(_entry(app), host=host, port=self.port, log_level="warning", access_log=False,
                           lifespan="off", http=DataPlaneProtocol, timeout_keep_alive=timeout_keep_alive)
        )
        self.thread = threading.Thread(target=self.server.run, name="yarnit-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> BackgroundServer:
        serving = getattr(self.app.state, "serving", None)
        if serving is not None:  # lifespan is off here: load and warm every production model before traffic
            serving.runtime.preload()
            serving.runtime.watch()
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise Unavailable(f"The HTTP server did not start on {self.url} within 15 s; is the port taken?")
            time.sleep(0.02)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        serving = getattr(self.app.state, "serving", None)
        if serving is not None:  # lifespan is off here, so flush the prediction log ourselves
            serving.close()


def prepare_for_traffic(app: FastAPI) -> dict[str, str]:
    """What a server process does once before it takes traffic; returns ``{model: load outcome}``.

    * Load and warm every production model (a first request must not pay, or
      time out on, a model load), and start the runtime's alias watcher.
    * Move everything allocated so far (libraries, models) out of the garbage
      collector's reach with ``gc.freeze()``: the collector then scans only
      what requests allocate, so its full passes no longer walk every
      library object while the server is under load.
    """
    import gc

    runtime = app.state.serving.runtime
    outcomes: dict[str, str] = runtime.preload()
    runtime.watch()
    gc.collect()
    gc.freeze()
    return outcomes


def serve_forever(app: ASGIApp, host: str, port: int) -> None:
    """``yarnit serve``: uvicorn in the foreground, with the data plane's HTTP fast lane."""
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False, http=DataPlaneProtocol)


__all__ = ["BackgroundServer", "free_port", "prepare_for_traffic", "serve_forever"]
