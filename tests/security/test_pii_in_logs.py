"""Personal data never in logs (issue 22): raw subject ids and PII columns sent to the HTTP data plane — in good
requests, refused ones and ones the model cannot score — appear nowhere in the prediction log, the server's own
log output, the monitoring summaries or any other file of the workspace.

The PII fields are the ones the world declares (``user_id`` is its data subject; ``email``, ``session_id`` …
are in the prediction log's default policy) plus one a model version declares in its signature (``loyalty_card``).
Two runs: with an HMAC key (fields pseudonymised) and without (fields dropped).
"""

from __future__ import annotations

import http.client
import json
import logging
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from testsupport import TOKEN

from yarnit.api import create_app
from yarnit.api.server import BackgroundServer
from yarnit.core import Settings, SimulatedClock
from yarnit.monitoring import traffic
from yarnit.registry import ArtifactFormat, ModelRegistry, dump_sklearn
from yarnit.serving import ServingOptions
from yarnit.storage import open_workspace
from yarnit.world.writer import SUBJECT_KEY

SECRET = uuid.uuid4().hex[:12]
PII = {"user_id": f"u-{SECRET}-1", "email": f"jo.{SECRET}@example.org", "session_id": f"s-{SECRET}",
       "ip": "203.0.113.77", "loyalty_card": f"LC{SECRET}"}


def _register(ws) -> None:
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    rows = [{"fiber": "merino", "price": 12.0}, {"fiber": "acrylic", "price": 3.0}] * 10
    model = Pipeline([("vec", DictVectorizer()), ("lr", LogisticRegression())]).fit(rows, [1, 0] * 10)
    registry = ModelRegistry(ws)
    registry.register("ctr", dump_sklearn(model), ArtifactFormat.SKOPS,
                      signature={"inputs": {"fiber": "string", "price": "double"}, "pii": ["loyalty_card"]})
    registry.promote("ctr", 1)


def _post(port: int, path: str, body: dict) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json",
                                                      "Authorization": f"Bearer {TOKEN}"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def leaks(texts: dict[str, bytes]) -> list[str]:
    needles = [v.encode() for v in PII.values()] + [SECRET.encode()]
    return sorted({f"{where}: {needle.decode()}" for where, data in texts.items() for needle in needles
                   if needle in data})


def _workspace_files(home: Path) -> dict[str, bytes]:
    """Every file of the workspace except the metadata database (requests never reach it) and artifacts."""
    return {str(p.relative_to(home)): p.read_bytes() for p in home.rglob("*")
            if p.is_file() and not p.is_symlink() and "artifacts" not in p.parts and not p.name.startswith("yarnit.db")}


@pytest.mark.parametrize("hmac_key", [None, "k" * 40], ids=["dropped", "pseudonymised"])
def test_raw_personal_data_sent_to_serving_never_reaches_a_log_or_a_summary(
        tmp_path: Path, clock: SimulatedClock, caplog: pytest.LogCaptureFixture, hmac_key: str | None) -> None:
    ws = open_workspace(Settings.for_home(tmp_path / "home", api_token=TOKEN, hmac_key=hmac_key), clock)
    _register(ws)
    caplog.set_level(logging.DEBUG)
    app = create_app(ws, refresh_s=0.0, serving=ServingOptions(log_flush_interval_s=0.01, log_fsync=False))
    statuses = []
    try:
        with BackgroundServer(app) as server:
            good = {**PII, "fiber": "merino", "price": 9.5}
            for _ in range(20):
                statuses.append(_post(server.port, "/v1/models/ctr:predict", {"instances": [good, good]})[0])
            v2 = {"inputs": [{"name": k, "shape": [1], "datatype": "BYTES", "data": [v]} for k, v in PII.items()]
                  + [{"name": "fiber", "shape": [1], "datatype": "BYTES", "data": ["merino"]},
                     {"name": "price", "shape": [1], "datatype": "FP64", "data": [9.5]}]}
            statuses.append(_post(server.port, "/v2/models/ctr/infer", v2)[0])
            # refused: a bad type, an unknown model, a body that is not JSON — the PII must not come back in the
            # error either (it is the client's own data, but logs and answers are read by others)
            bad_status, bad_body = _post(server.port, "/v1/models/ctr:predict",
                                         {"instances": [{**PII, "fiber": "merino", "price": "high"}]})
            statuses.append(bad_status)
            statuses.append(_post(server.port, "/v1/models/nosuch:predict", {"instances": [good]})[0])
            statuses.append(_post(server.port, "/api/models/ctr/aliases/production", {"version": 9,
                                                                                     "reason": PII["email"]})[0])
        app.state.serving.log.flush()
    finally:
        app.state.serving.close()
    assert statuses.count(200) == 21 and 422 in statuses and 404 in statuses, statuses
    clock.advance(timedelta(hours=2))
    report = traffic.update(ws, clock=clock)
    print(report)
    traffic.drift_report(ws, "ctr", window="1d")
    ws.close()
    files = _workspace_files(tmp_path / "home")
    assert any("prediction_log" in name for name in files) and any("monitoring" in name for name in files)
    found = leaks(files | {"server log": caplog.text.encode(), "the 422's answer": bad_body})
    assert not found, "raw personal data found:\n" + "\n".join(found)


def test_the_scan_finds_what_it_looks_for(tmp_path: Path) -> None:
    planted = tmp_path / "planted.log"
    planted.write_text(f"request from {PII['email']}\n")
    assert leaks({"planted": planted.read_bytes()}) == sorted([f"planted: {PII['email']}", f"planted: {SECRET}"])
    assert SUBJECT_KEY == b"yarnit.subject"  # the world's subject column is user_id, which PII covers
