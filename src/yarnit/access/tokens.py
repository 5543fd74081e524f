"""Named API tokens and the actor every audit row records.

A token is issued per person or service (``yarnit tokens issue alice --role
write``) and shown once. Only the sha256 of its secret is stored: the secret is
256 random bits, so a slow password hash (scrypt) would add nothing against
guessing, and a plain digest lets the server find the token by it in one
indexed lookup. Every check reads the table, so a revoked token is refused by
the next request, on every server replica.

Roles (a closed set):

* ``write``: control-plane writes under ``/api/`` (alias moves, traffic policy …);
* ``read-restricted``: raw reads of restricted columns, each audited
  (:class:`yarnit.access.RestrictedReads`).

The single ``YARNIT_API_TOKEN`` of earlier versions keeps working: it is the
token named ``admin`` with the ``write`` role only (so it cannot read restricted
columns raw), and that name is reserved. Actors are ``token:<name>`` for the
API and ``user:<os user>`` for the CLI (:func:`cli_actor`).

Example:
    >>> from yarnit.core import Settings, SimulatedClock, utc
    >>> from yarnit.storage import open_workspace
    >>> import tempfile
    >>> ws = open_workspace(Settings.for_home(tempfile.mkdtemp()), SimulatedClock(utc(2026, 1, 1)))
    >>> tokens = Tokens(ws)
    >>> token, secret = tokens.issue("etl-bot", ["write"], actor="user:alice")
    >>> tokens.authenticate(secret).actor
    'token:etl-bot'
    >>> _ = tokens.revoke("etl-bot", actor="user:alice")
    >>> tokens.authenticate(secret) is None
    True
    >>> ws.close()
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError as SqlIntegrityError

from yarnit.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from yarnit.core.ids import check_name
from yarnit.data.restricted import READ_ROLE as READ_RESTRICTED
from yarnit.storage import Workspace
from yarnit.storage.schema import access_tokens

WRITE = "write"
ROLES = (WRITE, READ_RESTRICTED)
LEGACY_NAME = "admin"
SECRET_PREFIX = "yit_"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.@+-]")


@dataclass(frozen=True)
class Principal:
    """Who is asking: the actor recorded in audits and the roles they hold."""

    actor: str
    roles: frozenset[str] = frozenset()
    token_name: str | None = None  # a named token (None: the legacy admin token, loopback, or a CLI user)

    def has(self, role: str) -> bool:
        return role in self.roles


LOOPBACK = Principal("loopback:anonymous", frozenset({WRITE}))


@dataclass(frozen=True)
class AccessToken:
    """A named token's record (never its secret)."""

    name: str
    roles: tuple[str, ...]
    description: str
    created_at: datetime
    created_by: str
    revoked_at: datetime | None = None
    revoked_by: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @property
    def actor(self) -> str:
        return f"token:{self.name}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "roles": list(self.roles), "description": self.description,
                "status": "active" if self.active else "revoked", "created_at": self.created_at.isoformat(),
                "created_by": self.created_by,
                "revoked_at": None if self.revoked_at is None else self.revoked_at.isoformat(),
                "revoked_by": self.revoked_by}


class TokenNotFound(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"No token named {name!r}. List tokens with: yarnit tokens list")
        self.name = name


def secret_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def check_roles(roles: Iterable[str]) -> tuple[str, ...]:
    given = tuple(dict.fromkeys(roles))
    unknown = [r for r in given if r not in ROLES]
    if unknown or not given:
        raise InvalidInput(f"Token roles {list(given)} are not valid: give one or more of {', '.join(ROLES)} "
                           "(e.g. --role write).")
    return given


def cli_actor(getuser: Callable[[], str] = getpass.getuser) -> str:
    """``user:<name>`` of the operating-system user running the CLI (``user:uid-N`` if it has no name)."""
    try:
        name = getuser()
    except (OSError, KeyError, ImportError):  # no LOGNAME/USER and no passwd entry (containers)
        name = ""
    name = _UNSAFE.sub("_", name)[:100]
    return f"user:{name}" if name else f"user:uid-{os.getuid()}"


def _row(row: Any) -> AccessToken:
    return AccessToken(name=row["name"], roles=tuple(row["roles"]), description=row["description"],
                       created_at=row["created_at"], created_by=row["created_by"], revoked_at=row["revoked_at"],
                       revoked_by=row["revoked_by"])


class Tokens:
    """Issue, list, revoke and check the named tokens of a workspace."""

    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace

    def issue(self, name: str, roles: Iterable[str], *, actor: str, description: str = "") -> tuple[AccessToken, str]:
        """A new token and its secret (shown once: only its sha256 is kept)."""
        check_name("Token", name)
        if name == LEGACY_NAME:
            raise InvalidInput(f"Token name {LEGACY_NAME!r} is reserved for YARNIT_API_TOKEN; choose another name "
                               "(one per person or service, e.g. 'alice' or 'retrain-bot').")
        given = check_roles(roles)
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        now = self.ws.clock.now()
        try:
            with self.ws.metadata.begin() as conn:
                conn.execute(insert(access_tokens).values(
                    name=name, secret_sha256=secret_digest(secret), roles=list(given), description=description,
                    created_at=now, created_by=actor))
        except SqlIntegrityError:
            raise Conflict(f"A token named {name!r} already exists (revoked tokens keep their names so that audit "
                           "rows stay unambiguous); choose another name.") from None
        return self.get(name), secret

    def get(self, name: str) -> AccessToken:
        with self.ws.metadata.begin() as conn:
            row = conn.execute(select(access_tokens).where(access_tokens.c.name == name)).mappings().first()
        if row is None:
            raise TokenNotFound(name)
        return _row(row)

    def list(self) -> list[AccessToken]:
        with self.ws.metadata.begin() as conn:
            rows = conn.execute(select(access_tokens).order_by(access_tokens.c.created_at,
                                                               access_tokens.c.name)).mappings().all()
        return [_row(r) for r in rows]

    def revoke(self, name: str, *, actor: str) -> AccessToken:
        """Revoke ``name`` now (idempotent: a revoked token stays revoked as it was)."""
        with self.ws.metadata.begin() as conn:
            found = conn.execute(select(access_tokens.c.revoked_at).where(access_tokens.c.name == name)).first()
            if found is None:
                raise TokenNotFound(name)
            if found[0] is None:
                conn.execute(update(access_tokens).where(access_tokens.c.name == name).values(
                    revoked_at=self.ws.clock.now(), revoked_by=actor))
        return self.get(name)

    def any_issued(self) -> bool:
        """True once any named token was issued: the workspace then expects tokens on writes."""
        with self.ws.metadata.begin() as conn:
            return conn.execute(select(access_tokens.c.name).limit(1)).first() is not None

    def authenticate(self, secret: str) -> Principal | None:
        """The principal of an active token (named, or the legacy ``YARNIT_API_TOKEN``), else None."""
        legacy = self.ws.settings.api_token
        if legacy is not None and hmac.compare_digest(secret.encode("utf-8", "surrogatepass"), legacy.encode()):
            return Principal(f"token:{LEGACY_NAME}", frozenset({WRITE}))
        if not secret.startswith(SECRET_PREFIX) or len(secret) > 200:
            return None
        with self.ws.metadata.begin() as conn:
            row = conn.execute(select(access_tokens).where(
                access_tokens.c.secret_sha256 == secret_digest(secret))).mappings().first()
        if row is None or row["revoked_at"] is not None:
            return None
        token = _row(row)
        return Principal(token.actor, frozenset(token.roles), token.name)

    def require(self, conn: Connection, principal: Principal | None, role: str, what: str) -> None:
        """Inside ``conn``'s transaction: ``principal`` is a named, unrevoked token holding ``role``."""
        if principal is None or principal.token_name is None:
            who = "no token" if principal is None else principal.actor
            raise Forbidden(f"{what} needs a named token with the {role!r} role; got {who}. Issue one with: "
                            f"yarnit tokens issue NAME --role {role}")
        row = conn.execute(select(access_tokens.c.roles, access_tokens.c.revoked_at).where(
            access_tokens.c.name == principal.token_name)).first()
        if row is None or row[1] is not None:
            raise Forbidden(f"Token {principal.token_name!r} is revoked or unknown; {what} is refused.")
        if role not in row[0]:
            raise Forbidden(f"Token {principal.token_name!r} has roles {list(row[0])}, not {role!r}, which {what} "
                            f"needs. Issue a token with: yarnit tokens issue NAME --role {role}")


__all__ = ["LEGACY_NAME", "LOOPBACK", "READ_RESTRICTED", "ROLES", "WRITE", "AccessToken", "Principal",
           "TokenNotFound", "Tokens", "check_roles", "cli_actor", "secret_digest"]
