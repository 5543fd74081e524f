"""``release_memory`` is called per training part on Dask workers (issue 20): it must not start a process
each time. ``ctypes.util.find_library`` runs ``ldconfig -p`` in a forked child on every call; the bench's
process sampler saw each fork of a 1.2 GB worker as one more 1.2 GB process."""

from __future__ import annotations

import sys
from typing import Any

from yarnit.training.chunks import release_memory

_started: list[Any] = []
_watching = False


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if _watching and event in ("subprocess.Popen", "os.posix_spawn", "os.fork", "os.exec"):
        _started.append((event, args[:2]))


sys.addaudithook(_hook)  # audit hooks cannot be removed: this one records only while _watching


def test_release_memory_looks_the_c_library_up_once_not_with_a_process_each_call() -> None:
    global _watching
    release_memory()  # the first call may look the library up
    _started.clear()
    _watching = True
    try:
        for _ in range(3):
            release_memory()
    finally:
        _watching = False
    assert _started == [], _started
