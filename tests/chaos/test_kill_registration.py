"""kill -9 at random points of model registration (RELIABILITY.md target 1).

A child process registers versions in a loop; the parent SIGKILLs it at a
random moment, 20 times. After every kill the workspace must open cleanly:
SQLite's integrity check says ok, every registered version's artifact
verifies, the recovery pass leaves no temp or staging files, at most one blob
(the one being registered) lacks its row and the artifact GC removes it
(``chaos.support.check_after_crash``). Each kill costs an interpreter start, so
this runs under ``make chaos``; test_kill_boundaries.py kills registration at
every fsync/rename/link boundary in ``make test``.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from chaos.support import check_after_crash
from testsupport import register_ctr

from yarnit.core import Settings
from yarnit.registry import ModelRegistry
from yarnit.storage import open_workspace

CHILD = r"""
import sys
from pathlib import Path
from yarnit.core import Settings
from yarnit.registry import ArtifactFormat, ModelRegistry
from yarnit.storage import open_workspace
artifacts = [Path(p).read_bytes() for p in sys.argv[2:]]
ws = open_workspace(Settings.for_home(sys.argv[1]))
registry = ModelRegistry(ws)
registry.load(registry.versions("ctr")[0])  # warm the imports, so kills land inside registrations
print("ready", flush=True)
i = 0
while True:
    v = registry.register("ctr", artifacts[i % len(artifacts)] + b"", ArtifactFormat.SKOPS)
    registry.promote("ctr", v.version)
    i += 1
"""


@pytest.mark.slow
@pytest.mark.chaos
@pytest.mark.timeout(1800)  # twenty interpreter starts on a loaded machine
def test_twenty_random_kills_leave_a_workspace_that_opens_cleanly(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    seed_ws = open_workspace(Settings.for_home(home))
    register_ctr(seed_ws, versions=3)
    paths = []
    for v in ModelRegistry(seed_ws).versions("ctr"):
        path = tmp_path / f"a{v.version}.skops"
        path.write_bytes(seed_ws.artifacts.get_bytes(v.artifact_sha256))
        paths.append(str(path))
    seed_ws.close()
    rng = random.Random(0)
    env = {k: v for k, v in os.environ.items() if not k.startswith("YARNIT_")}
    for _ in range(20):
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(home), *paths], stdout=subprocess.PIPE,
                                 env=env)
        assert child.stdout is not None and child.stdout.readline() == b"ready\n"
        time.sleep(rng.uniform(0.0, 0.4))
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        check_after_crash(home, max_orphans=1)
        ws = open_workspace(Settings.for_home(home))
        assert ws.metadata.integrity_check() == "ok"
        registry = ModelRegistry(ws)
        versions = registry.versions("ctr")
        assert [v.version for v in versions] == list(range(1, len(versions) + 1))
        for version in versions:
            ws.artifacts.verify(version.artifact_sha256)
        assert registry.resolve("ctr", "production").version <= versions[-1].version
        leftovers = [p for p in (home / "artifacts").rglob("*") if p.name.startswith((".tmp-", "incoming-"))]
        assert leftovers == []
        ws.close()
    assert len(versions) > 3, "the child never got to register: the kills proved nothing"
