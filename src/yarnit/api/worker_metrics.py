"""``/metrics`` of ``yarnit serve --workers N``: every worker's counters in one scrape.

Each worker process counts its own requests, predictions, sheds and latencies. Behind the shared port a scrape
reaches one worker, picked by the kernel, so without this a scrape showed 1/N of the traffic, a different
1/N each time, and counters that seemed to run backwards between scrapes.

How: the supervisor gives the workers a private directory (mode 0700). Each worker also serves its app on a
Unix socket there, ``<slot>.sock``, which only the same user can reach and no load balancer sees. The worker
that gets the scrape collects its own per-process metrics and asks every other worker for theirs over its
socket (``GET /metrics?scope=worker``, bounded in time and size), and answers with all of them:

* per-process families (the app's registry: HTTP requests, the data plane's counters and histograms, queue
  gauges, loaded versions) carry a ``worker="<slot>"`` label, one series per worker. Prometheus sums them
  (``sum without (worker) (rate(...))``); a restarted worker's counter restarts from 0 under its slot's label,
  which ``rate()`` treats as the counter reset it is. Nothing is summed here, so no gauge is averaged or
  added into a number that means nothing;
* workspace-wide families (SLO gauges and feature freshness, read from the workspace's files and stores) come
  once, from the scraped worker: every worker would read the same values;
* ``yarnit_serve_worker_up{worker}`` says, per slot, whether its metrics are in this scrape (0: its socket did
  not answer within ``PEER_TIMEOUT_S``, as while a killed worker is being replaced).

With ``--workers 1`` (one process, no supervisor) none of this runs and ``/metrics`` is what it always was.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

PEER_TIMEOUT_S = 2.0
PEER_MAX_BYTES = 32 * 1024 * 1024  # a worker's exposition is a few hundred KB; more is not a worker's answer
SCOPE_WORKER = "worker"  # ?scope=worker: this worker's per-process metrics only, labelled


def socket_path(directory: str | Path, slot: int) -> Path:
    return Path(directory) / f"{slot}.sock"


def peer_listener(directory: str | Path, slot: int) -> socket.socket:
    """The worker's Unix socket in the supervisor's private directory (a stale one of a dead worker replaced)."""
    path = socket_path(directory, slot)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    os.chmod(path, 0o600)
    sock.listen(16)
    sock.setblocking(False)
    return sock


def _labelled(families: Iterable[Metric], slot: str) -> Iterator[Metric]:
    for family in families:
        out = Metric(family.name, family.documentation, family.type, family.unit)
        out.samples = [s._replace(labels={**s.labels, "worker": slot}) for s in family.samples]
        yield out


class _Families:
    """A collector over ready-made families (what ``generate_latest`` renders)."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> list[Metric]:
        return self.families


def worker_exposition(registry: CollectorRegistry, slot: int) -> bytes:
    """This worker's per-process metrics, each series labelled with its slot (``?scope=worker``)."""
    out = CollectorRegistry(auto_describe=False)
    out.register(_Families(list(_labelled(registry.collect(), str(slot)))))
    return generate_latest(out)


@dataclass
class WorkerPeers:
    """This worker's slot and where the others' sockets are (set on ``app.state.worker_peers``)."""

    slot: int
    directory: Path

    def others(self) -> list[tuple[int, Path]]:
        found = []
        for path in self.directory.glob("*.sock"):
            if path.stem.isdigit() and int(path.stem) != self.slot:
                found.append((int(path.stem), path))
        return sorted(found)

    async def _fetch(self, path: Path) -> str | None:
        transport = httpx.AsyncHTTPTransport(uds=str(path))
        try:
            async with httpx.AsyncClient(transport=transport, timeout=PEER_TIMEOUT_S) as client:
                async with client.stream("GET", f"http://worker/metrics?scope={SCOPE_WORKER}") as answer:
                    if answer.status_code != 200:
                        return None
                    body = bytearray()
                    async for chunk in answer.aiter_bytes():
                        body += chunk
                        if len(body) > PEER_MAX_BYTES:
                            return None
            return body.decode("utf-8", errors="replace")
        except (httpx.HTTPError, OSError):
            return None

    async def exposition(self, registry: CollectorRegistry) -> bytes:
        """Every worker's per-process metrics (labelled by slot) and which workers answered; the caller adds
        the shared families once."""
        peers = self.others()
        texts = await asyncio.gather(*(asyncio.wait_for(self._fetch(p), PEER_TIMEOUT_S * 2) for _, p in peers),
                                     return_exceptions=True)
        merged: dict[str, Metric] = {}
        up = GaugeMetricFamily("yarnit_serve_worker_up", "1 when this worker's metrics are in this scrape "
                               "(yarnit serve --workers: one series per worker slot)", labels=["worker"])
        up.add_metric([str(self.slot)], 1.0)

        def add(families: Iterable[Metric]) -> None:
            for family in families:
                kept = merged.get(family.name)
                if kept is None:
                    kept = merged[family.name] = Metric(family.name, family.documentation, family.type, family.unit)
                if kept.type == family.type:
                    kept.samples.extend(family.samples)

        add(_labelled(registry.collect(), str(self.slot)))
        for (slot, _path), text in zip(peers, texts, strict=True):
            ok = isinstance(text, str)
            if ok:
                try:
                    add(list(text_string_to_metric_families(text)))
                except ValueError:  # a torn or foreign answer: that worker is left out of this scrape
                    ok = False
            up.add_metric([str(slot)], 1.0 if ok else 0.0)
        out = CollectorRegistry(auto_describe=False)
        out.register(_Families([*merged.values(), up]))
        return generate_latest(out)


__all__ = ["PEER_TIMEOUT_S", "SCOPE_WORKER", "WorkerPeers", "peer_listener", "socket_path", "worker_exposition"]
