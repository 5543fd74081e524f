"""A 10,000-row OIP v2 batch as JSON tensors vs binary tensors (the extension tritonclient uses by default).

One `ctr`-like model (the tests' scikit-learn pipeline: a string feature and a number, compiled to ONNX),
served over real HTTP by the fast lane (BackgroundServer, as `yarnit serve` runs it). The same 10,000
rows are sent four ways, taking turns for ``--reps`` rounds, and the median wall time per request is reported:

* ``json``: the JSON body, pre-encoded once (httpx posts bytes);
* ``binary``: the binary body (JSON header + raw little-endian tensors), pre-encoded once, answer binary;
* ``tritonclient json`` / ``tritonclient binary``: NVIDIA's `tritonclient.http` doing its own encoding
  and decoding (``binary_data=False`` / its default ``True``), the client a user would run.

Also the server's own parsing of each body (``DataPlaneMiddleware._decode``: body → checked instances),
in-process, which is where the two encodings differ; scoring is the same for both.

Usage: .venv/bin/python benchmarks/bench_binary_tensors.py [--rows 10000] [--reps 20]
Writes benchmarks/results/binary_tensors.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=20)
    args = parser.parse_args()
    import httpx
    import numpy as np
    import orjson
    import tritonclient.http as triton
    from testsupport import TOKEN, register_ctr
    from tritonclient.utils import serialize_byte_tensor

    from yarnit.api import create_app
    from yarnit.api.server import BackgroundServer
    from yarnit.core import Settings, SystemClock
    from yarnit.serving import ServingOptions
    from yarnit.storage import open_workspace

    rng = np.random.default_rng(0)
    fibers = rng.choice(["merino", "acrylic", "silk", "alpaca", "cotton"], size=args.rows).astype(object)
    prices = rng.uniform(0, 50, size=args.rows)  # full-precision float64s, as features are
    json_body = orjson.dumps({"inputs": [
        {"name": "fiber", "shape": [args.rows], "datatype": "BYTES", "data": fibers.tolist()},
        {"name": "price", "shape": [args.rows], "datatype": "FP64", "data": prices.tolist()}]})
    raw_fiber = serialize_byte_tensor(fibers).item()
    raw_price = prices.astype("<f8").tobytes()
    header = orjson.dumps({"inputs": [
        {"name": "fiber", "shape": [args.rows], "datatype": "BYTES", "parameters": {"binary_data_size": len(raw_fiber)}},
        {"name": "price", "shape": [args.rows], "datatype": "FP64", "parameters": {"binary_data_size": len(raw_price)}}],
        "parameters": {"binary_data_output": True}})
    binary_body = header + raw_fiber + raw_price
    binary_headers = {"Inference-Header-Content-Length": str(len(header)), "Content-Type": "application/octet-stream"}

    def triton_inputs(binary: bool) -> list[object]:
        fiber = triton.InferInput("fiber", [args.rows], "BYTES")
        fiber.set_data_from_numpy(fibers, binary_data=binary)
        price = triton.InferInput("price", [args.rows], "FP64")
        price.set_data_from_numpy(prices, binary_data=binary)
        return [fiber, price]

    with tempfile.TemporaryDirectory() as tmp:
        ws = open_workspace(Settings.for_home(Path(tmp) / "home", api_token=TOKEN), SystemClock())
        register_ctr(ws)
        # One big request at a time: no shedding on queue-delay estimates, a deadline that a busy machine meets.
        app = create_app(ws, serving=ServingOptions(log_flush_interval_s=0.05, log_fsync=False, max_queue_delay_ms=None,
                                                    deadline_ms=10_000))
        results: dict[str, object] = {"rows": args.rows, "reps": args.reps, "json_body_bytes": len(json_body),
                                      "binary_body_bytes": len(binary_body)}
        with BackgroundServer(app) as server, httpx.Client(base_url=server.url, timeout=120) as http:
            url = "/v2/models/ctr/infer"
            check_json = http.post(url, content=json_body, headers={"Content-Type": "application/json"})
            check_binary = http.post(url, content=binary_body, headers=binary_headers)
            assert check_json.status_code == 200 and check_binary.status_code == 200, check_binary.text
            length = int(check_binary.headers["inference-header-content-length"])
            from_binary = np.frombuffer(check_binary.content[length:], dtype="<f8")
            assert from_binary.tolist() == check_json.json()["outputs"][0]["data"]  # the same answers
            results["json_answer_bytes"], results["binary_answer_bytes"] = len(check_json.content), \
                len(check_binary.content)
            client = triton.InferenceServerClient(server.url.removeprefix("http://"), network_timeout=120)
            results.update(_interleaved({
                "json_ms": lambda: http.post(url, content=json_body, headers={"Content-Type": "application/json"}),
                "binary_ms": lambda: http.post(url, content=binary_body, headers=binary_headers),
                "tritonclient_json_ms": lambda: client.infer("ctr", triton_inputs(False), outputs=[
                    triton.InferRequestedOutput("probability", binary_data=False)]).as_numpy("probability"),
                "tritonclient_binary_ms": lambda: client.infer("ctr", triton_inputs(True)).as_numpy("probability"),
            }, args.reps))
            client.close()
        from yarnit.api.dataplane import DataPlaneMiddleware

        middleware = DataPlaneMiddleware(None, app.state.serving)  # type: ignore[arg-type]
        results.update(_interleaved({
            "server_parse_json_ms": lambda: middleware._decode("v2", "ctr", json_body),
            "server_parse_binary_ms": lambda: middleware._decode("v2", "ctr", binary_body, len(header)),
        }, args.reps))
        app.state.serving.close()
        ws.close()
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "binary_tensors.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


def _interleaved(fns: dict, reps: int) -> dict[str, float]:  # type: ignore[type-arg]
    """Median ms of each function, the functions taking turns rep by rep (so a busy machine weighs on all alike)."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        fn()
    for _ in range(reps):
        for name, fn in fns.items():
            started = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - started) * 1000)
    return {name: round(statistics.median(t), 2) for name, t in times.items()}


if __name__ == "__main__":
    main()
