"""Schemathesis over the OpenAPI (RELIABILITY.md target 19): no 5xx, no schema violations.

The control plane (``/api``) gets the same treatment with hostile numbers: a
schemathesis run in positive and negative mode, and a sweep that puts integers
past 64 bits and non-finite numbers (NaN, ±Infinity, 1e999, which JSON Schema
generators never produce) into every body field and numeric query parameter.

Runs every default check on ≥ 100 generated cases per data-plane operation
(v1 predict, OIP v2 infer, metadata and readiness, health), against the real
server on 127.0.0.1. A model named ``a`` is registered besides ``ctr`` so that
generated model names hit a real model often, not only the 404 path.

One default check is off for one operation: ``positive_data_acceptance`` on
OIP v2 infer. The tensor contract (``len(data) == prod(shape)``, values of the
declared datatype, as many columns as the model has inputs) cannot be said in
JSON Schema, so schema-valid bodies that break it are rightly answered 422.
"""

from __future__ import annotations

from typing import Any

import hypothesis
import hypothesis.errors
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import positive_data_acceptance

from yarnit.api import create_app
from yarnit.api.server import BackgroundServer
from yarnit.registry import ModelRegistry
from yarnit.serving import ServingOptions
from yarnit.storage import Workspace

from testsupport import TOKEN

EXAMPLES = 100


@pytest.mark.slow
def test_the_data_plane_survives_schemathesis(token_ws: Workspace) -> None:
    registry = ModelRegistry(token_ws)
    version = registry.get("ctr", 1)
    registry.register("a", token_ws.artifacts.get_bytes(version.artifact_sha256), version.artifact_format,
                      signature=version.signature)
    registry.promote("a", 1)
    app = create_app(token_ws, refresh_s=0.0, serving=ServingOptions(log_fsync=False, max_body_bytes=1 << 20))
    failures: list[str] = []
    counts: dict[str, int] = {}
    try:
        with BackgroundServer(app) as server:
            schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json").include(path_regex=r"^/v[12]")
            operations = [result.ok() for result in schema.get_all_operations()]
            assert {op.label for op in operations} >= {
                "POST /v1/models/{name}:predict", "POST /v2/models/{name}/infer", "GET /v2/models/{name}",
                "GET /v2/models/{name}/ready"}
            for operation in operations:
                label = operation.label
                excluded = [positive_data_acceptance] if label == "POST /v2/models/{name}/infer" else []

                @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                          suppress_health_check=list(HealthCheck), phases=[hypothesis.Phase.generate])
                @hypothesis.given(case=operation.as_strategy())
                def run(case) -> None:
                    counts[label] = counts.get(label, 0) + 1
                    try:
                        case.call_and_validate(base_url=server.url, timeout=10, excluded_checks=excluded)
                    except (AssertionError, FailureGroup) as exc:  # collect rather than stop: report every kind of failure
                        failures.append(f"{label}: {str(exc)[:500]}")

                run()
    finally:
        app.state.serving.close()
    assert not failures, "\n".join(sorted(set(failures))[:10])
    # Operations without parameters have one possible request; the four with inputs got ≥ 100 each.
    assert all(n >= EXAMPLES for label, n in counts.items() if "{name}" in label), counts


# Numbers a JSON Schema generator never makes: past 64 bits, past a double, and not finite (Python's json
# accepts NaN and Infinity; 1e999 parses to inf). Raw JSON text, so each is sent exactly as written.
HOSTILE_NUMBERS = ["1180591620717411303424", "-1180591620717411303424", "1" + "0" * 400, "NaN", "Infinity",
                   "-Infinity", "1e999", "-1e999", "1e-999"]
HOSTILE_QUERY = ["1180591620717411303424", "-1180591620717411303424", "nan", "inf", "-inf", "1e999", "9" * 5000]


def _concrete(path: str) -> str:
    return path.replace("{name}", "ctr").replace("{alias}", "canary").replace("{version}", "1").replace(
        "{kind}", "model_version").replace("{node_id}", "mv_x").replace("{run_id}", "run_" + "0" * 26)


def _body_properties(spec: dict[str, Any], operation: dict[str, Any]) -> list[str]:
    content = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    schema = content.get("schema", {})
    if "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return list(schema.get("properties", {}))


def test_the_control_plane_answers_huge_and_non_finite_numbers_with_4xx(token_ws: Workspace) -> None:
    app = create_app(token_ws, refresh_s=0.0, serving=ServingOptions(log_fsync=False))
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    failures: list[str] = []
    sent = 0
    try:
        with BackgroundServer(app) as server, requests.Session() as http:
            spec = http.get(f"{server.url}/openapi.json", timeout=30).json()
            for path, operations in spec["paths"].items():
                if not path.startswith("/api"):
                    continue
                for method, operation in operations.items():
                    url = server.url + _concrete(path)
                    attempts: list[tuple[dict[str, str], bytes | None]] = []
                    for prop in _body_properties(spec, operation):
                        attempts += [({}, f'{{"{prop}": {number}}}'.encode()) for number in HOSTILE_NUMBERS]
                    for param in operation.get("parameters", []):
                        if param["in"] == "query":
                            attempts += [({param["name"]: value}, None) for value in HOSTILE_QUERY]
                    for params, body in attempts:
                        response = http.request(method.upper(), url, params=params, data=body, headers=headers,
                                                timeout=30)
                        sent += 1
                        text = response.text
                        if response.status_code >= 500 or "0" * 400 in text or "9" * 5000 in text:
                            failures.append(f"{method.upper()} {path} {params or body!r}: {response.status_code} "
                                            f"{text[:200]}")
    finally:
        app.state.serving.close()
    assert sent >= 100, f"only {sent} hostile requests: the sweep found too few fields to prove anything"
    assert not failures, "\n".join(failures[:10])


@pytest.mark.slow
def test_the_control_plane_survives_schemathesis(token_ws: Workspace) -> None:
    """Positive and negative schemathesis cases on every /api operation (writes with the token): no 5xx."""
    app = create_app(token_ws, refresh_s=0.0, serving=ServingOptions(log_fsync=False))
    failures: list[str] = []
    counts: dict[str, int] = {}
    try:
        with BackgroundServer(app) as server:
            schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json").include(path_regex=r"^/api")
            for operation in [result.ok() for result in schema.get_all_operations()]:
                for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
                    label = f"{operation.label} ({mode.value})"

                    @settings(max_examples=10, deadline=None, database=None, derandomize=True,
                              suppress_health_check=list(HealthCheck), phases=[hypothesis.Phase.generate])
                    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
                    def run(case) -> None:  # type: ignore[no-untyped-def]
                        counts[label] = counts.get(label, 0) + 1
                        try:
                            case.call_and_validate(base_url=server.url, timeout=10, checks=[not_a_server_error],
                                                   headers={"Authorization": f"Bearer {TOKEN}"})
                        except (AssertionError, FailureGroup) as exc:
                            failures.append(f"{label}: {str(exc)[:500]}")

                    try:
                        run()
                    except hypothesis.errors.Unsatisfiable:
                        assert mode is schemathesis.GenerationMode.NEGATIVE, label  # nothing to negate: no inputs
    finally:
        app.state.serving.close()
    assert not failures, "\n".join(sorted(set(failures))[:10])
    assert sum(n >= 10 for n in counts.values()) >= 20, counts
