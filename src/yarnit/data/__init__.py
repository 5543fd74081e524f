"""Data management: dataset versions, schemas, statistics, validation, lineage, privacy, retention.

The nouns: a :class:`DatasetVersion` (an immutable Parquet snapshot plus its
manifest), a :class:`DatasetSchema` (curated YAML), :class:`DatasetStatistics`
(a mergeable profile), an :class:`Anomaly` (one violation found by
:func:`validate`), a lineage :class:`Node`, a :class:`DeletionReceipt`.
The services: :class:`Datasets`, :class:`Schemas`, :class:`Lineage`,
:class:`Deletions` (``forget``), :class:`Retention` and :class:`PurgeQueue`.
"""

from .deletion import DeletionReceipt, Deletions, ErasureReport, Finding, SubjectEraser
from .errors import (
    DatasetNotFound,
    DatasetUnavailable,
    IngestError,
    SchemaError,
    SchemaNotFound,
    ValidationFailed,
)
from .ingest import FORMATS, Progress, detect_format, read_batches
from .lineage import Edge, Lineage, LineageGraph, Node
from .privacy import apply_pii_policy, hmac_column, hmac_hex, subject_hash, workspace_key
from .purge import PurgeQueue, PurgeReport
from .retention import (
    DEFAULT_POLICIES,
    Retention,
    RetentionPolicy,
    RetentionReport,
    RetentionTarget,
    parse_duration_days,
)
from .schema import ColumnSchema, DatasetSchema, LabelSpec, infer_schema
from .schema_registry import Schemas, SchemaVersion
from .statistics import ColumnStatistics, DatasetStatistics, merge_statistics, profile
from .validation import Anomaly, Severity, ValidationReport, validate
from .versions import DatasetVersion, Datasets, table_to_parquet_bytes

__all__ = [
    "DEFAULT_POLICIES",
    "FORMATS",
    "Anomaly",
    "ColumnSchema",
    "ColumnStatistics",
    "DatasetNotFound",
    "DatasetSchema",
    "DatasetStatistics",
    "DatasetUnavailable",
    "DatasetVersion",
    "Datasets",
    "DeletionReceipt",
    "Deletions",
    "Edge",
    "ErasureReport",
    "Finding",
    "IngestError",
    "LabelSpec",
    "Lineage",
    "LineageGraph",
    "Node",
    "Progress",
    "PurgeQueue",
    "PurgeReport",
    "Retention",
    "RetentionPolicy",
    "RetentionReport",
    "RetentionTarget",
    "SchemaError",
    "SchemaNotFound",
    "SchemaVersion",
    "Schemas",
    "Severity",
    "SubjectEraser",
    "ValidationFailed",
    "ValidationReport",
    "apply_pii_policy",
    "detect_format",
    "hmac_column",
    "hmac_hex",
    "infer_schema",
    "merge_statistics",
    "parse_duration_days",
    "profile",
    "read_batches",
    "subject_hash",
    "table_to_parquet_bytes",
    "validate",
    "workspace_key",
]
