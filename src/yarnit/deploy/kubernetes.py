"""Kubernetes manifests for stateless ``yarnit serve`` replicas (``yarnit deploy k8s``).

Three objects, in this order: a ``Deployment`` (apps/v1) of replicas, a
``Service`` (v1) in front of them, and a ``HorizontalPodAutoscaler``
(autoscaling/v2) that scales the Deployment on CPU. They carry the same
promises as the HAProxy set-up (:mod:`yarnit.deploy.haproxy`):

* The pods share state only through what every replica reaches: the metadata
  store (``YARNIT_DB_URL``, PostgreSQL) and the API token from a Secret, the
  online store (``YARNIT_ONLINE_STORE``, Redis), and the workspace's artifact
  directory, a ReadWriteMany volume mounted at ``YARNIT_HOME`` (artifacts are
  written once and named by sha256, so sharing them is safe).
* The readiness probe is ``/v2/health/ready`` (metadata store reachable, every
  production version loaded and warmed): the Service sends a pod nothing
  until it is ready and stops when it cannot reach PostgreSQL. The liveness
  probe is ``/v2/health/live`` only, so a database outage does not restart
  every pod at once.
* Rolling updates keep every ready pod until its replacement is ready
  (``maxUnavailable: 0``), and a pod gets ``terminationGracePeriodSeconds`` to
  flush its prediction log.
* The HPA needs CPU *requests* to compute utilisation, so the container
  declares them (``cpu_request``).

The manifests are plain dicts (rendered as YAML); the tests check them
against the Kubernetes API's own models, without a cluster. ``--kserve``
writes a KServe ``ServingRuntime`` + ``InferenceService`` (OIP v2) instead
(:func:`kserve_manifests`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import yaml

from yarnit.core.errors import InvalidInput

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_CPU = re.compile(r"^([0-9]+m|[0-9]+(\.[0-9]+)?)$")
_MEMORY = re.compile(r"^[0-9]+(Ki|Mi|Gi|Ti|k|M|G|T)?$")
HOME = "/var/lib/yarnit"


@dataclass(frozen=True)
class KubernetesOptions:
    """What ``yarnit deploy k8s`` asks for; the defaults give 2–10 replicas at 70 % CPU."""

    image: str
    name: str = "yarnit"
    namespace: str = "default"
    port: int = 8080
    service_port: int = 80
    replicas: int = 2
    min_replicas: int = 2
    max_replicas: int = 10
    cpu_target_percent: int = 70
    cpu_request: str = "1"
    memory_request: str = "1Gi"
    memory_limit: str = "2Gi"
    secret: str = "yarnit"  # holds YARNIT_DB_URL and YARNIT_API_TOKEN
    online_store_url: str = "redis://redis:6379/0"
    artifacts_claim: str = "yarnit-artifacts"

    def check(self) -> None:
        for what, value in (("name", self.name), ("namespace", self.namespace), ("secret", self.secret),
                            ("artifacts claim", self.artifacts_claim)):
            if not _DNS_LABEL.match(value):
                raise InvalidInput(f"The {what} {value!r} is not a Kubernetes name: lower-case letters, digits "
                                   "and '-', at most 63, starting and ending with a letter or digit.")
        if not self.image.strip() or any(c.isspace() for c in self.image):
            raise InvalidInput(f"The image {self.image!r} is not an image reference (e.g. "
                               "registry.example.com/yarnit:0.1.0).")
        for what, port in (("port", self.port), ("service port", self.service_port)):
            if not 1 <= port <= 65535:
                raise InvalidInput(f"The {what} must be in 1..65535; got {port}.")
        if not 1 <= self.min_replicas <= self.max_replicas:
            raise InvalidInput(f"Replicas must satisfy 1 <= min ({self.min_replicas}) <= max ({self.max_replicas}).")
        if not self.min_replicas <= self.replicas <= self.max_replicas:
            raise InvalidInput(f"The initial replicas ({self.replicas}) must lie between min ({self.min_replicas}) "
                               f"and max ({self.max_replicas}).")
        if not 1 <= self.cpu_target_percent <= 100:
            raise InvalidInput(f"The CPU target must be a percentage in 1..100; got {self.cpu_target_percent}.")
        if not _CPU.match(self.cpu_request):
            raise InvalidInput(f"The CPU request {self.cpu_request!r} is not a quantity (e.g. 1, 0.5 or 500m).")
        for what, value in (("memory request", self.memory_request), ("memory limit", self.memory_limit)):
            if not _MEMORY.match(value):
                raise InvalidInput(f"The {what} {value!r} is not a quantity (e.g. 512Mi or 2Gi).")


def _labels(o: KubernetesOptions) -> dict[str, str]:
    return {"app.kubernetes.io/name": "yarnit", "app.kubernetes.io/instance": o.name,
            "app.kubernetes.io/component": "serving"}


def _container(o: KubernetesOptions, name: str = "yarnit") -> dict[str, Any]:
    """The ``yarnit serve`` container every manifest runs (a core/v1 Container)."""

    def secret_env(env: str, key: str, *, optional: bool = False) -> dict[str, Any]:
        ref: dict[str, Any] = {"name": o.secret, "key": key}
        if optional:
            ref["optional"] = True
        return {"name": env, "valueFrom": {"secretKeyRef": ref}}

    def probe(path: str, period_s: int, failures: int) -> dict[str, Any]:
        return {"httpGet": {"path": path, "port": "http"}, "periodSeconds": period_s, "timeoutSeconds": 2,
                "failureThreshold": failures}

    return {
        "name": name,
        "image": o.image,
        "args": ["serve", "--host", "0.0.0.0", "--port", str(o.port)],
        "ports": [{"name": "http", "containerPort": o.port, "protocol": "TCP"}],
        "env": [
            {"name": "YARNIT_HOME", "value": HOME},
            secret_env("YARNIT_DB_URL", "YARNIT_DB_URL"),
            secret_env("YARNIT_API_TOKEN", "YARNIT_API_TOKEN"),
            secret_env("YARNIT_HMAC_KEY", "YARNIT_HMAC_KEY", optional=True),
            {"name": "YARNIT_ONLINE_STORE", "value": o.online_store_url},
        ],
        "readinessProbe": probe("/v2/health/ready", 2, 2),
        "livenessProbe": probe("/v2/health/live", 10, 3),
        # A first start loads and warms every production model before it answers at all.
        "startupProbe": probe("/v2/health/live", 2, 90),
        "resources": {"requests": {"cpu": o.cpu_request, "memory": o.memory_request},
                      "limits": {"memory": o.memory_limit}},
        "volumeMounts": [{"name": "workspace", "mountPath": HOME}],
    }


def _workspace_volume(o: KubernetesOptions) -> dict[str, Any]:
    return {"name": "workspace", "persistentVolumeClaim": {"claimName": o.artifacts_claim}}


def manifests(options: KubernetesOptions) -> list[dict[str, Any]]:
    """The Deployment, Service and HorizontalPodAutoscaler, as Kubernetes API objects (dicts)."""
    o = options
    o.check()
    labels = _labels(o)
    meta = {"name": o.name, "namespace": o.namespace, "labels": labels}
    container = _container(o)
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": o.replicas,
            "selector": {"matchLabels": labels},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": 30,
                    "containers": [container],
                    "volumes": [_workspace_volume(o)],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {"type": "ClusterIP", "selector": labels,
                 "ports": [{"name": "http", "port": o.service_port, "targetPort": "http", "protocol": "TCP"}]},
    }
    hpa = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": meta,
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": o.name},
            "minReplicas": o.min_replicas,
            "maxReplicas": o.max_replicas,
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": o.cpu_target_percent}}}],
            # Scale down slowly: a replica removed too early comes back with a cold model load.
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}},
        },
    }
    objects: list[dict[str, Any]] = json.loads(json.dumps([deployment, service, hpa]))
    return objects  # a JSON round trip: no shared sub-dicts (YAML would write them as anchors)


def kserve_manifests(options: KubernetesOptions) -> list[dict[str, Any]]:
    """A KServe ``ServingRuntime`` running ``yarnit serve`` and an ``InferenceService`` on it, OIP v2.

    ``yarnit serve`` is the runtime: it speaks the Open Inference Protocol v2 (``protocolVersions: [v2]``) and
    reads its models from the shared workspace, so the predictor names no ``storageUri``. The
    InferenceService picks the runtime by model format (``yarnit``) and asks for ``protocolVersion: v2``.
    ``RawDeployment`` mode gives a plain Deployment and an HPA on CPU (KServe's ``autoscalerClass: hpa``),
    the same scaling and the same probes as :func:`manifests`, without Knative; it also keeps the
    ReadWriteMany workspace volume, which Knative refuses unless a feature flag is set.
    """
    o = options
    o.check()
    labels = _labels(o)
    runtime = {
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "ServingRuntime",
        "metadata": {"name": o.name, "namespace": o.namespace, "labels": labels},
        "spec": {
            "supportedModelFormats": [{"name": "yarnit", "version": "1", "autoSelect": True}],
            "protocolVersions": ["v2"],
            "multiModel": False,
            # KServe looks up the runtime's serving container by this name
            "containers": [_container(o, name="kserve-container")],
        },
    }
    service = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": o.name, "namespace": o.namespace, "labels": labels,
                     "annotations": {"serving.kserve.io/deploymentMode": "RawDeployment",
                                     "serving.kserve.io/autoscalerClass": "hpa"}},
        "spec": {
            "predictor": {
                "minReplicas": o.min_replicas,
                "maxReplicas": o.max_replicas,
                "scaleMetric": "cpu",
                "scaleMetricType": "Utilization",
                "scaleTarget": o.cpu_target_percent,
                "deploymentStrategy": {"type": "RollingUpdate",
                                       "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                "terminationGracePeriodSeconds": 30,
                "model": {"modelFormat": {"name": "yarnit"}, "runtime": o.name, "protocolVersion": "v2"},
                "volumes": [_workspace_volume(o)],
            },
        },
    }
    objects: list[dict[str, Any]] = json.loads(json.dumps([runtime, service]))
    return objects


def manifests_yaml(options: KubernetesOptions, *, kserve: bool = False) -> str:
    """:func:`manifests` (or :func:`kserve_manifests`) as one multi-document YAML stream (``kubectl apply -f -``)."""
    if kserve:
        header = "# Generated by `yarnit deploy k8s --kserve`: a KServe ServingRuntime (yarnit serve, OIP v2) and " \
                 "its InferenceService.\n"
        return header + yaml.safe_dump_all(kserve_manifests(options), sort_keys=False, explicit_start=True)
    header = "# Generated by `yarnit deploy k8s`: yarnit serve replicas, their Service and autoscaler.\n"
    return header + yaml.safe_dump_all(manifests(options), sort_keys=False, explicit_start=True)


__all__ = ["HOME", "KubernetesOptions", "kserve_manifests", "manifests", "manifests_yaml"]
