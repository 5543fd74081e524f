"""``yarnit models …``: list, show, promote, roll back, restore, history, traffic policy."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Column, Table

from yarnit.access import cli_actor
from yarnit.registry import ModelRegistry

from .common import JSON_OPTION, cli_errors, console, emit, plain, workspace

app = typer.Typer(help="Models, versions and aliases in the registry.", no_args_is_help=True)


@app.command("list")
@cli_errors
def list_models(as_json: bool = JSON_OPTION) -> None:
    """List models with their version count and aliases."""
    with workspace() as ws:
        rows = ModelRegistry(ws).list_models()

    def human() -> None:
        table = Table("model", "versions", "latest", "aliases")
        for r in rows:
            aliases = ", ".join(f"{a}→v{v}" for a, v in sorted(r["aliases"].items()))
            table.add_row(r["name"], str(r["n_versions"]), f"v{r['latest_version']}", aliases)
        console.print(table)

    emit(rows, as_json, human)


@app.command("show")
@cli_errors
def show(name: str, as_json: bool = JSON_OPTION) -> None:
    """Show a model's versions, metrics and aliases."""
    with workspace() as ws:
        registry = ModelRegistry(ws)
        versions = registry.versions(name)
        aliases = registry.aliases(name)
    data = {"name": name, "aliases": aliases, "versions": [v.to_dict() for v in versions]}

    def human() -> None:
        table = Table("version", "created", "sha256", "auc (holdout)", "aliases", "tainted")
        for v in versions:
            on = ", ".join(a for a, n in aliases.items() if n == v.version)
            auc = v.metrics.get("auc_holdout")
            table.add_row(f"v{v.version}", v.created_at.isoformat(timespec="seconds"), v.artifact_sha256[:12],
                          "" if auc is None else f"{auc:.4f}", on, "yes" if v.tainted else "")
        console.print(table)

    emit(data, as_json, human)


@app.command("promote")
@cli_errors
def promote(name: str, version: int, alias: str = typer.Option("production", help="Alias to move."),
            reason: str = typer.Option("", help="Why (kept in the audit history)."),
            force: bool = typer.Option(False, "--force", help="Promote to production/canary without a blessed "
                                       "evaluation (needs --reason; audited as force-promote)."),
            override_reason: str = typer.Option("", "--override-reason", help="Promote although the model's error "
                                                "budget is spent (a P0 or security fix): why; audited with your name "
                                                "and the refusal."),
            as_json: bool = JSON_OPTION) -> None:
    """Point an alias (default: production) at a version.

    production and canary need a blessed, validity-checked evaluation of the version (yarnit eval run, then
    yarnit eval gate) unless --force --reason is given. The artifact is verified and loaded first. While the
    model's error budget is spent (the workspace's SLO file, yarnit slo apply), production and canary moves
    are refused unless --override-reason is given; a move back to a version the alias served before is a
    rollback and always allowed.
    """
    with workspace() as ws:
        event = ModelRegistry(ws).promote(name, version, alias=alias, reason=reason, require_blessing=True,
                                          force=force, actor=cli_actor(), override_reason=override_reason)
    notes = {"force-promote": " (forced; audited)", "override-promote": " (error budget overridden; audited)"}
    emit(event.to_dict(), as_json, lambda: console.print(
        f"{name}: {alias} v{event.from_version} → v{event.to_version}" + notes.get(event.action, "")))


@app.command("rollback")
@cli_errors
def rollback(name: str, alias: str = typer.Option("production", help="Alias to roll back."),
             reason: str = typer.Option("", help="Why (kept in the audit history)."),
             as_json: bool = JSON_OPTION) -> None:
    """Move an alias back to the version it pointed at before (one atomic step)."""
    with workspace() as ws:
        event = ModelRegistry(ws).roll_back(name, alias=alias, reason=reason, actor=cli_actor())
    emit(event.to_dict(), as_json, lambda: console.print(
        f"{name}: {alias} rolled back v{event.from_version} → v{event.to_version}"))


@app.command("restore")
@cli_errors
def restore(name: str, version: int,
            file: Path = typer.Option(..., "--file", exists=True, dir_okay=False, readable=True,
                                      help="A copy of the version's artifact (it must hash to the recorded sha256)."),
            as_json: bool = JSON_OPTION) -> None:
    """Put back a version's missing or corrupted artifact from a copy of the same bytes (checked, then loaded)."""
    data = file.read_bytes()
    with workspace() as ws:
        target = ModelRegistry(ws).restore_artifact(name, version, data)
    emit({"model": name, "version": version, "artifact_sha256": target.artifact_sha256, "restored": True},
         as_json, lambda: console.print(f"{name} v{version}: artifact sha256:{target.artifact_sha256[:12]}… "
                                        "restored and verified"))


@app.command("history")
@cli_errors
def history(name: str, as_json: bool = JSON_OPTION) -> None:
    """Every alias move of a model, oldest first (who, when, why)."""
    with workspace() as ws:
        registry = ModelRegistry(ws)
        registry.versions(name)
        events = registry.history(name)

    def human() -> None:
        # the reason folds (never cut short); an action or actor split over two lines is misread
        table = Table("at", "alias", "from", "to", Column("action", no_wrap=True), Column("actor", no_wrap=True),
                      Column("reason", overflow="fold"))
        for e in events:
            table.add_row(e.at.isoformat(timespec="seconds"), e.alias, str(e.from_version or ""),
                          str(e.to_version or ""), e.action, plain(e.actor), plain(e.reason))
        console.print(table)

    emit([e.to_dict() for e in events], as_json, human)


@app.command("traffic")
@cli_errors
def traffic(name: str,
            canary_percent: float = typer.Option(None, "--canary-percent",
                                                 help="Share of routing keys sent to the canary alias (0-100)."),
            shadow: bool = typer.Option(None, "--shadow/--no-shadow", help="Score the shadow alias in the background."),
            reason: str = typer.Option("", help="Why (kept in the audit history)."),
            override_reason: str = typer.Option("", "--override-reason", help="Raise the canary share although the "
                                                "model's error budget is spent (a P0 or security fix): why; audited."),
            as_json: bool = JSON_OPTION) -> None:
    """Show a model's traffic policy (canary %, shadow) and its history; with options, change it (audited).

    Every serving process re-reads the policy within its refresh interval, so all
    workers agree and a restart keeps it. While the model's error budget is spent,
    raising the canary share is refused unless --override-reason is given; lowering
    it is always allowed.
    """
    from yarnit.serving.router import TrafficPolicyStore

    with workspace() as ws:
        store = TrafficPolicyStore(ws)
        event = None
        if canary_percent is not None or shadow is not None:
            event = store.set(name, canary_percent=canary_percent, shadow=shadow, actor=cli_actor(), reason=reason,
                              override_reason=override_reason)
        else:
            ModelRegistry(ws).versions(name)  # an unknown model is an error, not a default policy
        policy = store.get(name)
        events = store.history(name)
    data = {"model": name, "policy": policy.as_dict(), "changed": event.to_dict() if event else None,
            "history": [e.to_dict() for e in events]}

    def human() -> None:
        console.print(f"{name}: canary {policy.canary_percent:g}% · shadow {'on' if policy.shadow else 'off'}")
        if events:
            table = Table("at", "canary %", "shadow", "actor", "reason")
            for e in events:
                before = "" if e.from_canary_percent is None else f"{e.from_canary_percent:g} → "
                shadow_before = "" if e.from_shadow is None else f"{'on' if e.from_shadow else 'off'} → "
                table.add_row(e.at.isoformat(timespec="seconds"), f"{before}{e.to_canary_percent:g}",
                              f"{shadow_before}{'on' if e.to_shadow else 'off'}", plain(e.actor), plain(e.reason))
            console.print(table)

    emit(data, as_json, human)
