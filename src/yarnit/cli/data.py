"""``yarnit data …``: ingest, list, show, stats, validate, infer-schema, forget, receipts, enforce-retention,
retention show|set."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn, TransferSpeedColumn
from rich.table import Table

from yarnit.access import cli_actor
from yarnit.core.errors import InvalidInput
from yarnit.data import (
    Datasets,
    DatasetSchema,
    Deletions,
    Retention,
    RetentionPolicy,
    RetentionReport,
    Schemas,
    ValidationReport,
    infer_schema,
    parse_duration_days,
    profile,
    read_batches,
    validate,
)
from yarnit.data import Progress as ReadProgress
from yarnit.data.retention import policy as retention_policy
from yarnit.data.versions import DatasetVersion
from yarnit.storage import Workspace

from .common import JSON_OPTION, cli_errors, console, emit, workspace

app = typer.Typer(help="Dataset versions: ingest, inspect, validate, forget a data subject, enforce retention.",
                  no_args_is_help=True)


def _progress(disabled: bool) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                    TextColumn("{task.fields[rows]:,} rows"), TimeElapsedColumn(), console=console,
                    disable=disabled, transient=True)


def _schema_for(ws: Workspace, version: DatasetVersion | None, schema_file: Path | None) -> DatasetSchema | None:
    if schema_file is not None:
        return DatasetSchema.from_file(schema_file)
    if version is None:
        return None
    schemas = Schemas(ws)
    if version.schema_id is not None:
        return schemas.get_by_id(version.schema_id).schema
    found = schemas.find(version.name)
    return None if found is None else found.schema


@app.command("ingest")
@cli_errors
def ingest(
    path: Path = typer.Argument(..., help="CSV, Parquet, JSON Lines or Arrow IPC file."),
    name: str = typer.Option(..., "--name", "-n", help="Dataset name (e.g. impressions)."),
    fmt: str | None = typer.Option(None, "--format", help="csv, parquet, jsonl or arrow (default: from suffix)."),
    schema_file: Path | None = typer.Option(None, "--schema", help="Curated schema YAML (types, PII, ranges)."),
    source: str | None = typer.Option(None, help="Where the data came from (default: the path)."),
    retention: str | None = typer.Option(None, help="Retention class (e.g. events)."),
    subject: str | None = typer.Option(None, help="Column that identifies the data subject (e.g. user_id)."),
    no_subject: str | None = typer.Option(None, "--no-subject", help="Why data with personal columns has no "
                                                                      "subject column (required then)."),
    parent: list[str] = typer.Option([], "--parent", help="Dataset version this one derives from (repeatable)."),
    run: str | None = typer.Option(None, "--run", help="Id of the run that produced the data."),
    delimiter: str | None = typer.Option(None, help="CSV field delimiter (default ',' or tab for .tsv)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Ingest a file as an immutable dataset version (identical content returns the existing version)."""
    schema = DatasetSchema.from_file(schema_file) if schema_file is not None else None
    with workspace() as ws, _progress(as_json) as bar:
        task = bar.add_task(f"ingest {path.name}", total=None, rows=0)

        def tick(p: ReadProgress) -> None:
            bar.update(task, completed=p.bytes_read, total=p.total_bytes, rows=p.rows)

        version = Datasets(ws).ingest_file(name, path, fmt=fmt, source=source, parents=parent, run_id=run,
                                           retention_class=retention, schema=schema, subject=subject,
                                           delimiter=delimiter, progress=tick, no_subject=no_subject)
    emit(version.to_dict(), as_json, lambda: console.print(
        f"{version.ref}: {version.row_count:,} rows, sha256 {version.content_sha256[:12]}…"
        + (f", {version.subject_count:,} data subjects" if version.subject_count is not None else "")
        + (f"; {version.suppressed_rows:,} rows of forgotten subjects dropped" if version.suppressed_rows else "")))


@app.command("list")
@cli_errors
def list_versions(name: str | None = typer.Argument(None, help="Only this dataset."),
                  active: bool = typer.Option(False, "--active", help="Hide forgotten, expired and purged versions."),
                  as_json: bool = JSON_OPTION) -> None:
    """List dataset versions."""
    with workspace() as ws:
        versions = Datasets(ws).list(name, include_inactive=not active)
    rows = [{"ref": d.ref, "id": d.id, "name": d.name, "version": d.version, "rows": d.row_count,
             "row_count": d.row_count, "sha256": d.content_sha256, "content_sha256": d.content_sha256,
             "created_at": d.created_at.isoformat(), "source": d.source, "status": d.status,
             "retention_class": d.retention_class} for d in versions]

    def human() -> None:
        table = Table("dataset", "rows", "sha256", "created", "status", "retention", "source")
        for r in rows:
            table.add_row(r["ref"], f"{r['rows']:,}", r["sha256"][:12], r["created_at"], r["status"],
                          r["retention_class"] or "", r["source"])
        console.print(table)

    emit(rows, as_json, human)


@app.command("show")
@cli_errors
def show(ref: str = typer.Argument(..., help="NAME, NAME:vN or a version id."), as_json: bool = JSON_OPTION) -> None:
    """Show a version's manifest: schema, subjects, retention, lineage parents, status."""
    with workspace() as ws:
        datasets = Datasets(ws)
        version = datasets.resolve(ref)
        data = version.to_dict()
        data["parents"] = [datasets.get_by_id(p).ref if p.startswith("ds_") else p for p in version.parents]
        if version.schema_id is not None:
            data["curated_schema"] = Schemas(ws).get_by_id(version.schema_id).to_dict()
        replacement = datasets.replacement(version)
        data["replaced_by"] = None if replacement is None else replacement.ref

    def human() -> None:
        table = Table(title=f"dataset {version.ref}", show_header=False)
        for key in ("id", "status", "row_count", "content_sha256", "source", "created_at", "retain_from",
                    "retention_class", "subject_column", "no_subject", "subject_count", "suppressed_rows",
                    "pii_columns", "parents", "replaced_by"):
            table.add_row(key, str(data.get(key)))
        console.print(table)
        columns = Table("column", "type")
        for column, kind in version.schema.items():
            columns.add_row(column, kind)
        console.print(columns)

    emit(data, as_json, human)


@app.command("stats")
@cli_errors
def stats(ref: str = typer.Argument(..., help="NAME, NAME:vN, a version id, or a file to profile."),
          column: str | None = typer.Option(None, help="Only this column."),
          as_json: bool = JSON_OPTION) -> None:
    """Show the statistics profile (counts, missing, distinct, quantiles, top values)."""
    with workspace() as ws:
        path = Path(ref)
        if path.is_file():
            import pyarrow as pa

            statistics = profile(pa.Table.from_batches(list(read_batches(path))))
        else:
            version = Datasets(ws).resolve(ref)
            found = version.stats()
            statistics = found if found is not None else profile(Datasets(ws).read_table(version))
    columns = statistics.columns if column is None else {column: statistics.columns[column]} \
        if column in statistics.columns else None
    if columns is None:
        raise InvalidInput(f"Column {column!r} is not in {ref}; columns: {', '.join(statistics.columns)}.")
    data = {"row_count": statistics.row_count, "slices": statistics.slices,
            "columns": {k: v.to_dict() for k, v in columns.items()}}

    def human() -> None:
        table = Table("column", "type", "missing", "distinct", "min", "p50", "max", "mean", "top values",
                      title=f"{ref}: {statistics.row_count:,} rows")
        for c in columns.values():
            p50 = c.quantile(0.5)
            top = ", ".join(f"{v} ({n:,})" for v, n in c.top_k[:3])
            table.add_row(c.name, c.type, f"{c.missing:,}", f"{c.distinct:,}{'' if c.distinct_exact else '~'}",
                          _short(c.min), _short(p50), _short(c.max), _short(c.mean), top)
        console.print(table)

    emit(data, as_json, human)


def _short(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _render_report(report: ValidationReport) -> None:
    if not report.anomalies:
        console.print(f"[green]ok[/]: {report.target} ({report.row_count:,} rows) has no anomalies")
        return
    table = Table("severity", "kind", "column", "what", "suggested fix", title=f"validation of {report.target}")
    for a in report.anomalies:
        colour = "red" if a.blocking else "yellow"
        table.add_row(f"[{colour}]{a.severity.value}[/]", a.kind, a.column or "", a.message, a.suggested_fix)
    console.print(table)
    console.print(f"{len(report.blocking)} blocking, {len(report.anomalies) - len(report.blocking)} warnings")


@app.command("validate")
@cli_errors
def validate_command(
    target: str = typer.Argument(..., help="NAME, NAME:vN, a version id, or a file to check before ingest."),
    schema_file: Path | None = typer.Option(None, "--schema", help="Schema YAML (default: the version's schema)."),
    against: str | None = typer.Option(None, help="Baseline version (default: the previous active version)."),
    no_baseline: bool = typer.Option(False, "--no-baseline", help="Check the schema only."),
    environment: str = typer.Option("training", help="Environment (e.g. training, serving)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Check data against its schema and the previous version; exit 1 on blocking anomalies."""
    import pyarrow as pa

    with workspace() as ws:
        datasets = Datasets(ws)
        path = Path(target)
        version = None
        if path.is_file():
            schema = _schema_for(ws, None, schema_file)
            table = pa.Table.from_batches(list(read_batches(path, schema=schema)))
            current_stats = None
        else:
            version = datasets.resolve(target)
            schema = _schema_for(ws, version, schema_file)
            table = datasets.read_table(version)
            current_stats = version.stats()
        if schema is None:
            raise InvalidInput(f"No schema for {target}: pass --schema FILE.yaml (write one with: yarnit data "
                               f"infer-schema {target} -o schema.yaml).")
        baseline = None
        if not no_baseline:
            if against is not None:
                baseline = datasets.resolve(against)
            elif version is not None:
                baseline = datasets.previous(version)
        previous = None if baseline is None else baseline.stats()
        if previous is not None and current_stats is None:
            current_stats = profile(table, slices=schema.slices)
        report = validate(table, schema, environment=environment, previous=previous, statistics=current_stats,
                          target=version.ref if version is not None else str(path),
                          baseline=None if baseline is None else baseline.ref)
    emit(report.to_dict(), as_json, lambda: _render_report(report))
    if not report.ok:
        raise typer.Exit(1)


@app.command("infer-schema")
@cli_errors
def infer_schema_command(
    target: str = typer.Argument(..., help="NAME, NAME:vN, a version id, or a file."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write the YAML here (default: stdout)."),
) -> None:
    """Write a starting schema (types, nullability, observed ranges and domains) to curate by hand."""
    import pyarrow as pa

    from yarnit.core.atomic import atomic_write_text

    with workspace() as ws:
        path = Path(target)
        if path.is_file():
            table = pa.Table.from_batches(list(read_batches(path)))
            name = None
        else:
            version = Datasets(ws).resolve(target)
            table = Datasets(ws).read_table(version)
            name = version.name
    schema = infer_schema(table, profile(table), name=name)
    text = schema.to_yaml()
    if output is None:
        sys.stdout.write(text)
    else:
        atomic_write_text(output, text)
        console.print(f"wrote {output}: {len(schema.columns)} columns; review ranges, domains and PII tags")


def _read_subject(subject: str) -> str:
    if subject == "-":
        subject = sys.stdin.readline().strip()
    if not subject.strip():
        raise InvalidInput("The subject id is empty or only whitespace; pass the value of the dataset's subject "
                           "column (e.g. a user id) with --subject ID, or on stdin with --subject -.")
    return subject


@app.command("forget")
@cli_errors
def forget(
    subject: str = typer.Option(..., "--subject", help="The data subject's id ('-' reads it from stdin, which "
                                                        "keeps it out of shell history)."),
    grace: str = typer.Option("7d", help="Wait this long before purging old files (0d to 30d)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would be rewritten and tainted."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Remove a data subject from every dataset version, taint downstream models, write a receipt."""
    subject_id = _read_subject(subject)
    with workspace() as ws:
        # by default forget also erases the feature store (offline, every online store) and the prediction log
        receipt = Deletions(ws).forget(subject_id, grace=timedelta(days=parse_duration_days(grace)), dry_run=dry_run,
                                            actor=cli_actor())
    data = receipt.to_dict()

    def human() -> None:
        if dry_run:
            console.print(f"would rewrite: {', '.join(data['would_rewrite']) or 'nothing'}")
            console.print(f"would taint: {', '.join(data['would_taint']) or 'nothing'}")
            return
        console.print(f"deletion receipt {receipt.id} ({receipt.status}); subject hash {receipt.subject_hash[:16]}…")
        for r in data.get("rewritten", []):
            console.print(f"  rewrote {r['from']} → {r['to']} ({r['rows_removed']:,} rows removed)")
        console.print(f"  purge after {receipt.purge_after.isoformat()} ({len(data.get('scheduled_purges', []))} "
                      f"files); due by {receipt.due_by.isoformat()}")
        for m in data.get("tainted_models", []):
            console.print(f"  tainted model {m}: retrain it")
        console.print(f"  searched {len(data.get('searched', []))} places (--json lists them); "
                      f"{data.get('monitoring_summaries', '')}")
        if data.get("no_personal_data"):
            console.print(f"  no personal data in: {', '.join(data['no_personal_data'])}")
        for r in data.get("remaining", []):
            console.print(f"  [yellow]remains[/]: {r['where']}: {r['why']}")

    emit(data, as_json, human)


@app.command("receipts")
@cli_errors
def receipts(as_json: bool = JSON_OPTION) -> None:
    """List deletion receipts (they hold keyed hashes, never subject ids)."""
    with workspace() as ws:
        items = [r.to_dict() for r in Deletions(ws).receipts()]

    def human() -> None:
        table = Table("receipt", "requested", "due by", "status", "rewritten", "tainted models")
        for r in items:
            table.add_row(r["id"], r["requested_at"], r["due_by"], r["status"], str(len(r.get("rewritten", []))),
                          ", ".join(r.get("tainted_models", [])))
        console.print(table)

    emit(items, as_json, human)


def _retention(ws: Workspace, features: Any) -> Retention:
    """Retention over dataset versions, the feature store, the prediction log and the monitoring summaries."""
    from yarnit.features.retention import FeatureStoreRetention
    from yarnit.monitoring.retention import MonitoringRetention
    from yarnit.serving.erasure import PredictionLogRetention

    return Retention(ws, targets=[FeatureStoreRetention(features), PredictionLogRetention(ws),
                                  MonitoringRetention(ws)])


def _render_retention(report: RetentionReport, dry_run: bool) -> None:
    verb = "would expire" if dry_run else "expired"
    console.print(f"{verb}: {', '.join(report.expired) or 'no dataset versions'}")
    for name, items in report.targets.items():
        console.print(f"{verb} in {name}: {', '.join(items) or 'nothing'}")
    if report.no_longer_reproducible:
        console.print(f"models trained on expired data (no longer reproducible): "
                      f"{', '.join(report.no_longer_reproducible)}")
    if report.unknown_classes:
        console.print(f"[yellow]no policy for classes[/]: {report.unknown_classes} (set one with: yarnit data "
                      "retention set CLASS AGE)")
    if report.purge is not None:
        console.print(f"purged {len(report.purge.purged)} files; {report.purge.pending} still waiting for "
                      "their grace period")


def _what_if(items: list[str]) -> dict[str, RetentionPolicy]:
    out = {}
    for item in items:
        class_name, sep, spec = item.partition("=")
        if not sep:
            raise InvalidInput(f"--set {item!r} is not CLASS=AGE[:GRACE]; e.g. --set events=400d:7d")
        age, _, grace = spec.partition(":")
        out[class_name.strip()] = retention_policy(class_name.strip(), age, grace=grace or 0)
    return out


@app.command("enforce-retention")
@cli_errors
def enforce_retention(
    set_policy: list[str] = typer.Option([], "--set", help="With --dry-run: a what-if policy CLASS=AGE[:GRACE] "
                                                           "(never stored; change one with: data retention set)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Report what would expire; change nothing."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Expire data older than its retention class allows and purge files whose grace has passed."""
    from yarnit.features import FeatureStore

    overrides = _what_if(set_policy)
    if overrides and not dry_run:
        raise InvalidInput("--set is a what-if for --dry-run and is never stored. Change a policy with: yarnit data "
                           "retention set CLASS AGE [--grace G] (it shows what the policy would expire and asks "
                           "first), then run enforce-retention.")
    with workspace() as ws, FeatureStore(ws) as features:
        retention = _retention(ws, features)
        report = retention.enforce(dry_run=dry_run, overrides=overrides)
        policies = {k: v.to_dict() for k, v in (retention.effective_policies() | overrides).items()}
    data = report.to_dict() | {"policies": policies}
    emit(data, as_json, lambda: _render_retention(report, dry_run))


retention_app = typer.Typer(help="Retention policies: show them (with the world's defaults), set one.",
                            no_args_is_help=True)
app.add_typer(retention_app, name="retention")


@retention_app.command("show")
@cli_errors
def retention_show(as_json: bool = JSON_OPTION) -> None:
    """List retention policies: those set, and the defaults of the world's classes."""
    with workspace() as ws:
        policies = Retention(ws).effective_policies()
    rows = [p.to_dict() for p in policies.values()]

    def human() -> None:
        table = Table("class", "max age (days)", "grace (days)", "source", "updated")
        for r in rows:
            table.add_row(r["class"], str(r["max_age_days"]), str(r["grace_days"]), r["source"],
                          r["updated_at"] or "")
        console.print(table)

    emit(rows, as_json, human)


@retention_app.command("set")
@cli_errors
def retention_set(
    class_name: str = typer.Argument(..., metavar="CLASS", help="Retention class (e.g. events, features, "
                                                                "prediction_log)."),
    max_age: str = typer.Argument(..., metavar="AGE", help="Maximum age, e.g. 400d, 8w, 1y."),
    grace: str = typer.Option("0d", help="Wait this long before purging expired files."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Store it without asking."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Change a retention policy: shows what it would expire, asks, stores it and audits the change."""
    from yarnit.features import FeatureStore

    new = retention_policy(class_name, max_age, grace=grace)
    with workspace() as ws, FeatureStore(ws) as features:
        retention = _retention(ws, features)
        before = retention.effective_policies().get(class_name)
        preview = retention.preview(new)
        would = [*preview.expired, *(item for items in preview.targets.values() for item in items)]
        if not as_json:
            old = "none" if before is None else f"{before.max_age_days}d (grace {before.grace_days}d, {before.source})"
            console.print(f"{class_name}: {old} → {new.max_age_days}d (grace {new.grace_days}d)")
            _render_retention(preview, dry_run=True)
        if not yes and (as_json or not typer.confirm("Store this policy?", default=False)):
            raise InvalidInput(f"Retention policy for {class_name!r} not stored: confirm it, or pass --yes to store "
                               "it without asking (needed with --json).")
        stored = retention.set_policy(class_name, max_age, grace=grace, actor=cli_actor(), would_expire=would)
    data = stored.to_dict() | {"would_expire": would}
    emit(data, as_json, lambda: console.print(
        f"stored: {class_name} {stored.max_age_days}d (grace {stored.grace_days}d); it applies at the next "
        "yarnit data enforce-retention"))


__all__ = ["app"]
