"""Emergency actions (book CH10-R3): stop training, fall back, roll back, remove bad data, roll through.

Each is one plain function on a :class:`~yarnit.storage.Workspace` (one CLI
command, ``yarnit emergency …``, and one HTTP call, ``POST /api/…/actions/…``),
takes the ``actor`` and a required one-line ``reason``, writes one row of the
workspace ``audit_log`` (``action`` ``emergency.<name>``) in the same
transaction as the change it makes, and returns a JSON-able dict: what
changed, from and to, the audit row's id, and how to undo it. An action that
finds the switch already where it was asked to go changes nothing, audits
nothing and says so (``changed: false``), so a retried call is harmless.

==================  =========================================  ======================================
action              what changes                               its inverse
==================  =========================================  ======================================
``stop_training``   a ``training_freezes`` row: the pipelines'  ``resume_training`` (deletes the row)
                    promote step (and the loop, which asks
                    :func:`training_frozen`) no longer move
                    ``production``; versions are still
                    registered, so nothing trained is lost
``fall_back``       the model's traffic policy                  ``restore_model``
                    ``force_fallback``: every server answers
                    with the declared fallback within its
                    policy refresh interval (0.25 s default)
``roll_back``       ``production`` to the version before it     roll forward: ``yarnit models promote
                    (the registry's rollback stack; never       MODEL N`` (a promotion, so gated as
                    refused by the error-budget gate)           usual)
``remove_bad_data`` a new dataset version without the rows of   train on the old version, which stays
                    a time window (lineage edge from the old    active and untouched (``dataset_version
                    one), and a retrain request per model       =N`` in the pipeline config)
                    trained on it (:func:`pending_retrains`)
``roll_through``    alerts acknowledged: not re-sent (nor kept  ``unacknowledge``; an ack ends anyway
                    alive in Alertmanager) until they resolve   when its alert resolves
==================  =========================================  ======================================

Why a freeze refuses promotion but not registration: the book's "stop
training" is *freeze pushes*, no new model reaching serving. Registering a
version serves nothing, keeps the evidence (what the frozen loop would have
pushed), and lets the operator promote it by hand after looking. Operators'
own promotions (``yarnit models promote``) are not refused by a freeze: the
freeze stops the automation, not the person who reads this switch's reason.

Why fall back is a column of the traffic policy: the data plane already
re-reads every model's policy on a background thread (``Router.refresh``),
so the switch reaches every running server with no new polling, and the
request path pays one set lookup. The answers stay labelled
(``served_by: fallback``, ``reason: forced``, the fallback's version or 0 for
the heuristic) and go to the prediction log as fallbacks, so availability
SLOs count them. A model whose owner declared no fallback (no ``fallback``
alias, no heuristic prior on its production version) is refused: serving
would only answer 503s, never a made-up number.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Connection, and_, delete, insert, select, update

from yarnit.core.errors import Conflict, InvalidInput, NotFound
from yarnit.core.ids import check_name, new_id
from yarnit.core.text import check_plain_text
from yarnit.registry import ModelRegistry, NothingToRollBackTo
from yarnit.storage import Workspace
from yarnit.storage.schema import audit_log, model_versions, retrain_requests, training_freezes

ACTION_PREFIX = "emergency."
MAX_REASON = 1000
HISTORY_SCAN = 10_000


class FallbackNotDeclared(Conflict):
    """``fall_back`` on a model whose owner declared no fallback: serving would have nothing to answer with."""

    def __init__(self, model: str) -> None:
        super().__init__(
            f"Model {model!r} declares no fallback: no version has the 'fallback' alias and its production version "
            "has no heuristic prior ('fallback' in its signature, or a base rate in its metrics), so falling back "
            f"would answer every request with a 503. Declare one first (yarnit models promote {model} N --alias "
            "fallback), or roll back instead (yarnit emergency roll-back MODEL --reason '…').")
        self.model = model


# -- shared -------------------------------------------------------------------------------------
def _reason(reason: str) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidInput("An emergency action needs a reason for the audit trail: add --reason '…' (JSON: "
                           "\"reason\"), e.g. --reason 'canary burning the availability budget'.")
    if len(reason) > MAX_REASON:
        raise InvalidInput(f"The reason is {len(reason)} characters; keep it to {MAX_REASON} (one line).")
    return check_plain_text("reason", reason).strip()


def _audit(conn: Connection, ws: Workspace, *, actor: str, action: str, subject: str,
           detail: dict[str, Any]) -> int:
    row = conn.execute(insert(audit_log).values(at=ws.clock.now(), actor=actor, action=ACTION_PREFIX + action,
                                                subject=subject, detail=detail))
    return int(row.inserted_primary_key[0])


def _model(ws: Workspace, model: str) -> ModelRegistry:
    registry = ModelRegistry(ws)
    registry.versions(model)  # ModelNotFound (404) for an unknown model, with the way to list them
    return registry


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


# -- stop training ------------------------------------------------------------------------------
def stop_training(ws: Workspace, model: str, *, actor: str, reason: str) -> dict[str, Any]:
    """Freeze pushes of ``model``: no pipeline or loop moves its ``production`` until :func:`resume_training`.

    A model with no version yet may be frozen too (its first pipeline run then registers but does not
    promote); the answer says so (``registered: false``), so a mistyped name is visible.
    """
    why = _reason(reason)
    check_name("Model", model)
    registered = ModelRegistry(ws).exists(model)
    with ws.metadata.begin() as conn:
        row = conn.execute(select(training_freezes).where(training_freezes.c.model_name == model)
                           .with_for_update()).mappings().first()
        if row is not None:
            return {"action": "stop_training", "model": model, "changed": False, "frozen": True,
                    "reason": row["reason"], "frozen_by": row["frozen_by"], "frozen_at": _iso(row["frozen_at"]),
                    "audit_id": row["audit_id"], "undo": f"yarnit emergency resume-training {model} --reason '…'"}
        audit_id = _audit(conn, ws, actor=actor, action="stop_training", subject=f"model:{model}",
                          detail={"model": model, "reason": why, "from": {"frozen": False}, "to": {"frozen": True}})
        conn.execute(insert(training_freezes).values(model_name=model, reason=why, frozen_by=actor,
                                                     frozen_at=ws.clock.now(), audit_id=audit_id))
    return {"action": "stop_training", "model": model, "changed": True, "from": {"frozen": False},
            "to": {"frozen": True}, "registered": registered, "reason": why, "audit_id": audit_id,
            "undo": f"yarnit emergency resume-training {model} --reason '…'"}


def resume_training(ws: Workspace, model: str, *, actor: str, reason: str) -> dict[str, Any]:
    """Lift :func:`stop_training`: pipelines and the loop may promote ``model`` again."""
    why = _reason(reason)
    check_name("Model", model)
    with ws.metadata.begin() as conn:
        row = conn.execute(select(training_freezes).where(training_freezes.c.model_name == model)
                           .with_for_update()).mappings().first()
        if row is None:
            return {"action": "resume_training", "model": model, "changed": False, "frozen": False,
                    "audit_id": None}
        was = {"frozen": True, "reason": row["reason"], "frozen_by": row["frozen_by"],
               "frozen_at": _iso(row["frozen_at"])}
        audit_id = _audit(conn, ws, actor=actor, action="resume_training", subject=f"model:{model}",
                          detail={"model": model, "reason": why, "from": was, "to": {"frozen": False}})
        conn.execute(delete(training_freezes).where(training_freezes.c.model_name == model))
    return {"action": "resume_training", "model": model, "changed": True, "from": was, "to": {"frozen": False},
            "reason": why, "audit_id": audit_id}


def training_frozen(ws: Workspace, model: str) -> str | None:
    """Why pushes of ``model`` are frozen ("REASON (frozen by ACTOR at TIME)"), or None; never raises for a name."""
    with ws.metadata.begin() as conn:
        row = conn.execute(select(training_freezes).where(training_freezes.c.model_name == model)).mappings().first()
    if row is None:
        return None
    return f"{row['reason']} (frozen by {row['frozen_by']} at {row['frozen_at'].isoformat(timespec='seconds')})"


# -- fall back ----------------------------------------------------------------------------------
def declared_fallback(ws: Workspace, model: str) -> dict[str, Any] | None:
    """What would answer ``model``'s requests when it falls back (serving's chain), or None if nothing is declared.

    The ``fallback`` alias's version when set (and not tainted), else the
    heuristic prior of the production version (``HeuristicFallback``).
    """
    from yarnit.serving.fallback import HeuristicFallback  # local: serving is heavier than this module needs

    registry = _model(ws, model)
    aliases = registry.aliases(model)
    if "fallback" in aliases:
        version = registry.get(model, aliases["fallback"])
        if not version.tainted:
            return {"kind": "alias", "alias": "fallback", "version": version.version}
    production = aliases.get("production")
    if production is not None:
        version = registry.get(model, production)
        heuristic = HeuristicFallback.for_version(version.signature, version.metrics)
        if heuristic.available:
            return {"kind": "heuristic", "source": heuristic.source, "of_version": production}
    return None


def fall_back(ws: Workspace, model: str, *, actor: str, reason: str) -> dict[str, Any]:
    """Serve ``model``'s declared fallback instead of the model, on every server, until :func:`restore_model`."""
    from yarnit.serving.router import TrafficPolicyStore

    why = _reason(reason)
    fallback = declared_fallback(ws, model)
    if fallback is None:
        raise FallbackNotDeclared(model)
    before, audit_id = TrafficPolicyStore(ws).set_force_fallback(
        model, True, actor=actor, audit=("emergency.fall_back", {"model": model, "reason": why, "fallback": fallback}))
    return {"action": "fall_back", "model": model, "changed": audit_id is not None,
            "from": {"force_fallback": before}, "to": {"force_fallback": True}, "fallback": fallback, "reason": why,
            "audit_id": audit_id, "undo": f"yarnit emergency restore {model} --reason '…'"}


def restore_model(ws: Workspace, model: str, *, actor: str, reason: str) -> dict[str, Any]:
    """Undo :func:`fall_back`: the model answers again (its production version, canary split as before)."""
    from yarnit.serving.router import TrafficPolicyStore

    why = _reason(reason)
    _model(ws, model)
    before, audit_id = TrafficPolicyStore(ws).set_force_fallback(
        model, False, actor=actor, audit=("emergency.restore_model", {"model": model, "reason": why}))
    return {"action": "restore_model", "model": model, "changed": audit_id is not None,
            "from": {"force_fallback": before}, "to": {"force_fallback": False}, "reason": why,
            "audit_id": audit_id}


# -- roll back ----------------------------------------------------------------------------------
def roll_back(ws: Workspace, model: str, *, actor: str, reason: str) -> dict[str, Any]:
    """Move ``production`` back to the version before it (the registry's rollback rule), audited; never gated.

    The target is :meth:`ModelRegistry.rollback_target` (the alias history
    replayed as a stack, tainted versions skipped), moved like ``yarnit models
    rollback`` does: one transaction with the alias event and this action's
    audit row. The error-budget gate is not asked: a spent budget must never
    block the fix. Roll forward with ``yarnit models promote MODEL N``.
    """
    why = _reason(reason)
    registry = _model(ws, model)
    current = registry.resolve(model, "production").version  # AliasNotFound when nothing serves
    target = registry.rollback_target(model, "production")
    if target is None:
        raise NothingToRollBackTo(model, "production")
    event = registry.set_alias(model, "production", target, actor=actor, reason=why, action="rollback",
                               audit=("emergency.roll_back", {"model": model, "reason": why}))
    with ws.metadata.begin() as conn:  # the row set_alias wrote in its transaction
        audit_id = conn.execute(select(audit_log.c.id).where(and_(
            audit_log.c.action == "emergency.roll_back", audit_log.c.subject == f"model:{model}:production"))
            .order_by(audit_log.c.id.desc()).limit(1)).scalar()
    return {"action": "roll_back", "model": model, "changed": True, "alias": "production",
            "from": {"version": current}, "to": {"version": event.to_version}, "reason": why, "audit_id": audit_id,
            "undo": f"yarnit models promote {model} {current} --reason '…'"}


# -- abort a canary -----------------------------------------------------------------------------
def abort_canary(ws: Workspace, model: str, *, actor: str, reason: str) -> dict[str, Any]:
    """Take the canary's traffic away: canary share 0, the ``canary`` alias back to production's version.

    The mitigation of a burning canary (``roll_back`` would move production, which is not what burns). A running
    staged rollout of ``model`` is ended as aborted first (its own audit row), so no later step raises the
    share again. Lowering the share is never refused by the error-budget gate. Audited as
    ``emergency.abort_canary`` with the share and alias it replaced (``from``): undo by pointing the canary
    back and raising the share (``yarnit rollout start MODEL --version V``, or the traffic policy).
    """
    from yarnit.serving.router import TrafficPolicyStore

    why = _reason(reason)
    registry = _model(ws, model)
    traffic = TrafficPolicyStore(ws)
    before = {"canary_percent": traffic.get(model).canary_percent, "canary": registry.aliases(model).get("canary")}
    rollout = None
    try:
        from .rollout import RUNNING, RolloutController
    except ImportError:  # rollouts not installed: only the traffic policy and the alias
        pass
    else:
        controller = RolloutController(ws, model)
        state = controller.load()
        if state is not None and state.get("status") == RUNNING:
            rollout = controller.abort(actor=actor, reason=why)["id"]
    if traffic.get(model).canary_percent > 0:
        traffic.set(model, canary_percent=0.0, actor=actor, reason=why)
    production = registry.aliases(model).get("production")
    canary = registry.aliases(model).get("canary")
    if production is not None and canary not in (None, production):
        registry.set_alias(model, "canary", production, actor=actor, reason=why, action="rollback")
    after = {"canary_percent": traffic.get(model).canary_percent, "canary": registry.aliases(model).get("canary")}
    changed = after != before or rollout is not None
    audit_id = None
    if changed:
        with ws.metadata.begin() as conn:
            audit_id = _audit(conn, ws, actor=actor, action="abort_canary", subject=f"model:{model}:canary",
                              detail={"model": model, "reason": why, "from": before, "to": after,
                                      "rollout": rollout})
    undo = (f"yarnit rollout start {model} --version {before['canary']}" if before["canary"] not in (None, production)
            else "nothing to undo")
    return {"action": "abort_canary", "model": model, "changed": changed, "from": before, "to": after,
            "rollout": rollout, "reason": why, "audit_id": audit_id, "undo": undo}


# -- remove bad data ----------------------------------------------------------------------------
TIME_COLUMNS = ("event_time", "time", "timestamp", "ts")


def _when(name: str, value: datetime | str) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInput(f"{name} {value!r} is not an ISO 8601 time; use e.g. 2026-03-01T06:00:00Z.") from None
    if not isinstance(value, datetime):
        raise InvalidInput(f"{name} must be a time (ISO 8601); got {type(value).__name__}.")
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _time_column(schema: Any, wanted: str | None, ref: str) -> str:
    import pyarrow as pa

    stamps = [f.name for f in schema if pa.types.is_timestamp(f.type)]
    if wanted is not None:
        if wanted not in schema.names:
            raise InvalidInput(f"Dataset {ref} has no column {wanted!r}; its columns are {schema.names}.")
        if wanted not in stamps:
            raise InvalidInput(f"Column {wanted!r} of {ref} is not a timestamp; its timestamp columns are {stamps}.")
        return wanted
    for name in TIME_COLUMNS:
        if name in stamps:
            return name
    if len(stamps) == 1:
        return stamps[0]
    raise InvalidInput(f"Which column holds the rows' time in {ref}? Its timestamp columns are {stamps or 'none'}; "
                       "pass --time-column NAME (JSON: \"time_column\").")


def remove_bad_data(ws: Workspace, dataset: str, *, start: datetime | str, end: datetime | str, actor: str,
                    reason: str, time_column: str | None = None) -> dict[str, Any]:
    """Drop the rows of ``dataset`` whose time is in [start, end) from training, and ask for retrains.

    ``dataset`` is ``NAME`` (its newest active version) or ``NAME:vN``. A new
    version without those rows is recorded (parent: the old one, lineage
    relation ``bad_data_removed``, the reason in its source), so pipelines that
    take the newest version train without them; the old version stays active
    and unchanged. Every model with a version trained on the old one (lineage,
    transitively) gets a pending retrain request (:func:`pending_retrains`).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    from yarnit.data import Datasets, Lineage
    from yarnit.data.lineage import Node

    why = _reason(reason)
    begin, stop = _when("start", start), _when("end", end)
    if begin >= stop:
        raise InvalidInput(f"The window is empty: start {begin.isoformat()} is not before end {stop.isoformat()}.")
    datasets = Datasets(ws)
    old = datasets.resolve(dataset)
    table = datasets.read_table(old)
    column = _time_column(table.schema, time_column, old.ref)
    values = table.column(column)
    kind = values.type
    bounds = [b if kind.tz is not None else b.replace(tzinfo=None) for b in (begin, stop)]
    lo, hi = (pa.scalar(b, type=kind) for b in bounds)
    inside = pc.fill_null(pc.and_(pc.greater_equal(values, lo), pc.less(values, hi)), False)
    removed = int(pc.sum(inside).as_py() or 0)
    if removed == 0:
        first, last = pc.min(values).as_py(), pc.max(values).as_py()
        raise InvalidInput(f"No row of {old.ref} has {column} in [{begin.isoformat()}, {stop.isoformat()}): nothing "
                           f"to remove (its {column} runs from {first} to {last}).")
    kept = table.filter(pc.invert(inside))
    window = {"time_column": column, "start": begin.isoformat(), "end": stop.isoformat()}
    new = datasets.ingest_batches(
        old.name, [kept], source=f"{old.source} [{column} in [{begin.isoformat()}, {stop.isoformat()}) removed by "
                                 f"{actor}: {why}]",
        parents=[old.id], retention_class=old.retention_class, pii_columns=old.pii_columns,
        subject=old.subject_column, allow_empty=True, relation="bad_data_removed", where=old.ref,
        schema_id=old.schema_id, privacy=old.privacy, retain_from=old.retain_from or old.created_at)
    trained = [n.id for n in Lineage(ws).downstream(Node("dataset_version", old.id)).of_kind("model_version")]
    now = ws.clock.now()
    requests: list[dict[str, Any]] = []
    with ws.metadata.begin() as conn:
        by_model: dict[str, list[int]] = {}
        if trained:
            for name, number in conn.execute(select(model_versions.c.model_name, model_versions.c.version)
                                             .where(model_versions.c.id.in_(trained))).all():
                by_model.setdefault(name, []).append(int(number))
        audit_id = _audit(conn, ws, actor=actor, action="remove_bad_data", subject=f"dataset:{old.ref}",
                          detail={"dataset": old.name, "reason": why, "from": old.ref, "to": new.ref,
                                  "from_id": old.id, "to_id": new.id, "rows_removed": removed,
                                  "rows_kept": kept.num_rows, "window": window, "retrain": sorted(by_model)})
        for name, numbers in sorted(by_model.items()):
            pending = conn.execute(select(retrain_requests.c.id).where(and_(
                retrain_requests.c.model_name == name, retrain_requests.c.dataset_version_id == old.id,
                retrain_requests.c.status == "pending"))).scalar()
            if pending is not None:
                continue
            request = {"id": new_id("rt", ws.clock), "model_name": name, "model_versions": sorted(numbers),
                       "dataset_version_id": old.id, "replacement_id": new.id,
                       "reason": f"{old.ref} lost {column} in [{begin.isoformat()}, {stop.isoformat()}): {why}",
                       "requested_by": actor, "requested_at": now, "status": "pending"}
            conn.execute(insert(retrain_requests).values(**request))
            requests.append(_request(request))
    return {"action": "remove_bad_data", "dataset": old.name, "changed": True, "from": old.ref, "to": new.ref,
            "from_id": old.id, "to_id": new.id, "rows_removed": removed, "rows_kept": kept.num_rows,
            "window": window, "retrain_requests": requests, "reason": why, "audit_id": audit_id,
            "undo": f"the old version {old.ref} is unchanged and active: train on it (dataset_version="
                    f"{old.version})"}


def _request(row: Any) -> dict[str, Any]:
    return {"id": row["id"], "model": row["model_name"], "model_versions": list(row["model_versions"]),
            "dataset_version_id": row["dataset_version_id"], "replacement_id": row["replacement_id"],
            "reason": row["reason"], "requested_by": row["requested_by"],
            "requested_at": _iso(row["requested_at"]), "status": row["status"],
            "done_at": _iso(row.get("done_at")), "done_by": row.get("done_by"), "note": row.get("note")}


def pending_retrains(ws: Workspace, model: str | None = None) -> list[dict[str, Any]]:
    """Retrain requests not done yet, oldest first (what the loop picks up), optionally of one model."""
    query = select(retrain_requests).where(retrain_requests.c.status == "pending")
    if model is not None:
        query = query.where(retrain_requests.c.model_name == model)
    with ws.metadata.begin() as conn:
        rows = conn.execute(query.order_by(retrain_requests.c.requested_at, retrain_requests.c.id)).mappings().all()
    return [_request(r) for r in rows]


def complete_retrain(ws: Workspace, request_id: str, *, actor: str, note: str = "") -> dict[str, Any]:
    """Mark a retrain request done (the loop calls it once a model trained without the removed data)."""
    check_plain_text("note", note)
    with ws.metadata.begin() as conn:
        row = conn.execute(select(retrain_requests).where(retrain_requests.c.id == request_id)
                           .with_for_update()).mappings().first()
        if row is None:
            raise NotFound(f"No retrain request {request_id!r}; list them with: yarnit emergency status MODEL")
        if row["status"] == "pending":
            conn.execute(update(retrain_requests).where(retrain_requests.c.id == request_id)
                         .values(status="done", done_at=ws.clock.now(), done_by=actor, note=note or None))
        row = conn.execute(select(retrain_requests).where(retrain_requests.c.id == request_id)).mappings().first()
    return _request(row)


# -- roll through -------------------------------------------------------------------------------
def roll_through(ws: Workspace, *, alert_ids: Sequence[str] | None = None, slo: str | None = None, actor: str,
                 reason: str) -> dict[str, Any]:
    """Acknowledge alerts and keep going: by id, or every open alert of one SLO (its name or id).

    An acknowledged alert is not re-sent by the monitor (queued ``firing``
    sends are dropped; Alertmanager is no longer kept alive for it) until it
    resolves; if it fires again, the new record is unacknowledged and pages.
    Training and serving go on unchanged: the anomaly is let wash out.
    """
    from yarnit.monitoring.alerts import locked_store
    from yarnit.monitoring.workspace import monitoring_dir

    why = _reason(reason)
    if (alert_ids is None) == (slo is None) or (alert_ids is not None and not alert_ids):
        raise InvalidInput("Say which alerts to roll through: alert ids (--alert ID, repeatable) or one SLO "
                           "(--slo NAME), not both. List them with: yarnit alerts list --state firing")
    at = ws.clock.now().isoformat()
    with locked_store(monitoring_dir(ws.home)) as store:
        if alert_ids is not None:
            chosen = []
            for alert_id in dict.fromkeys(alert_ids):
                alert = store.get(alert_id)
                if alert is None:
                    raise NotFound(f"No alert {alert_id!r}; list them with: yarnit alerts list")
                if alert.state != "firing":
                    raise Conflict(f"Alert {alert_id} ({alert.alert_name}) resolved at {alert.ended_at}; only open "
                                   "alerts are acknowledged.")
                chosen.append(alert)
            subject = "alerts:" + ",".join(a.id for a in chosen)
        else:
            chosen = [a for a in store.alerts if a.state == "firing" and slo in (a.slo, a.slo_id)]
            if not chosen:
                raise NotFound(f"No open alert of SLO {slo!r}; list them with: yarnit alerts list --state firing")
            subject = f"slo:{slo}"
        acked = [a.id for a in chosen if store.ack(a, actor=actor, reason=why, at=at)]
        already = [a.id for a in chosen if a.id not in acked]
        audit_id = None
        if acked:
            store.save()  # the acknowledgement first: an audit row never claims an ack the store lost
            with ws.metadata.begin() as conn:
                audit_id = _audit(conn, ws, actor=actor, action="roll_through", subject=subject[:256],
                                  detail={"reason": why, "alerts": acked, "slo": slo,
                                          "models": sorted({a.model for a in chosen if a.model}),
                                          "from": {"acked": False}, "to": {"acked": True}})
    return {"action": "roll_through", "changed": bool(acked), "acked": acked, "already_acked": already,
            "alerts": [{"id": a.id, "slo": a.slo, "alert": a.alert, "model": a.model, "acked_by": a.acked_by,
                        "acked_at": a.acked_at} for a in chosen],
            "reason": why, "audit_id": audit_id,
            "undo": "an acknowledgement ends when its alert resolves; take it back sooner with "
                    "yarnit.continuous.actions.unacknowledge"}


def unacknowledge(ws: Workspace, alert_ids: Sequence[str], *, actor: str, reason: str) -> dict[str, Any]:
    """Take back :func:`roll_through`'s acknowledgements: the alerts are kept alive in Alertmanager again."""
    from yarnit.monitoring.alerts import locked_store
    from yarnit.monitoring.workspace import monitoring_dir

    why = _reason(reason)
    with locked_store(monitoring_dir(ws.home)) as store:
        alerts = [store.get(i) for i in dict.fromkeys(alert_ids)]
        missing = [i for i, a in zip(dict.fromkeys(alert_ids), alerts, strict=True) if a is None]
        if missing:
            raise NotFound(f"No alert {missing[0]!r}; list them with: yarnit alerts list")
        undone = [a.id for a in alerts if a is not None and store.unack(a)]
        audit_id = None
        if undone:
            store.save()
            with ws.metadata.begin() as conn:
                audit_id = _audit(conn, ws, actor=actor, action="unacknowledge", subject="alerts:" + ",".join(undone),
                                  detail={"reason": why, "alerts": undone})
    return {"action": "unacknowledge", "changed": bool(undone), "alerts": undone, "audit_id": audit_id}


# -- status and history -------------------------------------------------------------------------
def switches(ws: Workspace, model: str) -> dict[str, Any]:
    """Every emergency switch of ``model``: frozen?, forced to its fallback?, what rolls back to, retrains, acks."""
    from yarnit.monitoring.alerts import AlertStore, alerts_path
    from yarnit.monitoring.workspace import monitoring_dir
    from yarnit.serving.router import TrafficPolicyStore

    registry = _model(ws, model)
    with ws.metadata.begin() as conn:
        frozen = conn.execute(select(training_freezes).where(training_freezes.c.model_name == model)
                              ).mappings().first()
    path = alerts_path(monitoring_dir(ws.home))
    alerts = AlertStore.open(path).list("firing", limit=1000) if path.exists() else []
    aliases = registry.aliases(model)
    return {
        "model": model,
        "training_frozen": None if frozen is None else {
            "reason": frozen["reason"], "frozen_by": frozen["frozen_by"], "frozen_at": _iso(frozen["frozen_at"])},
        "force_fallback": TrafficPolicyStore(ws).get(model).force_fallback,
        "fallback": declared_fallback(ws, model),
        "production": aliases.get("production"),
        "rollback_target": registry.rollback_target(model, "production") if "production" in aliases else None,
        "pending_retrains": pending_retrains(ws, model),
        "open_alerts": [{"id": a.id, "slo": a.slo, "alert": a.alert, "acked_by": a.acked_by, "acked_at": a.acked_at,
                         "ack_reason": a.ack_reason} for a in alerts if a.model == model],
    }


def history(ws: Workspace, *, model: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Emergency actions from the audit log, newest first (of one model: its own and its alerts' roll-throughs)."""
    # Bounded: the newest HISTORY_SCAN emergency rows are read (and filtered by model here, as the model sits in
    # the JSON detail); emergency actions are rare, so that reaches back far enough for a status page.
    query = select(audit_log).where(audit_log.c.action.like(ACTION_PREFIX + "%")).order_by(
        audit_log.c.id.desc()).limit(HISTORY_SCAN)
    with ws.metadata.begin() as conn:
        rows = conn.execute(query).mappings().all()
    out = []
    for r in rows:
        detail = r["detail"] or {}
        if model is not None and detail.get("model") != model and model not in (detail.get("models") or ()) \
                and model not in (detail.get("retrain") or ()):
            continue
        out.append({"id": r["id"], "at": _iso(r["at"]), "actor": r["actor"],
                    "action": r["action"].removeprefix(ACTION_PREFIX), "subject": r["subject"], "detail": detail})
        if len(out) >= limit:
            break
    return out


ACTIONS = ("stop_training", "resume_training", "fall_back", "restore_model", "roll_back", "abort_canary",
           "remove_bad_data", "roll_through")

__all__ = ["ACTIONS", "FallbackNotDeclared", "abort_canary", "complete_retrain", "declared_fallback", "fall_back", "history",
           "pending_retrains", "remove_bad_data", "restore_model", "resume_training", "roll_back", "roll_through",
           "stop_training", "switches", "training_frozen", "unacknowledge"]
