"""The OIP v2 binary tensor extension, spoken by NVIDIA's own client (`tritonclient.http`) to a real server.

A default `tritonclient` request (binary inputs, binary outputs) gets the same
probabilities as the JSON request for the same rows; JSON inputs with binary
outputs, binary inputs with JSON outputs and a ranking-free numeric matrix work
too; a malformed binary body is a 422 that says what is wrong, never a 5xx.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from testsupport import TOKEN, register_ctr

from yarnit.api import create_app
from yarnit.api.server import BackgroundServer
from yarnit.core import Settings, SimulatedClock, utc
from yarnit.serving import ServingOptions
from yarnit.storage import open_workspace

triton = pytest.importorskip("tritonclient.http", reason="tritonclient[http] is a test dependency")

FIBERS = ["merino", "acrylic", "silk", "merino", "alpaca"]
PRICES = [12.0, 3.0, 25.5, 7.25, 0.0]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One server for the module: these tests only read (each server start loads and compiles the model)."""
    ws = open_workspace(Settings.for_home(tmp_path_factory.mktemp("binary") / "home", api_token=TOKEN),
                        SimulatedClock(utc(2026, 1, 5, 9)))
    register_ctr(ws)
    # Generous deadlines: these tests are about encodings, not speed (a loaded CI must not shed a 10,000-row batch).
    app = create_app(ws, serving=ServingOptions(log_flush_interval_s=0.01, log_fsync=False, deadline_ms=60_000,
                                                max_queue_delay_ms=None))
    try:
        with BackgroundServer(app) as running:
            yield running.url
    finally:
        app.state.serving.close()
        ws.close()


def _inputs(binary: bool) -> list[object]:
    fiber = triton.InferInput("fiber", [len(FIBERS)], "BYTES")
    fiber.set_data_from_numpy(np.array(FIBERS, dtype=np.object_), binary_data=binary)
    price = triton.InferInput("price", [len(PRICES)], "FP64")
    price.set_data_from_numpy(np.array(PRICES, dtype=np.float64), binary_data=binary)
    return [fiber, price]


def _json_probabilities(url: str) -> list[float]:
    response = httpx.post(f"{url}/v2/models/ctr/infer", json={"inputs": [
        {"name": "fiber", "shape": [len(FIBERS)], "datatype": "BYTES", "data": FIBERS},
        {"name": "price", "shape": [len(PRICES)], "datatype": "FP64", "data": PRICES}]}, timeout=30)
    assert response.status_code == 200, response.text
    return list(response.json()["outputs"][0]["data"])


def test_a_default_tritonclient_request_gets_binary_answers_equal_to_json(server: str) -> None:
    expected = _json_probabilities(server)
    client = triton.InferenceServerClient(server.removeprefix("http://"))
    try:
        assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
        result = client.infer("ctr", _inputs(binary=True))  # tritonclient's defaults: binary in, binary out
        answer = result.get_response()
        assert answer["model_version"] == "1" and answer["parameters"]["served_by"] == "model"
        assert answer["outputs"][0]["parameters"] == {"binary_data_size": 8 * len(FIBERS)}
        assert result.as_numpy("probability").tolist() == expected  # bit for bit: the same float64s
        # JSON inputs, binary answer; binary inputs, JSON answer (the output's own binary_data=False wins)
        mixed = client.infer("ctr", _inputs(binary=False))
        assert mixed.as_numpy("probability").tolist() == expected
        json_out = client.infer("ctr", _inputs(binary=True),
                                outputs=[triton.InferRequestedOutput("probability", binary_data=False)])
        assert json_out.get_response()["outputs"][0]["data"] == expected
    finally:
        client.close()


def _binary_body(header: dict[str, object], raw: bytes) -> tuple[bytes, dict[str, str]]:
    import json

    head = json.dumps(header).encode()
    return head + raw, {"Inference-Header-Content-Length": str(len(head)),
                        "Content-Type": "application/octet-stream"}


@pytest.mark.parametrize(("header", "raw", "length_delta", "fragment"), [
    ({"inputs": [{"name": "price", "shape": [2], "datatype": "FP64", "parameters": {"binary_data_size": 16}}]},
     struct.pack("<d", 1.0), 0, "declares 16 bytes of binary data but only 8"),
    ({"inputs": [{"name": "price", "shape": [2], "datatype": "FP64", "parameters": {"binary_data_size": 12}}]},
     b"\0" * 12, 0, "not a whole number of values"),
    ({"inputs": [{"name": "price", "shape": [1], "datatype": "FP64", "parameters": {"binary_data_size": 8}}]},
     struct.pack("<dd", 1.0, 2.0), 0, "8 bytes of binary data that no input declares"),
    ({"inputs": [{"name": "price", "shape": [1], "datatype": "FP64", "parameters": {"binary_data_size": 8}}]},
     struct.pack("<d", float("nan")), 0, "finite numbers"),
    ({"inputs": [{"name": "fiber", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 6}}]},
     struct.pack("<I", 9) + b"ab", 0, "declares more bytes than are left"),
    ({"inputs": [{"name": "price", "shape": [2], "datatype": "FP64", "parameters": {"binary_data_size": 8}}]},
     struct.pack("<d", 1.0), 0, "shape [2] but 1 values"),
    ({"inputs": [{"name": "price", "shape": [1], "datatype": "FP64", "parameters": {"binary_data_size": 8}}]},
     struct.pack("<d", 1.0), 10_000, "the body has only"),
])
def test_a_malformed_binary_body_is_a_422_that_says_what_is_wrong(server: str, header: dict[str, object], raw: bytes,
                                                                  length_delta: int, fragment: str) -> None:
    body, headers = _binary_body(header, raw)
    headers["Inference-Header-Content-Length"] = str(int(headers["Inference-Header-Content-Length"]) + length_delta)
    response = httpx.post(f"{server}/v2/models/ctr/infer", content=body, headers=headers, timeout=30)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/json" and fragment in response.json()["detail"]


def test_the_binary_header_on_v1_or_with_a_bad_value_is_refused(server: str) -> None:
    v1 = httpx.post(f"{server}/v1/models/ctr:predict", content=b'{"instances": [{"price": 1.0}]}',
                    headers={"Inference-Header-Content-Length": "31"}, timeout=30)
    assert v1.status_code == 422 and "OIP v2 extension" in v1.json()["detail"]
    bad = httpx.post(f"{server}/v2/models/ctr/infer", content=b"{}", headers={"Inference-Header-Content-Length": "x"},
                     timeout=30)
    assert bad.status_code == 422 and "whole number" in bad.json()["detail"]


def test_a_10000_row_binary_batch_parsed_off_the_event_loop_matches_json(server: str) -> None:
    """A big body is parsed on the scoring pool (DataPlaneMiddleware._parse_on_pool): binary takes that path too."""
    rng = np.random.default_rng(7)
    fibers = rng.choice(["merino", "acrylic", "silk", "alpaca"], size=10_000).astype(np.object_)
    prices = rng.uniform(0, 50, size=10_000)
    response = httpx.post(f"{server}/v2/models/ctr/infer", json={"inputs": [
        {"name": "fiber", "shape": [10_000], "datatype": "BYTES", "data": fibers.tolist()},
        {"name": "price", "shape": [10_000], "datatype": "FP64", "data": prices.tolist()}]}, timeout=60)
    assert response.status_code == 200, response.text
    client = triton.InferenceServerClient(server.removeprefix("http://"), network_timeout=60)
    try:
        fiber = triton.InferInput("fiber", [10_000], "BYTES")
        fiber.set_data_from_numpy(fibers)
        price = triton.InferInput("price", [10_000], "FP64")
        price.set_data_from_numpy(prices)
        result = client.infer("ctr", [fiber, price])
    finally:
        client.close()
    assert result.as_numpy("probability").tolist() == response.json()["outputs"][0]["data"]
