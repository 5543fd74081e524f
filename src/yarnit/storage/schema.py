"""The metadata store's tables (SQLAlchemy Core), shared by every domain.

Migrations in ``migrations/versions`` create exactly these tables; a test
compares a migrated database with this module so the two never drift apart.
Timestamps are stored as timezone-aware UTC; JSON columns hold small documents
(schemas, statistics summaries, metrics), never bulk data.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and always read back timezone-aware (SQLite forgets zones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()!r} given; yarnit stores aware UTC times")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

SHA = String(64)
TS = UtcDateTime()

dataset_versions = Table(
    "dataset_versions",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(63), nullable=False),
    Column("version", Integer, nullable=False),
    Column("content_sha256", SHA, nullable=False),
    Column("artifact_sha256", SHA, nullable=False),
    Column("row_count", BigInteger, nullable=False),
    Column("schema", JSON, nullable=False),
    Column("statistics", JSON, nullable=True),
    Column("source", Text, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("parents", JSON, nullable=False),
    Column("run_id", String(40), nullable=True),
    Column("retention_class", String(63), nullable=True),
    Column("pii_columns", JSON, nullable=False),
    Column("subject_column", String(128), nullable=True),
    Column("subjects_sha256", SHA, nullable=True),
    Column("status", String(16), nullable=False, server_default="active"),
    # Added in 0002 (data management): the curated schema version applied at ingest,
    # the number of distinct data subjects, the privacy treatment of PII columns,
    # what replaced this version (after `forget`) and when its status changed, and the time
    # retention counts from (a rewrite keeps its original's, so forgetting never extends retention).
    Column("schema_id", String(40), nullable=True),
    Column("subject_count", BigInteger, nullable=True),
    Column("privacy", JSON, nullable=True),
    Column("superseded_by", String(40), nullable=True),
    Column("status_changed_at", TS, nullable=True),
    Column("retain_from", TS, nullable=True),
    UniqueConstraint("name", "version", name="uq_dataset_versions_name_version"),
    UniqueConstraint("name", "content_sha256", name="uq_dataset_versions_name_content"),
)

models = Table(
    "models",
    metadata,
    Column("name", String(63), primary_key=True),
    Column("description", Text, nullable=False, server_default=""),
    Column("owner", String(128), nullable=False, server_default=""),
    Column("created_at", TS, nullable=False),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("model_name", String(63), ForeignKey("models.name"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("artifact_sha256", SHA, nullable=False),
    Column("artifact_format", String(32), nullable=False),
    Column("signature", JSON, nullable=False),
    Column("metrics", JSON, nullable=False),
    Column("params", JSON, nullable=False),
    Column("dataset_version_ids", JSON, nullable=False),
    Column("run_id", String(40), nullable=True),
    Column("code_version", String(64), nullable=True),
    Column("seed", Integer, nullable=True),
    Column("created_at", TS, nullable=False),
    Column("tainted", Boolean, nullable=False, server_default="0"),
    Column("taint_reason", Text, nullable=True),
    UniqueConstraint("model_name", "version", name="uq_model_versions_name_version"),
)

aliases = Table(
    "aliases",
    metadata,
    Column("model_name", String(63), primary_key=True),
    Column("alias", String(32), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("updated_at", TS, nullable=False),
    ForeignKeyConstraint(
        ["model_name", "version"],
        ["model_versions.model_name", "model_versions.version"],
        name="fk_aliases_model_version",
    ),
)

alias_events = Table(
    "alias_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_name", String(63), nullable=False),
    Column("alias", String(32), nullable=False),
    Column("from_version", Integer, nullable=True),
    Column("to_version", Integer, nullable=True),
    Column("action", String(16), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("reason", Text, nullable=False, server_default=""),
    Column("at", TS, nullable=False),
    Index("ix_alias_events_model_alias", "model_name", "alias"),
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("pipeline", String(63), nullable=False),
    Column("state", String(16), nullable=False),
    Column("started_at", TS, nullable=False),
    Column("ended_at", TS, nullable=True),
    Column("params", JSON, nullable=False),
    Column("metrics", JSON, nullable=False),
    Column("code_version", String(64), nullable=True),
    # added by 0004 (training pipelines)
    Column("source", Text, nullable=True),
    Column("config", JSON, nullable=True),
    Column("seed", Integer, nullable=True),
    Column("environment", JSON, nullable=True),
    Column("error", Text, nullable=True),
    Column("reproduces", String(40), nullable=True),
    # added by 0010 (run leases): the runner renews heartbeat_at while the run is alive
    Column("heartbeat_at", TS, nullable=True),
    Column("lease_s", Float, nullable=True),
    Index("ix_runs_pipeline", "pipeline"),
)

lineage_edges = Table(
    "lineage_edges",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("src_kind", String(32), nullable=False),
    Column("src_id", String(128), nullable=False),
    Column("dst_kind", String(32), nullable=False),
    Column("dst_id", String(128), nullable=False),
    Column("relation", String(32), nullable=False),
    Column("created_at", TS, nullable=False),
    UniqueConstraint("src_kind", "src_id", "dst_kind", "dst_id", "relation", name="uq_lineage_edges_edge"),
    Index("ix_lineage_edges_src", "src_kind", "src_id"),
    Index("ix_lineage_edges_dst", "dst_kind", "dst_id"),
)

dataset_schemas = Table(
    "dataset_schemas",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(63), nullable=False),
    Column("version", Integer, nullable=False),
    Column("content_sha256", SHA, nullable=False),
    Column("document", JSON, nullable=False),
    Column("source", Text, nullable=False),
    Column("created_at", TS, nullable=False),
    UniqueConstraint("name", "version", name="uq_dataset_schemas_name_version"),
    UniqueConstraint("name", "content_sha256", name="uq_dataset_schemas_name_content"),
)

artifact_purges = Table(
    "artifact_purges",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("artifact_sha256", SHA, nullable=False),
    Column("reason", String(32), nullable=False),
    Column("request_id", String(40), nullable=True),
    Column("scheduled_at", TS, nullable=False),
    Column("purge_after", TS, nullable=False),
    Column("purged_at", TS, nullable=True),
    Column("outcome", String(32), nullable=True),
    Index("ix_artifact_purges_due", "purged_at", "purge_after"),
)

deletion_receipts = Table(
    "deletion_receipts",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("subject_hash", SHA, nullable=False),
    Column("requested_at", TS, nullable=False),
    Column("due_by", TS, nullable=False),
    Column("purge_after", TS, nullable=False),
    Column("completed_at", TS, nullable=True),
    Column("status", String(16), nullable=False),
    Column("detail", JSON, nullable=False),
    Index("ix_deletion_receipts_subject", "subject_hash"),
)

lineage_taints = Table(
    "lineage_taints",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("node_kind", String(32), nullable=False),
    Column("node_id", String(128), nullable=False),
    Column("reason", Text, nullable=False),
    Column("request_id", String(40), nullable=True),
    Column("created_at", TS, nullable=False),
    Index("ix_lineage_taints_node", "node_kind", "node_id"),
)

retention_policies = Table(
    "retention_policies",
    metadata,
    Column("class_name", String(63), primary_key=True),
    Column("max_age_days", Integer, nullable=False),
    Column("grace_days", Integer, nullable=False, server_default="0"),
    Column("updated_at", TS, nullable=False),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", TS, nullable=False),
    Column("actor", String(128), nullable=False),
    Column("action", String(64), nullable=False),
    Column("subject", String(256), nullable=False),
    Column("detail", JSON, nullable=False),
)

# --- training (0004) ---

run_steps = Table(
    "run_steps",
    metadata,
    Column("run_id", String(40), ForeignKey("runs.id"), primary_key=True),
    Column("step", String(63), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("cache_key", SHA, nullable=True),
    Column("inputs", JSON, nullable=False),
    Column("outputs", JSON, nullable=True),
    Column("started_at", TS, nullable=True),
    Column("ended_at", TS, nullable=True),
    Column("wall_s", Float, nullable=True),
    Column("cpu_s", Float, nullable=True),
    Column("peak_rss_mb", Float, nullable=True),
    Column("rows", BigInteger, nullable=True),
    Column("rows_per_s", Float, nullable=True),
    Column("error", Text, nullable=True),
    Column("logs", JSON, nullable=False),
)

step_cache = Table(
    "step_cache",
    metadata,
    Column("cache_key", SHA, primary_key=True),
    Column("pipeline", String(63), nullable=False),
    Column("step", String(63), nullable=False),
    Column("outputs", JSON, nullable=False),
    Column("run_id", String(40), nullable=False),
    Column("created_at", TS, nullable=False),
)

# --- evaluation (0006) ---
# One row per evaluation of a model (a pipeline candidate or a registered version), named by the sha256
# of the artifact it evaluated; the full report is a canonical-JSON artifact. Every metric value is also a
# row keyed by (subject, distribution, slice, metric): the distribution is required (book CH5-R6).

evaluations = Table(
    "evaluations",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("model_name", String(63), nullable=False),
    Column("model_version", Integer, nullable=True),
    Column("model_version_id", String(40), nullable=True),
    Column("artifact_sha256", SHA, nullable=False),
    Column("run_id", String(40), nullable=True),
    Column("created_at", TS, nullable=False),
    Column("primary_distribution", String(128), nullable=False),
    Column("distributions", JSON, nullable=False),
    Column("dataset_version_ids", JSON, nullable=False),
    Column("report_sha256", SHA, nullable=False),
    Column("summary", JSON, nullable=False),
    Column("compared_with", JSON, nullable=True),
    Column("validity_passed", Boolean, nullable=True),
    Column("blessed", Boolean, nullable=True),
    Column("verdict", JSON, nullable=True),
    Column("gated_at", TS, nullable=True),
    Index("ix_evaluations_model", "model_name", "created_at"),
    Index("ix_evaluations_artifact", "artifact_sha256"),
)

evaluation_metrics = Table(
    "evaluation_metrics",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("evaluation_id", String(40), ForeignKey("evaluations.id"), nullable=False),
    Column("subject", String(64), nullable=False),
    Column("distribution", String(128), nullable=False),
    Column("slice", String(256), nullable=False, server_default=""),
    Column("metric", String(64), nullable=False),
    Column("value", Float, nullable=True),
    Column("ci_low", Float, nullable=True),
    Column("ci_high", Float, nullable=True),
    Column("n", BigInteger, nullable=True),
    Column("positives", BigInteger, nullable=True),
    Column("undefined", Text, nullable=True),
    Index("ix_evaluation_metrics_evaluation", "evaluation_id"),
    Index("ix_evaluation_metrics_metric", "metric", "distribution"),
)

__all__ = [
    "run_steps",
    "step_cache",
    "UtcDateTime",
    "alias_events",
    "aliases",
    "artifact_purges",
    "audit_log",
    "dataset_schemas",
    "dataset_versions",
    "deletion_receipts",
    "lineage_edges",
    "lineage_taints",
    "metadata",
    "model_versions",
    "models",
    "retention_policies",
    "runs",
    "evaluation_metrics",
    "evaluations",
]

# --- features ---
# Feature view definitions (one row per version; a changed definition is a new
# row, never an update), the models that consume them, and materialization runs.
# Created by migration 0003 (branch off 0001).

feature_views = Table(
    "feature_views",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(63), nullable=False),
    Column("number", Integer, nullable=False),
    Column("version", String(64), nullable=False),
    Column("definition", JSON, nullable=False),
    Column("owner", String(128), nullable=False, server_default=""),
    Column("description", Text, nullable=False, server_default=""),
    Column("created_at", TS, nullable=False),
    UniqueConstraint("name", "number", name="uq_feature_views_name_number"),
    UniqueConstraint("name", "version", name="uq_feature_views_name_version"),
)

feature_consumers = Table(
    "feature_consumers",
    metadata,
    Column("view_name", String(63), primary_key=True),
    Column("consumer", String(128), primary_key=True),
    Column("kind", String(32), nullable=False, server_default="model"),
    Column("features", JSON, nullable=False),
    Column("registered_at", TS, nullable=False),
)

feature_materializations = Table(
    "feature_materializations",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("view_name", String(63), nullable=False),
    Column("view_version", String(64), nullable=False),
    Column("mode", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("store", String(256), nullable=False),
    Column("window_start", TS, nullable=True),
    Column("window_end", TS, nullable=False),
    Column("rows_offered", BigInteger, nullable=True),
    Column("rows_written", BigInteger, nullable=True),
    Column("started_at", TS, nullable=False),
    Column("ended_at", TS, nullable=True),
    Column("error", Text, nullable=True),
    Index("ix_feature_materializations_view", "view_name", "started_at"),
)

__all__ += ["feature_consumers", "feature_materializations", "feature_views"]

# --- serving (0007) ---
# The traffic policy of each served model (canary share, shadow on/off), read by every server process, and
# the audit trail of its changes (who, when, old → new), like alias_events for aliases.

traffic_policies = Table(
    "traffic_policies",
    metadata,
    Column("model_name", String(63), ForeignKey("models.name"), primary_key=True),
    Column("canary_percent", Float, nullable=False),
    Column("shadow", Boolean, nullable=False),
    Column("updated_at", TS, nullable=False),
    Column("updated_by", String(128), nullable=False),
    # The emergency "fall back" switch (yarnit.continuous.actions, migration 0011): serve the fallback the
    # model's owner declared instead of the model, until restored.
    Column("force_fallback", Boolean, nullable=False, server_default="0"),
)

traffic_policy_events = Table(
    "traffic_policy_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_name", String(63), nullable=False),
    Column("from_canary_percent", Float, nullable=True),
    Column("to_canary_percent", Float, nullable=False),
    Column("from_shadow", Boolean, nullable=True),
    Column("to_shadow", Boolean, nullable=False),
    Column("actor", String(128), nullable=False),
    Column("reason", Text, nullable=False, server_default=""),
    Column("at", TS, nullable=False),
    Index("ix_traffic_policy_events_model", "model_name"),
)

__all__ += ["traffic_policies", "traffic_policy_events"]

# --- access (0009) ---
# Named API tokens: only the sha256 of the secret is stored (the secret is 256 random bits, so a fast hash
# is enough and lets the server find the token by it); a revoked token keeps its row and name, so audit rows
# that name it stay unambiguous. ``restricted_reads`` is the audit of every raw read of a restricted column.

access_tokens = Table(
    "access_tokens",
    metadata,
    Column("name", String(63), primary_key=True),
    Column("secret_sha256", SHA, nullable=False),
    Column("roles", JSON, nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("created_at", TS, nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("revoked_at", TS, nullable=True),
    Column("revoked_by", String(128), nullable=True),
    UniqueConstraint("secret_sha256", name="uq_access_tokens_secret_sha256"),
)

restricted_reads = Table(
    "restricted_reads",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", TS, nullable=False),
    Column("actor", String(128), nullable=False),
    Column("via", String(16), nullable=False),
    Column("source_kind", String(32), nullable=False),
    Column("source_ref", String(256), nullable=False),
    Column("columns", JSON, nullable=False),
    Column("purpose", Text, nullable=False),
    Index("ix_restricted_reads_at", "at"),
)

__all__ += ["access_tokens", "restricted_reads"]

# --- privacy (0008) ---
# The suppression list: keyed hashes (HMAC-SHA256 with the workspace key, never raw ids) of forgotten data
# subjects, applied at every ingest so a subject who reappears in a later export stays forgotten. And every
# online store a feature view was ever materialized into (URL with any password redacted), so ``forget``
# also reaches a store the workspace has since switched away from.

subject_suppressions = Table(
    "subject_suppressions",
    metadata,
    Column("subject_hmac", String(64), primary_key=True),
    Column("receipt_id", String(40), nullable=False),
    Column("added_at", TS, nullable=False),
)

online_store_targets = Table(
    "online_store_targets",
    metadata,
    Column("url", String(512), primary_key=True),
    Column("first_used_at", TS, nullable=False),
    Column("last_used_at", TS, nullable=False),
)

__all__ += ["online_store_targets", "subject_suppressions"]

# --- emergency actions (0011) ---
# "Stop training": a row while a model's pushes are frozen (the pipelines' promote step and the loop ask it).
# "Remove bad data" asks for retrains: one row per model trained on the data that was cut, until the loop
# (or an operator) marks it done. Every change is also a row of ``audit_log`` (action ``emergency.*``).

training_freezes = Table(
    "training_freezes",
    metadata,
    Column("model_name", String(63), primary_key=True),
    Column("reason", Text, nullable=False),
    Column("frozen_by", String(128), nullable=False),
    Column("frozen_at", TS, nullable=False),
    Column("audit_id", Integer, nullable=True),
)

retrain_requests = Table(
    "retrain_requests",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("model_name", String(63), nullable=False),
    Column("model_versions", JSON, nullable=False),
    Column("dataset_version_id", String(40), nullable=False),
    Column("replacement_id", String(40), nullable=True),
    Column("reason", Text, nullable=False),
    Column("requested_by", String(128), nullable=False),
    Column("requested_at", TS, nullable=False),
    Column("status", String(16), nullable=False),
    Column("done_at", TS, nullable=True),
    Column("done_by", String(128), nullable=True),
    Column("note", Text, nullable=True),
    Index("ix_retrain_requests_status", "status", "model_name"),
)

__all__ += ["retrain_requests", "training_freezes"]

# --- change counters (0014) ---
# ``serving``: on PostgreSQL, triggers on models, model_versions, aliases, alias_events and traffic_policies
# add one per writing statement; serving replicas poll it (MetadataStore.change_token) and re-read aliases and
# policies only when it moved. SQLite uses PRAGMA data_version instead and leaves the row at 0.

change_counters = Table(
    "change_counters",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

__all__ += ["change_counters"]
# --- human labels (0012) ---
# A label schema (classes + guideline text) is versioned: changing the guideline mid-task adds a version and
# every answer keeps the version it was given under. A task labels the rows of one dataset version; its items
# are copied in (key, text) so the rater page and the answers never depend on re-reading Parquet. Golden
# items carry their known class (never sent to raters); assignments give each item to k raters, and every
# rater gets every golden item, hidden at its position in their queue.

label_schemas = Table(
    "label_schemas",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(63), nullable=False),
    Column("version", Integer, nullable=False),
    Column("classes", JSON, nullable=False),
    Column("guideline", Text, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("created_by", String(128), nullable=False),
    UniqueConstraint("name", "version", name="uq_label_schemas_name_version"),
)

label_tasks = Table(
    "label_tasks",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(63), nullable=False),
    Column("schema_name", String(63), nullable=False),
    Column("schema_version", Integer, nullable=False),
    Column("dataset_version_id", String(40), nullable=False),
    Column("key_column", String(128), nullable=False),
    Column("text_column", String(128), nullable=False),
    Column("raters", JSON, nullable=False),
    Column("overlap", Integer, nullable=False),
    Column("seed", BigInteger, nullable=False),
    Column("policy", JSON, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("created_by", String(128), nullable=False),
    UniqueConstraint("name", name="uq_label_tasks_name"),
)

label_items = Table(
    "label_items",
    metadata,
    Column("task_id", String(40), primary_key=True),
    Column("item_key", String(128), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("text", Text, nullable=False),
    Column("golden_label", String(63), nullable=True),
    Column("prelabel", String(63), nullable=True),
    Column("prelabel_confidence", Float, nullable=True),
    Column("prelabel_model", String(128), nullable=True),
    Column("show_prelabel", Boolean, nullable=False, server_default="0"),
    Column("reviewed_label", String(63), nullable=True),
    Column("reviewed_by", String(128), nullable=True),
    Column("reviewed_at", TS, nullable=True),
)

label_assignments = Table(
    "label_assignments",
    metadata,
    Column("task_id", String(40), primary_key=True),
    Column("item_key", String(128), primary_key=True),
    Column("rater", String(128), primary_key=True),
    Column("position", Integer, nullable=False),
    Index("ix_label_assignments_queue", "task_id", "rater", "position"),
)

label_answers = Table(
    "label_answers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("task_id", String(40), nullable=False),
    Column("item_key", String(128), nullable=False),
    Column("rater", String(128), nullable=False),
    Column("label", String(63), nullable=False),
    Column("schema_version", Integer, nullable=False),
    Column("prelabel_shown", Boolean, nullable=False),
    Column("seq", Integer, nullable=False),
    Column("answered_at", TS, nullable=False),
    UniqueConstraint("task_id", "item_key", "rater", name="uq_label_answers_once"),
    Index("ix_label_answers_rater", "task_id", "rater", "seq"),
)

__all__ += ["label_answers", "label_assignments", "label_items", "label_schemas", "label_tasks"]
# --- artifact GC (0013) ---
# Blobs in the artifact store that no row references (a writer crashed between writing the blob and recording
# its row). A sweep marks each one the first time it finds it; a later sweep deletes it once the grace period
# has passed by the workspace clock, unless a row references it by then or a writer stored the same bytes again
# (which touches the file: ``mtime_ns`` changed).

artifact_orphans = Table(
    "artifact_orphans",
    metadata,
    Column("sha256", SHA, primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("mtime_ns", BigInteger, nullable=False),
    Column("first_seen_at", TS, nullable=False),
)

__all__ += ["artifact_orphans"]
# --- model-on-model dependencies (0016) ---
# A consumer model reads an upstream model's output (yarnit-ranker packages the click model ``ctr``). When the
# upstream gets a new version, the consumer is evaluated again on the triple (upstream version, consumer version,
# dataset version), one row per triple (book ch. 15, case 6); the full report is an ``evaluations`` row.

model_dependencies = Table(
    "model_dependencies",
    metadata,
    Column("consumer", String(63), nullable=False),
    Column("upstream", String(63), nullable=False),
    Column("alias", String(32), nullable=False),
    Column("dataset", String(128), nullable=True),  # NAME or NAME:vN; None: the upstream version's training data
    Column("max_regression", Float, nullable=False),
    Column("declared_at", TS, nullable=False),
    Column("declared_by", String(128), nullable=False),
    Column("reason", Text, nullable=False, server_default=""),
    Index("ix_model_dependencies_upstream", "upstream"),
    PrimaryKeyConstraint("consumer", "upstream", name="pk_model_dependencies"),
)

dependency_evaluations = Table(
    "dependency_evaluations",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("consumer", String(63), nullable=False),
    Column("consumer_version", Integer, nullable=False),
    Column("upstream", String(63), nullable=False),
    Column("upstream_version", Integer, nullable=False),
    Column("dataset_version_id", String(40), nullable=False),
    Column("evaluation_id", String(40), ForeignKey("evaluations.id"), nullable=False),
    Column("baseline_version", Integer, nullable=True),
    Column("metric", String(64), nullable=False),
    Column("value", Float, nullable=True),
    Column("baseline_value", Float, nullable=True),
    Column("max_regression", Float, nullable=False),
    Column("regressed", Boolean, nullable=False),
    Column("reasons", JSON, nullable=False),
    Column("trigger", String(64), nullable=False),
    Column("created_at", TS, nullable=False),
    UniqueConstraint("upstream", "upstream_version", "consumer", "consumer_version", "dataset_version_id",
                     name="uq_dependency_evaluations_triple"),
    Index("ix_dependency_evaluations_consumer", "consumer", "consumer_version"),
)

__all__ += ["dependency_evaluations", "model_dependencies"]
# --- load tests (0015) ---
# One row per ``yarnit loadtest`` run: a candidate version and the production version measured in the same
# run by the same open-loop generator, the verdict of the latency/error gate, and the whole report (figures
# per side, tolerances, inputs) as JSON. The staged rollout's load-test stage reads the latest row.

load_tests = Table(
    "load_tests",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("model_name", String(63), nullable=False),
    Column("model_version", Integer, nullable=False),
    Column("baseline_version", Integer, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("passed", Boolean, nullable=False),
    Column("rps", Float, nullable=False),
    Column("duration_s", Float, nullable=False),
    Column("injected_delay_ms", Float, nullable=False),
    Column("actor", String(128), nullable=False),
    Column("report", JSON, nullable=False),
    Index("ix_load_tests_version", "model_name", "model_version", "created_at"),
)

__all__ += ["load_tests"]
