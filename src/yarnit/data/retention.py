"""Retention classes: how long each kind of data may be kept, enforced by the workspace clock.

A dataset version carries a retention class (``events``, ``golden``, …). A
policy gives each class a maximum age (``events: 400d``) and a grace period.
:meth:`Retention.enforce` marks versions older than their class allows as
``expired`` (no longer readable), queues their artifacts for purge after the
grace period, purges what is due, and reports models trained on expired data:
they still serve, but can no longer be reproduced from their inputs (the
Dialpad case of ch. 15). Age counts from the original ingest, also for
versions rewritten by ``forget``.

Retention also covers data outside dataset versions through
:class:`RetentionTarget` plug-ins with their own class: the feature store
(``features``: offline day files and online entities older than the age) and
the prediction log (``prediction_log``: segments whose newest record is older)
and the monitoring summaries (``monitoring``: hourly traffic windows and quality
rows, ``yarnit.monitoring.retention``).
The world's classes have defaults (:data:`DEFAULT_POLICIES`) that apply until
someone sets a policy; ``yarnit data retention show`` lists both.

Two rules keep a policy change from surprising anyone:

* ``enforce(dry_run=True)`` writes nothing at all, and a what-if policy given
  to it (``overrides``) is never stored;
* :meth:`Retention.set_policy` is its own, audited operation; the CLI shows
  what the new policy would expire (:meth:`Retention.preview`) and asks
  before storing it.

Example:
    >>> parse_duration_days("400d"), parse_duration_days("2w"), parse_duration_days("1y")
    (400, 14, 365)
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import insert, select, update

from yarnit.core.errors import InvalidInput
from yarnit.core.ids import check_name
from yarnit.storage import Workspace
from yarnit.storage.schema import audit_log, dataset_versions, retention_policies

from .lineage import Lineage, Node
from .purge import PurgeQueue, PurgeReport
from .versions import ACTIVE, Datasets

_DURATION = re.compile(r"^\s*(\d+)\s*([dwy]?)\s*$")
_UNIT_DAYS = {"": 1, "d": 1, "w": 7, "y": 365}


def parse_duration_days(text: str | int) -> int:
    """Days in ``400d`` / ``8w`` / ``1y`` (or a bare number of days)."""
    if isinstance(text, int):
        days = text
    else:
        match = _DURATION.match(str(text))
        if match is None:
            raise InvalidInput(f"Retention period {text!r} is not valid: use a number of days, weeks or years such "
                               "as 400d, 8w or 1y.")
        days = int(match.group(1)) * _UNIT_DAYS[match.group(2)]
    if days < 0 or days > 36_500:
        raise InvalidInput(f"Retention period {text!r} is out of range: use 0 to 36500 days.")
    return days


@dataclass(frozen=True)
class RetentionPolicy:
    class_name: str
    max_age_days: int
    grace_days: int = 0
    updated_at: datetime | None = None
    source: str = "set"  # "set" (stored by someone) or "default" (the world's classes, until set)

    def to_dict(self) -> dict[str, Any]:
        return {"class": self.class_name, "max_age_days": self.max_age_days, "grace_days": self.grace_days,
                "updated_at": None if self.updated_at is None else self.updated_at.isoformat(),
                "source": self.source}


# The world's own classes: its event tables (impressions, interactions, truth), the feature store built from
# them and the prediction log. About 13 months of events covers a year-over-year comparison; the log feeds
# monitoring and the label join, which look back weeks, not seasons.
DEFAULT_POLICIES: dict[str, RetentionPolicy] = {
    "events": RetentionPolicy("events", 400, 7, source="default"),
    "features": RetentionPolicy("features", 400, 0, source="default"),
    "prediction_log": RetentionPolicy("prediction_log", 90, 0, source="default"),
    # hourly drift and quality summaries (monitoring/retention.py): a year-over-year look back, like events
    "monitoring": RetentionPolicy("monitoring", 400, 0, source="default"),
}


class RetentionTarget(Protocol):
    """Data outside dataset versions with a retention class of its own (feature store, prediction log)."""

    name: str
    retention_class: str

    def expire(self, older_than: datetime, *, dry_run: bool) -> list[str]:
        """Delete (or with ``dry_run`` only list) what is older than ``older_than``; name each item."""
        ...


@dataclass(frozen=True)
class RetentionReport:
    """What one enforcement pass did (or would do, with ``dry_run``)."""

    expired: list[str] = field(default_factory=list)
    no_longer_reproducible: list[str] = field(default_factory=list)
    unknown_classes: dict[str, int] = field(default_factory=dict)
    unclassified: int = 0
    purge: PurgeReport | None = None
    dry_run: bool = False
    targets: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"expired": self.expired, "no_longer_reproducible": self.no_longer_reproducible,
                "unknown_classes": self.unknown_classes, "unclassified": self.unclassified,
                "purge": None if self.purge is None else self.purge.to_dict(), "dry_run": self.dry_run,
                "targets": self.targets}


def policy(class_name: str, max_age: str | int, *, grace: str | int = 0) -> RetentionPolicy:
    """A policy from its text form (``events``, ``400d``, grace ``7d``), checked, not stored."""
    check_name("Retention class", class_name)
    return RetentionPolicy(class_name, parse_duration_days(max_age), parse_duration_days(grace))


class Retention:
    """Retention policies and their enforcement over dataset versions and the ``targets``."""

    def __init__(self, workspace: Workspace, *, targets: Sequence[RetentionTarget] = ()) -> None:
        self.ws = workspace
        self.targets = tuple(targets)

    def set_policy(self, class_name: str, max_age: str | int, *, grace: str | int = 0, actor: str = "api",
                   would_expire: Sequence[str] = ()) -> RetentionPolicy:
        """Create or change the policy of a retention class (e.g. ``events``, ``400d``); audited.

        ``would_expire`` (what :meth:`preview` showed before the change) goes into the audit record.
        """
        new = policy(class_name, max_age, grace=grace)
        now = self.ws.clock.now()
        before = self.effective_policies().get(class_name)
        with self.ws.metadata.begin() as conn:
            exists = conn.execute(select(retention_policies.c.class_name)
                                  .where(retention_policies.c.class_name == class_name)).first()
            values = {"max_age_days": new.max_age_days, "grace_days": new.grace_days, "updated_at": now}
            if exists is None:
                conn.execute(insert(retention_policies).values(class_name=class_name, **values))
            else:
                conn.execute(update(retention_policies).where(retention_policies.c.class_name == class_name)
                             .values(**values))
            conn.execute(insert(audit_log).values(
                at=now, actor=actor, action="data.retention.set", subject=class_name,
                detail={"from": None if before is None else before.to_dict(),
                        "to": {"max_age_days": new.max_age_days, "grace_days": new.grace_days},
                        "would_expire": list(would_expire)}))
        return replace(new, updated_at=now)

    def policies(self) -> dict[str, RetentionPolicy]:
        """The stored policies (set by someone)."""
        with self.ws.metadata.begin() as conn:
            rows = conn.execute(select(retention_policies).order_by(retention_policies.c.class_name)).mappings().all()
        return {r["class_name"]: RetentionPolicy(r["class_name"], r["max_age_days"], r["grace_days"], r["updated_at"])
                for r in rows}

    def effective_policies(self) -> dict[str, RetentionPolicy]:
        """The policies enforcement uses: the world's defaults, overridden by stored policies."""
        return dict(sorted((DEFAULT_POLICIES | self.policies()).items()))

    def preview(self, new: RetentionPolicy) -> RetentionReport:
        """What enforcement would expire in ``new``'s class if ``new`` were stored (stores nothing)."""
        return self.enforce(dry_run=True, overrides={new.class_name: new}, classes=[new.class_name])

    def enforce(self, *, dry_run: bool = False, overrides: Mapping[str, RetentionPolicy] | None = None,
                classes: Sequence[str] | None = None) -> RetentionReport:
        """Expire versions past their class's age, queue their purge, and purge what is due.

        ``dry_run`` writes nothing. ``overrides`` are what-if policies: only a dry run may use them (a
        policy changes through :meth:`set_policy`). ``classes`` limits the pass to those classes.
        """
        if overrides and not dry_run:
            raise InvalidInput("A what-if policy applies only to a dry run; store a policy with: yarnit data "
                               "retention set CLASS AGE (it shows what the policy would expire first).")
        now = self.ws.clock.now()
        policies = self.effective_policies() | dict(overrides or {})
        if classes is not None:
            policies = {k: v for k, v in policies.items() if k in classes}
        datasets = Datasets(self.ws)
        queue = PurgeQueue(self.ws)
        lineage = Lineage(self.ws)
        expired: list[str] = []
        models: list[str] = []
        unknown: dict[str, int] = {}
        unclassified = 0
        for version in datasets.list(include_inactive=False):
            if classes is not None and version.retention_class not in classes:
                continue
            if version.retention_class is None:
                unclassified += 1
                continue
            policy = policies.get(version.retention_class)
            if policy is None:
                unknown[version.retention_class] = unknown.get(version.retention_class, 0) + 1
                continue
            born = version.retain_from or version.created_at
            if now - born <= timedelta(days=policy.max_age_days):
                continue
            expired.append(version.ref)
            for node in lineage.downstream(Node("dataset_version", version.id)).of_kind("model_version"):
                ref = node.label.removeprefix("model:")  # the registry's NAME:vN
                if ref not in models:
                    models.append(ref)
            if dry_run:
                continue
            with self.ws.metadata.begin() as conn:
                current = conn.execute(select(dataset_versions.c.status).where(
                    dataset_versions.c.id == version.id)).scalar()
                if current != ACTIVE:
                    continue  # a concurrent pass got here first
                datasets.set_status(conn, version.id, "expired")
                for sha in (version.artifact_sha256, version.subjects_sha256):
                    if sha:
                        queue.schedule(conn, sha, reason="retention", request_id=None,
                                       purge_after=now + timedelta(days=policy.grace_days))
        targets: dict[str, list[str]] = {}
        for target in self.targets:
            target_policy = policies.get(target.retention_class)
            if target_policy is not None:
                cutoff = now - timedelta(days=target_policy.max_age_days)
                targets[target.name] = target.expire(cutoff, dry_run=dry_run)
        purge = None if dry_run else queue.purge_due()
        return RetentionReport(expired=expired, no_longer_reproducible=models, unknown_classes=unknown,
                               unclassified=unclassified, purge=purge, dry_run=dry_run, targets=targets)


__all__ = ["DEFAULT_POLICIES", "Retention", "RetentionPolicy", "RetentionReport", "RetentionTarget",
           "parse_duration_days", "policy"]
