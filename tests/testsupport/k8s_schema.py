"""Check a Kubernetes manifest against the Kubernetes API's own schema, without a cluster.

The official Python client (``kubernetes``, a test dependency) ships one
pydantic model per API type, generated from the cluster's OpenAPI document:
field types (strict), required fields, and ``extra="forbid"``. Its models use
Python names (``api_version``), so a manifest's JSON names are first mapped
through each model's ``attribute_map``; a name that is in no map is an unknown
field, the error ``kubectl apply --validate=strict`` would give.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

KINDS = {
    ("apps/v1", "Deployment"): "V1Deployment",
    ("v1", "Service"): "V1Service",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "V2HorizontalPodAutoscaler",
}


def _python_names(value: Any, type_name: str, path: str, errors: list[str]) -> Any:
    from kubernetes.client import models

    if type_name.startswith("List[") and type_name.endswith("]"):
        if not isinstance(value, list):
            errors.append(f"{path}: expected a list of {type_name[5:-1]}, got {type(value).__name__}")
            return value
        return [_python_names(v, type_name[5:-1], f"{path}[{i}]", errors) for i, v in enumerate(value)]
    if type_name.startswith("Dict[") and type_name.endswith("]"):
        if not isinstance(value, dict):
            errors.append(f"{path}: expected a map, got {type(value).__name__}")
            return value
        inner = type_name[5:-1].split(",", 1)[1].strip()
        return {k: _python_names(v, inner, f"{path}.{k}", errors) for k, v in value.items()}
    cls = getattr(models, type_name, None)
    if cls is None:  # a primitive (str, int, bool, object = int-or-string …): the model checks its type
        return value
    if not isinstance(value, dict):
        errors.append(f"{path}: expected an object ({type_name}), got {type(value).__name__}")
        return value
    by_json = {json_name: attr for attr, json_name in cls.attribute_map.items()}
    out = {}
    for key, item in value.items():
        attr = by_json.get(key)
        if attr is None:
            errors.append(f"{path}.{key}: unknown field of {type_name} (known: {sorted(by_json)})")
            continue
        out[attr] = _python_names(item, cls.openapi_types[attr], f"{path}.{key}", errors)
    return out


def schema_errors(manifest: dict[str, Any]) -> list[str]:
    """What is wrong with ``manifest`` by the Kubernetes API's schema (empty when it is valid)."""
    import pydantic
    from kubernetes.client import models

    name = KINDS.get((manifest.get("apiVersion"), manifest.get("kind")))  # type: ignore[arg-type]
    if name is None:
        return [f"unsupported apiVersion/kind {manifest.get('apiVersion')}/{manifest.get('kind')}"]
    errors: list[str] = []
    converted = _python_names(manifest, name, manifest["kind"], errors)
    try:
        getattr(models, name).model_validate(converted)
    except pydantic.ValidationError as exc:
        errors += [f"{manifest['kind']}.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
    return errors


KSERVE_SCHEMAS = Path(__file__).resolve().parents[1] / "deploy" / "fixtures" / "kserve_schemas.json"
# The core/v1 objects a KServe manifest embeds, checked with the kubernetes client's models: JSON path → model.
KSERVE_CORE = {
    "ServingRuntime": (("spec", "containers"), "V1Container"),
    "InferenceService": (("spec", "predictor", "volumes"), "V1Volume"),
}


def kserve_schema_errors(manifest: dict[str, Any], schemas: Path = KSERVE_SCHEMAS) -> list[str]:
    """What is wrong with a KServe ``InferenceService`` or ``ServingRuntime`` (empty when it is valid).

    The KServe layer is checked with ``jsonschema`` against the CRD fields in ``schemas``; the core objects
    inside, against the Kubernetes API's own models (:func:`schema_errors`' machinery).
    """
    import json

    import jsonschema
    import pydantic
    from kubernetes.client import models

    kind = manifest.get("kind")
    document = json.loads(schemas.read_text(encoding="utf-8"))
    if kind not in document["$defs"] or kind not in KSERVE_CORE:
        return [f"unsupported KServe kind {kind!r}"]
    validator = jsonschema.Draft202012Validator(document | {"$ref": f"#/$defs/{kind}"})
    errors = [f"{kind}.{'.'.join(str(p) for p in e.absolute_path)}: {e.message}"
              for e in sorted(validator.iter_errors(manifest), key=lambda e: list(map(str, e.absolute_path)))]
    path, model = KSERVE_CORE[kind]
    items: Any = manifest
    for key in path:
        items = items.get(key, {}) if isinstance(items, dict) else {}
    for i, item in enumerate(items if isinstance(items, list) else []):
        where = f"{kind}.{'.'.join(path)}[{i}]"
        converted = _python_names(item, model, where, errors)
        try:
            getattr(models, model).model_validate(converted)
        except pydantic.ValidationError as exc:
            errors += [f"{where}.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
    return errors
