"""Retention classes: how long each kind of data may be kept, enforced by the workspace clock.

A dataset version carries a retention class (``events``, ``golden``, …). A
policy gives each class a maximum age (``events: 400d``) and a grace period.
:meth:`Retention.enforce` marks versions older than their class allows as
``expired`` (no longer readable), queues their artifacts for purge after the
grace period, purges what is due, and reports models trained on expired data:
they still serve, but can no longer be reproduced from their inputs (the
Dialpad case of ch. 15). Age counts from the original ingest, also for
versions rewritten by ``forget``.

Example:
    >>> parse_duration_days("400d"), parse_duration_days("2w"), parse_duration_days("1y")
    (400, 14, 365)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update

from yarnit.core.errors import InvalidInput
from yarnit.core.ids import check_name
from yarnit.storage import Workspace
from yarnit.storage.schema import dataset_versions, retention_policies

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

    def to_dict(self) -> dict[str, Any]:
        return {"class": self.class_name, "max_age_days": self.max_age_days, "grace_days": self.grace_days,
                "updated_at": None if self.updated_at is None else self.updated_at.isoformat()}


@dataclass(frozen=True)
class RetentionReport:
    """What one enforcement pass did (or would do, with ``dry_run``)."""

    expired: list[str] = field(default_factory=list)
    no_longer_reproducible: list[str] = field(default_factory=list)
    unknown_classes: dict[str, int] = field(default_factory=dict)
    unclassified: int = 0
    purge: PurgeReport | None = None
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"expired": self.expired, "no_longer_reproducible": self.no_longer_reproducible,
                "unknown_classes": self.unknown_classes, "unclassified": self.unclassified,
                "purge": None if self.purge is None else self.purge.to_dict(), "dry_run": self.dry_run}


class Retention:
    """Retention policies and their enforcement."""

    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace

    def set_policy(self, class_name: str, max_age: str | int, *, grace: str | int = 0) -> RetentionPolicy:
        """Create or change the policy of a retention class (e.g. ``events``, ``400d``)."""
        check_name("Retention class", class_name)
        days, grace_days = parse_duration_days(max_age), parse_duration_days(grace)
        now = self.ws.clock.now()
        with self.ws.metadata.begin() as conn:
            exists = conn.execute(select(retention_policies.c.class_name)
                                  .where(retention_policies.c.class_name == class_name)).first()
            values = {"max_age_days": days, "grace_days": grace_days, "updated_at": now}
            if exists is None:
                conn.execute(insert(retention_policies).values(class_name=class_name, **values))
            else:
                conn.execute(update(retention_policies).where(retention_policies.c.class_name == class_name)
                             .values(**values))
        return RetentionPolicy(class_name, days, grace_days, now)

    def policies(self) -> dict[str, RetentionPolicy]:
        with self.ws.metadata.begin() as conn:
            rows = conn.execute(select(retention_policies).order_by(retention_policies.c.class_name)).mappings().all()
        return {r["class_name"]: RetentionPolicy(r["class_name"], r["max_age_days"], r["grace_days"], r["updated_at"])
                for r in rows}

    def enforce(self, *, dry_run: bool = False) -> RetentionReport:
        """Expire versions past their class's age, queue their purge, and purge what is due."""
        now = self.ws.clock.now()
        policies = self.policies()
        datasets = Datasets(self.ws)
        queue = PurgeQueue(self.ws)
        lineage = Lineage(self.ws)
        expired: list[str] = []
        models: list[str] = []
        unknown: dict[str, int] = {}
        unclassified = 0
        for version in datasets.list(include_inactive=False):
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
        purge = None if dry_run else queue.purge_due()
        return RetentionReport(expired=expired, no_longer_reproducible=models, unknown_classes=unknown,
                               unclassified=unclassified, purge=purge, dry_run=dry_run)


__all__ = ["Retention", "RetentionPolicy", "RetentionReport", "parse_duration_days"]
