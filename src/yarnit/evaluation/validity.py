"""Validity: "will it break the system?", checked before quality (book ch. 5, CH5-R1..R4, CH7-R2).

:func:`check_validity` answers, for one model version or pipeline candidate:

1. **right_artifact**: the bytes are the intended ones (artifact sha256 and, for
   a registered version, its id match what the caller intends to ship);
2. **loads**: it loads in the serving runtime (:class:`yarnit.serving.ModelRuntime`,
   including the compiled fast path and the runtime's own golden checks) in a
   *separate process*, like TFX's InfraValidator;
3. **memory**: its in-memory size (resident memory added by loading it, not
   its file size) fits ``max_memory_mb``;
4. **latency**: single-row scoring through the runtime has p95 within
   ``max_latency_ms``;
5. **golden_requests**: it answers every golden request with one score;
6. **finite_in_range**: every answer is finite and within [0, 1];
7. **serving_matches_training**: the serving path's answers equal the
   training-time predictions for the same requests within ``tolerance``;
8. **not_collapsed**: the predictions vary (standard deviation at least
   ``min_prediction_std``; book ch. 3: "every prediction bad or collapsed").

Each failed check is one clear sentence in :attr:`ValidityReport.reasons`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from yarnit.core.errors import InvalidInput
from yarnit.registry import ModelVersion
from yarnit.storage import Workspace

from . import _validity_worker
from .errors import GateConfigError


@dataclass(frozen=True)
class ValidityBudget:
    """Limits a model must fit. Configurable as data (the ``validity`` config key)."""

    max_memory_mb: float = 1024.0
    max_latency_ms: float = 50.0  # p95 of single-row scoring through the serving runtime
    min_prediction_std: float = 1e-3
    tolerance: float = 1e-6  # serving path vs training-time predictions
    output_low: float = 0.0
    output_high: float = 1.0
    timeout_s: float = 180.0
    latency_calls: int = 200

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
                raise GateConfigError(f"validity.{f.name} must be a number, got {value!r}.")
        if self.max_memory_mb <= 0 or self.max_latency_ms <= 0 or self.timeout_s <= 0 or self.latency_calls < 1:
            raise GateConfigError("validity budgets (max_memory_mb, max_latency_ms, timeout_s, latency_calls) must be "
                                  f"positive; got {self}.")
        if self.min_prediction_std < 0 or self.tolerance < 0 or self.output_low >= self.output_high:
            raise GateConfigError(f"validity: min_prediction_std and tolerance must be >= 0 and output_low < "
                                  f"output_high; got {self}.")

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> ValidityBudget:
        config = dict(config or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise GateConfigError(f"Unknown validity settings {unknown}; known: {', '.join(sorted(known))}.")
        return cls(**config)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Candidate:
    """What is being checked: an artifact (by sha256) with its format and signature."""

    model_name: str
    artifact_sha256: str
    artifact_format: str
    signature: Mapping[str, Any] = field(default_factory=dict)
    version: int | None = None
    version_id: str | None = None

    @classmethod
    def from_version(cls, version: ModelVersion) -> Candidate:
        return cls(version.model_name, version.artifact_sha256, version.artifact_format.value, version.signature,
                   version.version, version.id)

    @property
    def label(self) -> str:
        return f"{self.model_name} v{self.version}" if self.version else \
            f"{self.model_name} candidate {self.artifact_sha256[:12]}"

    def to_dict(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "artifact_sha256": self.artifact_sha256,
                "artifact_format": self.artifact_format, "version": self.version, "version_id": self.version_id}


@dataclass(frozen=True)
class ValidityCheck:
    """One check: passed (True), failed (False) or not run (None), with a sentence saying why."""

    name: str
    passed: bool | None
    detail: str
    value: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "detail": self.detail, "value": self.value}


@dataclass(frozen=True)
class ValidityReport:
    candidate: Mapping[str, Any]
    checks: tuple[ValidityCheck, ...]
    measured: Mapping[str, Any] = field(default_factory=dict)
    budget: Mapping[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """No check failed (a check that could not run for lack of input, e.g. no expected scores, is not a failure;
        one that could not run because the model did not load sits beside the failed ``loads``)."""
        return not any(c.passed is False for c in self.checks)

    @property
    def reasons(self) -> list[str]:
        return [c.detail for c in self.checks if c.passed is False]

    def check(self, name: str) -> ValidityCheck:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "candidate": dict(self.candidate), "checks": [c.to_dict() for c in self.checks],
                "reasons": self.reasons, "measured": dict(self.measured), "budget": dict(self.budget)}


def golden_requests(signature: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The requests a version promises to answer: its ``golden`` instances, then its ``probe`` requests."""
    out = [dict(g["instance"]) for g in signature.get("golden") or []
           if isinstance(g, Mapping) and isinstance(g.get("instance"), Mapping)]
    out += [dict(p) for p in signature.get("probe") or [] if isinstance(p, Mapping)]
    return out


class ValidityProbe:
    """The separate serving process that loads and probes a candidate.

    Starting it returns at once, so a caller can compute quality metrics while
    the model loads in the other process; :meth:`result` waits for it.
    """

    def __init__(self, ws: Workspace, candidate: Candidate, requests: Sequence[Mapping[str, Any]],
                 budget: ValidityBudget) -> None:
        self.candidate = candidate
        self.requests = [dict(r) for r in requests]
        self.budget = budget
        payload = {"home": str(ws.settings.home), "db_url": ws.settings.db_url, "model_name": candidate.model_name,
                   "version": candidate.version, "version_id": candidate.version_id,
                   "artifact_sha256": candidate.artifact_sha256, "artifact_format": candidate.artifact_format,
                   "signature": dict(candidate.signature), "requests": self.requests,
                   "latency_calls": int(budget.latency_calls)}
        self._started = time.perf_counter()
        self._result: dict[str, Any] | None = None
        context = _worker_context()
        self._conn, child_end = context.Pipe(duplex=False)
        # Only JSON crosses back: the child holds a model nobody trusts yet, so its answer is never unpickled.
        self._proc = context.Process(target=_validity_worker.child_main,
                                     args=(json.dumps(payload, default=str), child_end), daemon=True)
        self._proc.start()
        child_end.close()  # the child holds its own end: a child that dies leaves EOF here, not a wait

    def close(self) -> None:
        """Stop the worker if nobody collected its result (e.g. the caller failed first)."""
        if self._result is None:
            if self._proc.is_alive():
                self._proc.kill()
            self._proc.join()
            self._finish({"stage": "load", "loaded": False, "error": "the validity check was abandoned"})

    def __del__(self) -> None:  # never leave a worker behind (or a zombie) when a step fails midway
        try:
            self.close()
        except Exception:
            pass

    def result(self) -> dict[str, Any]:
        """The worker's findings (waits for it; kills it after ``budget.timeout_s``)."""
        from multiprocessing.connection import wait

        if self._result is not None:
            return self._result
        remaining = max(self.budget.timeout_s - (time.perf_counter() - self._started), 0.1)
        if not wait([self._conn], timeout=remaining):
            self._proc.kill()
            self._proc.join()
            return self._finish({"stage": "load", "loaded": False, "error": f"the serving runtime did not finish "
                                 f"loading and probing it within {self.budget.timeout_s:g} s"})
        try:
            result = json.loads(self._conn.recv_bytes(MAX_RESULT_BYTES))
        except (EOFError, OSError, ValueError):
            result = None
        self._proc.join(timeout=10.0)
        if self._proc.is_alive():  # answered but did not exit: nothing more is wanted from it
            self._proc.kill()
            self._proc.join()
        if not isinstance(result, dict) or not result:
            result = {"stage": "load", "loaded": False,
                      "error": f"the serving process exited with code {self._proc.exitcode} before answering"}
        return self._finish(result)

    def _finish(self, result: dict[str, Any]) -> dict[str, Any]:
        result["wall_s"] = time.perf_counter() - self._started
        self._result = result
        self._conn.close()
        return result


#: The most a worker may answer (its scores for the golden requests are a few kilobytes).
MAX_RESULT_BYTES = 16 * 2**20
_CONTEXT: Any = None


def _worker_context() -> Any:
    """The multiprocessing context of the validity workers: a fork server that has imported the serving runtime.

    Each check still runs in a fresh child process (a model that crashes, hangs or eats memory takes down only
    that child, and its memory is measured from the child's own baseline), but the child is forked from a
    server that imported the libraries once, instead of a new interpreter importing them for every candidate.
    """
    global _CONTEXT
    if _CONTEXT is None:
        import multiprocessing

        context = multiprocessing.get_context("forkserver")
        modules = {"yarnit.evaluation._validity_worker", *_validity_worker.RUNTIME, *_main_imports()}
        for names in _validity_worker.PRELOAD.values():
            modules.update(names)
        # the freeze comes last: it collects the import garbage once, then freezes the imported heap
        context.set_forkserver_preload([*sorted(modules), "yarnit.evaluation._validity_freeze"])
        _CONTEXT = context
    return _CONTEXT


def _main_imports() -> list[str]:
    """yarnit's modules this process has imported: the fork server imports them too.

    A forked child prepares itself as a spawned one does: it runs the parent's ``__main__`` script again (for
    ``yarnit demo`` or ``yarnit loop run``, the console script, whose one import is the whole CLI). CPython's fork
    server never preloads ``__main__`` itself (3.11-3.13: it asks the preparation data for a ``main_path`` key that
    is named ``init_main_from_path``), so every check paid that import again: 0.2-0.3 s of CPU and more of wall in
    each child. With the modules the script imports already in the fork server, the child's re-run finds them all
    imported and costs almost nothing.
    """
    import sys

    return [name for name in list(sys.modules)
            if (name == "yarnit" or name.startswith("yarnit.")) and name != "yarnit.evaluation._validity_freeze"]


def start_validity_workers() -> None:
    """Start the validity fork server now, without waiting for it.

    It imports the serving runtime and the model libraries (seconds of CPU), which the first
    :class:`ValidityProbe` would otherwise wait for; a long-running caller (the continuous loop, the demo)
    starts it early so that the import overlaps other work. Idempotent; the server stays up for the process.
    """
    from multiprocessing import forkserver

    _worker_context()
    forkserver.ensure_running()


def check_validity(ws: Workspace, candidate: Candidate, *, intended_sha256: str | None = None,
                   intended_version_id: str | None = None, requests: Sequence[Mapping[str, Any]] | None = None,
                   expected: Sequence[float] | np.ndarray | None = None,
                   reference_scores: np.ndarray | None = None, reference_name: str = "the golden requests",
                   budget: ValidityBudget | None = None, probe: ValidityProbe | None = None) -> ValidityReport:
    """Run every validity check on ``candidate``.

    Args:
        intended_sha256, intended_version_id: what the caller means to ship;
            default: the candidate's own (then only the stored bytes are verified).
        requests: golden requests (raw instances); default: the signature's golden and probe requests.
        expected: training-time predictions for ``requests`` (enables serving_matches_training).
        reference_scores: predictions on an evaluation set for the collapse check
            (default: the answers to the golden requests).
        probe: a :class:`ValidityProbe` started earlier for this candidate (else one is started now).
    """
    if probe is not None:
        budget, requests = budget or probe.budget, probe.requests
    budget = budget or ValidityBudget()
    requests = list(requests) if requests is not None else golden_requests(candidate.signature)
    if expected is not None and len(expected) != len(requests):
        raise InvalidInput(f"Got {len(expected)} expected predictions for {len(requests)} golden requests; "
                           "give one per request.")
    label = candidate.label
    checks: list[ValidityCheck] = []
    intended = intended_sha256 or candidate.artifact_sha256
    right = intended == candidate.artifact_sha256 and (intended_version_id is None
                                                       or intended_version_id == candidate.version_id)
    if right:
        checks.append(ValidityCheck("right_artifact", True, f"{label} is the intended artifact "
                                    f"(sha256 {candidate.artifact_sha256[:12]}…).", candidate.artifact_sha256))
    else:
        what = (f"artifact sha256 {candidate.artifact_sha256[:12]}… is not the intended {intended[:12]}…"
                if intended != candidate.artifact_sha256 else
                f"version id {candidate.version_id} is not the intended {intended_version_id}")
        checks.append(ValidityCheck("right_artifact", False, f"{label} is not the model that was meant to ship: "
                                    f"{what}. Check which version the alias points at before promoting (book ch. 7: "
                                    "the model copied to serving was not the intended version).",
                                    candidate.artifact_sha256))
    result = (probe or ValidityProbe(ws, candidate, requests, budget)).result()
    measured = {k: result.get(k) for k in ("memory_mb", "latency_ms", "path", "compile_reason", "load_s", "wall_s",
                                           "rss_after_mb")}
    if not result.get("loaded"):
        checks.append(ValidityCheck("loads", False, f"{label} does not load in the serving runtime (separate "
                                    f"process): {result.get('error', 'unknown error')}. Nothing after loading was "
                                    "checked; fix the artifact (re-register or retrain) before anything else."))
        for name in ("memory", "latency", "golden_requests", "finite_in_range", "serving_matches_training",
                     "not_collapsed"):
            checks.append(ValidityCheck(name, None, "not run: the model did not load"))
        return ValidityReport(candidate.to_dict(), tuple(checks), measured, budget.to_dict())
    checks.append(ValidityCheck("loads", True, f"{label} loads in the serving runtime in a separate process "
                                f"({result.get('path')} path, {result.get('load_s', 0.0):.2f} s).", result.get("path")))
    memory = float(result.get("memory_mb") or 0.0)
    checks.append(ValidityCheck(
        "memory", memory <= budget.max_memory_mb,
        f"{label} takes {memory:.1f} MB in memory once loaded" + (
            f", within the budget of {budget.max_memory_mb:g} MB." if memory <= budget.max_memory_mb else
            f", more than the budget of {budget.max_memory_mb:g} MB. Shrink the model (fewer features or trees) or "
            "raise validity.max_memory_mb if the servers have the room."), memory))
    scores = np.asarray(result.get("scores") or [], dtype=np.float64)
    latency = result.get("latency_ms") or {}
    p95 = latency.get("p95")
    if p95 is None:
        checks.append(ValidityCheck("latency", False, f"{label}: single-row latency could not be measured: "
                                    f"{result.get('error', 'no answers')}."))
    else:
        ok = p95 <= budget.max_latency_ms
        checks.append(ValidityCheck(
            "latency", ok,
            f"{label} scores one row in {latency['p50']:.3f} ms (p50) / {p95:.3f} ms (p95) through the serving "
            f"runtime" + (f", within {budget.max_latency_ms:g} ms." if ok else
                          f", over the p95 budget of {budget.max_latency_ms:g} ms. Profile the transform and the "
                          "model, or raise validity.max_latency_ms if the page budget allows it."), latency))
    if result.get("stage") == "golden" and result.get("error"):
        checks.append(ValidityCheck("golden_requests", False, f"{label} crashed answering golden requests: "
                                    f"{result['error']}. Check the feature transform named in its signature."))
    elif not requests:
        checks.append(ValidityCheck("golden_requests", False, f"{label} has no golden requests to answer; record "
                                    "some in its signature ('golden' or 'probe') so every load can be checked."))
    elif len(scores) != len(requests):
        checks.append(ValidityCheck("golden_requests", False, f"{label} gave {len(scores)} answers to "
                                    f"{len(requests)} golden requests; it must give one each."))
    else:
        checks.append(ValidityCheck("golden_requests", True, f"{label} answered all {len(requests)} golden "
                                    "requests.", len(requests)))
    if len(scores):
        bad = ~np.isfinite(scores) | (scores < budget.output_low) | (scores > budget.output_high)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            checks.append(ValidityCheck(
                "finite_in_range", False, f"{int(bad.sum())} of {len(scores)} answers of {label} are not finite or "
                f"outside [{budget.output_low:g}, {budget.output_high:g}] (request {first} got {scores[first]!r}). "
                "NaN weights or a broken transform; do not serve it.", int(bad.sum())))
        else:
            checks.append(ValidityCheck("finite_in_range", True, f"every answer of {label} is finite and within "
                                        f"[{budget.output_low:g}, {budget.output_high:g}].", 0))
    else:
        checks.append(ValidityCheck("finite_in_range", None, "not run: no answers to golden requests"))
    if expected is None:
        checks.append(ValidityCheck("serving_matches_training", None, "not run: no training-time predictions "
                                    "were given for the golden requests"))
    elif len(scores) != len(requests):
        checks.append(ValidityCheck("serving_matches_training", None, "not run: the golden requests were not all "
                                    "answered"))
    else:
        diff = np.abs(scores - np.asarray(expected, dtype=np.float64))
        worst = float(np.nanmax(diff)) if np.isfinite(diff).any() else float("inf")
        ok = bool(np.all(np.isfinite(diff))) and worst <= budget.tolerance
        checks.append(ValidityCheck(
            "serving_matches_training", ok,
            f"serving-path predictions of {label} differ from training-time predictions by at most {worst:.3g}"
            + (f" (tolerance {budget.tolerance:g})." if ok else
               f", more than the tolerance {budget.tolerance:g}: training/serving skew. Compare the request-time "
               "transform with its vectorized twin, and the compiled path with the native model."), worst))
    collapse_on = np.asarray(reference_scores, dtype=np.float64) if reference_scores is not None else scores
    where = "the evaluation set" if reference_scores is not None else reference_name
    if len(collapse_on) < 2:
        checks.append(ValidityCheck("not_collapsed", None, "not run: fewer than two predictions to compare"))
    else:
        finite = collapse_on[np.isfinite(collapse_on)]
        std = float(finite.std()) if len(finite) else 0.0
        distinct = int(len(np.unique(finite)))
        ok = std >= budget.min_prediction_std and distinct > 1
        checks.append(ValidityCheck(
            "not_collapsed", ok,
            f"predictions of {label} on {where} have standard deviation {std:.6f} over {distinct} distinct values"
            + (f" (at least {budget.min_prediction_std:g})." if ok else
               f": collapsed (below {budget.min_prediction_std:g}). A model that gives everyone the same score is "
               "broken (book ch. 3); check the features and labels it was trained on."), std))
    return ValidityReport(candidate.to_dict(), tuple(checks), measured, budget.to_dict())


def native_scores(ws: Workspace, version: ModelVersion, requests: Sequence[Mapping[str, Any]]) -> np.ndarray | None:
    """Scores of ``requests`` by the native model in this process (request-time transform, no compiled path)."""
    from yarnit.features import get_transform
    from yarnit.registry import load_predictor

    if not requests:
        return None
    name = version.signature.get("transform")
    transform = get_transform(name) if name else None
    rows = [transform(dict(r)) if transform is not None else dict(r) for r in requests]
    predictor = load_predictor(ws.artifacts.get_bytes(version.artifact_sha256), version.artifact_format)
    return np.asarray(predictor.predict_proba(rows), dtype=np.float64)


def check_version(ws: Workspace, version: ModelVersion, *, intended_sha256: str | None = None,
                  intended_version_id: str | None = None, budget: ValidityBudget | None = None,
                  reference_scores: np.ndarray | None = None, probe: ValidityProbe | None = None) -> ValidityReport:
    """:func:`check_validity` for a registered version, with its signature's golden and probe requests.

    The serving process's answers are compared with the native model's in this
    process (the serving runtime may use a compiled fast path; they must agree).
    """
    candidate = Candidate.from_version(version)
    probe = probe or ValidityProbe(ws, candidate, golden_requests(version.signature), budget or ValidityBudget())
    try:
        expected = native_scores(ws, version, probe.requests)
    except Exception:  # the serving process reports why it does not load; do not fail twice here
        expected = None
    return check_validity(ws, candidate, intended_sha256=intended_sha256, intended_version_id=intended_version_id,
                          budget=budget, reference_scores=reference_scores, probe=probe, expected=expected)


__all__ = ["Candidate", "ValidityBudget", "ValidityCheck", "ValidityProbe", "ValidityReport", "check_validity",
           "check_version", "golden_requests", "native_scores", "start_validity_workers"]
