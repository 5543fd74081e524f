"""``yarnit models …``: list, show, promote, roll back, restore, history, traffic policy, dependencies."""

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


@app.command("depend")
@cli_errors
def depend(name: str, on: str = typer.Option(..., "--on", help="The upstream model NAME reads the output of."),
           alias: str = typer.Option("production", help="The upstream alias NAME is packaged with."),
           dataset: str = typer.Option("", help="Dataset (NAME or NAME:vN) to evaluate on; default: the upstream "
                                       "version's training data (its holdout days)."),
           max_regression: float = typer.Option(0.01, "--max-regression", help="Allowed AUC drop against "
                                                "NAME's production before its rollout holds."),
           reason: str = typer.Option("", help="Why (kept with the declaration)."),
           remove: bool = typer.Option(False, "--remove", help="Withdraw the declaration."),
           as_json: bool = JSON_OPTION) -> None:
    """Declare that NAME consumes the output of --on (e.g. yarnit-ranker --on ctr); then evaluate it once."""
    from yarnit.continuous.dependencies import ModelDependencies

    with workspace() as ws:
        deps = ModelDependencies(ws)
        if remove:
            deps.remove(name, on)
            data: dict[str, object] = {"consumer": name, "upstream": on, "removed": True}
        else:
            declared = deps.declare(name, on, actor=cli_actor(), alias=alias, dataset=dataset or None,
                                    max_regression=max_regression, reason=reason)
            data = declared.to_dict() | {"evaluations": deps.sync(consumer=name)}

    def human() -> None:
        if remove:
            console.print(f"{name} no longer declares a dependency on {on}")
            return
        console.print(f"{name} depends on {on} ({alias}); rollouts hold on an AUC drop > {max_regression:g}")
        for outcome in data["evaluations"]:  # type: ignore[attr-defined]
            console.print(plain("  " + _outcome_line(outcome)))

    emit(data, as_json, human)


def _outcome_line(e: dict[str, object]) -> str:
    if "error" in e:
        return f"not evaluated: {e['error']}"
    delta = e.get("delta")
    verdict = "REGRESSED: " + "; ".join(e["reasons"]) if e["regressed"] else "ok"  # type: ignore[arg-type]
    return (f"{e['upstream']}:v{e['upstream_version']} × {e['consumer']}:v{e['consumer_version']} × "
            f"{e['dataset_version_id']}: {e['metric']} {_num(e['value'])} vs production v{e['baseline_version']} "
            f"{_num(e['baseline_value'])} (Δ {'n/a' if delta is None else f'{float(delta):+.4f}'}): {verdict}")  # type: ignore[arg-type]


def _num(value: object) -> str:
    return "n/a" if value is None else f"{float(value):.4f}"  # type: ignore[arg-type]


@app.command("deps")
@cli_errors
def deps(name: str, evaluate: bool = typer.Option(False, "--evaluate", help="First evaluate every triple that "
                                                  "has no evaluation yet (a new upstream version or alias move)."),
         limit: int = typer.Option(20, min=1, max=1000, help="Evaluations shown."),
         as_json: bool = JSON_OPTION) -> None:
    """What NAME reads, who reads NAME, and the (upstream, NAME, dataset) evaluations, newest first."""
    from yarnit.continuous.dependencies import ModelDependencies, dependency_summary

    with workspace() as ws:
        found = ModelDependencies(ws)
        outcomes = found.sync(consumer=name) if evaluate else []
        data = dependency_summary(found, name, limit=limit) | {"errors": [o for o in outcomes if "error" in o]}

    def human() -> None:
        for d in data["dependencies"]:
            console.print(plain(f"{name} reads {d['upstream']} ({d['alias']}), max AUC drop {d['max_regression']:g}"))
        for d in data["dependents"]:
            console.print(plain(f"{d['consumer']} reads {name} ({d['alias']})"))
        if not data["dependencies"] and not data["dependents"]:
            console.print(f"{name} declares no dependency and none is declared on it")
        for e in data["evaluations"]:
            console.print(plain(e["created_at"][:19] + "  " + _outcome_line(e)))
        for e in data["errors"]:
            console.print(plain(_outcome_line(e)))

    emit(data, as_json, human)
