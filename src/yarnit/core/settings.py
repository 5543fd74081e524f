"""The one place that reads yarnit's environment, validated on load.

Everything else receives a :class:`Settings` (or plain arguments), so tests
never need to patch the environment.

| variable | default | meaning |
|---|---|---|
| ``YARNIT_HOME`` | ``./.yarnit`` | workspace: ``yarnit.db`` and ``artifacts/`` |
| ``YARNIT_DB_URL`` | ``sqlite:///$YARNIT_HOME/yarnit.db`` | metadata store (sqlite or postgresql+psycopg) |
| ``YARNIT_ONLINE_STORE`` | ``sqlite:///$YARNIT_HOME/online.db`` | online feature store (sqlite or redis) |
| ``YARNIT_DASK_SCHEDULER`` | unset (local processes) | ``tcp://host:port`` of a Dask scheduler |
| ``YARNIT_API_TOKEN`` | unset (writes only from loopback) | bearer token for control-plane writes |
| ``YARNIT_HMAC_KEY`` | unset | key for pseudonymising PII columns |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from .errors import ConfigError

DB_SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg")
ONLINE_SCHEMES = ("sqlite", "redis", "rediss")


@dataclass(frozen=True)
class Settings:
    """yarnit's configuration. Build it with :func:`load_settings` or directly in tests."""

    home: Path
    db_url: str
    online_store_url: str
    dask_scheduler: str | None = None
    api_token: str | None = field(default=None, repr=False)
    hmac_key: str | None = field(default=None, repr=False)

    @property
    def artifacts_dir(self) -> Path:
        return self.home / "artifacts"

    @classmethod
    def for_home(cls, home: str | Path, **overrides: str | None) -> Settings:
        """Settings for a workspace at ``home`` with embedded defaults (SQLite everywhere)."""
        env = {"YARNIT_HOME": str(home)}
        env.update({f"YARNIT_{k.upper()}": v for k, v in overrides.items() if v is not None})
        return load_settings(env)


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (safe for messages and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def _check_url(variable: str, value: str, schemes: tuple[str, ...], example: str) -> str:
    scheme = urlsplit(value).scheme
    if scheme not in schemes:
        raise ConfigError(
            f"{variable}={redact_url(value)!r} has scheme {scheme!r}; supported schemes: "
            f"{', '.join(schemes)}. Example: {variable}={example}"
        )
    return value


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate settings from ``environ`` (default: ``os.environ``)."""
    env = os.environ if environ is None else environ
    raw_home = env.get("YARNIT_HOME", "").strip() or ".yarnit"
    home = Path(raw_home).expanduser().absolute()
    if home.exists() and not home.is_dir():
        raise ConfigError(
            f"YARNIT_HOME={raw_home!r} exists and is not a directory. Point YARNIT_HOME at a directory "
            "(it is created if missing)."
        )
    db_url = env.get("YARNIT_DB_URL", "").strip() or f"sqlite:///{home / 'yarnit.db'}"
    _check_url("YARNIT_DB_URL", db_url, DB_SCHEMES, "postgresql+psycopg://user@127.0.0.1:5432/yarnit")
    if db_url.startswith("postgresql://"):
        db_url = "postgresql+psycopg://" + db_url[len("postgresql://") :]
    online = env.get("YARNIT_ONLINE_STORE", "").strip() or f"sqlite:///{home / 'online.db'}"
    _check_url("YARNIT_ONLINE_STORE", online, ONLINE_SCHEMES, "redis://127.0.0.1:6379/0")
    dask = env.get("YARNIT_DASK_SCHEDULER", "").strip() or None
    if dask is not None:
        parts = urlsplit(dask)
        if parts.scheme not in ("tcp", "tls", "inproc") or not parts.netloc:
            raise ConfigError(
                f"YARNIT_DASK_SCHEDULER={dask!r} is not a scheduler address. Use tcp://host:port "
                "(e.g. tcp://127.0.0.1:8786), or unset it to run batch work in local processes."
            )
    token = env.get("YARNIT_API_TOKEN") or None
    if token is not None and len(token) < 16:
        raise ConfigError(
            f"YARNIT_API_TOKEN is {len(token)} characters long; use at least 16 random characters "
            "(e.g. from: python -c 'import secrets; print(secrets.token_urlsafe(32))')."
        )
    hmac_key = env.get("YARNIT_HMAC_KEY") or None
    return Settings(
        home=home,
        db_url=db_url,
        online_store_url=online,
        dask_scheduler=dask,
        api_token=token,
        hmac_key=hmac_key,
    )


__all__ = ["Settings", "load_settings", "redact_url"]
