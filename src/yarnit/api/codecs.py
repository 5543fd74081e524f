"""The data plane's wire formats: the v1 protocol and the Open Inference Protocol v2, decoded and encoded.

Decoding turns a body into instances (one dict of raw feature values per
row), a routing key and, for OIP v2, the request id to echo; every body that
is not of the protocol's form is an :class:`~yarnit.core.errors.InvalidInput`
that says what is wrong (422). Encoding turns a
:class:`~yarnit.serving.Prediction` into the protocol's answer. The JSON
Schemas here are the documented contract of both routes (``/openapi.json``);
they sit beside the code that enforces them so the two change together.

The request handler that calls these (admission, scoring, logging) is
:mod:`yarnit.api.dataplane`.
"""

from __future__ import annotations

import math
import re
from typing import Any

import orjson

from yarnit.core.errors import InvalidInput, YarnitError
from yarnit.serving import MAX_INSTANCES, InputRejected, Prediction, validate_instances

from .errors import client_safe

OIP_DATATYPES = ("BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32",
                 "FP64", "BYTES")
#: A request id a client may give (``X-Request-Id`` or the OIP v2 ``id``): it is logged and is the label join
#: key, so it is short and of a charset that is safe in a log line, a header and a file name.
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_INT_TYPES = frozenset(t for t in OIP_DATATYPES if "INT" in t)
_MAX_FLOAT = 1.7976931348623157e308


# -- OpenAPI: the documented contract of the two POST routes ------------------------------------------
_SCALAR: dict[str, Any] = {"anyOf": [
    {"type": "string", "maxLength": 10_000},
    {"type": "number", "minimum": -_MAX_FLOAT, "maximum": _MAX_FLOAT},
    {"type": "boolean"},
    {"type": "null"},
]}
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["error", "detail"],
    "properties": {"error": {"type": "string"}, "detail": {"type": "string"}, "request_id": {"type": "string"},
                   "row": {"type": "integer", "minimum": 0, "description": "Input contract: the offending row"},
                   "field": {"type": "string", "description": "Input contract: the offending field"},
                   "expected": {"type": "string", "description": "Input contract: the field's declared type"}},
}
_CANDIDATES: dict[str, Any] = {
    "type": "array", "maxItems": 1000,
    "items": {"anyOf": [{"type": "string", "maxLength": 10_000},
                        {"type": "object", "required": ["product_id"], "additionalProperties": _SCALAR,
                         "properties": {"product_id": {"type": "string", "maxLength": 10_000}}}]},
    "description": "Ranking models only (e.g. yarnit-ranker): the page's candidates to re-rank, as product ids "
                   "or objects of live product values; without them the model generates its own.",
}
V1_REQUEST: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["instances"],
    "properties": {
        "instances": {"type": "array", "minItems": 1, "maxItems": MAX_INSTANCES,
                      "items": {"type": "object", "additionalProperties": _SCALAR,
                                "properties": {"candidates": _CANDIDATES}},
                      "description": "One object of raw feature values per instance; null means missing. "
                                     "A ranking model takes user_id, query, country, device, k and optional "
                                     "candidates."},
        "key": {"type": "string", "maxLength": 256,
                "description": "Routing key (e.g. a user id) for the sticky canary split; by default the "
                               "first instance's user_id. Logged only as a keyed hash."},
    },
}
SERVED_BY = {"type": "string", "enum": ["model", "previous", "fallback"]}
_SLATE: dict[str, Any] = {
    "type": "object", "required": ["items", "scores", "propensities", "explored"],
    "description": "A ranking model's answer for one instance: the slate, best first.",
    "properties": {
        "items": {"type": "array", "items": {"type": "string"}, "description": "Product ids shown, in order"},
        "scores": {"type": "array", "items": {"type": "number"}, "description": "The model's score of each item"},
        "propensities": {"type": "array", "items": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                         "description": "Probability that the ranking policy shows this item at this position"},
        "explored": {"type": "boolean", "description": "Whether this slate is a random exploration slate"},
        "eligible": {"type": "integer", "minimum": 0, "description": "Candidates left after the business rules"},
    },
}
_CLASS: dict[str, Any] = {
    "type": "object", "required": ["class", "probability"],
    "description": "A classifier's answer for one instance (signature output 'class', e.g. yarnit-intent).",
    "properties": {"class": {"type": "string", "description": "The most likely class, one of the signature's"},
                   "probability": {"type": "number", "minimum": 0, "maximum": 1}},
}
V1_RESPONSE: dict[str, Any] = {
    "type": "object", "required": ["predictions", "model_name", "model_version", "served_by", "request_id"],
    "properties": {
        "predictions": {"type": "array", "items": {"anyOf": [{"type": "number", "minimum": 0, "maximum": 1},
                                                             _SLATE, _CLASS]},
                        "description": "One probability per instance; a slate per instance for a ranking model; "
                                       "a class and its probability per instance for a classifier"},
        "model_name": {"type": "string"}, "model_version": {"type": "integer", "minimum": 0},
        "served_by": SERVED_BY, "alias": {"type": "string"}, "request_id": {"type": "string"},
        "reason": {"type": "string"},
    },
}
_TENSOR_DATA: dict[str, Any] = {"type": "array", "items": {"anyOf": [
    {"type": "string", "maxLength": 10_000},
    {"type": "number", "minimum": -_MAX_FLOAT, "maximum": _MAX_FLOAT},
    {"type": "boolean"},
    {"type": "array"},
]}}
V2_REQUEST: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["inputs"],
    "properties": {
        "id": {"type": "string", "pattern": REQUEST_ID.pattern, "description": "Names the request (as X-Request-Id "
               "does, which wins when both are given): the prediction log's request id and the label join key"},
        "parameters": {"type": "object", "properties": {"key": {"type": "string", "maxLength": 256}}},
        "inputs": {"type": "array", "minItems": 1, "maxItems": 1024, "items": {
            "type": "object", "additionalProperties": False, "required": ["name", "shape", "datatype", "data"],
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 128},
                "shape": {"type": "array", "minItems": 1, "maxItems": 2,
                          "items": {"type": "integer", "minimum": 0, "maximum": MAX_INSTANCES}},
                "datatype": {"type": "string", "enum": list(OIP_DATATYPES)},
                "data": _TENSOR_DATA,
                "parameters": {"type": "object"},
            }}},
        "outputs": {"type": "array", "maxItems": 2, "items": {
            "type": "object", "required": ["name"],
            "properties": {"name": {"type": "string", "enum": ["probability", "class"]},
                           "parameters": {"type": "object"}}}},
    },
    "description": "Each input tensor is one feature column of shape [N] or [N, 1]; or one tensor of shape "
                   "[N, F] whose columns are the model's declared inputs in order (GET /v2/models/{name}). "
                   "The binary tensor extension is accepted too (what tritonclient sends): with an "
                   "Inference-Header-Content-Length header, this JSON is the body's first bytes and an input "
                   "with parameters.binary_data_size has its values as raw little-endian bytes after it; "
                   "parameters.binary_data_output (or an output's parameters.binary_data) asks for a binary "
                   "answer in the same layout.",
}
V2_RESPONSE: dict[str, Any] = {
    "type": "object", "required": ["model_name", "model_version", "outputs", "parameters"],
    "properties": {
        "model_name": {"type": "string"}, "model_version": {"type": "string"}, "id": {"type": "string"},
        "parameters": {"type": "object", "required": ["served_by", "request_id"],
                       "properties": {"served_by": SERVED_BY, "alias": {"type": "string"},
                                      "request_id": {"type": "string"}, "reason": {"type": "string"}}},
        "outputs": {"type": "array", "items": {
            "type": "object", "required": ["name", "shape", "datatype", "data"],
            "properties": {"name": {"type": "string"}, "shape": {"type": "array", "items": {"type": "integer"}},
                           "datatype": {"type": "string"},
                           "data": {"type": "array", "items": {"anyOf": [{"type": "number"}, {"type": "string"},
                                                                         {"type": "boolean"}]}}}}},
    },
    "description": "One output 'probability' [N] (FP64); for a classifier (signature output 'class'): 'class' "
                   "[N] (BYTES, the most likely class) and 'probability' [N] (FP64, its probability); for a "
                   "ranking model: 'items' [N, K] (BYTES, padded "
                   "with ''), 'scores' and 'propensities' [N, K] (FP64, padded with 0), 'explored' [N] (BOOL) "
                   "and 'length' [N] (INT64, the real items of each row).",
}


# -- request parsing ---------------------------------------------------------------------------------
def loads(body: bytes) -> Any:
    if not body:
        raise InvalidInput("The request body is empty; send a JSON object.")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"The request body is not valid JSON ({exc}). NaN and Infinity are not JSON; "
                           "send finite numbers.") from None


def _check_keys(obj: dict[str, Any], allowed: frozenset[str], where: str) -> None:
    if obj.keys() <= allowed:
        return
    unknown = [k for k in obj if k not in allowed]
    if unknown:
        raise InvalidInput(f"Unknown field(s) {sorted(unknown)} in {where}; allowed: {sorted(allowed)}.")


def _optional_key(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 256:
        raise InvalidInput(f"{where} must be a string of at most 256 characters.")
    return value


_V1_KEYS = frozenset(("instances", "key"))
_OUTPUT_NAMES = ("probability", "class")
_V2_KEYS = frozenset(("id", "parameters", "inputs", "outputs"))
_TENSOR_KEYS = frozenset(("name", "shape", "datatype", "data", "parameters"))
# The Python types each OIP datatype may hold (bool is not an int here, as in _check_tensor_values).
_KINDS = {t: frozenset((str,)) if t == "BYTES" else frozenset((bool,)) if t == "BOOL" else
          frozenset((int,)) if t in _INT_TYPES else frozenset((int, float)) for t in OIP_DATATYPES}
_INT64 = (-(2**63), 2**63 - 1)
# What each numeric OIP datatype can hold: a value outside it was not produced by a tensor of that type, so the
# client's encoder is broken (UINT8 100000, UINT64 -5, FP16 1e300). Integers past INT64 are refused later anyway.
_FP16_MAX, _FP32_MAX = 65504.0, 3.4028234663852886e38
_LIMITS: dict[str, tuple[float, float]] = {
    "UINT8": (0, 2**8 - 1), "UINT16": (0, 2**16 - 1), "UINT32": (0, 2**32 - 1), "UINT64": (0, 2**64 - 1),
    "INT8": (-(2**7), 2**7 - 1), "INT16": (-(2**15), 2**15 - 1), "INT32": (-(2**31), 2**31 - 1), "INT64": _INT64,
    "FP16": (-_FP16_MAX, _FP16_MAX), "FP32": (-_FP32_MAX, _FP32_MAX), "FP64": (-_MAX_FLOAT, _MAX_FLOAT),
}


def parse_v1(payload: Any, max_instances: int) -> tuple[list[dict[str, Any]], str | None]:
    if not isinstance(payload, dict):
        raise InvalidInput('The body must be a JSON object: {"instances": [{...}, ...]}.')
    _check_keys(payload, _V1_KEYS, "the request")
    if "instances" not in payload:
        raise InvalidInput('The body has no "instances"; send {"instances": [{"feature": value, ...}]}.')
    return validate_instances(payload["instances"], max_instances), _optional_key(payload.get("key"), "'key'")


def _flatten(data: list[Any]) -> list[Any]:
    if not any(isinstance(v, list) for v in data):
        return data
    out: list[Any] = []
    stack = [iter(data)]
    while stack:
        for value in stack[-1]:
            if isinstance(value, list):
                stack.append(iter(value))
                break
            out.append(value)
        else:
            stack.pop()
    return out


def _check_tensor_values(name: str, datatype: str, data: list[Any]) -> None:
    for value in data:
        kind = type(value)
        if datatype == "BYTES":
            ok = kind is str
        elif datatype == "BOOL":
            ok = kind is bool
        elif datatype in _INT_TYPES:
            ok = kind is int
        else:
            ok = kind is int or (kind is float and value == value and abs(value) != float("inf"))
        if not ok:
            raise InvalidInput(f"Input {name!r} is declared {datatype} but holds {value!r}; "
                               f"BYTES holds strings, BOOL booleans, INT* integers, FP* finite numbers.")
    limits = _LIMITS.get(datatype)
    if limits is not None and data and (min(data) < limits[0] or max(data) > limits[1]):
        row, value = next((i, v) for i, v in enumerate(data) if not limits[0] <= v <= limits[1])
        raise InvalidInput(f"Input {name!r} is declared {datatype} but holds {value!r} (value {row}); {datatype} "
                           f"holds values in [{limits[0]:g}, {limits[1]:g}]. Declare the datatype that holds your "
                           "values.")


def _feature_columns(inputs: list[Any], max_instances: int) -> list[dict[str, Any]] | None:
    """The usual v2 body, cheaply: one tensor [N] or [N, 1] per feature, every value valid.

    Checks whole tensors with C loops (``set(map(type, data))``), not value
    by value, and yields the same instances as the full path of
    :func:`parse_v2`. Any other body, including every invalid one, gives
    None: the full path then checks it and says what is wrong.
    """
    names: list[str] = []
    columns: list[list[Any]] = []
    rows = -1
    for tensor in inputs:
        if type(tensor) is not dict:
            return None
        name, shape, datatype, data = (tensor.get("name"), tensor.get("shape"), tensor.get("datatype"),
                                       tensor.get("data"))
        # The four fields are there (their types are checked next), so any other key but parameters is unknown.
        if type(name) is not str or type(shape) is not list or type(datatype) is not str or type(data) is not list \
                or len(tensor) != 4 + ("parameters" in tensor) or not 0 < len(name) <= 128:
            return None
        n = len(data)
        if not (0 < n <= max_instances and (rows == n or rows < 0) and shape and type(shape[0]) is int
                and shape[0] == n and (len(shape) == 1 or (len(shape) == 2 and type(shape[1]) is int
                                                           and shape[1] == 1))):
            return None
        rows = n
        allowed = _KINDS.get(datatype)
        kinds = {type(data[0])} if n == 1 else set(map(type, data))
        if allowed is None or not kinds <= allowed:
            return None
        if float in kinds and not all(map(math.isfinite, data)):
            return None
        limits = _LIMITS.get(datatype)
        if limits is not None and (min(data) < limits[0] or max(data) > limits[1]):
            return None
        if int in kinds:
            ints = data if float not in kinds else [v for v in data if type(v) is int]
            if min(ints) < _INT64[0] or max(ints) > _INT64[1]:
                return None
        names.append(name)
        columns.append(data)
    if len(set(names)) != len(names):
        return None
    if rows == 1:
        return [dict(zip(names, [c[0] for c in columns], strict=True))]
    return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]


def _short_id(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else f"a {type(value).__name__}"
    return text if len(text) <= 40 else f"{text[:37]}... ({len(value)} characters)"


def parse_v2(payload: Any, columns_of: Any, max_instances: int) -> tuple[list[dict[str, Any]], str | None,
                                                                          str | None]:
    """(instances, routing key, request id echo) from an OIP v2 infer body."""
    if not isinstance(payload, dict):
        raise InvalidInput('The body must be a JSON object: {"inputs": [{"name", "shape", "datatype", "data"}]}.')
    _check_keys(payload, _V2_KEYS, "the request")
    request_id = payload.get("id")
    if request_id is not None and (not isinstance(request_id, str) or not REQUEST_ID.match(request_id)):
        raise InvalidInput(f"'id' must be 1-64 characters of A-Z a-z 0-9 . _ : - (it names the request in the "
                           f"prediction log and joins its labels), got {_short_id(request_id)}.")
    parameters = payload.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise InvalidInput("'parameters' must be an object.")
    key = _optional_key((parameters or {}).get("key"), "parameters.key")
    outputs = payload.get("outputs")
    if outputs is not None:
        if not isinstance(outputs, list) or len(outputs) > 2 or any(
                not isinstance(o, dict) or o.get("name") not in _OUTPUT_NAMES for o in outputs):
            raise InvalidInput("'outputs' may only ask for [{\"name\": \"probability\"}] (and, from a classifier, "
                               "{\"name\": \"class\"}); every answer carries all of the model's outputs.")
    inputs = payload.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidInput("'inputs' must be a non-empty list of tensors {name, shape, datatype, data}.")
    if len(inputs) > 1024:
        raise InvalidInput(f"'inputs' has {len(inputs)} tensors; at most 1024.")
    instances = _feature_columns(inputs, max_instances)
    if instances is not None:
        return instances, key, request_id
    tensors: list[tuple[str, list[int], list[Any]]] = []
    for index, tensor in enumerate(inputs):
        if not isinstance(tensor, dict):
            raise InvalidInput(f"inputs[{index}] must be an object {{name, shape, datatype, data}}.")
        _check_keys(tensor, _TENSOR_KEYS, f"inputs[{index}]")
        name, shape, datatype, data = (tensor.get(k) for k in ("name", "shape", "datatype", "data"))
        if not isinstance(name, str) or not 0 < len(name) <= 128:
            raise InvalidInput(f"inputs[{index}].name must be a non-empty string (≤ 128 characters).")
        if not isinstance(shape, list) or not 1 <= len(shape) <= 2 or any(
                type(d) is not int or d < 0 for d in shape):
            raise InvalidInput(f"Input {name!r} has shape {shape!r}; use [N] or [N, F] with non-negative integers.")
        if datatype not in OIP_DATATYPES:
            raise InvalidInput(f"Input {name!r} has datatype {datatype!r}; valid: {', '.join(OIP_DATATYPES)}.")
        if not isinstance(data, list):
            raise InvalidInput(f"Input {name!r} needs 'data' as a list of values.")
        flat = _flatten(data)
        expected = shape[0] * (shape[1] if len(shape) == 2 else 1)
        if len(flat) != expected:
            raise InvalidInput(f"Input {name!r} has shape {shape} but {len(flat)} values; expected {expected}.")
        _check_tensor_values(name, datatype, flat)
        if any(name == seen for seen, _shape, _flat in tensors):
            raise InvalidInput(f"Input {name!r} appears twice in 'inputs'; send each feature once.")
        tensors.append((name, shape, flat))
    rows = tensors[0][1][0]
    if rows > max_instances:
        raise InvalidInput(f"{rows} rows in one request; at most {max_instances}. Split the batch.")
    if len(tensors) == 1 and len(tensors[0][1]) == 2 and tensors[0][1][1] != 1:
        name, shape, flat = tensors[0]
        columns = columns_of()
        if len(columns) != shape[1]:
            raise InvalidInput(f"Input {name!r} has {shape[1]} columns but the model declares {len(columns)} "
                               f"inputs ({', '.join(columns) or 'none'}); send one tensor per feature instead.")
        width = shape[1]
        instances = [dict(zip(columns, flat[r * width:(r + 1) * width], strict=True)) for r in range(rows)]
    else:
        for name, shape, _flat in tensors:
            if shape[0] != rows or (len(shape) == 2 and shape[1] != 1):
                raise InvalidInput(f"Input {name!r} has shape {shape}; with one tensor per feature every input "
                                   f"must be one column of shape [{rows}] or [{rows}, 1].")
        instances = [{name: flat[r] for name, _shape, flat in tensors} for r in range(rows)]
    return validate_instances(instances, max_instances), key, request_id


# -- answers ---------------------------------------------------------------------------------------------
def encode_v1(p: Prediction) -> bytes:
    predictions: list[Any] = p.values if p.classes is None else \
        [{"class": c, "probability": v} for c, v in zip(p.classes, p.values, strict=True)]
    body: dict[str, Any] = {"predictions": predictions, "model_name": p.model_name, "model_version": p.model_version,
                            "served_by": p.served_by, "alias": p.alias, "request_id": p.request_id}
    if p.reason is not None:
        body["reason"] = p.reason
    return orjson.dumps(body)


def v2_answer(p: Prediction, echo_id: str | None) -> dict[str, Any]:
    """The OIP v2 answer to ``p`` as a dict, its outputs' values in JSON ``data``."""
    parameters: dict[str, Any] = {"served_by": p.served_by, "alias": p.alias, "request_id": p.request_id}
    if p.reason is not None:
        parameters["reason"] = p.reason
    outputs = _slate_tensors(p.values) if p.kind == "ranking" else \
        [{"name": "probability", "shape": [len(p.values)], "datatype": "FP64", "data": p.values}]
    if p.classes is not None:  # a classifier: the class first, then its probability
        outputs.insert(0, {"name": "class", "shape": [len(p.classes)], "datatype": "BYTES", "data": p.classes})
    return {"model_name": p.model_name, "model_version": str(p.model_version), "id": echo_id or p.request_id,
            "parameters": parameters, "outputs": outputs}


def encode_v2(p: Prediction, echo_id: str | None) -> bytes:
    return orjson.dumps(v2_answer(p, echo_id))


def _slate_tensors(slates: list[Any]) -> list[dict[str, Any]]:
    """Slates as OIP v2 tensors: rows padded to the longest slate ('' and 0), with each row's length."""
    n = len(slates)
    width = max((len(s["items"]) for s in slates), default=0)
    items: list[str] = []
    scores: list[float] = []
    propensities: list[float] = []
    for slate in slates:
        pad = width - len(slate["items"])
        items += [*slate["items"], *([""] * pad)]
        scores += [*slate["scores"], *([0.0] * pad)]
        propensities += [*slate["propensities"], *([0.0] * pad)]
    return [{"name": "items", "shape": [n, width], "datatype": "BYTES", "data": items},
            {"name": "scores", "shape": [n, width], "datatype": "FP64", "data": scores},
            {"name": "propensities", "shape": [n, width], "datatype": "FP64", "data": propensities},
            {"name": "explored", "shape": [n], "datatype": "BOOL", "data": [bool(s["explored"]) for s in slates]},
            {"name": "length", "shape": [n], "datatype": "INT64", "data": [len(s["items"]) for s in slates]}]


def error_body(exc: YarnitError, request_id: str | None) -> bytes:
    """An error answer; a row that breaks the input contract also names its row, field and expected type."""
    body: dict[str, Any] = {"error": type(exc).__name__, "detail": client_safe(str(exc))}  # no server paths
    if isinstance(exc, InputRejected):
        body.update(row=exc.row, field=exc.field, expected=exc.expected)
    if request_id is not None:
        body["request_id"] = request_id
    return orjson.dumps(body)



# What a classifier with named classes answers over OIP v2 (see v2_answer).
CLASS_OUTPUTS = [
    {"name": "class", "datatype": "BYTES", "shape": [-1]},
    {"name": "probability", "datatype": "FP64", "shape": [-1]},
]
# What a ranking model answers over OIP v2 (see _slate_tensors): K is the longest slate of the batch.
RANKING_OUTPUTS = [
    {"name": "items", "datatype": "BYTES", "shape": [-1, -1]},
    {"name": "scores", "datatype": "FP64", "shape": [-1, -1]},
    {"name": "propensities", "datatype": "FP64", "shape": [-1, -1]},
    {"name": "explored", "datatype": "BOOL", "shape": [-1]},
    {"name": "length", "datatype": "INT64", "shape": [-1]},
]


__all__ = ["CLASS_OUTPUTS", "ERROR_SCHEMA", "OIP_DATATYPES", "RANKING_OUTPUTS", "SERVED_BY", "V1_REQUEST",
           "V1_RESPONSE", "V2_REQUEST", "V2_RESPONSE", "encode_v1", "encode_v2", "error_body", "loads", "parse_v1",
           "parse_v2", "v2_answer"]
