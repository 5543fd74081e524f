"""A workspace: the metadata store, the artifact store and the clock, opened together.

Opening a workspace creates it if needed, applies migrations (refusing a
newer schema), and runs the recovery pass that removes temp files left by a
writer that was killed, so a ``kill -9`` at any point leaves a workspace that
the next start opens cleanly. The pass covers the whole home, not only the
artifact store: the offline feature store, SLO and alert files, loop and
monitor state are written through the same atomic helpers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from yarnit.core.atomic import make_dirs, remove_temp_files
from yarnit.core.clock import Clock, SystemClock
from yarnit.core.settings import Settings

from .artifacts import LocalArtifactStore
from .metadata import MetadataStore


@dataclass
class Workspace:
    """What every domain service needs: settings, clock, metadata and artifacts."""

    settings: Settings
    metadata: MetadataStore
    artifacts: LocalArtifactStore
    clock: Clock = field(default_factory=SystemClock)
    recovered: list[Path] = field(default_factory=list)

    @property
    def home(self) -> Path:
        return self.settings.home

    def close(self) -> None:
        self.metadata.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_workspace(settings: Settings, clock: Clock | None = None, *, migrate: bool = True) -> Workspace:
    """Open (creating if needed) the workspace that ``settings`` describe."""
    make_dirs(settings.home)
    make_dirs(settings.artifacts_dir)
    artifacts = LocalArtifactStore(settings.artifacts_dir)
    artifacts.check_permissions()
    recovered = artifacts.recover()
    recovered += remove_temp_files(settings.home, exclude=[settings.artifacts_dir])
    metadata = MetadataStore(settings.db_url)
    if migrate:
        metadata.migrate()
    return Workspace(
        settings=settings,
        metadata=metadata,
        artifacts=artifacts,
        clock=clock or SystemClock(),
        recovered=recovered,
    )


__all__ = ["Workspace", "open_workspace"]
