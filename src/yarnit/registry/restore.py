""""Last known good": bring one model back from a backup, with the feature views it reads.

A whole-workspace restore is for losing the workspace. Losing one model is more
common: its artifact was damaged, its rows were lost, or a bad version is in
production and the good one is only in last night's backup. :func:`restore_last_known_good`
takes from a backup just what serving that model needs, into a workspace that
keeps everything else:

- the model's row and the chosen version's row (by default the version the
  backup's ``production`` alias pointed at), with its artifact, checked against
  its sha256 (a damaged copy in the target is kept aside as ``<name>.corrupt``
  and replaced);
- the evaluations of exactly those bytes, with their metrics and reports, so
  the version stays blessed (promotion asks for its gate verdict);
- the feature views the model reads (registered consumers and the ``view:feature``
  references in its signature), at the definition the backup held. Feature view
  versions are append-only and a definition hash is recorded once, so a
  definition the target lacks is added as the view's newest version (a rollback
  of the view), and one the target already has under an older number is
  reported: re-applying it cannot make it the newest;
- then the alias is moved to the version through the registry (one audited
  event, action ``restore``), which also checks the artifact loads.

A version number the target already uses for other bytes is refused (two
different models must not share a ref). Everything but the alias move happens
in one transaction, after the blobs involved were verified.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, func, insert, select

from yarnit.core.errors import Conflict, IntegrityError, NotFound
from yarnit.core.ids import new_id
from yarnit.storage import ArtifactNotFound, Workspace
from yarnit.storage.backup import BackupCorrupted, BackupRepository, hash_file, read_dump
from yarnit.storage.restore import decode_row, insert_tables
from yarnit.storage.schema import evaluations, feature_consumers, feature_views, model_versions, models

from .service import ModelRegistry


@dataclass(frozen=True)
class ModelRestoreReport:
    """What a last-known-good restore did."""

    backup_id: str
    model: str
    version: int
    alias: str
    artifact_sha256: str
    artifact: str  # "present", "added" or "repaired"
    version_row: str  # "present" or "added"
    evaluations_added: int
    feature_views: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _read_model_rows(path: Any, model: str) -> dict[str, list[dict[str, Any]]]:
    """From a dump, the rows that concern ``model`` (and every feature view row, which are few)."""
    tables = insert_tables()
    wanted = {"models", "model_versions", "aliases", "evaluations", "evaluation_metrics", "feature_views",
              "feature_consumers"}
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in wanted}
    evaluation_ids: set[str] = set()
    current = ""
    columns: list[str] = []
    with open(path, "rb") as stream:
        for kind, head, values in read_dump(stream):
            if kind == "table":
                current, *columns = head  # type: ignore[misc]
                continue
            if kind != "row" or current not in wanted or values is None:
                continue
            raw = dict(zip(columns, values, strict=True))
            keep = {
                "models": lambda r: r["name"] == model,
                "model_versions": lambda r: r["model_name"] == model,
                "aliases": lambda r: r["model_name"] == model,
                "evaluations": lambda r: r["model_name"] == model,
                "evaluation_metrics": lambda r: r["evaluation_id"] in evaluation_ids,
                "feature_views": lambda r: True,
                "feature_consumers": lambda r: r["consumer"] == model,
            }[current](raw)
            if keep:
                row = decode_row(tables[current], list(columns), list(values))
                rows[current].append(row)
                if current == "evaluations":
                    evaluation_ids.add(row["id"])
    return rows


def _views_read_by(version_row: dict[str, Any], consumers: list[dict[str, Any]]) -> list[str]:
    names = {c["view_name"] for c in consumers}
    refs = (version_row.get("signature") or {}).get("features")
    if isinstance(refs, list):
        names |= {r.partition(":")[0] for r in refs if isinstance(r, str) and ":" in r}
    return sorted(names)


def restore_last_known_good(ws: Workspace, repo: BackupRepository, model: str, *, backup_id: str | None = None,
                  version: int | None = None, alias: str = "production", actor: str = "cli") -> ModelRestoreReport:
    """Restore ``model`` (the version ``alias`` pointed at in the backup, or ``version``) and its feature views."""
    repo.open()
    manifest = repo.manifest(backup_id)
    dump = manifest["metadata"]["dump"]
    _verify_blob(repo, manifest["id"], dump["sha256"], dump["size"])
    rows = _read_model_rows(repo.blob_path(dump["sha256"]), model)
    if not rows["models"]:
        raise NotFound(f"Backup {manifest['id']} holds no model {model!r}. Pick another backup (yarnit backup list) "
                       "or check the model name (yarnit models list).")
    if version is None:
        pointer = [r for r in rows["aliases"] if r["alias"] == alias]
        if not pointer:
            raise NotFound(f"In backup {manifest['id']}, model {model!r} has no alias {alias!r}; name the version "
                           "with --version N.")
        version = int(pointer[0]["version"])
    chosen = [r for r in rows["model_versions"] if r["version"] == version]
    if not chosen:
        have = sorted(r["version"] for r in rows["model_versions"])
        raise NotFound(f"Backup {manifest['id']} holds versions {have} of {model!r}, not v{version}.")
    version_row = chosen[0]
    sha = version_row["artifact_sha256"]
    evals = [r for r in rows["evaluations"] if r["artifact_sha256"] == sha]
    eval_ids = {r["id"] for r in evals}
    metrics = [r for r in rows["evaluation_metrics"] if r["evaluation_id"] in eval_ids]
    sizes = {e["sha256"]: e["size"] for e in manifest["artifacts"]}
    blobs = [sha, *[r["report_sha256"] for r in evals if r["report_sha256"] in sizes]]
    for blob in blobs:
        if blob not in sizes:
            raise BackupCorrupted(manifest["id"], [f"the artifact {blob} of {model} v{version} is not in the backup"])
        _verify_blob(repo, manifest["id"], blob, sizes[blob])
    view_names = _views_read_by(version_row, rows["feature_consumers"])
    newest_views: dict[str, dict[str, Any]] = {}
    for row in rows["feature_views"]:
        if row["name"] in view_names and row["number"] > newest_views.get(row["name"], {"number": 0})["number"]:
            newest_views[row["name"]] = row

    # artifacts first (an unreferenced blob is harmless; a row without its blob is not)
    artifact_state = _put_artifact(ws, repo, sha)
    for report in blobs[1:]:
        _put_artifact(ws, repo, report)
    notes: list[str] = []
    views_done: list[dict[str, Any]] = []
    with ws.metadata.begin() as conn:
        if conn.execute(select(models.c.name).where(models.c.name == model)).first() is None:
            conn.execute(insert(models).values(**rows["models"][0]))
        present = conn.execute(select(model_versions.c.artifact_sha256).where(and_(
            model_versions.c.model_name == model, model_versions.c.version == version))).first()
        if present is not None and present[0] != sha:
            raise Conflict(f"{model} v{version} in this workspace is a different model (artifact {present[0]}) from "
                           f"the backup's (artifact {sha}); restoring it would give one ref two meanings. Restore "
                           "the whole workspace into a fresh one instead (yarnit restore into a new YARNIT_HOME).")
        row_state = "present" if present is not None else "added"
        if present is None:
            conn.execute(insert(model_versions).values(**version_row))
        known_evals = {r[0] for r in conn.execute(select(evaluations.c.id).where(evaluations.c.id.in_(eval_ids)))}
        new_evals = [r for r in evals if r["id"] not in known_evals]
        tables = insert_tables()
        if new_evals:
            conn.execute(insert(tables["evaluations"]), new_evals)
            new_ids = {r["id"] for r in new_evals}
            new_metrics = [{k: v for k, v in m.items() if k != "id"} for m in metrics if m["evaluation_id"] in new_ids]
            if new_metrics:
                conn.execute(insert(tables["evaluation_metrics"]), new_metrics)
        for name in view_names:
            wanted = newest_views.get(name)
            if wanted is None:
                notes.append(f"feature view {name} is read by {model} but is not in the backup")
                continue
            here = conn.execute(select(feature_views.c.number).where(and_(
                feature_views.c.name == name, feature_views.c.version == wanted["version"]))).first()
            newest = conn.execute(select(func.max(feature_views.c.number)).where(
                feature_views.c.name == name)).scalar()
            if here is None:
                number = (newest or 0) + 1
                conn.execute(insert(tables["feature_views"]).values(
                    **(wanted | {"number": number, "id": wanted["id"] if newest is None else new_id("fv", ws.clock)})))
                views_done.append({"view": name, "version": wanted["version"], "number": number, "state": "added"})
            else:
                state = "current" if here[0] == newest else "older"
                views_done.append({"view": name, "version": wanted["version"], "number": here[0], "state": state})
                if state == "older":
                    notes.append(f"feature view {name}: the backup's definition is v{here[0]} here, but v{newest} is "
                                 "newer; serving reads the newest definition, so check that it computes the same "
                                 "features or apply the backup's definition under a new view name")
        for consumer in rows["feature_consumers"]:
            exists = conn.execute(select(feature_consumers.c.consumer).where(and_(
                feature_consumers.c.view_name == consumer["view_name"],
                feature_consumers.c.consumer == model))).first()
            if exists is None:
                conn.execute(insert(feature_consumers).values(**consumer))
    ModelRegistry(ws).set_alias(model, alias, version, actor=actor, action="restore",
                                reason=f"last known good from backup {manifest['id']}")
    return ModelRestoreReport(backup_id=manifest["id"], model=model, version=version, alias=alias,
                              artifact_sha256=sha, artifact=artifact_state, version_row=row_state,
                              evaluations_added=len(new_evals), feature_views=views_done, notes=notes)


def _verify_blob(repo: BackupRepository, backup_id: str, sha: str, size: int) -> None:
    try:
        actual, n = hash_file(repo.blob_path(sha))
    except FileNotFoundError:
        raise BackupCorrupted(backup_id, [f"blob {sha} is missing"]) from None
    if actual != sha or n != size:
        raise BackupCorrupted(backup_id, [f"blob {sha}: bytes hash to {actual} ({n} bytes)"])


def _put_artifact(ws: Workspace, repo: BackupRepository, sha: str) -> str:
    """Make ``sha`` present and sound in ``ws``: 'present', 'added' or 'repaired' (damaged copy kept aside)."""
    try:
        ws.artifacts.verify(sha)
        return "present"
    except ArtifactNotFound:
        state = "added"
    except IntegrityError:
        path = ws.artifacts.path_for(sha)
        path.replace(path.with_name(path.name + ".corrupt"))
        state = "repaired"
    ref = ws.artifacts.put_file(repo.blob_path(sha))
    if ref.sha256 != sha:
        raise BackupCorrupted("(copy)", [f"blob {sha} changed while it was restored"])
    return state


__all__ = ["ModelRestoreReport", "restore_last_known_good"]
