"""`make audit`: pip-audit over the packages installed in the project's venv (what `make install` resolved).

Policy (what fails and what does not):
- a known vulnerability **with a fixed version** fails (exit 1): the fix is an upgrade away, and landing code on a
  known-vulnerable version is what the audit exists to stop. To accept one knowingly, put its id and the reason
  in .ci/audit-ignore.txt (one ``ID  reason`` a line); it is then printed, not fatal.
- a known vulnerability **without** a fixed version is printed, not fatal: there is nothing to upgrade to.
- a package pip-audit could not look up (its per-release endpoint ``/pypi/NAME/VERSION/json`` answered 404: some
  PyPI mirrors and proxies, this project's CI machine among them, serve only the project endpoint) is looked up
  again on the project endpoint ``/pypi/NAME/json``. Its ``vulnerabilities`` are those of the *latest* release, so
  they count only when the installed version is that release; any other version stays "could not be looked up".
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
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
IGNORE_FILE = HERE / "audit-ignore.txt"
PYPI = "https://pypi.org/pypi"


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
        lines.extend(f"audit:   {d['name']}: {d['skip_reason'][:300]}" for d in skipped[:10])
    lines.append(f"audit: {audited} packages audited; {fatal} fixable vulnerabilities")
    return (1 if fatal else 0), lines


def _latest_release_vulns(name: str, version: str, pypi: str) -> tuple[list[dict] | None, str]:
    """(vulnerabilities in pip-audit's shape, "") when ``version`` is PyPI's latest release of ``name``; else
    (None, why it could not be looked up). Reads the project endpoint, whose ``vulnerabilities`` are the latest's."""
    url = f"{pypi.rstrip('/')}/{urllib.parse.quote(name)}/json"
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:  # noqa: S310 - an https/http URL we built
            project = json.loads(answer.read(20_000_000))
        latest = str(project["info"]["version"])
    except (urllib.error.URLError, OSError, ValueError, KeyError, TypeError) as exc:
        return None, f"the project endpoint {url} did not answer usefully ({str(exc)[:120]})"
    if latest != version:
        return None, (f"installed {version} is not PyPI's latest release ({latest}), and only the latest's "
                      "vulnerabilities can be read here")
    vulns = [{"id": v.get("id", "?"), "aliases": list(v.get("aliases") or []),
              "fix_versions": [str(f) for f in (v.get("fixed_in") or [])], "source": "pypi project endpoint"}
             for v in project.get("vulnerabilities") or [] if not v.get("withdrawn")]
    return vulns, ""


def _canonical(name: str) -> str:
    return "-".join(name.lower().replace("_", "-").replace(".", "-").split("-"))


def look_up_skipped(report: dict, pins: dict[str, str], pypi: str = PYPI) -> dict:
    """``report`` with each dependency pip-audit skipped looked up on the project endpoint (see the module's
    docstring); one it still cannot look up keeps a ``skip_reason`` that says why. ``pins``: name → installed
    version (pip-audit's JSON gives a skipped dependency no version)."""
    versions = {_canonical(name): version for name, version in pins.items()}
    deps = report.get("dependencies", [])
    for dep in deps:
        if "skip_reason" in dep and not dep.get("version"):
            dep["version"] = versions.get(_canonical(dep["name"]), "")
    skipped = [d for d in deps if "skip_reason" in d and d.get("version")]
    with ThreadPoolExecutor(8) as pool:
        found = list(pool.map(lambda d: _latest_release_vulns(d["name"], str(d["version"]), pypi), skipped))
    for dep, (vulns, why) in zip(skipped, found, strict=True):
        if vulns is None:
            dep["skip_reason"] = f"{dep['skip_reason']}; {why}"
        else:
            del dep["skip_reason"]
            dep["vulns"] = vulns
    return report


def _not_audited(why: str) -> int:
    print(f"audit: NOT AUDITED: {why}. Not a failure, and not a clean audit.", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project-python", required=True)
    parser.add_argument("--venv", default=".venv-audit")
    parser.add_argument("--version", default="2.10.1")
    parser.add_argument("--pypi", default=PYPI, help="PyPI's JSON API root, for the project-endpoint lookup")
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
    installed = dict(pin.split("==", 1) for pin in pins)
    code, lines = verdict(look_up_skipped(report, installed, args.pypi), ignored_ids())
    print("\n".join(lines), flush=True)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
