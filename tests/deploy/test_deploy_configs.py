"""`yarnit deploy lb|k8s`: the HAProxy configuration passes `haproxy -c`, the manifests pass the Kubernetes
API's schema (the official client's models, no cluster), and bad options get one clear error."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path

import pytest
import yaml
from testsupport.k8s_schema import kserve_schema_errors, schema_errors
from testsupport.replicas import haproxy_binary
from typer.testing import CliRunner

from yarnit.cli.app import app
from yarnit.core.errors import InvalidInput
from yarnit.deploy import (
    KubernetesOptions,
    kserve_manifests,
    LoadBalancerOptions,
    haproxy_config,
    manifests,
)

runner = CliRunner()


def test_deploy_lb_writes_a_config_haproxy_accepts(tmp_path: Path) -> None:
    out = tmp_path / "haproxy.cfg"
    result = runner.invoke(app, ["deploy", "lb", "--server", "10.0.0.5:8080", "--server", "10.0.0.6:8080",
                                 "--bind", "127.0.0.1:9000", "--stats-port", "9001", "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "server replica-1 10.0.0.5:8080 check" in text and "server replica-2 10.0.0.6:8080 check" in text
    assert "http-check send meth GET uri /v2/health/ready" in text and "retry-on conn-failure" in text
    assert "option http-buffer-request" in text and "option redispatch 1" in text
    haproxy = haproxy_binary()
    if haproxy is None:
        pytest.skip("HAProxy is not installed (apt-get install haproxy; .ci/run does): cannot run haproxy -c")
    check = subprocess.run([haproxy, "-c", "-f", str(out)], capture_output=True, text=True, timeout=30, check=False)
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize(("args", "message"), [
    ([], "Missing option '--server'"),
    (["--server", "10.0.0.5"], "'10.0.0.5' is not HOST:PORT"),
    (["--server", "a:1", "--server", "a:1"], "named twice"),
    (["--server", "a:1", "--check-interval-ms", "5"], "check interval (ms) must be in [50, 60000]; got 5"),
])
def test_deploy_lb_bad_options_get_one_clear_error(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["deploy", "lb", *args])
    assert result.exit_code != 0 and message in result.output
    assert "Traceback" not in result.output


def test_the_lb_config_has_no_replica_without_a_name() -> None:
    with pytest.raises(InvalidInput, match="at least one replica"):
        haproxy_config([], LoadBalancerOptions())


def test_deploy_k8s_manifests_pass_the_kubernetes_api_schema() -> None:
    result = runner.invoke(app, ["deploy", "k8s", "--image", "registry.example.com/yarnit:0.1.0",
                                 "--min-replicas", "2", "--max-replicas", "6", "--cpu-target", "60"])
    assert result.exit_code == 0, result.output
    docs = list(yaml.safe_load_all(result.stdout))
    assert [(d["apiVersion"], d["kind"]) for d in docs] == [
        ("apps/v1", "Deployment"), ("v1", "Service"), ("autoscaling/v2", "HorizontalPodAutoscaler")]
    for doc in docs:
        assert schema_errors(doc) == [], doc["kind"]
    deployment, service, hpa = docs
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["resources"]["requests"]["cpu"] == "1"  # the HPA's utilisation needs a request
    assert deployment["spec"]["selector"]["matchLabels"] == deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"] == deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["ports"][0]["targetPort"] == container["ports"][0]["name"]
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "yarnit"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)


def test_the_schema_check_catches_a_typo_a_wrong_type_and_a_missing_field() -> None:
    """The validator is not a rubber stamp: each of these would be refused by the API server."""
    deployment = manifests(KubernetesOptions(image="yarnit:0.1.0"))[0]
    typo = copy.deepcopy(deployment)
    typo["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    assert any("readinesProbe: unknown field of V1Container" in e for e in schema_errors(typo))
    wrong = copy.deepcopy(deployment)
    wrong["spec"]["replicas"] = "2"
    assert any("spec.replicas" in e for e in schema_errors(wrong))
    missing = copy.deepcopy(deployment)
    del missing["spec"]["selector"]
    assert any("spec.selector" in e and "required" in e.lower() for e in schema_errors(missing))


def test_deploy_k8s_kserve_writes_an_oip_v2_inference_service_that_passes_the_crd_schema() -> None:
    result = runner.invoke(app, ["deploy", "k8s", "--kserve", "--image", "registry.example.com/yarnit:0.1.0",
                                 "--replicas", "3", "--min-replicas", "3", "--max-replicas", "8",
                                 "--cpu-target", "60"])
    assert result.exit_code == 0, result.output
    docs = list(yaml.safe_load_all(result.stdout))
    assert [(d["apiVersion"], d["kind"]) for d in docs] == [
        ("serving.kserve.io/v1alpha1", "ServingRuntime"), ("serving.kserve.io/v1beta1", "InferenceService")]
    for doc in docs:
        assert kserve_schema_errors(doc) == [], doc["kind"]
    runtime, service = docs
    predictor = service["spec"]["predictor"]
    assert predictor["model"] == {"modelFormat": {"name": "yarnit"}, "runtime": "yarnit", "protocolVersion": "v2"}
    assert runtime["spec"]["protocolVersions"] == ["v2"]
    assert runtime["spec"]["supportedModelFormats"][0]["name"] == predictor["model"]["modelFormat"]["name"]
    assert (predictor["minReplicas"], predictor["maxReplicas"], predictor["scaleTarget"]) == (3, 8, 60)
    container = runtime["spec"]["containers"][0]
    assert container["name"] == "kserve-container"
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["volumeMounts"][0]["name"] == predictor["volumes"][0]["name"]
    # the same container as the plain Deployment's, but for its name
    plain = manifests(KubernetesOptions(image="registry.example.com/yarnit:0.1.0"))[0]
    assert container | {"name": "yarnit"} == plain["spec"]["template"]["spec"]["containers"][0]


def test_the_kserve_schema_check_catches_a_typo_a_wrong_enum_a_missing_field_and_a_bad_container() -> None:
    runtime, service = kserve_manifests(KubernetesOptions(image="yarnit:0.1.0"))
    typo = copy.deepcopy(service)
    typo["spec"]["predictor"]["model"]["protocolversion"] = "v2"
    assert any("protocolversion" in e and "not allowed" in e for e in kserve_schema_errors(typo))
    metric = copy.deepcopy(service)
    metric["spec"]["predictor"]["scaleMetric"] = "gpu"
    assert any("scaleMetric" in e for e in kserve_schema_errors(metric))
    missing = copy.deepcopy(service)
    del missing["spec"]["predictor"]["model"]["modelFormat"]
    assert any("'modelFormat' is a required property" in e for e in kserve_schema_errors(missing))
    container = copy.deepcopy(runtime)
    container["spec"]["containers"][0]["readinesProbe"] = {}
    assert any("readinesProbe: unknown field of V1Container" in e for e in kserve_schema_errors(container))
    volume = copy.deepcopy(service)
    volume["spec"]["predictor"]["volumes"][0]["persistentVolumeClaim"] = {"claim": "x"}
    assert kserve_schema_errors(volume)


@pytest.mark.parametrize(("args", "message"), [
    (["--image", "x", "--min-replicas", "5", "--max-replicas", "3"], "1 <= min (5) <= max (3)"),
    (["--image", "x", "--name", "Yarnit_Serve"], "is not a Kubernetes name"),
    (["--image", "x", "--cpu-request", "lots"], "is not a quantity"),
    (["--image", "x", "--cpu-target", "150"], "percentage in 1..100; got 150"),
])
def test_deploy_k8s_bad_options_get_one_clear_error(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["deploy", "k8s", *args])
    assert result.exit_code == 1 and message in result.output
