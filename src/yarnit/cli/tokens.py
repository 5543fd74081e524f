"""``yarnit tokens issue|list|revoke`` (named API tokens) and ``yarnit access read|log`` (restricted columns).

Tokens are issued per person or service. The secret is printed once, on
stdout, and only its sha256 is stored; revoking refuses it on the next request.
``yarnit access read`` reads a dataset version the way every consumer does
(restricted columns through their compliant transform); ``--raw COLUMN`` reads
a restricted column raw with a token holding the ``read-restricted`` role, read
from ``--token-file`` (``-``: stdin, so the secret never shows in ``ps``), and
is audited; ``yarnit access log`` lists those reads.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.table import Table

from yarnit.access import ROLES, Principal, RestrictedReads, Tokens, cli_actor
from yarnit.core.errors import InvalidInput, Unauthorized
from yarnit.data import Datasets

from .common import JSON_OPTION, cli_errors, console, emit, workspace

app = typer.Typer(help="Named API tokens: issue, list, revoke.", no_args_is_help=True)
access_app = typer.Typer(help="Restricted columns: read a dataset (raw with a token's role), see the audit.",
                         no_args_is_help=True)


@app.command("issue")
@cli_errors
def issue(name: str = typer.Argument(..., help="Who or what holds it (one token per person or service)."),
          role: list[str] = typer.Option(..., "--role", help=f"Role to grant (repeat): {', '.join(ROLES)}."),
          description: str = typer.Option("", help="What the token is for."),
          as_json: bool = JSON_OPTION) -> None:
    """Issue a named token; its secret is printed once (only its sha256 is kept)."""
    with workspace() as ws:
        token, secret = Tokens(ws).issue(name, role, actor=cli_actor(), description=description)
    if as_json:
        emit(token.to_dict() | {"token": secret}, True, lambda: None)
        return
    console.print(f"token {token.name!r} issued with roles {', '.join(token.roles)}; store the secret now, "
                  "it is not shown again:")
    sys.stdout.write(secret + "\n")


@app.command("list")
@cli_errors
def list_tokens(as_json: bool = JSON_OPTION) -> None:
    """List tokens (names, roles, who issued or revoked them and when; never secrets)."""
    with workspace() as ws:
        tokens = Tokens(ws).list()

    def human() -> None:
        table = Table("name", "roles", "status", "created", "by", "revoked", "by")
        for t in tokens:
            table.add_row(t.name, ", ".join(t.roles), "active" if t.active else "revoked",
                          t.created_at.isoformat(timespec="seconds"), t.created_by,
                          t.revoked_at.isoformat(timespec="seconds") if t.revoked_at else "", t.revoked_by or "")
        console.print(table)

    emit([t.to_dict() for t in tokens], as_json, human)


@app.command("revoke")
@cli_errors
def revoke(name: str, as_json: bool = JSON_OPTION) -> None:
    """Revoke a token: every server refuses it from its next request."""
    with workspace() as ws:
        token = Tokens(ws).revoke(name, actor=cli_actor())
    emit(token.to_dict(), as_json, lambda: console.print(f"token {name!r} revoked"))


def _principal(tokens: Tokens, token_file: Path | None) -> Principal | None:
    if token_file is None:
        return None
    try:
        secret = sys.stdin.read() if str(token_file) == "-" else token_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"Cannot read the token file {token_file.name!r} ({type(exc).__name__}); give a file "
                           "holding the token, or '-' to read it from stdin.") from None
    principal = tokens.authenticate(secret.strip())
    if principal is None:
        raise Unauthorized("The token in --token-file is wrong or revoked. List tokens with: yarnit tokens list")
    return principal


@access_app.command("read")
@cli_errors
def read(dataset: str = typer.Argument(..., help="NAME, NAME:vN or a version id."),
         columns: list[str] = typer.Option([], "--column", help="Column to read (repeat; default: all)."),
         raw: list[str] = typer.Option([], "--raw", help="Restricted column to read raw (needs the role)."),
         purpose: str = typer.Option("", help="Why the raw values are needed (kept in the audit trail)."),
         token_file: Path = typer.Option(None, "--token-file", help="File holding the token ('-': stdin)."),
         limit: int = typer.Option(20, min=1, max=100_000, help="Rows to print."),
         as_json: bool = JSON_OPTION) -> None:
    """Print rows of a dataset version as every consumer sees them; ``--raw`` is audited and needs the role."""
    with workspace() as ws:
        version = Datasets(ws).resolve(dataset)
        principal = _principal(Tokens(ws), token_file)
        if principal is None and raw:
            raise InvalidInput(f"--raw {raw} needs a token with the 'read-restricted' role: pass --token-file FILE "
                               "(or '-' and the token on stdin).")
        table = RestrictedReads(ws).read_dataset(version, columns=columns or None, raw=raw, principal=principal,
                                                 purpose=purpose, via="cli")
    rows = table.slice(0, limit).to_pylist()

    def human() -> None:
        out = Table(*table.column_names, title=f"{version.ref} ({table.num_rows} rows, first {len(rows)})")
        for row in rows:
            out.add_row(*(str(v) for v in row.values()))
        console.print(out)

    emit({"dataset": version.ref, "rows": rows, "row_count": table.num_rows, "raw": list(raw)}, as_json, human)


@access_app.command("log")
@cli_errors
def log(dataset: str = typer.Option(None, "--dataset", help="Only reads of this version (NAME:vN)."),
        limit: int = typer.Option(100, min=1, max=10_000), as_json: bool = JSON_OPTION) -> None:
    """Audited raw reads of restricted columns, newest first: who, what, which data, why, when."""
    with workspace() as ws:
        ref = Datasets(ws).resolve(dataset).ref if dataset else None
        reads = RestrictedReads(ws).log(source_ref=ref, limit=limit)

    def human() -> None:
        table = Table("at", "actor", "via", "source", "columns", "purpose")
        for r in reads:
            table.add_row(r.at.isoformat(timespec="seconds"), r.actor, r.via, r.source_ref, ", ".join(r.columns),
                          r.purpose)
        console.print(table)

    emit([r.to_dict() for r in reads], as_json, human)


__all__ = ["access_app", "app"]
