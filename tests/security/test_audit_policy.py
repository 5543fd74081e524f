"""`make audit`'s policy (.ci/audit.py): a fixable vulnerability fails, an unfixed or accepted one is printed,
and an audit that could look nothing up says NOT AUDITED instead of passing as clean."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("ci_audit", ROOT / ".ci" / "audit.py")
audit = importlib.util.module_from_spec(spec)
spec.loader.exec_module(audit)


def _dep(name: str, *vulns: dict) -> dict:
    return {"name": name, "version": "1.0", "vulns": list(vulns)}


def test_a_vulnerability_with_a_fix_fails_and_says_what_to_upgrade() -> None:
    code, lines = audit.verdict({"dependencies": [_dep("a", {"id": "PYSEC-1", "fix_versions": ["1.1"]}),
                                                  _dep("b")]}, {})
    assert code == 1 and any("VULNERABLE a 1.0: PYSEC-1; fixed in 1.1" in line for line in lines)


def test_unfixed_and_accepted_vulnerabilities_are_printed_not_fatal(tmp_path: Path) -> None:
    ignore = tmp_path / "audit-ignore.txt"
    ignore.write_text("# comment\nGHSA-x  not reachable: yarnit never parses untrusted YAML with it\n")
    accepted = audit.ignored_ids(ignore)
    report = {"dependencies": [_dep("a", {"id": "PYSEC-2", "aliases": ["GHSA-x"], "fix_versions": ["2"]}),
                               _dep("b", {"id": "PYSEC-3", "fix_versions": []})]}
    code, lines = audit.verdict(report, accepted)
    assert code == 0
    assert any("accepted" in line and "not reachable" in line for line in lines)
    assert any("unfixed" in line and "PYSEC-3" in line for line in lines)


def test_an_audit_that_looked_nothing_up_is_not_audited_never_clean() -> None:
    skipped = {"dependencies": [{"name": "a", "skip_reason": "Dependency not found on PyPI"}] * 3}
    code, lines = audit.verdict(skipped, {})
    assert code == 0 and "NOT AUDITED" in lines[-1] and "0 of 3" in lines[-1]
    assert not any("audited;" in line for line in lines)


def test_a_tool_that_cannot_run_is_not_audited_and_exits_0(tmp_path: Path, capsys) -> None:
    tool = tmp_path / "v" / "bin" / "pip-audit"
    tool.parent.mkdir(parents=True)
    tool.write_text("#!/bin/sh\necho 'ConnectionError: no route to host' >&2\nexit 1\n")
    tool.chmod(0o755)
    code = audit.main(["--project-python", "python3", "--venv", str(tmp_path / "v")])
    assert code == 0 and "NOT AUDITED" in capsys.readouterr().out


class _PyPI:
    """A real HTTP server on 127.0.0.1 answering PyPI's project endpoint (/pypi/NAME/json) for the given
    projects and 404 for everything else, as the proxies this audit meets do for /pypi/NAME/VERSION/json."""

    def __init__(self, projects: dict[str, dict]) -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the standard library's name
                parts = self.path.strip("/").split("/")
                body = projects.get(parts[1]) if len(parts) == 3 and parts[2] == "json" else None
                payload = json.dumps(body).encode() if body is not None else b"not found"
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *_args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/pypi"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_package_skipped_for_a_404_is_audited_from_the_project_endpoint_when_it_is_the_latest() -> None:
    vuln = {"id": "PYSEC-9", "aliases": ["CVE-1"], "fixed_in": ["2.1"], "withdrawn": None}
    pypi = _PyPI({"a": {"info": {"version": "2.0"}, "vulnerabilities": [vuln]},
                  "b": {"info": {"version": "3.0"}, "vulnerabilities": []},
                  "c": {"info": {"version": "5.0"}, "vulnerabilities": [vuln]}})
    try:
        report = {"dependencies": [{"name": n, "skip_reason": "Dependency not found on PyPI"} for n in "abcd"]}
        report = audit.look_up_skipped(report, {"a": "2.0", "b": "3.0", "c": "4.0", "d": "1.0"}, pypi.url)
    finally:
        pypi.close()
    code, lines = audit.verdict(report, {})
    assert code == 1 and any("VULNERABLE a 2.0: PYSEC-9, CVE-1; fixed in 2.1" in line for line in lines)
    # c is not the latest release: the latest's vulnerabilities say nothing about 4.0, so it is not audited
    assert any("c: " in line and "not PyPI's latest release (5.0)" in line for line in lines)
    assert any("d: " in line and "did not answer usefully" in line for line in lines)
    assert "audit: 2 packages audited; 1 fixable vulnerabilities" in lines


def test_a_withdrawn_vulnerability_of_the_latest_release_is_not_reported() -> None:
    pypi = _PyPI({"a": {"info": {"version": "1.0"}, "vulnerabilities": [{"id": "X", "fixed_in": ["2"],
                                                                          "withdrawn": "2026-01-01"}]}})
    try:
        report = audit.look_up_skipped({"dependencies": [{"name": "a", "skip_reason": "404"}]}, {"a": "1.0"},
                                       pypi.url)
    finally:
        pypi.close()
    assert audit.verdict(report, {}) == (0, ["audit: 1 packages audited; 0 fixable vulnerabilities"])
