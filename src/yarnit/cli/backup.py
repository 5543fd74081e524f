"""``yarnit backup``, ``yarnit restore`` and ``yarnit artifacts gc``: disaster recovery and garbage collection."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from yarnit.access import cli_actor
from yarnit.registry import restore_last_known_good
from yarnit.storage import (
    ArtifactGC,
    BackupRepository,
    create_backup,
    list_backups,
    prune_backups,
    restore_workspace,
    verify_backup,
)

from .common import JSON_OPTION, cli_errors, console, emit, fail, workspace

backup_app = typer.Typer(help="Back up the workspace (metadata, artifacts, files) into a repository; list and "
                              "verify backups. Restore with: yarnit restore --repo DIR",
                         invoke_without_command=True)
artifacts_app = typer.Typer(help="The artifact store: garbage collection of blobs no row references.",
                            no_args_is_help=True)

REPO_OPTION = typer.Option(None, "--repo", help="The backup repository (a directory; created by the first backup).")


@contextlib.contextmanager
def _progress(disabled: bool) -> Iterator[object]:
    """A progress bar per phase (metadata, artifacts, files, verify); nothing with --json."""
    with Progress(TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, disable=disabled, transient=False) as progress:
        tasks: dict[str, object] = {}

        def step(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = progress.add_task(phase, total=max(total, 1))
            progress.update(tasks[phase], completed=done, total=max(total, 1))  # type: ignore[arg-type]

        yield step


def _repo(repo: Path | None) -> BackupRepository:
    if repo is None:
        raise fail("Name the backup repository: --repo DIR (a directory outside the workspace, ideally on "
                   "another disk or machine).")
    return BackupRepository(repo)


@backup_app.callback()
@cli_errors
def backup(ctx: typer.Context, repo: Path | None = REPO_OPTION,
           native: bool = typer.Option(False, "--native", help="Also keep the backend's own copy (the SQLite "
                                                                "snapshot, or pg_dump --format=custom)."),
           as_json: bool = JSON_OPTION) -> None:
    """Back up the workspace into --repo (incremental: only blobs the repository lacks are copied)."""
    if ctx.invoked_subcommand is not None:
        return
    repository = _repo(repo)
    with workspace() as ws, _progress(as_json) as step:
        report = create_backup(ws, repository, native=native, progress=step)  # type: ignore[arg-type]
    emit(report.to_dict(), as_json, lambda: console.print(
        f"backup {report.id}: {sum(report.tables.values())} rows in {len(report.tables)} tables, "
        f"{report.artifacts} artifacts, {report.files} files; copied {report.blobs_copied} new blobs "
        f"({report.bytes_copied:,} bytes), reused {report.blobs_reused} ({report.seconds:.2f} s)"))


@backup_app.command("list")
@cli_errors
def list_command(repo: Path | None = REPO_OPTION, as_json: bool = JSON_OPTION) -> None:
    """The backups in --repo, oldest first."""
    rows = list_backups(_repo(repo))

    def human() -> None:
        for row in rows:
            if "damaged" in row:
                console.print(f"{row['id']}  DAMAGED: {row['damaged']}")
            else:
                console.print(f"{row['id']}  {row['created_at']}  {row['dialect']:<10} {row['rows']:>8} rows "
                              f"{row['artifacts']:>5} artifacts {row['bytes']:>12,} bytes")

    emit(rows, as_json, human)


@backup_app.command("verify")
@cli_errors
def verify_command(repo: Path | None = REPO_OPTION,
                   backup_id: str = typer.Option("latest", "--backup", help="Backup id (default: the newest)."),
                   as_json: bool = JSON_OPTION) -> None:
    """Hash every blob of a backup against its manifest; exit 1 when any fails."""
    with _progress(as_json) as step:
        report = verify_backup(_repo(repo).open(), backup_id, progress=step)  # type: ignore[arg-type]
    emit(report.to_dict(), as_json, lambda: console.print(
        f"backup {report.id}: {report.blobs} blobs, {report.bytes:,} bytes, "
        + ("all match their sha256" if report.ok else f"{len(report.problems)} FAIL:\n  "
           + "\n  ".join(report.problems))))
    if not report.ok:
        raise typer.Exit(1)


@backup_app.command("prune")
@cli_errors
def prune_command(repo: Path | None = REPO_OPTION,
                  keep: int = typer.Option(..., "--keep", min=1, help="Keep this many newest backups."),
                  older_than_days: float | None = typer.Option(None, "--older-than-days", min=0.0,
                                                               help="Remove only backups older than this."),
                  as_json: bool = JSON_OPTION) -> None:
    """Remove old backups and the blobs only they named (expire what `data forget` removed from the workspace)."""
    with workspace() as ws:
        now = ws.clock.now()
    report = prune_backups(_repo(repo), keep=keep, now=now,
                           older_than=None if older_than_days is None else timedelta(days=older_than_days))
    emit(report.to_dict(), as_json, lambda: console.print(
        f"removed {len(report.removed_backups)} backups and {report.removed_blobs} blobs "
        f"({report.bytes_freed:,} bytes); kept {len(report.kept_backups)}"))


@cli_errors
def restore(repo: Path | None = REPO_OPTION,
            backup_id: str = typer.Option("latest", "--backup", help="Backup id (default: the newest)."),
            force: bool = typer.Option(False, "--force", help="Replace every row of a non-empty workspace."),
            model: str | None = typer.Option(None, "--model", help="Restore only this model (last known good) "
                                                                    "with the feature views it reads."),
            version: int | None = typer.Option(None, "--version", help="With --model: this version (default: "
                                                                        "the one --alias pointed at)."),
            alias: str = typer.Option("production", "--alias", help="With --model: the alias to restore."),
            as_json: bool = JSON_OPTION) -> None:
    """Restore a backup into the workspace at YARNIT_HOME / YARNIT_DB_URL (either backend)."""
    repository = _repo(repo)
    with workspace() as ws:
        if model is not None:
            report = restore_last_known_good(ws, repository, model, backup_id=backup_id, version=version, alias=alias,
                                             actor=cli_actor())
            emit(report.to_dict(), as_json, lambda: console.print(
                f"restored {report.model} v{report.version} from {report.backup_id} (artifact {report.artifact}, "
                f"row {report.version_row}); {report.alias} -> v{report.version}"
                + "".join(f"\n  note: {n}" for n in report.notes)))
            return
        with _progress(as_json) as step:
            result = restore_workspace(ws, repository, backup_id, force=force, progress=step)  # type: ignore[arg-type]
    emit(result.to_dict(), as_json, lambda: console.print(
        f"restored {result.backup_id} ({result.source_dialect} -> {result.target_dialect}): "
        f"{sum(result.tables.values())} rows, {result.artifacts_added} artifacts added, {result.files} files "
        f"({result.seconds:.2f} s)" + "".join(f"\n  note: {n}" for n in result.notes)))


@artifacts_app.command("gc")
@cli_errors
def gc(grace_hours: float = typer.Option(24.0, "--grace-hours", min=0.0,
                                         help="Delete an unreferenced blob only after it was first found this "
                                              "long ago (writes in flight need the time to record their row)."),
       dry_run: bool = typer.Option(False, "--dry-run", help="Say what would be deleted; delete nothing."),
       as_json: bool = JSON_OPTION) -> None:
    """Find blobs that no row references (left by crashed writers) and remove them after the grace period."""
    with workspace() as ws:
        report = ArtifactGC(ws, grace=timedelta(hours=grace_hours)).sweep(dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    emit(report.to_dict(), as_json, lambda: console.print(
        f"{report.scanned} blobs, {report.referenced} referenced; {len(report.newly_marked)} newly found "
        f"unreferenced, {len(report.waiting)} waiting out the grace period; {verb} {len(report.removed)} "
        f"({report.bytes_removed:,} bytes)"))


__all__ = ["artifacts_app", "backup_app", "restore"]
