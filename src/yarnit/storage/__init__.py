"""Storage: the metadata store (SQLite or PostgreSQL), the artifact store, the workspace."""

from .artifacts import ArtifactCorrupted, ArtifactNotFound, ArtifactRef, LocalArtifactStore, touch_existing
from .metadata import ChangeWatcher, MetadataStore, create_metadata_engine, head_revision, insert_ignore
from .workspace import Workspace, open_workspace

__all__ = [
    "ArtifactCorrupted",
    "ArtifactNotFound",
    "ArtifactRef",
    "ChangeWatcher",
    "LocalArtifactStore",
    "MetadataStore",
    "Workspace",
    "create_metadata_engine",
    "head_revision",
    "insert_ignore",
    "open_workspace",
    "touch_existing",
]
