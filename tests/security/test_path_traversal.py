"""Path traversal (RELIABILITY.md target 21) against every path parameter of every HTTP route, the names the
CLI takes, and the loaders that turn names into files: 100 % refused with a 4xx or a clear CLI error, and the
text of a canary file planted outside the workspace never comes back.

The HTTP requests go over a real socket with ``http.client``, which sends the target exactly as written (httpx
and browsers remove ``../`` segments before sending, which would hide what a hostile client can send).
"""

from __future__ import annotations

import http.client
import json
import re
from pathlib import Path
from urllib.parse import quote

import pytest
from testsupport import TOKEN

from yarnit.api import create_app
from yarnit.api.app import iter_api_routes
from yarnit.api.server import BackgroundServer
from yarnit.storage import Workspace


def payloads(secret: Path) -> list[str]:
    """Raw path-segment payloads (already as they go on the wire), aimed at /etc/passwd and at the canary."""
    up = "../" * 12
    target = str(secret).lstrip("/")
    return [
        "..", ".", "...", "..;", "%2e%2e", "%2e",
        f"{up}etc/passwd", f"{up}{target}",
        quote(f"{up}{target}", safe=""),  # ..%2F..%2F…
        quote(f"{up}{target}", safe="").replace(".", "%2e"),  # %2e%2e%2f
        quote(quote(f"{up}{target}", safe=""), safe=""),  # double-encoded: %252e%252e%252f
        "..%5c..%5c..%5cetc%5cpasswd", "..\\..\\..\\etc\\passwd",
        "%2fetc%2fpasswd", quote(str(secret), safe=""), "/" + target,
        "file:%2f%2f%2fetc%2fpasswd", "file://" + quote(str(secret), safe=""),
        "%00..%2f..%2fetc%2fpasswd", "ctr%00.json", "..%c0%af..%c0%afetc%c0%afpasswd",
    ]


# Valid bodies for the writes whose path parameter has no pattern of its own (incident ids, label task names):
# with a valid body, a refusal can only come from the name itself.
BODIES: dict[tuple[str, str], dict] = {
    ("POST", "/api/incidents/{incident_id}/notes"): {"text": "x"},
    ("POST", "/api/incidents/{incident_id}/resolve"): {"reason": "x"},
    ("POST", "/api/labels/tasks/{task}/answers"): {"rater": "r", "answers": [{"item_key": "k", "label": "a"}]},
    ("POST", "/api/labels/tasks/{task}/guideline"): {"guideline": "g"},
    ("POST", "/api/labels/tasks/{task}/review"): {"item_key": "k", "label": "a"},
    ("POST", "/api/labels/tasks/{task}/publish"): {"dataset": "d"},
    ("POST", "/api/models/{name}/actions/{action}"): {"reason": "x"},
    ("POST", "/api/datasets/{name}/actions/remove-data"): {"start": "2026-01-01", "end": "2026-01-02",
                                                           "reason": "x"},
    ("POST", "/api/rollouts/{model}"): {"version": 2},
    ("POST", "/api/rollouts/{model}/abort"): {"reason": "x"},
    ("POST", "/api/models/{name}/aliases/{alias}"): {"version": 2},
    ("PUT", "/api/models/{name}/traffic"): {"canary_percent": 5},
    ("POST", "/v1/models/{name}:predict"): {"instances": [{"fiber": "merino", "price": 1.0}]},
    ("POST", "/v2/models/{name}/infer"): {"inputs": [{"name": "price", "shape": [1], "datatype": "FP64",
                                                      "data": [1.0]}]},
}
LEGIT = {"name": "ctr", "model": "ctr", "alias": "canary", "action": "roll-back", "version": "1", "kind": "dataset",
         "node_id": "ctr", "incident_id": "inc_1", "task": "t", "run_id": "run_" + "0" * 26,
         "evaluation_id": "ev_" + "0" * 26}


class _Wire:
    """One keep-alive connection that sends request targets byte for byte (reconnects when the server closes)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def __call__(self, method: str, target: str, body: dict | None) -> tuple[int, bytes]:
        data = b"" if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Length": str(len(data))}
        if body is not None:
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            try:
                self.conn.putrequest(method, target, skip_accept_encoding=True)
                for key, value in headers.items():
                    self.conn.putheader(key, value)
                self.conn.endheaders(data)
                response = self.conn.getresponse()
                content = response.read()
                if response.will_close:
                    self.close()
                return response.status, content
            except (http.client.HTTPException, ConnectionError):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.conn.close()
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)


def _plant_symlinks(ws: Workspace, secret: Path) -> None:
    """Files that routes read by name, planted as symlinks to the canary under the name ``leak``."""
    from yarnit.continuous.loop import state_path
    from yarnit.continuous.rollout import rollouts_dir

    for link in (rollouts_dir(ws.home) / "leak.json", state_path(ws.home, "leak")):
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(secret)


def test_every_path_parameter_of_every_route_refuses_traversal_and_never_serves_the_canary(
        token_ws: Workspace, canary_secret: tuple[Path, str]) -> None:
    secret, canary = canary_secret
    _plant_symlinks(token_ws, secret)
    app = create_app(token_ws)
    routes = [(m, r.path) for r in iter_api_routes(app.routes) for m in sorted(r.methods) if "{" in r.path]
    assert len(routes) >= 40, f"the inventory found only {len(routes)} routes with a path parameter"
    refused = tried = legit_ok = 0
    problems = []
    with BackgroundServer(app) as server:
        send = _Wire(server.port)
        for method, template in routes:
            params = re.findall(r"\{([^}:]+)(?::[^}]*)?\}", template)
            body = BODIES.get((method, template), {}) if method in ("POST", "PUT") else None
            legit = re.sub(r"\{([^}:]+)\}", lambda m: LEGIT.get(m.group(1), "x"), template)
            if method == "GET" and send(method, legit, None)[0] == 200:
                legit_ok += 1
            for param in params:
                for payload in payloads(secret):
                    target = re.sub(r"\{([^}:]+)\}", lambda m, p=param, v=payload: v if m.group(1) == p
                                    else LEGIT.get(m.group(1), "x"), template)
                    status, content = send(method, target, body)
                    tried += 1
                    if canary.encode() in content or b"root:x:0:0" in content:
                        problems.append(f"{method} {target}: served bytes from outside the workspace")
                    elif not 400 <= status < 500:
                        problems.append(f"{method} {target}: {status} {content[:200]!r}")
                    else:
                        refused += 1
                # ``leak`` is a valid name whose files in the workspace are symlinks to the canary: it may be
                # answered (an empty rollout, a 404 …), but never with the canary's bytes, and never with a 5xx
                target = re.sub(r"\{([^}:]+)\}", lambda m, p=param: "leak" if m.group(1) == p
                                else LEGIT.get(m.group(1), "x"), template)
                status, content = send(method, target, body)
                if canary.encode() in content or status >= 500:
                    problems.append(f"{method} {target} (symlinked to the canary): {status} {content[:200]!r}")
    assert legit_ok >= 5, "legitimate names were not served either: the refusals below would prove nothing"
    assert not problems, f"{len(problems)} of {tried} requests were not refused:\n" + "\n".join(problems[:40])
    assert refused == tried


CLI_NAMES = [
    ["models", "show", "{p}"], ["models", "history", "{p}"], ["rollout", "status", "{p}"],
    ["data", "show", "{p}"], ["features", "show", "{p}"], ["incidents", "show", "{p}"],
    ["loop", "status", "--model", "{p}"], ["lineage", "show", "dataset:{p}"],
]


def test_cli_names_refuse_traversal_with_a_clear_error(tmp_path: Path, canary_secret: tuple[Path, str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from yarnit.cli.app import app

    secret, canary = canary_secret
    monkeypatch.setenv("YARNIT_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    assert runner.invoke(app, ["init"]).exit_code == 0
    for args in CLI_NAMES:
        for payload in ["../" * 8 + str(secret).lstrip("/"), "file://" + str(secret), "..\\..\\etc\\passwd", ".."]:
            result = runner.invoke(app, [a.replace("{p}", payload) for a in args])
            output = result.output
            assert result.exit_code not in (0, None), (args, payload, output)
            assert canary not in output and "root:x:0:0" not in output, (args, payload)
            assert result.exception is None or isinstance(result.exception, SystemExit), \
                (args, payload, output, result.exception)  # a clear error, not a crash
            assert output.strip(), (args, payload)  # it says what was wrong


@pytest.mark.parametrize("payload", ["../x", "../../etc/passwd", "/etc/passwd", "a/../../b", "..", ""])
def test_a_backup_naming_files_outside_the_workspace_is_refused(payload: str) -> None:
    from yarnit.core import PathEscape
    from yarnit.storage.restore import _safe_relative

    with pytest.raises(PathEscape, match="outside the workspace"):
        _safe_relative(payload)


@pytest.mark.parametrize("payload", ["../" * 6 + "etc/passwd", "/etc/passwd", "%2e%2e%2f", "a" * 63 + "/",
                                     "file:///etc/passwd", "..\\..\\x"])
def test_backup_blob_and_manifest_names_cannot_leave_the_repository(payload: str, tmp_path: Path) -> None:
    from yarnit.core import InvalidInput, PathEscape
    from yarnit.storage.backup import BackupRepository

    repo = BackupRepository(tmp_path / "repo")
    with pytest.raises(PathEscape):
        repo.blob_path(payload)
    with pytest.raises(InvalidInput):
        repo.manifest_path(payload)
