"""An HAProxy configuration for N ``yarnit serve`` replicas (``yarnit deploy lb``).

The replicas are stateless: they share the metadata store (PostgreSQL), the
online store (Redis) and the workspace's artifact directory, and each learns
of an alias move or a traffic-policy change by polling the metadata store's
change counter (:meth:`yarnit.storage.MetadataStore.change_token`). The load
balancer's part is to send each request to a replica that is ready, and to
lose none when one dies. What the generated configuration does for that, and
why:

* **Health check on readiness**, not liveness: ``GET /v2/health/ready`` is 200
  only when the replica reaches the metadata store and serves every model's
  production version with that very version, loaded and warmed. A replica cut
  off from PostgreSQL (which would serve stale aliases) or still loading a
  model is taken out after ``fall`` failed checks, ``inter`` apart, and put
  back after ``rise`` good ones.
* **Layer-7 retries** (``retry-on``) on another replica (``option redispatch
  1``): a request in flight on a replica killed with ``kill -9`` (a reset
  connection, an empty response) or refused by it before the health check
  noticed is sent again elsewhere, so the client sees no error. Inference is
  idempotent, so a retry is safe. A 503 is retried too (a replica that is
  shedding or not ready); ``retries`` bounds the extra load that adds. HAProxy
  can retry only a request whose body fits in its buffer (``tune.bufsize``,
  set by ``buffer_kib``): a larger batch still goes through, but is not retried.
* ``balance leastconn``: a replica slowed by a model load or a garbage
  collection gets fewer new requests than round robin would send it.
* An optional stats listener (``stats_port``) shows each replica's state
  (``/stats;csv``) for operators and for the replica test.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from yarnit.core.errors import InvalidInput

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,63}$")
_HOST = re.compile(r"^[A-Za-z0-9_.:\[\]-]{1,253}$")


@dataclass(frozen=True)
class Endpoint:
    """A ``host:port`` pair, checked."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str, *, what: str) -> Endpoint:
        host, sep, port = text.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535 or not _HOST.match(host):
            raise InvalidInput(f"{what} {text!r} is not HOST:PORT with a port in 1..65535 (e.g. 10.0.0.5:8080).")
        return cls(host, int(port))

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class LoadBalancerOptions:
    """The knobs of :func:`haproxy_config` (keyword-only; defaults suit a production pair of replicas)."""

    bind: str = "0.0.0.0:8080"
    check_interval_ms: int = 1000
    fall: int = 2
    rise: int = 2
    retries: int = 3
    connect_timeout_ms: int = 1000
    server_timeout_s: int = 30
    client_timeout_s: int = 30
    maxconn: int = 4096
    buffer_kib: int = 64
    stats_port: int | None = None
    log_stdout: bool = False  # one line per request on stdout (HAProxy in the foreground, containers)

    def check(self) -> None:
        for name, value, low, high in (("check interval (ms)", self.check_interval_ms, 50, 60_000),
                                       ("fall", self.fall, 1, 100), ("rise", self.rise, 1, 100),
                                       ("retries", self.retries, 0, 10),
                                       ("connect timeout (ms)", self.connect_timeout_ms, 10, 60_000),
                                       ("server timeout (s)", self.server_timeout_s, 1, 3600),
                                       ("client timeout (s)", self.client_timeout_s, 1, 3600),
                                       ("maxconn", self.maxconn, 1, 1_000_000),
                                       ("buffer (KiB)", self.buffer_kib, 16, 1024)):
            if not low <= value <= high:
                raise InvalidInput(f"The load balancer's {name} must be in [{low}, {high}]; got {value}.")
        if self.stats_port is not None and not 1 <= self.stats_port <= 65535:
            raise InvalidInput(f"The stats port must be in 1..65535; got {self.stats_port}.")


def haproxy_config(servers: Sequence[str], options: LoadBalancerOptions | None = None, *,
                   names: Sequence[str] | None = None) -> str:
    """The text of an ``haproxy.cfg`` balancing ``servers`` (``HOST:PORT`` each) on ``options.bind``.

    Example:
        >>> cfg = haproxy_config(["127.0.0.1:8081", "127.0.0.1:8082"])
        >>> "server replica-1 127.0.0.1:8081 check" in cfg, "http-check send meth GET uri /v2/health/ready" in cfg
        (True, True)
    """
    opts = options or LoadBalancerOptions()
    opts.check()
    if not servers:
        raise InvalidInput("Name at least one replica: yarnit deploy lb --server HOST:PORT [--server HOST:PORT …].")
    endpoints = [Endpoint.parse(s, what="Replica") for s in servers]
    if len(set(endpoints)) != len(endpoints):
        raise InvalidInput(f"A replica is named twice in {[str(e) for e in endpoints]}: name each one once.")
    bind = Endpoint.parse(opts.bind, what="Bind address")
    labels = list(names) if names is not None else [f"replica-{i}" for i in range(1, len(endpoints) + 1)]
    if len(labels) != len(endpoints) or len(set(labels)) != len(labels) or not all(_NAME.match(n) for n in labels):
        raise InvalidInput("Replica names must be distinct, one per server, of letters, digits, '_', '.' or '-'.")
    lines = [
        "# Generated by `yarnit deploy lb`: HAProxy in front of yarnit serve replicas.",
        "# Check it with: haproxy -c -f haproxy.cfg",
        "global",
        f"    maxconn {opts.maxconn}",
        f"    tune.bufsize {opts.buffer_kib * 1024}",
        *(["    log stdout format raw local0"] if opts.log_stdout else []),
        "",
        "defaults",
        "    mode http",
        f"    timeout connect {opts.connect_timeout_ms}ms",
        f"    timeout client {opts.client_timeout_s}s",
        f"    timeout server {opts.server_timeout_s}s",
        "    timeout http-request 10s",
        "    timeout http-keep-alive 10s",
        "    option http-server-close",
        *(["    log global", "    option httplog"] if opts.log_stdout else []),
        "",
        "frontend yarnit",
        f"    bind {bind}",
        "    default_backend yarnit_replicas",
        "",
        "backend yarnit_replicas",
        "    balance leastconn",
        "    # Ready means: the metadata store answers and every production version is loaded and warmed.",
        "    option httpchk",
        "    http-check send meth GET uri /v2/health/ready",
        "    http-check expect status 200",
        "    # A request that failed on a dying or unready replica is sent again, to another replica.",
        f"    retries {opts.retries}",
        "    retry-on conn-failure empty-response junk-response response-timeout 0rtt-rejected 502 503 504",
        "    option redispatch 1",
        "    # L7 retries need the whole request in hand: wait for the body before choosing a replica.",
        "    option http-buffer-request",
        f"    default-server inter {opts.check_interval_ms}ms fall {opts.fall} rise {opts.rise}",
    ]
    lines += [f"    server {label} {endpoint} check" for label, endpoint in zip(labels, endpoints, strict=True)]
    if opts.stats_port is not None:
        lines += ["", "listen stats", f"    bind {bind.host}:{opts.stats_port}", "    stats enable",
                  "    stats uri /stats", "    stats refresh 5s"]
    return "\n".join(lines) + "\n"


__all__ = ["Endpoint", "LoadBalancerOptions", "haproxy_config"]
