"""Storage: the metadata store (SQLite or PostgreSQL), the artifact store, the workspace."""

from .artifacts import ArtifactCorrupted, ArtifactNotFound, ArtifactRef, LocalArtifactStore
from .metadata import MetadataStore, create_metadata_engine, head_revision, insert_ignore, poll_changes
from .workspace import Workspace, open_workspace

__all__ = [
    "ArtifactCorrupted",
    "ArtifactNotFound",
    "ArtifactRef",
    "LocalArtifactStore",
    "MetadataStore",
    "Workspace",
    "create_metadata_engine",
    "head_revision",
    "insert_ignore",
    "open_workspace",
    "poll_changes",
]
