"""A staging server: what ``yarnit serve`` runs, serving one exact model version, for ``yarnit loadtest``.

``python -m yarnit.api.staging --model M --version V --log-dir DIR --port-file FILE`` builds the same app
as ``yarnit serve`` (:func:`~yarnit.api.create_app`, :func:`~yarnit.api.server.prepare_for_traffic`,
uvicorn with the data plane's fast lane, production's admission limits) on a free loopback port, which it
writes to ``FILE`` once it is bound. It differs from a production server only where a load test must:

* the runtime is *pinned* (``ServingOptions.pinned``): M's version V answers as production whatever the
  aliases say, with no canary, previous version or ``fallback`` alias to hide its failures, and no other
  model is served; traffic policies and the emergency switch are not read;
* the prediction cache is off, so repeated inputs cannot be answered from memory;
* the prediction log goes to ``DIR`` (scratch, deleted by the load test): staging traffic never reaches
  the workspace's log, its monitoring, label join or lineage; served feature rows are not sampled.

``--inject-delay-ms N`` (a drill: how does the gate judge a slower candidate?) adds N ms to every
scoring call through the runtime's fault-injection seam (``ModelRuntime.wrap_predictor``); the load test
applies it only to the candidate and records it with the result.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from yarnit.core.atomic import atomic_write_text
from yarnit.core.settings import load_settings
from yarnit.serving import ServingOptions
from yarnit.storage import open_workspace

from .app import create_app
from .dataplane import asgi_entry
from .server import free_port, prepare_for_traffic, serve_forever


class Delayed:
    """A predictor that sleeps ``delay_s`` before each call to the one it wraps (the drill's slow candidate)."""

    def __init__(self, inner: Any, delay_s: float) -> None:
        self.inner, self.delay_s = inner, delay_s

    def predict_proba(self, rows: Any) -> Any:
        time.sleep(self.delay_s)
        return self.inner.predict_proba(rows)

    def rank(self, instances: Any, **kwargs: Any) -> Any:
        time.sleep(self.delay_s)
        return self.inner.rank(instances, **kwargs)

    # No attribute passthrough: the runtime compiles a predictor that exposes its ``estimator``, and that
    # compiled path would skip the delay. This wrapper exposes none, so the version serves natively, delayed.


def staging_options(model: str, version: int, log_dir: Path) -> ServingOptions:
    """Production's serving options, pinned to ``model`` v``version``, cache off, log in ``log_dir``."""
    return ServingOptions(pinned=((model, version),), cache_entries=0, log_dir=log_dir, feature_log_sample_rate=0.0)


def _exit_with_parent(parent_pid: int) -> None:
    """Stop this server (SIGTERM to itself) once the load test that started it is gone, even after a kill -9:
    a staging server is never left serving on its own."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="yarnit-staging-parent", daemon=True).start()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m yarnit.api.staging", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--version", type=int, required=True)
    parser.add_argument("--log-dir", type=Path, required=True)
    parser.add_argument("--port-file", type=Path, required=True)
    parser.add_argument("--inject-delay-ms", type=float, default=0.0)
    parser.add_argument("--parent-pid", type=int, default=None)
    args = parser.parse_args(argv)
    if args.parent_pid is not None:
        _exit_with_parent(args.parent_pid)
    ws = open_workspace(load_settings())
    app = create_app(ws, serving=staging_options(args.model, args.version, args.log_dir))
    if args.inject_delay_ms > 0:
        delay_s = args.inject_delay_ms / 1000.0
        app.state.serving.runtime.wrap_predictor = lambda version, native: Delayed(native, delay_s)
    prepare_for_traffic(app)
    port = free_port("127.0.0.1")
    # Written before uvicorn binds: the load test waits for the model's readiness on it, not for the file.
    atomic_write_text(args.port_file, str(port))
    serve_forever(asgi_entry(app), "127.0.0.1", port)


if __name__ == "__main__":
    main()
