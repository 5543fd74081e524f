"""Serving errors; each maps onto a family of :mod:`yarnit.core.errors`.

::

    Unavailable
     ├── Overloaded          shed by admission control (503 + Retry-After)
     └── NoAnswer            no version answered in time and no declared fallback may (503 + Retry-After)
    InvalidInput
     └── RequestTooLarge     body over the size limit (413)
    Conflict
     └── VersionRejected     a new version failed validation; the old one keeps serving
"""

from __future__ import annotations

from yarnit.core.errors import Conflict, InvalidInput, Unavailable


class Overloaded(Unavailable):
    """The server is at its concurrency limit or the request's deadline passed in the queue."""

    def __init__(self, reason: str, retry_after_s: int) -> None:
        what = {
            "concurrency": "the server is at its limit of requests in flight",
            "queue": "the requests already waiting would hold this one past the queue-delay limit",
            "deadline": "the request waited in the queue past its deadline",
            "closed": "the server is shutting down",
        }.get(reason, reason)
        super().__init__(f"Request shed: {what}. Retry after {retry_after_s} s, or lower the request rate.")
        self.reason, self.retry_after_s = reason, retry_after_s


class NoAnswer(Unavailable):
    """No model version answered, and the version declares no fallback that may answer instead.

    ``reason`` is why the versions did not answer (``timeout``, ``error``,
    ``circuit_open``, ``not_loaded``); a 200 would have carried a number that
    nobody declared, so the client gets a 503 with Retry-After.
    """

    def __init__(self, model: str, reason: str, why: str) -> None:
        what = {
            "timeout": "no version scored the request within its deadline",
            "error": "every loaded version failed on this request",
            "circuit_open": "every loaded version is paused by its circuit breaker after repeated failures",
            "not_loaded": "its production version is not loaded",
            "forced": "it is switched to its fallback (yarnit emergency fall-back; undo: yarnit emergency restore)",
        }.get(reason, reason)
        super().__init__(f"Model {model!r} could not answer: {what}, and {why}. Retry later; for a batch that "
                         "misses its deadline, send smaller batches or a longer x-yarnit-deadline-ms.")
        self.model, self.reason = model, reason


class RequestTooLarge(InvalidInput):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"The request body is {size:,} bytes or more; the limit is {limit:,} bytes. Split the batch into "
            "smaller requests (or raise max_body_bytes in the serving options)."
        )
        self.size, self.limit = size, limit




class VersionRejected(Conflict):
    """A model version failed its load-time validation and was not swapped in."""

    def __init__(self, ref: str, reason: str) -> None:
        super().__init__(
            f"Model version {ref} was not swapped in: {reason}. The version that was serving keeps serving; "
            "fix the model (or its golden requests in the signature) and register a new version."
        )
        self.ref, self.reason = ref, reason


class CanaryHalted(Conflict):
    """A raise of a model's canary share while a release gate (the error-budget policy) halts its changes."""

    def __init__(self, model_name: str, from_percent: float, to_percent: float, why: str) -> None:
        super().__init__(
            f"Refusing to raise the canary share of model {model_name!r} from {from_percent:g}% to {to_percent:g}%: "
            f"{why}. Changes are halted until the budget recovers (only P0 and security fixes go ahead; lowering "
            f"the share is always allowed: yarnit models traffic {model_name} --canary-percent 0); a P0 or security "
            f"fix may override, audited with your name and reason: yarnit models traffic {model_name} "
            f"--canary-percent {to_percent:g} --override-reason '…' (HTTP: \"override_reason\")."
        )
        self.model_name, self.from_percent, self.to_percent, self.why = model_name, from_percent, to_percent, why


__all__ = ["CanaryHalted", "NoAnswer", "Overloaded", "RequestTooLarge", "VersionRejected"]
