"""One exception hierarchy for everything yarnit raises on purpose.

::

    YarnitError
     ├── ConfigError (ValueError)        a setting or config file is invalid
     ├── InvalidInput (ValueError)       a caller passed a bad value
     │    └── PathEscape                 a path would leave its root
     ├── NotFound (LookupError)          a named thing does not exist
     ├── Conflict                        the request clashes with current state
     │    └── WorkspaceTooNew            the workspace was written by a newer yarnit
     ├── IntegrityError                  stored bytes do not match their hash
     ├── Unauthorized                    a control-plane write lacks a valid token
     ├── Forbidden                       the caller is known but lacks the role (e.g. a raw restricted read)
     ├── UnsafeArtifact                  an artifact format could run code on load
     ├── MissingDependency (ImportError) an optional package is not installed
     └── Unavailable                     a backend (database, Redis, model) cannot answer now

Messages say what was wrong, the offending value, what is valid and the next
step. They are plain text and safe to show to HTTP clients: they never contain
secrets or personal data.
"""

from __future__ import annotations


class YarnitError(Exception):
    """Root of every error yarnit raises on purpose."""


class ConfigError(YarnitError, ValueError):
    """A setting (environment variable or config file) is invalid."""


class InvalidInput(YarnitError, ValueError):
    """A caller passed a value that yarnit cannot accept."""


class PathEscape(InvalidInput):
    """A path or URI supplied from outside would leave its root directory."""


class NotFound(YarnitError, LookupError):
    """A named thing (dataset, model version, artifact) does not exist."""


class Conflict(YarnitError):
    """The request clashes with the current state (a race, a duplicate, a policy)."""


class WorkspaceTooNew(Conflict):
    """The workspace's schema was written by a newer yarnit than this one."""


class IntegrityError(YarnitError):
    """Stored bytes no longer match the sha256 they were stored under."""


class Unauthorized(YarnitError):
    """A control-plane write arrived without a valid bearer token."""


class Forbidden(YarnitError):
    """The caller is identified but lacks the role the operation needs (a raw read of a restricted column)."""


class UnsafeArtifact(YarnitError):
    """An artifact is in a format that can execute code when loaded (pickle & co)."""


class MissingDependency(YarnitError, ImportError):
    """An optional package is needed for this feature and is not installed."""


class Unavailable(YarnitError):
    """A backend needed to answer (database, Redis, a model) cannot answer now."""


__all__ = [
    "Conflict",
    "ConfigError",
    "Forbidden",
    "IntegrityError",
    "InvalidInput",
    "MissingDependency",
    "NotFound",
    "PathEscape",
    "Unauthorized",
    "Unavailable",
    "UnsafeArtifact",
    "WorkspaceTooNew",
    "YarnitError",
]
