"""Shared by the chaos tests (import as ``chaos.support``): the fork server client and the crash invariants."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from yarnit.core import Settings
from yarnit.core.atomic import TEMP_PREFIX
from yarnit.storage import ArtifactGC, open_workspace, unreferenced
from yarnit.storage.schema import dataset_versions, model_versions, run_steps, step_cache

SERVER = Path(__file__).with_name("forkserver.py")
SRC = Path(__file__).resolve().parents[2] / "src"


class ForkServer:
    """The client side of ``forkserver.py``: one request, one answer, in order."""

    def __init__(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("YARNIT_")}
        env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")])
        self.proc = subprocess.Popen([sys.executable, str(SERVER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     env=env, text=True)
        assert self._read() == {"ready": True}

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, f"the fork server died (exit {self.proc.poll()})"
        return json.loads(line)

    def run(self, scenario: str, home: Path, trial: int = 0, **kill: Any) -> dict[str, Any]:
        """Run ``scenario`` once; ``kill`` is ``{}`` (run to the end), ``{"at": k}`` or ``{"after": s}``."""
        request: dict[str, Any] = {"scenario": scenario, "home": str(home), "trial": trial, "kill": "none"}
        if "at" in kill:
            request.update(kill="boundary", at=kill["at"])
        elif "after" in kill:
            request.update(kill="after", seconds=kill["after"])
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        answer = self._read()
        assert "error" not in answer, answer["error"]
        return answer

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


def copy_home(src: Path, dst: Path) -> Path:
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    return dst


def temp_leftovers(home: Path) -> list[Path]:
    """Files a writer leaves only while it writes: atomic-write temps and artifact staging files."""
    found = [p for p in home.rglob(f"{TEMP_PREFIX}*")]
    staging = home / "artifacts" / "staging"
    if staging.is_dir():
        found += list(staging.iterdir())
    return sorted(found)


def _blob_refs(conn: Any) -> set[str]:
    """The artifact ids that committed rows say exist: model and dataset versions, finished step outputs."""
    shas = {r[0] for r in conn.execute(select(model_versions.c.artifact_sha256))}
    shas |= {r[0] for r in conn.execute(select(dataset_versions.c.artifact_sha256))}
    outputs = [r[0] for r in conn.execute(select(run_steps.c.outputs).where(
        run_steps.c.state.in_(["succeeded", "cached"])))]
    outputs += [r[0] for r in conn.execute(select(step_cache.c.outputs))]
    for entries in outputs:
        for entry in (entries or {}).values():
            if entry.get("kind") != "ref":
                shas.add(entry["sha256"])
                if "meta_sha256" in entry:
                    shas.add(entry["meta_sha256"])
    return shas


def check_after_crash(home: Path, *, max_orphans: int) -> dict[str, Any]:
    """Open the workspace after a kill (which runs the recovery pass) and check RELIABILITY.md target 1.

    SQLite's integrity check is ok; every committed row's artifact verifies; the recovery pass left no
    temp or staging file; at most ``max_orphans`` blobs lack a committed row (the ones the killed writer
    stored before its row), and the artifact GC removes them, leaving no file under a final name
    without a row.
    """
    ws = open_workspace(Settings.for_home(home))
    try:
        assert ws.metadata.integrity_check() == "ok"
        with ws.metadata.begin() as conn:
            refs = _blob_refs(conn)
        for sha in refs:
            ws.artifacts.verify(sha)
        leftovers = temp_leftovers(home)
        assert leftovers == [], f"the recovery pass left temp files: {leftovers}"
        orphans = unreferenced(ws)
        assert len(orphans) <= max_orphans, orphans
        gc = ArtifactGC(ws, grace=timedelta(0))
        gc.sweep()  # marks
        gc.sweep()  # removes (grace 0, nothing touched them)
        assert unreferenced(ws) == []
        for sha in refs:
            ws.artifacts.verify(sha)
        return {"orphans": len(orphans), "recovered": [str(p) for p in ws.recovered]}
    finally:
        ws.close()


def sqlite_integrity(path: Path) -> str:
    with sqlite3.connect(path, timeout=30) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
