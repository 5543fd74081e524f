"""Deploying yarnit serve as N stateless replicas: an HAProxy configuration and Kubernetes manifests."""

from .haproxy import Endpoint, LoadBalancerOptions, haproxy_config
from .kubernetes import KubernetesOptions, kserve_manifests, manifests, manifests_yaml

__all__ = ["Endpoint", "KubernetesOptions", "LoadBalancerOptions", "haproxy_config", "kserve_manifests", "manifests", "manifests_yaml"]
