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
