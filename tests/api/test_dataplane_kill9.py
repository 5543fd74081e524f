"""kill -9 of a real server process loses no prediction that the log had acknowledged as flushed."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from yarnit.api.server import free_port
from yarnit.serving import scan_prediction_log
from yarnit.storage import Workspace

SERVER = """
import sys, uvicorn
from yarnit.core import Settings
from yarnit.storage import open_workspace
from yarnit.api import create_app
from yarnit.api.dataplane import asgi_entry
from yarnit.api.fastlane import DataPlaneProtocol
app = create_app(open_workspace(Settings.for_home(sys.argv[1])))
uvicorn.run(asgi_entry(app), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", http=DataPlaneProtocol)
"""


def _acked(url: str) -> int:
    text = httpx.get(f"{url}/metrics", timeout=60).text
    match = re.search(r"^yarnit_prediction_log_flushed_seq (\S+)$", text, re.M)
    return int(float(match.group(1))) if match else 0


def test_kill_9_loses_nothing_the_log_acknowledged(token_ws: Workspace) -> None:
    home = token_ws.home
    token_ws.close()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(home), str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=os.environ | {"YARNIT_HOME": str(home)})
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}/v2/health/live", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.1)
        ids: list[str] = []
        with httpx.Client(base_url=url, timeout=120) as http:  # the first request loads the model (cold)
            for i in range(150):
                body = {"instances": [{"fiber": "merino", "price": float(i)}]} if i % 10 else {"instances": []}
                ids.append(http.post("/v1/models/ctr:predict", json=body).json().get("request_id", ""))
        while _acked(url) < 150:
            assert time.monotonic() < deadline + 30, "the log never acknowledged the first requests"
            time.sleep(0.02)
        stop = threading.Event()

        def more() -> None:  # requests still arriving when the process dies
            with httpx.Client(base_url=url, timeout=30) as http:
                while not stop.is_set():
                    try:
                        http.post("/v1/models/ctr:predict", json={"instances": [{"fiber": "silk"}]})
                    except httpx.HTTPError:
                        return

        thread = threading.Thread(target=more)
        thread.start()
        time.sleep(0.3)
        acked = _acked(url)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        stop.set()
        thread.join(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    scan = scan_prediction_log(Path(home) / "prediction_log")
    seqs = {r["seq"] for r in scan.records}
    assert set(range(1, acked + 1)) <= seqs, f"lost acknowledged records: {sorted(set(range(1, acked + 1)) - seqs)[:10]}"
    assert scan.corrupt_lines == 0 and scan.torn_tails <= 1
    logged = {r["request_id"]: r["status"] for r in scan.records}
    assert all(i in logged for i in ids)  # every one of the first 150, including the 15 rejected ones
    assert sorted(set(logged[i] for i in ids)) == [200, 422]
