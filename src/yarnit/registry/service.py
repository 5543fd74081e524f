"""ModelRegistry: register versions, move aliases (audited), roll back in one step.

Every alias move is one transaction that updates the pointer and appends an
audit event, so "which version was in production on day D" and "roll back"
are answered from the same history (the gap MLflow users report in mlflow#2169).

Before any move the target's artifact is read back, checked against its
sha256 and loaded (:meth:`ModelRegistry.check_servable`): an alias is never
moved onto a version that could not serve, and nothing is audited then.
Operators' promotions (CLI, HTTP) to a gated alias (``production``,
``canary``) also need a blessed, validity-checked evaluation of the exact
bytes, unless forced with a reason, which the audit trail keeps.

The error-budget policy (:mod:`yarnit.monitoring.policy`) is a *release
gate*: while a model's budget is spent, a promotion to a gated alias is
refused unless overridden with a reason (``override_reason``), audited as
``override-promote`` in the alias history and as ``error_budget.override`` in
the audit log, with the actor and the refusal. By default the gate is the
workspace's own SLO file (``$YARNIT_HOME/slos.yaml``): a library caller is
gated exactly like the CLI and the HTTP control plane, and a workspace with
no SLO file has no gate. Rollbacks and moves back to a version the alias
served before are never refused: a spent budget must never block the fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy import Connection, RowMapping, and_, func, insert, select, update

from yarnit.core.errors import IntegrityError, InvalidInput
from yarnit.core.hashing import sha256_bytes
from yarnit.core.ids import check_name, check_version, new_id
from yarnit.core.text import check_plain_text
from yarnit.storage import ArtifactNotFound, Workspace, insert_ignore
from yarnit.storage.schema import (
    alias_events,
    aliases,
    audit_log,
    evaluations,
    lineage_edges,
    model_versions,
    models,
)

from .errors import (
    AliasNotFound,
    ModelNotFound,
    ModelVersionNotFound,
    NotBlessed,
    NothingToRollBackTo,
    ReleaseHalted,
    TaintedVersion,
    UnservableVersion,
)
from .formats import Predictor, load_predictor
from .models import STANDARD_ALIASES, AliasEvent, ArtifactFormat, ModelVersion


def _to_version(row: RowMapping) -> ModelVersion:
    return ModelVersion(
        id=row["id"],
        model_name=row["model_name"],
        version=row["version"],
        artifact_sha256=row["artifact_sha256"],
        artifact_format=ArtifactFormat(row["artifact_format"]),
        created_at=row["created_at"],
        signature=row["signature"] or {},
        metrics=row["metrics"] or {},
        params=row["params"] or {},
        dataset_version_ids=tuple(row["dataset_version_ids"] or ()),
        run_id=row["run_id"],
        code_version=row["code_version"],
        seed=row["seed"],
        tainted=bool(row["tainted"]),
        taint_reason=row["taint_reason"],
    )


def rollback_candidates(history: Sequence[AliasEvent], current: int) -> list[int]:
    """Versions a rollback of an alias may go to, best first (the alias history replayed as a stack).

    A move pushes its target; a rollback pops back to its target. So repeated
    rollbacks keep going back in time and never "roll back" forward.
    """
    stack: list[int] = []
    for event in history:
        if event.to_version is None:
            continue
        if event.action == "rollback":
            while stack and stack[-1] != event.to_version:
                stack.pop()
            if not stack:
                stack.append(event.to_version)
        else:
            stack.append(event.to_version)
    return [number for number in reversed(stack[:-1]) if number != current]


def _lineage(workspace: Workspace) -> Any:
    from yarnit.data.lineage import (
        Lineage,  # local: yarnit.data imports the registry (forget taints versions)
    )

    return Lineage(workspace)


# Aliases that take traffic: an operator's promotion to them needs a blessed evaluation (or --force --reason).
GATED_ALIASES = ("production", "canary")
FORCED_ACTION = "force-promote"
OVERRIDE_ACTION = "override-promote"  # a promotion let through a halted release (a spent error budget)
# release_gate's default: the error-budget policy of the workspace's SLO file, when there is one.
WORKSPACE_GATE = "workspace"


def check_alias(alias: str) -> str:
    if not isinstance(alias, str) or not alias.isidentifier() or not alias.islower() or len(alias) > 32:
        raise InvalidInput(
            f"Alias {alias!r} is not valid: use a short lowercase word such as "
            f"{', '.join(STANDARD_ALIASES)}."
        )
    return alias


class ReleaseGate(Protocol):
    """Something that may halt releases of a model: the error-budget policy (yarnit.monitoring.policy)."""

    def refusal(self, model_name: str, alias: str) -> str | None:
        """Why changes to ``model_name``'s ``alias`` are halted now, or None."""
        ...


class ModelRegistry:
    """Models, their versions and aliases, stored in the workspace's metadata store.

    ``release_gate`` is asked before every promotion to a gated alias; a refusal stops it unless overridden
    with a reason, which is audited. The default, :data:`WORKSPACE_GATE`, is the error-budget policy of the
    workspace's SLO file (none when no file was applied); ``None`` turns the gate off (a test, a tool that
    only stages aliases).
    """

    def __init__(self, workspace: Workspace, *, release_gate: ReleaseGate | str | None = WORKSPACE_GATE) -> None:
        if isinstance(release_gate, str) and release_gate != WORKSPACE_GATE:
            raise InvalidInput(f"release_gate must be a ReleaseGate, None or {WORKSPACE_GATE!r}; got {release_gate!r}.")
        self.ws = workspace
        self.release_gate = release_gate

    def gate(self) -> ReleaseGate | None:
        """The release gate in force now (the workspace's SLO file is read at each call: apply takes effect at once)."""
        if self.release_gate == WORKSPACE_GATE:
            from yarnit.monitoring.policy import (
                workspace_policy,  # local: monitoring reads the serving log
            )

            return workspace_policy(self.ws)
        return self.release_gate  # type: ignore[return-value]

    def has_gate(self) -> bool:
        """Whether a release gate is configured (for the default: the workspace has an SLO file)."""
        if self.release_gate == WORKSPACE_GATE:
            from yarnit.monitoring.workspace import slo_path

            return slo_path(self.ws.home).is_file()
        return self.release_gate is not None

    def rollback_target(self, model_name: str, alias: str) -> int | None:
        """The version :meth:`roll_back` would move ``alias`` to now (None when there is none)."""
        current = self.aliases(model_name).get(alias)
        if current is None:
            return None
        for number in rollback_candidates(self.history(model_name, alias), current):
            if not self.get(model_name, number).tainted:
                return number
        return None

    def release_refusal(self, model_name: str, version: int, alias: str) -> str | None:
        """Why the release gate halts moving ``alias`` to ``version`` now, or None.

        Never halted: a non-gated alias, and a move to the version :meth:`roll_back` would choose (a rollback
        by another name; :meth:`promote` audits it as one): a spent budget must not block the fix.
        """
        if alias not in GATED_ALIASES or not self.has_gate():
            return None
        if version == self.rollback_target(model_name, alias):
            return None
        gate = self.gate()
        return None if gate is None else gate.refusal(model_name, alias)

    # -- versions ----------------------------------------------------------
    def register(
        self,
        model_name: str,
        artifact: bytes,
        artifact_format: ArtifactFormat,
        *,
        signature: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        dataset_version_ids: Sequence[str] = (),
        run_id: str | None = None,
        code_version: str | None = None,
        seed: int | None = None,
        description: str = "",
    ) -> ModelVersion:
        """Store the artifact (content-addressed) and record a new version of ``model_name``.

        The artifact is written before the row, so a crash in between leaves
        at most an unreferenced blob, never a row pointing at missing bytes.
        """
        check_name("Model", model_name)
        fmt = ArtifactFormat(artifact_format)
        load_predictor(artifact, fmt)  # a version that cannot load is never registered
        ref = self.ws.artifacts.put_bytes(artifact)
        now = self.ws.clock.now()
        with self.ws.metadata.begin() as conn:
            conn.execute(insert_ignore(conn, models).values(name=model_name, description=description,
                                                            created_at=now))
            self._lock_model(conn, model_name)
            number = (
                conn.execute(
                    select(func.max(model_versions.c.version)).where(model_versions.c.model_name == model_name)
                ).scalar()
                or 0
            ) + 1
            version_id = new_id("mv", self.ws.clock)
            conn.execute(
                insert(model_versions).values(
                    id=version_id,
                    model_name=model_name,
                    version=number,
                    artifact_sha256=ref.sha256,
                    artifact_format=fmt.value,
                    signature=signature or {},
                    metrics=metrics or {},
                    params=params or {},
                    dataset_version_ids=list(dataset_version_ids),
                    run_id=run_id,
                    code_version=code_version,
                    seed=seed,
                    created_at=now,
                    tainted=False,
                )
            )
            for dataset_id in dataset_version_ids:
                conn.execute(
                    insert(lineage_edges).values(
                        src_kind="dataset_version",
                        src_id=dataset_id,
                        dst_kind="model_version",
                        dst_id=version_id,
                        relation="trained_on",
                        created_at=now,
                    )
                )
            _lineage(self.ws).record_feature_inputs(conn, version_id, signature or {})  # feature views → version
        return self.get(model_name, number)

    def _lock_model(self, conn: Connection, model_name: str) -> None:
        # Serialise writers of one model: a row lock on PostgreSQL; SQLite's
        # write transaction already serialises (BEGIN takes the lock on first write).
        if conn.dialect.name == "postgresql":
            conn.execute(select(models.c.name).where(models.c.name == model_name).with_for_update())

    def get(self, model_name: str, version: int) -> ModelVersion:
        check_version("Model", model_name, version)  # a 20-digit number is a clear error, not a DB overflow
        with self.ws.metadata.begin() as conn:
            row = conn.execute(
                select(model_versions).where(
                    and_(model_versions.c.model_name == model_name, model_versions.c.version == version)
                )
            ).mappings().first()
        if row is None:
            if not self.exists(model_name):
                raise ModelNotFound(model_name)
            raise ModelVersionNotFound(model_name, version)
        return _to_version(row)

    def exists(self, model_name: str) -> bool:
        with self.ws.metadata.begin() as conn:
            return conn.execute(select(models.c.name).where(models.c.name == model_name)).first() is not None

    def versions(self, model_name: str) -> list[ModelVersion]:
        with self.ws.metadata.begin() as conn:
            rows = conn.execute(
                select(model_versions)
                .where(model_versions.c.model_name == model_name)
                .order_by(model_versions.c.version)
            ).mappings().all()
        if not rows and not self.exists(model_name):
            raise ModelNotFound(model_name)
        return [_to_version(r) for r in rows]

    def newest(self, model_name: str) -> ModelVersion | None:
        """The newest registered version (``versions(...)[-1]`` without reading the others), or None."""
        with self.ws.metadata.begin() as conn:
            row = conn.execute(
                select(model_versions)
                .where(model_versions.c.model_name == model_name)
                .order_by(model_versions.c.version.desc())
                .limit(1)
            ).mappings().first()
        if row is None:
            if not self.exists(model_name):
                raise ModelNotFound(model_name)
            return None
        return _to_version(row)

    def list_models(self) -> list[dict[str, Any]]:
        with self.ws.metadata.begin() as conn:
            rows = conn.execute(
                select(
                    models.c.name,
                    models.c.description,
                    models.c.created_at,
                    func.count(model_versions.c.id).label("n_versions"),
                    func.max(model_versions.c.version).label("latest_version"),
                )
                .select_from(models.outerjoin(model_versions, model_versions.c.model_name == models.c.name))
                .group_by(models.c.name, models.c.description, models.c.created_at)
                .order_by(models.c.name)
            ).mappings().all()
            alias_rows = conn.execute(select(aliases)).mappings().all()
        by_model: dict[str, dict[str, int]] = {}
        for a in alias_rows:
            by_model.setdefault(a["model_name"], {})[a["alias"]] = a["version"]
        return [dict(r) | {"aliases": by_model.get(r["name"], {})} for r in rows]

    def taint(self, model_name: str, version: int, reason: str) -> ModelVersion:
        """Mark a version as built from data that must not be used (blocks promotion)."""
        self.get(model_name, version)
        with self.ws.metadata.begin() as conn:
            conn.execute(
                update(model_versions)
                .where(and_(model_versions.c.model_name == model_name, model_versions.c.version == version))
                .values(tainted=True, taint_reason=reason)
            )
        return self.get(model_name, version)

    # -- aliases -----------------------------------------------------------
    def aliases(self, model_name: str) -> dict[str, int]:
        with self.ws.metadata.begin() as conn:
            rows = conn.execute(select(aliases).where(aliases.c.model_name == model_name)).mappings().all()
        return {r["alias"]: r["version"] for r in rows}

    def resolve(self, model_name: str, alias: str) -> ModelVersion:
        """The version an alias points at now."""
        with self.ws.metadata.begin() as conn:
            number = conn.execute(
                select(aliases.c.version).where(and_(aliases.c.model_name == model_name, aliases.c.alias == alias))
            ).scalar()
        if number is None:
            if not self.exists(model_name):
                raise ModelNotFound(model_name)
            raise AliasNotFound(model_name, alias)
        return self.get(model_name, number)

    def set_alias(
        self, model_name: str, alias: str, version: int, *, actor: str = "cli", reason: str = "", action: str = "set",
        audit: tuple[str, dict[str, Any]] | None = None,
    ) -> AliasEvent:
        """Point ``alias`` at ``version`` (one transaction: pointer + audit event), if that version can serve.

        ``audit`` (action, detail) also writes a row of the workspace audit log in the same transaction.
        """
        check_alias(alias)
        check_plain_text("reason", reason)  # printed later on operators' terminals: no escape sequences
        target = self.get(model_name, version)
        if target.tainted:
            raise TaintedVersion(target.ref, target.taint_reason)
        self.check_servable(target, alias)
        now = self.ws.clock.now()
        with self.ws.metadata.begin() as conn:
            self._lock_model(conn, model_name)
            current = conn.execute(
                select(aliases.c.version).where(and_(aliases.c.model_name == model_name, aliases.c.alias == alias))
            ).scalar()
            if current is None:
                conn.execute(
                    insert(aliases).values(model_name=model_name, alias=alias, version=version, updated_at=now)
                )
            else:
                conn.execute(
                    update(aliases)
                    .where(and_(aliases.c.model_name == model_name, aliases.c.alias == alias))
                    .values(version=version, updated_at=now)
                )
            event = AliasEvent(model_name, alias, current, version, action, actor, reason, now)
            moved = conn.execute(insert(alias_events).values(**event.__dict__)).inserted_primary_key[0]
            if audit is not None:
                conn.execute(insert(audit_log).values(at=now, actor=actor, action=audit[0],
                                                      subject=f"model:{model_name}:{alias}",
                                                      detail=audit[1] | {"from_version": current,
                                                                         "to_version": version}))
            _lineage(self.ws).record_deployment(conn, target.id, moved)  # lineage: version → deployment
        return event

    def check_servable(self, version: ModelVersion, alias: str = "production") -> None:
        """Raise :class:`UnservableVersion` unless the artifact is stored, matches its sha256 and loads."""
        sha = version.artifact_sha256
        try:
            data = self.ws.artifacts.get_bytes(sha)
        except ArtifactNotFound:
            raise UnservableVersion(version.model_name, version.version, alias, sha,
                                    "is missing from the artifact store") from None
        except IntegrityError:
            raise UnservableVersion(version.model_name, version.version, alias, sha,
                                    "is corrupted (its bytes no longer match that sha256)") from None
        try:
            load_predictor(data, version.artifact_format)
        except Exception as exc:  # any failure to load means it cannot serve; say which
            raise UnservableVersion(version.model_name, version.version, alias, sha,
                                    f"does not load ({type(exc).__name__}: {exc})") from None

    def blessing_problem(self, version: ModelVersion) -> str | None:
        """Why ``version`` is not blessed for promotion, or None when its newest gate verdict blessed it.

        The verdict is the newest one recorded for an evaluation of exactly these bytes (the gate step of a
        pipeline, or ``yarnit eval gate``), and that evaluation's validity check must have passed.
        """
        with self.ws.metadata.begin() as conn:
            row = conn.execute(
                select(evaluations.c.id, evaluations.c.blessed, evaluations.c.validity_passed, evaluations.c.verdict)
                .where(and_(evaluations.c.model_name == version.model_name,
                            evaluations.c.artifact_sha256 == version.artifact_sha256,
                            evaluations.c.blessed.is_not(None)))
                .order_by(evaluations.c.gated_at.desc(), evaluations.c.id.desc())
                .limit(1)
            ).mappings().first()
        if row is None:
            return "no gate verdict has been recorded for an evaluation of this version"
        if not row["blessed"]:
            reasons = list((row["verdict"] or {}).get("reasons") or [])
            first = f"; first reason: {reasons[0]}" if reasons else ""
            return f"its newest gate verdict ({row['id']}) did not bless it ({len(reasons)} reasons{first})"
        if row["validity_passed"] is not True:
            state = "failed" if row["validity_passed"] is False else "was not run"
            return f"the validity check of its blessed evaluation {row['id']} {state}"
        return None

    def promote(self, model_name: str, version: int, *, alias: str = "production", actor: str = "cli",
                reason: str = "", require_blessing: bool = False, force: bool = False,
                override_reason: str = "") -> AliasEvent:
        """Point ``alias`` (default ``production``) at ``version``.

        With ``require_blessing`` (the CLI and the HTTP control plane set it), a move of a gated alias
        (production, canary) needs :meth:`blessing_problem` to find nothing, unless ``force`` is given with a
        ``reason``: the event is then audited as ``force-promote`` with what was overridden. (Library callers
        that stage aliases, such as tests and the pipelines, which judge with their own gate step, leave it
        off; exit: on by default once every test fixture builds evaluated versions.)

        Whatever ``require_blessing`` says, the release gate (:meth:`release_refusal`: the error-budget
        policy) is asked; a refusal raises :class:`ReleaseHalted` unless ``override_reason`` says why this
        change must go ahead anyway (a P0 or a security fix). ``force`` does not override it: skipping an
        evaluation and releasing into a spent budget are two decisions. An override is audited as
        ``override-promote`` (the reason carries the actor's reason and the refusal) and as an
        ``error_budget.override`` row of the audit log.
        """
        action = "promote"
        if force and not reason.strip():
            raise InvalidInput(f"A forced promotion of {model_name} v{version} needs a reason for the audit trail: "
                               "add --reason '…' (JSON: \"reason\").")
        check_plain_text("override_reason", override_reason)
        if require_blessing and alias in GATED_ALIASES:
            problem = self.blessing_problem(self.get(model_name, version))
            if problem is not None:
                if not force:
                    raise NotBlessed(model_name, version, alias, problem)
                action, reason = FORCED_ACTION, f"{reason.strip()} [forced: {problem}]"
            elif force:
                action = FORCED_ACTION
        audit = None
        if alias in GATED_ALIASES and self.has_gate() and version == self.rollback_target(model_name, alias):
            # Back to the previous version under a release gate: a rollback (never refused), and audited as one,
            # so that the version it leaves is not a "previous version" a promotion could flip back to.
            action = "rollback"
            reason = f"{reason.strip()} [rollback to the previous version: never halted by the release gate]".strip()
        halt = self.release_refusal(model_name, version, alias) if action != "rollback" else None
        if halt is not None:
            if not override_reason.strip():
                raise ReleaseHalted(model_name, version, alias, halt)
            why = override_reason.strip()
            action = OVERRIDE_ACTION
            reason = f"{reason.strip()} [override by {actor}: {why}; release halted: {halt}]".strip()
            audit = ("error_budget.override", {"model": model_name, "alias": alias, "version": version,
                                               "override_reason": why, "refusal": halt})
        return self.set_alias(model_name, alias, version, actor=actor, reason=reason, action=action, audit=audit)

    def roll_back(self, model_name: str, *, alias: str = "production", actor: str = "cli",
                  reason: str = "") -> AliasEvent:
        """Move ``alias`` back to the version it pointed at before its current one.

        The alias history is replayed as a stack (a move pushes, a rollback pops
        back to its target), so repeated rollbacks keep going back in time and
        never "roll back" forward. Tainted versions are skipped; a target whose
        artifact cannot serve is refused (:class:`UnservableVersion`), never skipped silently.
        """
        current = self.resolve(model_name, alias).version
        for number in rollback_candidates(self.history(model_name, alias), current):
            candidate = self.get(model_name, number)
            if not candidate.tainted:
                return self.set_alias(model_name, alias, number, actor=actor,
                                      reason=reason or f"roll back from v{current}", action="rollback")
        raise NothingToRollBackTo(model_name, alias)

    def restore_artifact(self, model_name: str, version: int, data: bytes) -> ModelVersion:
        """Put back a version's missing or corrupted artifact from a copy of the very same bytes.

        The copy must hash to the sha256 the version records and load; a corrupted file in the store is
        kept beside it as ``<name>.corrupt`` for inspection, and the good bytes take its place.
        """
        target = self.get(model_name, version)
        sha = target.artifact_sha256
        actual = sha256_bytes(data)
        if actual != sha:
            raise InvalidInput(f"The copy has sha256 {actual}, but {target.ref}'s artifact is {sha}: it is not the "
                               "same model. Find the copy with the recorded sha256 (yarnit models show "
                               f"{model_name} --json).")
        load_predictor(data, target.artifact_format)
        path = self.ws.artifacts.path_for(sha)
        try:
            self.ws.artifacts.verify(sha)
        except ArtifactNotFound:
            pass
        except IntegrityError:
            path.replace(path.with_name(path.name + ".corrupt"))
        self.ws.artifacts.put_bytes(data)
        self.check_servable(target)
        return target

    def history(self, model_name: str, alias: str | None = None) -> list[AliasEvent]:
        """Every audited alias move of ``model_name``, oldest first."""
        query = select(alias_events).where(alias_events.c.model_name == model_name)
        if alias is not None:
            query = query.where(alias_events.c.alias == alias)
        with self.ws.metadata.begin() as conn:
            rows = conn.execute(query.order_by(alias_events.c.id)).mappings().all()
        return [
            AliasEvent(r["model_name"], r["alias"], r["from_version"], r["to_version"], r["action"], r["actor"],
                       r["reason"], r["at"])
            for r in rows
        ]

    def version_at(self, model_name: str, alias: str, when: Any) -> int | None:
        """Which version ``alias`` pointed at, at time ``when`` (None if unset then)."""
        result = None
        for event in self.history(model_name, alias):
            if event.at <= when:
                result = event.to_version
        return result

    # -- loading -----------------------------------------------------------
    def load(self, version: ModelVersion) -> Predictor:
        """Load a version's artifact, verifying its sha256 first."""
        data = self.ws.artifacts.get_bytes(version.artifact_sha256)
        return load_predictor(data, version.artifact_format)


__all__ = ["FORCED_ACTION", "GATED_ALIASES", "OVERRIDE_ACTION", "WORKSPACE_GATE", "ModelRegistry", "check_alias",
           "rollback_candidates"]
