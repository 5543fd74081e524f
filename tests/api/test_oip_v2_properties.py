"""Property tests of the OIP v2 request parser, through the real data-plane handler (issue 22, bad input).

Random JSON bodies, OIP v2 bodies whose every field may be valid or not, and binary-tensor bodies with
random headers and bytes all get a 4xx with a message or a 200 with one answer per row: never a 5xx.
The examples are bounded (``max_examples``) so the file runs in seconds.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from testsupport import TOKEN, register_ctr

from yarnit.api import create_app
from yarnit.api.codecs import OIP_DATATYPES
from yarnit.core import Settings, SimulatedClock, utc
from yarnit.serving import ServingOptions
from yarnit.storage import open_workspace

pytestmark = pytest.mark.timeout(120)
# The same examples on every run (derandomize): CI is deterministic; raise max_examples to explore more.
PROPERTY = settings(max_examples=80, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    ws = open_workspace(Settings.for_home(Path(tmp_path_factory.mktemp("oip")) / "home", api_token=TOKEN),
                        SimulatedClock(utc(2026, 1, 5, 9)))
    register_ctr(ws)
    # Generous limits: these tests are about parsing, so nothing may be shed on a busy machine.
    app = create_app(ws, serving=ServingOptions(log_fsync=False, deadline_ms=60_000, max_queue_delay_ms=None,
                                                refresh_s=60.0))
    try:
        with TestClient(app) as client:
            yield client
    finally:
        ws.close()


# -- strategies ------------------------------------------------------------------------------------------
_SCALARS = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
            | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12))
JSON = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)


def _rarely(one_in: int) -> st.SearchStrategy[bool]:
    """True about once in ``one_in`` draws (False is what examples shrink to)."""
    return st.sampled_from([False] * (one_in - 1) + [True])


def _maybe(valid: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    """Mostly a valid value, about one in eight times any JSON at all."""
    return _rarely(8).flatmap(lambda junk: JSON if junk else valid)


_NAMES = st.sampled_from(["fiber", "price", "fiber", "price", "user_id", ""]) | st.text(max_size=6)
_FINITE = st.floats(allow_nan=False, allow_infinity=False)
_VALUES = {"BYTES": st.sampled_from(["merino", "acrylic", "silk"]) | st.text(max_size=8), "BOOL": st.booleans(),
           "FP64": _FINITE, "FP32": st.floats(allow_nan=False, allow_infinity=False, width=32),
           "FP16": st.floats(-1e4, 1e4, width=16), "INT64": st.integers(-(2**63), 2**63 - 1),
           "INT8": st.integers(-128, 127), "UINT64": st.integers(0, 2**64 - 1)}


@st.composite
def _tensor(draw: st.DrawFn, rows: int) -> object:
    name = draw(_NAMES)
    datatype = draw(st.sampled_from(sorted(_VALUES)) | st.just("BYTES" if name == "fiber" else "FP64"))
    data = draw(st.lists(_VALUES[datatype], min_size=rows, max_size=rows))
    if draw(_rarely(5)):  # values of another type, nested lists, a wrong count
        data = draw(st.lists(_SCALARS | st.lists(st.integers(-3, 3), max_size=2), max_size=rows + 1))
    shape = draw(st.sampled_from([[rows], [rows], [rows, 1], [1, rows]]))
    tensor = {"name": name, "shape": draw(_maybe(st.just(shape) | st.lists(st.integers(-2, 6), max_size=3))),
              "datatype": draw(_maybe(st.just(datatype) | st.sampled_from([*OIP_DATATYPES, "FP128", "bytes"]))),
              "data": draw(_maybe(st.just(data)))}
    if draw(st.booleans()):
        tensor["parameters"] = draw(_maybe(st.just({})))
    if draw(_rarely(10)):
        del tensor[draw(st.sampled_from(sorted(tensor)))]
    return tensor


@st.composite
def _v2_body(draw: st.DrawFn) -> object:
    rows = draw(st.integers(1, 4))
    body: dict[str, object] = {"inputs": draw(_maybe(st.lists(_tensor(rows), min_size=1, max_size=3)))}
    if draw(st.booleans()):
        body["id"] = draw(_maybe(st.from_regex(r"\A[A-Za-z0-9._:-]{1,64}\Z")))
    if draw(st.booleans()):
        body["parameters"] = draw(_maybe(st.fixed_dictionaries({}, optional={
            "key": _maybe(st.text(max_size=10)), "binary_data_output": _maybe(st.booleans())})))
    if draw(st.booleans()):
        body["outputs"] = draw(_maybe(st.lists(st.fixed_dictionaries(
            {"name": _maybe(st.sampled_from(["probability", "class"]))}), max_size=2)))
    if draw(_rarely(20)):
        body[draw(st.text(max_size=5))] = draw(JSON)
    return body


def _checked(response: object) -> None:
    """A 4xx says what was wrong; a 200 is an OIP v2 answer; nothing else is allowed."""
    status = response.status_code  # type: ignore[attr-defined]
    event(f"HTTP {status}")  # --hypothesis-show-statistics: how many examples reached an answer
    assert status < 500, response.text  # type: ignore[attr-defined]
    if status >= 400:
        error = response.json()  # type: ignore[attr-defined]
        assert error["error"] and len(error["detail"]) > 10, error
    else:
        assert response.headers["x-yarnit-served-by"] in ("model", "previous", "fallback")  # type: ignore[attr-defined]


# -- properties ------------------------------------------------------------------------------------------
@PROPERTY
@given(body=JSON)
def test_any_json_body_gets_a_4xx_or_an_answer(http: TestClient, body: object) -> None:
    _checked(http.post("/v2/models/ctr/infer", content=json.dumps(body),
                       headers={"content-type": "application/json"}))


@PROPERTY
@given(raw=st.binary(max_size=64))
@example(raw=b'{"inputs": [{"name": "price", "shape": [1], "datatype": "FP64", "data": [1e309]}]}')
@example(raw=b"\xff\xfe{")
def test_any_bytes_get_a_4xx_or_an_answer(http: TestClient, raw: bytes) -> None:
    _checked(http.post("/v2/models/ctr/infer", content=raw, headers={"content-type": "application/json"}))


@PROPERTY
@given(body=_v2_body())
@example(body={"inputs": [{"name": "fiber", "shape": [1], "datatype": "BYTES", "data": ["merino"]},
                          {"name": "price", "shape": [1], "datatype": "FP64", "data": [3.0]}]})
@example(body={"inputs": [{"name": "price", "shape": [1, 1], "datatype": "INT64", "data": [[2**63]]}]})
def test_oip_v2_bodies_near_the_protocol_get_a_4xx_or_an_answer(http: TestClient, body: object) -> None:
    response = http.post("/v2/models/ctr/infer", content=json.dumps(body), headers={"content-type": "application/json"})
    _checked(response)
    if response.status_code == 200 and response.headers["content-type"] == "application/json":  # not binary
        rows = response.json()["outputs"][0]["shape"][0]
        assert rows >= 1 and len(response.json()["outputs"][0]["data"]) == rows


@st.composite
def _binary_request(draw: st.DrawFn) -> tuple[bytes, str]:
    """(body, Inference-Header-Content-Length): a JSON header declaring binary inputs, then random bytes."""
    names = draw(st.lists(st.sampled_from(["fiber", "price"]), min_size=1, max_size=2, unique=True))
    inputs, payload = [], b""
    for name in names:
        values = draw(st.lists(st.sampled_from(["merino", "silk", "ünï"]) if name == "fiber" else
                               st.floats(-100, 100), min_size=1, max_size=3))
        datatype = "BYTES" if name == "fiber" else draw(st.sampled_from(["FP64", "FP32", "FP16", "INT8", "BOOL"]))
        if datatype == "BYTES":
            raw = b"".join(struct.pack("<I", len(v.encode())) + v.encode() for v in values)
        else:
            raw = draw(st.binary(min_size=0, max_size=24))
        size = draw(st.one_of(st.just(len(raw)), st.integers(-2, 40), JSON))
        inputs.append({"name": name, "shape": draw(_maybe(st.just([len(values)]))), "datatype": datatype,
                       "parameters": {"binary_data_size": size}})
        payload += draw(st.binary(max_size=16)) if draw(_rarely(6)) else raw
    header = json.dumps({"inputs": inputs, "parameters": {"binary_data_output": draw(st.booleans())}}).encode()
    length = draw(st.one_of(st.just(str(len(header))), st.integers(-3, len(header) + 8).map(str),
                            st.text(max_size=4)))
    return header + payload, length


@PROPERTY
@given(request=_binary_request())
@example(request=(b'{"inputs":[{"name":"price","shape":[1],"datatype":"FP16","parameters":{"binary_data_size":2}}]}'
                  b"\x00\x7c", "95"))  # FP16 +inf: not a finite number
def test_binary_tensor_bodies_get_a_4xx_or_an_answer(http: TestClient, request: tuple[bytes, str]) -> None:
    body, length = request
    try:
        headers = {"inference-header-content-length": length, "content-type": "application/octet-stream"}
        response = http.post("/v2/models/ctr/infer", content=body, headers=headers)
    except UnicodeEncodeError:  # a header value httpx cannot send: nothing reached the server
        return
    _checked(response)
