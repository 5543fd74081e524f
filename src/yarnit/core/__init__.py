"""Core: settings, clock, ids, hashing, atomic writes and the error hierarchy."""

from .atomic import atomic_create_chunks, atomic_write_bytes, atomic_write_text, remove_temp_files
from .clock import Clock, SimulatedClock, SystemClock, utc
from .errors import (
    ConfigError,
    Conflict,
    Forbidden,
    IntegrityError,
    InvalidInput,
    MissingDependency,
    NotFound,
    PathEscape,
    Unauthorized,
    Unavailable,
    UnsafeArtifact,
    WorkspaceTooNew,
    YarnitError,
)
from .hashing import canonical_json, is_sha256, sha256_bytes, sha256_file, sha256_json
from .ids import check_name, new_id
from .settings import Settings, load_settings

__all__ = [
    "Clock",
    "ConfigError",
    "Conflict",
    "Forbidden",
    "IntegrityError",
    "InvalidInput",
    "MissingDependency",
    "NotFound",
    "PathEscape",
    "Settings",
    "SimulatedClock",
    "SystemClock",
    "Unauthorized",
    "Unavailable",
    "UnsafeArtifact",
    "WorkspaceTooNew",
    "YarnitError",
    "atomic_create_chunks",
    "atomic_write_bytes",
    "atomic_write_text",
    "canonical_json",
    "check_name",
    "is_sha256",
    "load_settings",
    "new_id",
    "remove_temp_files",
    "sha256_bytes",
    "sha256_file",
    "sha256_json",
    "utc",
]
