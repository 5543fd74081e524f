"""Named tokens on every metadata backend: hashed at rest, roles checked, revocation immediate."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from yarnit.access import Tokens, cli_actor
from yarnit.access.tokens import TokenNotFound, secret_digest
from yarnit.core.errors import Conflict, InvalidInput
from yarnit.storage import Workspace
from yarnit.storage.schema import access_tokens


def test_only_the_digest_of_a_secret_is_stored(ws: Workspace) -> None:
    token, secret = Tokens(ws).issue("alice", ["write", "read-restricted"], actor="user:lead", description="on call")
    with ws.metadata.begin() as conn:
        row = conn.execute(select(access_tokens)).mappings().one()
    assert secret not in {str(v) for v in row.values()}
    assert row["secret_sha256"] == secret_digest(secret) and token.roles == ("write", "read-restricted")


def test_authenticate_returns_the_named_principal_until_revoked(ws: Workspace) -> None:
    tokens = Tokens(ws)
    _, secret = tokens.issue("alice", ["write"], actor="user:lead")
    principal = tokens.authenticate(secret)
    assert principal is not None and (principal.actor, principal.roles) == ("token:alice", frozenset({"write"}))
    assert tokens.authenticate(secret + "x") is None and tokens.authenticate("not-a-token") is None
    revoked = tokens.revoke("alice", actor="user:lead")
    assert not revoked.active and revoked.revoked_by == "user:lead"
    assert tokens.authenticate(secret) is None
    assert tokens.revoke("alice", actor="user:other").revoked_by == "user:lead"  # idempotent, first revoker kept


def test_names_are_unique_forever_and_admin_is_reserved(ws: Workspace) -> None:
    tokens = Tokens(ws)
    tokens.issue("bob", ["write"], actor="user:lead")
    tokens.revoke("bob", actor="user:lead")
    with pytest.raises(Conflict, match="'bob' already exists"):
        tokens.issue("bob", ["write"], actor="user:lead")
    with pytest.raises(InvalidInput, match="reserved for YARNIT_API_TOKEN"):
        tokens.issue("admin", ["write"], actor="user:lead")
    with pytest.raises(InvalidInput, match="valid: give one or more of write, read-restricted"):
        tokens.issue("carol", ["superuser"], actor="user:lead")
    with pytest.raises(TokenNotFound, match="yarnit tokens list"):
        tokens.revoke("nobody", actor="user:lead")
    assert [t.name for t in tokens.list()] == ["bob"]


def test_the_legacy_api_token_is_the_admin_writer_without_the_read_role(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from yarnit.core import Settings
    from yarnit.storage import open_workspace

    legacy = "legacy-token-0123456789"
    ws = open_workspace(Settings.for_home(tmp_path / "home", api_token=legacy))
    try:
        principal = Tokens(ws).authenticate(legacy)
        assert principal is not None and principal.actor == "token:admin"
        assert principal.has("write") and not principal.has("read-restricted")
    finally:
        ws.close()


def test_cli_actor_names_the_os_user_or_falls_back_to_the_uid() -> None:
    import os

    def no_user() -> str:
        raise OSError("no user name")

    assert cli_actor().startswith("user:")
    assert cli_actor(lambda: "ann\nmallory") == "user:ann_mallory"  # no control characters reach audit rows
    assert cli_actor(no_user) == f"user:uid-{os.getuid()}"
