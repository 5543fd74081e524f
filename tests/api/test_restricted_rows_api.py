"""Dataset rows over HTTP never carry a restricted column raw without a token holding the role (CH4-R3)."""

from __future__ import annotations

import httpx
from fastapi.testclient import TestClient

from yarnit.access import RestrictedReads, Tokens
from yarnit.api import create_app
from yarnit.api.server import BackgroundServer
from yarnit.storage import Workspace

from testsupport import ingest_shoppers

ROWS = "/api/datasets/shoppers/versions/1/rows"


def test_rows_show_compliant_outputs_and_omit_pii_by_default(token_ws: Workspace) -> None:
    ingest_shoppers(token_ws)
    body = TestClient(create_app(token_ws)).get(ROWS).json()
    assert body["columns"] == ["clicked", "event_time", "age_band", "region"]
    assert body["omitted"] == ["email", "user_id"]
    assert [r["age_band"] for r in body["rows"]] == ["<18", "25-35", "35-50", "65+"]
    assert all("age" not in r and "income" not in r and "email" not in r for r in body["rows"])


def test_raw_rows_need_a_token_with_the_role(token_ws: Workspace) -> None:
    from testsupport import TOKEN

    ingest_shoppers(token_ws)
    client = TestClient(create_app(token_ws))
    anonymous = client.get(ROWS, params={"raw": "age", "purpose": "audit"})
    assert anonymous.status_code == 403 and "read-restricted" in anonymous.json()["detail"]
    admin = client.get(ROWS, params={"raw": "age", "purpose": "audit"}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert admin.status_code == 403  # the legacy admin token writes, but does not carry the read role
    asked_raw = client.get(ROWS, params={"column": "age"})
    assert asked_raw.status_code == 403 and "'age' → 'age_band'" in asked_raw.json()["detail"]
    assert RestrictedReads(token_ws).log() == []


def test_raw_rows_with_the_role_over_real_http_are_audited_and_refused_once_revoked(token_ws: Workspace) -> None:
    ingest_shoppers(token_ws)
    tokens = Tokens(token_ws)
    _, secret = tokens.issue("fairness-team", ["read-restricted"], actor="user:lead")
    auth = {"Authorization": f"Bearer {secret}"}
    params = {"column": ["user_id", "age"], "raw": "age", "purpose": "fairness audit"}
    with BackgroundServer(create_app(token_ws, refresh_s=0.0)) as server, \
            httpx.Client(base_url=server.url, timeout=10) as http:
        no_purpose = http.get(ROWS, params={"raw": "age"}, headers=auth)
        assert no_purpose.status_code == 422 and "needs a purpose" in no_purpose.json()["detail"]
        ok = http.get(ROWS, params=params, headers=auth)
        assert ok.status_code == 200, ok.text
        assert [r["age"] for r in ok.json()["rows"]] == [17, 30, 44, 70]
        assert "user_id" not in ok.json()["columns"]  # the subject column stays out even on a raw read
        log = http.get("/api/access/reads", headers=auth)
        assert [(r["actor"], r["via"], r["source_ref"], r["columns"], r["purpose"]) for r in log.json()] == [
            ("token:fairness-team", "http", "shoppers:v1", ["age"], "fairness audit")]
        assert http.get("/api/access/reads").status_code == 401
        tokens.revoke("fairness-team", actor="user:lead")
        assert http.get(ROWS, params=params, headers=auth).status_code == 401
    assert len(RestrictedReads(token_ws).log()) == 1


def test_rows_of_an_unknown_dataset_or_bad_paging_are_client_errors(token_ws: Workspace) -> None:
    client = TestClient(create_app(token_ws))
    assert client.get("/api/datasets/nope/versions/1/rows").status_code == 404
    ingest_shoppers(token_ws)
    assert client.get(ROWS, params={"limit": 0}).status_code == 422
    assert client.get(ROWS, params={"raw": "clicked", "purpose": "x"}).status_code == 422
    unknown = client.get(ROWS, params={"column": ["clicked", "nope"]})
    assert unknown.status_code == 422 and "no column(s) ['nope']" in unknown.json()["detail"]
    assert client.get(ROWS, params={"offset": 10**6}).json()["rows"] == []
