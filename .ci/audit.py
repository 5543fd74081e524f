"""`make audit`: pip-audit over the packages installed in the project's venv (what `make install` resolved).

Policy (what fails and what does not):
- a known vulnerability **with a fixed version** fails (exit 1): the fix is an upgrade away, and landing code on a
  known-vulnerable version is what the audit exists to stop. To accept one knowingly, put its id and the reason
  in .ci/audit-ignore.txt (one ``ID  reason`` a line); it is then printed, not fatal.
- a known vulnerability **without** a fixed version is printed, not fatal: there is nothing to upgrade to.
- the audit **cannot run** (no network, PyPI's JSON API unreachable, pip-audit not installable) or can look up no
  package: printed loudly as "NOT AUDITED", exit 0. A network outage must not block CI, and it must not be
  mistaken for a clean audit either.

pip-audit runs from its own venv (default .venv-audit), so its own dependencies are not audited as the project's.
Usage: python3 .ci/audit.py --project-python .venv/bin/python [--venv .venv-audit] [--version 2.10.1]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
IGNORE_FILE = HERE / "audit-ignore.txt"


def ignored_ids(path: Path = IGNORE_FILE) -> dict[str, str]:
    """Vulnerability ids accepted on purpose → why."""
    if not path.is_file():
        return {}
    accepted = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            vuln_id, _, reason = line.partition(" ")
            accepted[vuln_id] = reason.strip() or "(no reason given)"
    return accepted


def verdict(report: dict, accepted: dict[str, str]) -> tuple[int, list[str]]:
    """(exit code, lines to print) for a pip-audit JSON report."""
    deps = report.get("dependencies", [])
    skipped = [d for d in deps if "skip_reason" in d]
    audited = len(deps) - len(skipped)
    lines, fatal = [], 0
    for dep in deps:
        for vuln in dep.get("vulns", []):
            ids = [vuln.get("id", "?"), *vuln.get("aliases", [])]
            fixes = vuln.get("fix_versions", [])
            where = f"{dep['name']} {dep.get('version', '?')}: {', '.join(ids)}"
            if any(i in accepted for i in ids):
                reason = next(accepted[i] for i in ids if i in accepted)
                lines.append(f"audit: accepted  {where} ({reason})")
            elif fixes:
                fatal += 1
                lines.append(f"audit: VULNERABLE {where}; fixed in {', '.join(fixes)}: upgrade it")
            else:
                lines.append(f"audit: unfixed   {where}; no fixed version yet (not fatal)")
    if audited == 0:
        reason = skipped[0]["skip_reason"] if skipped else "pip-audit listed no package"
        lines.append(f"audit: NOT AUDITED: the vulnerability service answered for 0 of {len(deps)} packages "
                     f"(first reason: {reason}). Not a failure, and not a clean audit.")
        return 0, lines
    if skipped:
        lines.append(f"audit: {len(skipped)} of {len(deps)} packages could not be looked up "
                     f"({', '.join(d['name'] for d in skipped[:10])}{' …' if len(skipped) > 10 else ''})")
    lines.append(f"audit: {audited} packages audited; {fatal} fixable vulnerabilities")
    return (1 if fatal else 0), lines


def _not_audited(why: str) -> int:
    print(f"audit: NOT AUDITED: {why}. Not a failure, and not a clean audit.", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project-python", required=True)
    parser.add_argument("--venv", default=".venv-audit")
    parser.add_argument("--version", default="2.10.1")
    args = parser.parse_args(argv)
    venv = Path(args.venv)
    tool = venv / "bin" / "pip-audit"
    try:
        if not tool.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
            subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                            f"pip-audit=={args.version}"], check=True, timeout=600)
        frozen = subprocess.run([args.project_python, "-m", "pip", "freeze", "--exclude-editable"], check=True,
                                capture_output=True, text=True, timeout=300).stdout
    except (subprocess.SubprocessError, OSError) as exc:
        return _not_audited(f"could not install pip-audit {args.version} or list the project's packages ({exc})")
    pins = [line for line in frozen.splitlines() if "==" in line and not line.startswith("#")]
    with tempfile.TemporaryDirectory() as tmp:
        requirements, out = Path(tmp) / "requirements.txt", Path(tmp) / "audit.json"
        requirements.write_text("\n".join(pins) + "\n", encoding="utf-8")
        try:
            run = subprocess.run([str(tool), "-r", str(requirements), "--no-deps", "--disable-pip",
                                  "--progress-spinner", "off", "-f", "json", "-o", str(out)],
                                 capture_output=True, text=True, timeout=300, check=False)  # exit 1 = found some
        except (subprocess.SubprocessError, OSError) as exc:
            return _not_audited(f"pip-audit did not finish ({exc})")
        try:
            report = json.loads(out.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            tail = (run.stderr.strip().splitlines() or ["(no output)"])[-1]
            return _not_audited(f"pip-audit exited {run.returncode} without a report: {tail[:300]}")
    code, lines = verdict(report, ignored_ids())
    print("\n".join(lines), flush=True)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
