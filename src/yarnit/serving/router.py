"""Traffic: a sticky canary split by a hash of the request key, shadow scoring, and the persisted policy.

* :class:`Router` sends ``canary_percent`` % of *keys* (a user, a session) to
  the ``canary`` alias: the same key always lands on the same side while the
  percentage holds, and raising the percentage only moves keys from
  production to canary (buckets below the threshold stay below it).
* :class:`TrafficPolicyStore` keeps each model's :class:`TrafficPolicy`
  (canary %, shadow on/off) in the workspace database, and appends an audit
  event (who, when, old → new) in the same transaction as each change, like
  alias moves. A router built over a store re-reads every policy every
  ``refresh_s`` seconds on a background thread, so every server process (and
  a restarted one) agrees on the split; the process that took the change
  applies it at once. The policy also carries the emergency fall-back switch
  (``force_fallback``, set by :mod:`yarnit.continuous.actions`): the request
  path asks :meth:`Router.forced_fallback`, one lookup in a frozenset rebuilt
  at each refresh.
* :class:`ShadowScorer` scores a copy of the request with the ``shadow``
  version on a background thread. Its output goes to the prediction log
  only: it is never returned and the response never waits for it. When the
  shadow thread cannot keep up its bounded queue drops work (counted), so
  shadow traffic sheds itself before it can slow the primary path.

Example:
    >>> router = Router()
    >>> router.set_policy("ctr", TrafficPolicy(canary_percent=10))
    >>> router.choose("ctr", "user-42", has_canary=True) == router.choose("ctr", "user-42", has_canary=True)
    True
    >>> sum(router.choose("ctr", f"u{i}", has_canary=True) == "canary" for i in range(10_000))
    977
"""

from __future__ import annotations

import hashlib
import logging
import math
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, insert, select, update

from yarnit.core.errors import Conflict, InvalidInput, YarnitError
from yarnit.core.text import check_plain_text
from yarnit.registry import ModelNotFound
from yarnit.storage import ChangeWatcher
from yarnit.storage.schema import (
    audit_log,
    models,
    traffic_policies,
    traffic_policy_events,
)

from .errors import CanaryHalted

if TYPE_CHECKING:
    from yarnit.registry.service import ReleaseGate
    from yarnit.storage import Workspace

log = logging.getLogger("yarnit.serving.router")

BUCKETS = 10_000


@dataclass(frozen=True)
class TrafficPolicy:
    """How one model's traffic is split. ``canary_percent`` in [0, 100]; ``shadow`` on/off."""

    canary_percent: float = 0.0
    shadow: bool = True
    # The emergency "fall back" switch (yarnit.continuous.actions.fall_back): answer with the fallback the
    # model's owner declared (the ``fallback`` alias, else the heuristic prior), never the model.
    force_fallback: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.canary_percent <= 100.0:
            raise InvalidInput(f"canary_percent must be within [0, 100]; got {self.canary_percent}.")

    def as_dict(self) -> dict[str, Any]:
        # force_fallback is shown with the other emergency switches (GET /api/models/{name}/switches, yarnit
        # emergency status), so this shape, which clients of the traffic API compare, stays as it was.
        return {"canary_percent": self.canary_percent, "shadow": self.shadow}


@dataclass(frozen=True)
class TrafficPolicyEvent:
    """One audited change of a model's traffic policy (``from_*`` are None for its first policy)."""

    model_name: str
    from_canary_percent: float | None
    to_canary_percent: float
    from_shadow: bool | None
    to_shadow: bool
    actor: str
    reason: str
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__) | {"at": self.at.isoformat()}


class TrafficPolicyStore:
    """Traffic policies per model in the workspace database; each change is audited in the same transaction."""

    def __init__(self, workspace: Workspace, *, release_gate: ReleaseGate | str | None = "workspace") -> None:
        self.ws = workspace
        # Asked before a raise of the canary share (the error-budget policy); by default the policy of the
        # workspace's SLO file, read at each change (none when no file was applied); None: no gate.
        self.release_gate = release_gate

    def _gate(self) -> ReleaseGate | None:
        if self.release_gate == "workspace":
            from yarnit.monitoring.policy import (
                workspace_policy,  # local: monitoring reads the serving log
            )

            return workspace_policy(self.ws)
        return self.release_gate  # type: ignore[return-value]

    def all(self) -> dict[str, TrafficPolicy]:
        """Every stored policy, by model (models without one use the default: no canary, shadow on)."""
        with self.ws.metadata.begin() as conn:
            rows = conn.execute(select(traffic_policies)).mappings().all()
        return {r["model_name"]: _policy(r) for r in rows}

    def get(self, model_name: str) -> TrafficPolicy:
        with self.ws.metadata.begin() as conn:
            row = conn.execute(select(traffic_policies).where(traffic_policies.c.model_name == model_name)
                               ).mappings().first()
        return _DEFAULT if row is None else _policy(row)

    def set(self, model_name: str, *, canary_percent: float | None = None, shadow: bool | None = None,
            actor: str, reason: str = "", force: bool = False, override_reason: str = "") -> TrafficPolicyEvent:
        """Change ``model_name``'s policy and append the audit event, in one transaction.

        A value left ``None`` keeps its current one; the merge happens inside
        the transaction, so two concurrent partial changes cannot undo each other.

        A raise of the canary share while the release gate halts the model's
        changes raises :class:`CanaryHalted`, unless ``override_reason`` says why
        (or, as before, ``force`` with a ``reason``): the event's reason then
        carries the actor, the override and the refusal, and an
        ``error_budget.override`` row goes to the audit log. Lowering the share
        and shadow changes are never refused.
        """
        if canary_percent is not None and not math.isfinite(canary_percent):
            raise InvalidInput(f"canary_percent must be a finite number in [0, 100]; got {canary_percent}.")
        check_plain_text("reason", reason)  # printed later on operators' terminals: no escape sequences
        if force and not reason.strip():
            raise InvalidInput(f"A forced change of {model_name}'s traffic policy needs a reason for the audit trail.")
        check_plain_text("override_reason", override_reason)
        override = override_reason.strip() or (reason.strip() if force else "")
        # The gate is asked before the write transaction, never inside it: its SLIs read the same database, and
        # on SQLite a second transaction waits for ours (the busy timeout) and then fails, so a gate asked
        # inside would stall and could not read the budget it must enforce. A raise that appears only once the
        # row is locked (someone lowered the share meanwhile) asks the gate again, outside, and retries.
        asked: tuple[str | None] | None = None
        for _attempt in range(3):
            raising = canary_percent is not None and float(canary_percent) > self.get(model_name).canary_percent
            if asked is None and raising:
                asked = (self._refusal(model_name),)
            try:
                return self._set(model_name, canary_percent, shadow, actor=actor, reason=reason, force=force,
                                 override_reason=override_reason, override=override, asked=asked)
            except _GateNotAsked:
                asked = (self._refusal(model_name),)
        raise Conflict(f"{model_name}'s traffic policy kept changing while this change was being made; retry it.")

    def _refusal(self, model_name: str) -> str | None:
        gate = self._gate()
        return gate.refusal(model_name, "canary") if gate is not None else None

    def _set(self, model_name: str, canary_percent: float | None, shadow: bool | None, *, actor: str, reason: str,
             force: bool, override_reason: str, override: str, asked: tuple[str | None] | None
             ) -> TrafficPolicyEvent:
        now = self.ws.clock.now()
        with self.ws.metadata.begin() as conn:
            row = _locked_policy_row(conn, model_name)
            old = _DEFAULT if row is None else _policy(row)
            new = TrafficPolicy(old.canary_percent if canary_percent is None else float(canary_percent),
                                old.shadow if shadow is None else bool(shadow), old.force_fallback)
            halt = None
            if new.canary_percent > old.canary_percent:  # lowering never reads the policy: it cannot be refused
                if asked is None:
                    raise _GateNotAsked  # rolls back; set() asks the gate outside the transaction and retries
                halt = asked[0]
            if halt is not None:  # raising here rolls the transaction back: nothing changes, nothing is audited
                if not override:
                    raise CanaryHalted(model_name, old.canary_percent, new.canary_percent, halt)
                reason = (f"{reason.strip()} [forced: {halt}]" if force and not override_reason.strip() else
                          f"{reason.strip()} [override by {actor}: {override}; release halted: {halt}]".strip())
                conn.execute(insert(audit_log).values(
                    at=now, actor=actor, action="error_budget.override", subject=f"model:{model_name}:canary_share",
                    detail={"model": model_name, "from_canary_percent": old.canary_percent,
                            "to_canary_percent": new.canary_percent, "override_reason": override, "refusal": halt}))
            values = {"canary_percent": new.canary_percent, "shadow": new.shadow, "updated_at": now,
                      "updated_by": actor}
            if row is None:
                conn.execute(insert(traffic_policies).values(model_name=model_name, **values))
            else:
                conn.execute(update(traffic_policies).where(traffic_policies.c.model_name == model_name)
                             .values(**values))
            event = TrafficPolicyEvent(model_name, None if row is None else old.canary_percent, new.canary_percent,
                                       None if row is None else old.shadow, new.shadow, actor, reason, now)
            conn.execute(insert(traffic_policy_events).values(**event.__dict__))
        return event

    def set_force_fallback(self, model_name: str, on: bool, *, actor: str,
                           audit: tuple[str, dict[str, Any]]) -> tuple[bool, int | None]:
        """Turn ``model_name``'s fall-back switch on or off with its ``audit`` row, in one transaction.

        Returns (the value before, the audit row's id; None when nothing changed and nothing was audited).
        Never asks the release gate: falling back, and coming back, must not wait for an error budget.
        """
        now = self.ws.clock.now()
        with self.ws.metadata.begin() as conn:
            row = _locked_policy_row(conn, model_name)
            before = bool(row["force_fallback"]) if row is not None else False
            if before == on:
                return before, None
            if row is None:
                conn.execute(insert(traffic_policies).values(
                    model_name=model_name, canary_percent=_DEFAULT.canary_percent, shadow=_DEFAULT.shadow,
                    force_fallback=on, updated_at=now, updated_by=actor))
            else:
                conn.execute(update(traffic_policies).where(traffic_policies.c.model_name == model_name)
                             .values(force_fallback=on, updated_at=now, updated_by=actor))
            audit_id = conn.execute(insert(audit_log).values(
                at=now, actor=actor, action=audit[0], subject=f"model:{model_name}",
                detail=audit[1] | {"from_force_fallback": before, "to_force_fallback": on})).inserted_primary_key[0]
        return before, int(audit_id)

    def history(self, model_name: str) -> list[TrafficPolicyEvent]:
        """Every audited change of ``model_name``'s policy, oldest first."""
        with self.ws.metadata.begin() as conn:
            rows = conn.execute(select(traffic_policy_events).where(traffic_policy_events.c.model_name == model_name)
                                .order_by(traffic_policy_events.c.id)).mappings().all()
        return [TrafficPolicyEvent(r["model_name"], r["from_canary_percent"], r["to_canary_percent"],
                                   None if r["from_shadow"] is None else bool(r["from_shadow"]), bool(r["to_shadow"]),
                                   r["actor"], r["reason"], r["at"]) for r in rows]


def bucket(model: str, key: str) -> int:
    """The key's bucket in [0, 10000): a keyed hash, so one key's buckets differ across models."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8, key=model.encode("utf-8")[:64]).digest()
    return int.from_bytes(digest, "big") % BUCKETS


class Router:
    """Chooses the alias (``production`` or ``canary``) that answers a request.

    Without a store the policies live in this object only (tests, one-off
    services). With a :class:`TrafficPolicyStore` they are read from the
    database on first use and re-read every ``refresh_s`` seconds by a
    background thread (on every call when ``refresh_s`` is 0); the request
    path only ever reads a dict.
    """

    def __init__(self, store: TrafficPolicyStore | None = None, *, refresh_s: float = 0.25) -> None:
        self.store = store
        self.refresh_s = refresh_s
        self._policies: dict[str, TrafficPolicy] = {}
        self._forced: frozenset[str] = frozenset()  # models whose fall-back switch is on: one set lookup per request
        self._loaded = False
        self._watcher = ChangeWatcher("yarnit-traffic-watch", store.ws.metadata if store is not None else None,
                                      refresh_s, self.refresh)
        self._lock = threading.Lock()

    def set_policy(self, model: str, policy: TrafficPolicy, *, actor: str = "api",
                   reason: str = "") -> TrafficPolicyEvent | None:
        """Change ``model``'s policy: persisted and audited when there is a store (returns the event)."""
        if self.store is None:
            self._policies = self._policies | {model: policy}
            self._forced = frozenset(m for m, p in self._policies.items() if p.force_fallback)
            return None
        event = self.store.set(model, canary_percent=policy.canary_percent, shadow=policy.shadow, actor=actor,
                               reason=reason)
        self.refresh()
        return event

    def policy(self, model: str) -> TrafficPolicy:
        if self.store is not None and (not self._loaded or self.refresh_s <= 0):
            self._first_load()
        return self._policies.get(model, _DEFAULT)

    def refresh(self) -> bool:
        """Re-read every policy from the store now; False if the read failed (the known policies stay)."""
        if self.store is None:
            return True
        try:
            policies = self.store.all()
        except YarnitError as exc:  # the database being down must not stop serving
            log.warning("traffic policies not re-read; keeping the %d known: %s", len(self._policies), exc)
            return False
        self._policies = policies  # one reference assignment: readers see the old or the new dict
        self._forced = frozenset(m for m, p in policies.items() if p.force_fallback)
        self._loaded = True
        return True

    def _first_load(self) -> None:
        with self._lock:
            if self._loaded and self.refresh_s > 0:
                return
            self.refresh()
            # Even if the read failed: serve the defaults (no canary) and let the watcher retry, rather
            # than retrying on every request.
            self._loaded = True
            self._watcher.start()

    def close(self) -> None:
        """Stop the refresh thread."""
        self._watcher.close()

    def forced_fallback(self, model: str) -> bool:
        """Whether ``model``'s fall-back switch is on (the data plane then answers with its declared fallback)."""
        if self.store is not None and (not self._loaded or self.refresh_s <= 0):
            self._first_load()
        return model in self._forced

    def choose(self, model: str, key: str | None, *, has_canary: bool) -> str:
        if not has_canary:
            return "production"
        percent = self.policy(model).canary_percent
        if percent <= 0.0 or key is None:
            return "production"
        if percent >= 100.0:
            return "canary"
        return "canary" if bucket(model, key) < percent * (BUCKETS / 100.0) else "production"


_DEFAULT = TrafficPolicy()


class _GateNotAsked(Exception):
    """Inside :meth:`TrafficPolicyStore._set`: the change raises the share, and the gate was not asked first."""


def _locked_policy_row(conn: Connection, model_name: str) -> Any:
    """``model_name``'s policy row (None: none yet), after locking the model's row (ModelNotFound if unknown).

    The lock (PostgreSQL; SQLite's write transaction already serialises) makes two writers of one model take
    turns, so an audit's "from" values are exactly what was replaced.
    """
    found = conn.execute(select(models.c.name).where(models.c.name == model_name).with_for_update()).first()
    if found is None:
        raise ModelNotFound(model_name)
    return conn.execute(select(traffic_policies).where(traffic_policies.c.model_name == model_name)
                        ).mappings().first()


def _policy(row: Any) -> TrafficPolicy:
    return TrafficPolicy(float(row["canary_percent"]), bool(row["shadow"]), bool(row.get("force_fallback", False)))


class ShadowScorer:
    """One background thread scoring shadow jobs from a bounded queue; drops are counted."""

    def __init__(self, *, max_queue: int = 1_000) -> None:
        self.max_queue = max_queue
        self._queue: queue.Queue[Callable[[], Any] | None] = queue.Queue(maxsize=max_queue)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.submitted = 0
        self.completed = 0
        self.failed = 0
        self.dropped = 0

    def submit(self, job: Callable[[], Any]) -> bool:
        """Queue ``job`` without blocking; False (and counted) when the queue is full."""
        if self._thread is None:
            self._start()
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            self.dropped += 1
            return False
        self.submitted += 1
        return True

    def drain(self, timeout_s: float = 10.0) -> bool:
        """Wait until every queued job has run (tests, shutdown)."""
        done = threading.Event()
        if self._thread is None:
            return True
        try:
            self._queue.put(done.set, timeout=timeout_s)
        except queue.Full:
            return False
        return done.wait(timeout_s)

    def close(self) -> None:
        thread = self._thread
        if thread is None:
            return
        try:
            self._queue.put(None, timeout=5.0)
        except queue.Full:
            pass
        thread.join(timeout=5.0)

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="yarnit-shadow", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                break
            try:
                job()
                self.completed += 1
            except Exception:  # a shadow failure is logged and counted, never raised to anyone
                self.failed += 1
                log.exception("shadow scoring failed")
            del job  # waiting for the next job, the thread must not keep this one's request (its rows) alive
        self._thread = None


__all__ = ["BUCKETS", "Router", "ShadowScorer", "TrafficPolicy", "TrafficPolicyEvent", "TrafficPolicyStore",
           "bucket"]
