"""``yarnit deploy lb|k8s``: the configuration to run N stateless ``yarnit serve`` replicas.

``lb`` writes an HAProxy configuration (readiness health checks, retries on
another replica); ``k8s`` writes a Deployment, a Service and a
HorizontalPodAutoscaler (``--kserve``: a KServe ServingRuntime and
InferenceService on the OIP v2 endpoint). Both print to stdout, or write ``--out`` atomically.
Neither opens the workspace: they describe where replicas run, not what they
serve.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from yarnit.core.atomic import atomic_write_text
from yarnit.deploy import (
    KubernetesOptions,
    LoadBalancerOptions,
    haproxy_config,
    manifests_yaml,
)

from .common import cli_errors, console

app = typer.Typer(help="Scale-out configuration: an HAProxy load balancer, Kubernetes manifests.",
                  no_args_is_help=True)


def _write(text: str, out: Path | None, what: str) -> None:
    if out is None:
        sys.stdout.write(text)
        return
    atomic_write_text(out, text)
    console.print(f"wrote {what} to {out}")


@app.command("lb")
@cli_errors
def lb(server: list[str] = typer.Option(..., "--server", help="A replica's HOST:PORT (repeat for each)."),
       bind: str = typer.Option("0.0.0.0:8080", help="Where the load balancer listens, HOST:PORT."),
       check_interval_ms: int = typer.Option(1000, "--check-interval-ms",
                                             help="Readiness check period per replica."),
       fall: int = typer.Option(2, help="Failed checks before a replica is taken out."),
       rise: int = typer.Option(2, help="Good checks before it is put back."),
       retries: int = typer.Option(3, help="Retries of a failed request, each on another replica."),
       stats_port: int | None = typer.Option(None, "--stats-port", help="Also serve HAProxy's stats page "
                                             "(/stats, ;csv for machines) on this port."),
       out: Path | None = typer.Option(None, "--out", help="Write here (atomically) instead of stdout.")) -> None:
    """An HAProxy configuration for the replicas (check it with: haproxy -c -f FILE)."""
    options = LoadBalancerOptions(bind=bind, check_interval_ms=check_interval_ms, fall=fall, rise=rise,
                                  retries=retries, stats_port=stats_port)
    _write(haproxy_config(server, options), out, "the HAProxy configuration")


@app.command("k8s")
@cli_errors
def k8s(image: str = typer.Option(..., "--image", help="The yarnit container image (its entrypoint: yarnit)."),
        name: str = typer.Option("yarnit", help="Name of the Deployment, Service and autoscaler."),
        namespace: str = typer.Option("default", help="Kubernetes namespace."),
        replicas: int = typer.Option(2, help="Replicas at first."),
        min_replicas: int = typer.Option(2, "--min-replicas", help="The autoscaler's floor."),
        max_replicas: int = typer.Option(10, "--max-replicas", help="The autoscaler's ceiling."),
        cpu_target: int = typer.Option(70, "--cpu-target", help="Average CPU utilisation (%) to scale at."),
        cpu_request: str = typer.Option("1", "--cpu-request", help="CPU each replica requests (e.g. 1, 500m)."),
        secret: str = typer.Option("yarnit", help="Secret holding YARNIT_DB_URL and YARNIT_API_TOKEN."),
        online_store: str = typer.Option("redis://redis:6379/0", "--online-store",
                                         help="YARNIT_ONLINE_STORE of the replicas (Redis)."),
        artifacts_claim: str = typer.Option("yarnit-artifacts", "--artifacts-claim",
                                            help="A ReadWriteMany PersistentVolumeClaim for the workspace."),
        kserve: bool = typer.Option(False, "--kserve", help="Write a KServe ServingRuntime and InferenceService "
                                    "(Open Inference Protocol v2, RawDeployment with an HPA) instead."),
        out: Path | None = typer.Option(None, "--out", help="Write here (atomically) instead of stdout.")) -> None:
    """Kubernetes manifests: a Deployment of replicas, a Service and a HorizontalPodAutoscaler (or KServe's)."""
    options = KubernetesOptions(image=image, name=name, namespace=namespace, replicas=replicas,
                                min_replicas=min_replicas, max_replicas=max_replicas, cpu_target_percent=cpu_target,
                                cpu_request=cpu_request, secret=secret, online_store_url=online_store,
                                artifacts_claim=artifacts_claim)
    _write(manifests_yaml(options, kserve=kserve), out, "the KServe manifests" if kserve else "the Kubernetes manifests")


__all__ = ["app"]
