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
import os
import re
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


# --- the operate demo (opt-in: minutes of simulation; `make security-demo`) ------------------------------------
DEMO = os.environ.get("YARNIT_SECURITY_DEMO", "")
SCANNED = ("prediction_log", "monitoring", "incidents", "continuous")  # logs, summaries, alerts, incidents, loop


def scan_demo_month(month: Path, extra: dict[str, bytes]) -> tuple[int, list[str]]:
    """(bytes scanned, leaks): raw subject ids (the world's ``user_id``) and session ids in the month's logs."""
    import pyarrow.dataset as pads

    def column(table: str, name: str) -> set[str]:
        return set(pads.dataset(month / "world" / table, format="parquet", partitioning="hive")
                   .to_table(columns=[name]).column(name).to_pylist())

    users, sessions = column("users", "user_id"), column("sessions", "session_id")
    assert users and sessions
    files = {str(p.relative_to(month)): p.read_bytes() for sub in SCANNED for p in (month / "home" / sub).rglob("*")
             if p.is_file()}
    files |= extra
    token = re.compile(rb"[us][0-9-]{7,}")  # u0000342, s20260108-00000010
    found = []
    for where, data in files.items():
        hits = {t.decode() for t in token.findall(data)} & (users | sessions)
        found += [f"{where}: {hit}" for hit in sorted(hits)[:3]]
    return sum(len(d) for d in files.values()), found


@pytest.mark.timeout(3600)  # two simulated months: 1,421 s on the loaded 2-core machine
@pytest.mark.skipif(not DEMO, reason="minutes of simulation: run with `make security-demo` "
                                     "(YARNIT_SECURITY_DEMO=1, or =DIR to scan a finished demo's --out DIR)")
def test_the_operate_demo_logs_no_subject_id_and_no_pii_column(tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    from yarnit.demo.operate import OperateConfig, run_operate

    caplog.set_level(logging.INFO)
    if DEMO == "1":
        out = tmp_path / "demo"
        config = OperateConfig(days=10, sessions_per_day=50, n_users=300, faults=(), pipeline={
            "bootstrap_resamples": 10, "golden_rows": 200, "slices": ["device"], "fairness_groups": []})
        run_operate(out, config, parallel=False)  # one process: its log output is captured here
    else:
        out = Path(DEMO)
    months = [p for p in out.iterdir() if (p / "world" / "users").is_dir()]
    assert months, f"no demo month under {out}"
    reports = {p.name: p.read_bytes() for p in out.glob("report*") if p.is_file()}
    for month in months:
        scanned, found = scan_demo_month(month, reports | {"log output": caplog.text.encode()})
        assert scanned > 100_000, scanned  # the month served and monitored traffic: there was something to scan
        assert not found, f"raw subject or session ids in {month.name}:\n" + "\n".join(found[:40])


def test_the_demo_scan_finds_a_planted_subject_id(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    month = tmp_path / "faulted"
    for table, name, value in (("users", "user_id", "u0000342"), ("sessions", "session_id", "s20260108-00000010")):
        (month / "world" / table / "day=2026-01-08").mkdir(parents=True)
        pq.write_table(pa.table({name: [value]}), month / "world" / table / "day=2026-01-08" / "part-0.parquet")
    (month / "home" / "monitoring").mkdir(parents=True)
    (month / "home" / "monitoring" / "alerts.json").write_text('{"evidence": "user u0000342 in s20260108-00000010"}')
    scanned, found = scan_demo_month(month, {"log output": b"hmac-sha256:u0000342ab"})
    assert scanned > 0 and found == ["home/monitoring/alerts.json: s20260108-00000010",
                                     "home/monitoring/alerts.json: u0000342", "log output: u0000342"]
