"""Storage: the metadata store (SQLite or PostgreSQL), the artifact store, the workspace; backups and artifact GC."""

from .artifacts import (
    ArtifactCorrupted,
    ArtifactNotFound,
    ArtifactRef,
    ArtifactWriteFailed,
    LocalArtifactStore,
    touch_existing,
)
from .backup import (
    BackupCorrupted,
    BackupNotFound,
    BackupReport,
    BackupRepository,
    PruneReport,
    VerifyReport,
    create_backup,
    list_backups,
    prune_backups,
    verify_backup,
)
from .gc import ArtifactGC, GCReport, unreferenced
from .metadata import ChangeWatcher, MetadataStore, create_metadata_engine, head_revision, insert_ignore
from .restore import RestoreFailed, RestoreReport, WorkspaceNotEmpty, restore_workspace
from .workspace import Workspace, open_workspace

__all__ = [
    "ArtifactCorrupted",
    "ArtifactGC",
    "ArtifactNotFound",
    "ArtifactRef",
    "ArtifactWriteFailed",
    "BackupCorrupted",
    "BackupNotFound",
    "BackupReport",
    "BackupRepository",
    "ChangeWatcher",
    "GCReport",
    "LocalArtifactStore",
    "MetadataStore",
    "PruneReport",
    "RestoreFailed",
    "RestoreReport",
    "VerifyReport",
    "Workspace",
    "WorkspaceNotEmpty",
    "create_backup",
    "create_metadata_engine",
    "head_revision",
    "insert_ignore",
    "list_backups",
    "open_workspace",
    "prune_backups",
    "restore_workspace",
    "touch_existing",
    "unreferenced",
    "verify_backup",
]
