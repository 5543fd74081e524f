"""The child process of the validity check: load one model version into the serving runtime and probe it.

:class:`~yarnit.evaluation.validity.ValidityProbe` forks it from a fork server
that imported this module and :data:`PRELOAD` once (:func:`child_main` gets the
JSON request and answers JSON on a pipe); ``python -m
yarnit.evaluation._validity_worker`` does the same from stdin to stdout. It
runs in its own process so that a model that crashes, hangs or eats memory
while loading cannot take the caller down, and so that its in-memory size is
measured from the child's own baseline (book CH5-R2: load it into a copy of the
production environment).
"""

from __future__ import annotations

import gc
import json
import math
import sys
import time
from typing import Any

# Imported before the memory baseline so that the model's size is not mixed up with library code. skl2onnx
# (only needed to compile tree ensembles) is left out: it is slow to import, and counting it for a tree
# model errs on the safe side of the memory budget.
#: yarnit's own modules a child uses, imported by the fork server too (they import no model and start no thread).
RUNTIME = ("yarnit.core.clock", "yarnit.core.settings", "yarnit.registry", "yarnit.serving.runtime", "yarnit.storage")
PRELOAD = {
    "skops": ("skops.io", "sklearn.pipeline", "sklearn.linear_model", "sklearn.feature_extraction",
              "onnxruntime", "onnx"),
    "lightgbm-text": ("lightgbm",),
}


def _rss_mb() -> float:
    try:
        import psutil

        return float(psutil.Process().memory_info().rss) / 2**20
    except ImportError:  # psutil comes with dask.distributed; fall back to /proc
        with open("/proc/self/statm") as stream:
            import os

            return int(stream.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def run(request: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"stage": "import", "loaded": False}
    started = time.perf_counter()
    try:
        from yarnit.core.clock import SystemClock
        from yarnit.core.settings import Settings
        from yarnit.registry import ArtifactFormat, ModelRegistry, ModelVersion
        from yarnit.serving.runtime import ModelRuntime
        from yarnit.storage import LocalArtifactStore, MetadataStore, Workspace

        for module in PRELOAD.get(str(request.get("artifact_format")), ()):
            try:
                __import__(module)
            except ImportError:
                pass
    except Exception as exc:
        out["error"] = _error(exc)
        return out
    gc.collect()
    before = _rss_mb()
    out["stage"] = "load"
    try:
        settings = Settings.for_home(request["home"], db_url=request.get("db_url"))
        # Only the artifact store is used: the version is described in the request, not read from the database.
        ws = Workspace(settings=settings, metadata=MetadataStore(settings.db_url),
                       artifacts=LocalArtifactStore(settings.artifacts_dir), clock=SystemClock())
        runtime = ModelRuntime(ModelRegistry(ws), SystemClock(), refresh_s=0.0,
                               compile=bool(request.get("compile", True)))
        version = ModelVersion(
            id=request.get("version_id") or "candidate", model_name=request["model_name"],
            version=int(request.get("version") or 0), artifact_sha256=request["artifact_sha256"],
            artifact_format=ArtifactFormat(request["artifact_format"]), created_at=SystemClock().now(),
            signature=request.get("signature") or {})
        load_started = time.perf_counter()
        loaded = runtime.load_version(version)
        out["load_s"] = time.perf_counter() - load_started
    except Exception as exc:
        out["error"] = _error(exc)
        return out
    gc.collect()
    after = _rss_mb()
    out.update(loaded=True, rss_before_mb=before, rss_after_mb=after, memory_mb=max(after - before, 0.0),
               path=loaded.path, compile_reason=loaded.compile.reason, served_sha256=loaded.version.artifact_sha256)
    requests = [dict(r) for r in request.get("requests") or []]
    out["stage"] = "golden"
    try:
        scores = loaded.score([dict(r) for r in requests]) if requests else []
        out["scores"] = [float(s) for s in scores]
        out["n_scores"] = len(out["scores"])
    except Exception as exc:
        out["error"] = _error(exc)
        return out
    out["stage"] = "latency"
    calls = int(request.get("latency_calls", 200))
    rows = requests or [{}]
    times: list[float] = []
    try:
        for i in range(10 + calls):
            row = dict(rows[i % len(rows)])
            t0 = time.perf_counter_ns()
            loaded.score([row])
            if i >= 10:
                times.append((time.perf_counter_ns() - t0) / 1e6)
    except Exception as exc:
        out["error"] = _error(exc)
        return out
    times.sort()

    def pct(q: float) -> float:
        return times[min(len(times) - 1, max(0, math.ceil(q * len(times)) - 1))]

    out["latency_ms"] = {"p50": pct(0.50), "p95": pct(0.95), "p99": pct(0.99), "max": times[-1], "calls": calls}
    out["stage"] = "done"
    out["process_s"] = time.perf_counter() - started
    return out


def _prepare_imports() -> list[str]:
    """yarnit's modules this child imported before its request (re-running the parent's ``__main__``), which the
    fork server did not hold: each is CPU every check pays (``validity._main_imports`` keeps this empty)."""
    frozen = sys.modules.get("yarnit.evaluation._validity_freeze")
    preloaded = getattr(frozen, "PRELOADED", None)
    if preloaded is None:  # not a fork server's child
        return []
    return sorted(name for name in sys.modules if name.startswith("yarnit") and name not in preloaded)[:50]


def child_main(payload: str, conn: Any) -> None:
    """The fork server's child: one JSON request in, one JSON answer on ``conn`` (never a pickle)."""
    prepared = _prepare_imports()
    try:
        out = run(json.loads(payload))
    except Exception as exc:  # noqa: BLE001 - whatever went wrong is the answer
        out = {"stage": "request", "loaded": False, "error": _error(exc)}
    out["prepare_imports"] = prepared
    try:
        conn.send_bytes(json.dumps(out, default=str).encode("utf-8"))
    finally:
        conn.close()


def main() -> int:
    try:
        request = json.loads(sys.stdin.read())
    except ValueError as exc:
        sys.stdout.write(json.dumps({"stage": "request", "loaded": False, "error": _error(exc)}) + "\n")
        return 2
    sys.stdout.write(json.dumps(run(request)) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
