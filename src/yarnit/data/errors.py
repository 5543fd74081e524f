"""Data errors: each names the dataset, file, line or column at fault and the next step.

::

    NotFound ── DatasetNotFound, SchemaNotFound
    InvalidInput ── IngestError        a file cannot be read (names file, line, column)
                 └─ SchemaError        a schema YAML is invalid (names file, line, key)
    Conflict ── DatasetUnavailable     a version was forgotten, expired or purged
             └─ ValidationFailed       blocking anomalies stop a pipeline

Messages never contain values of PII columns or data-subject ids.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from yarnit.core.errors import Conflict, InvalidInput, NotFound

if TYPE_CHECKING:
    from .validation import ValidationReport


class DatasetNotFound(NotFound):
    def __init__(self, name: str, version: int | None = None) -> None:
        what = f"dataset {name!r}" if version is None else f"version {version} of dataset {name!r}"
        super().__init__(f"There is no {what}. List datasets with: yarnit data list")
        self.name, self.version = name, version


class SchemaNotFound(NotFound):
    def __init__(self, name: str, version: int | None = None) -> None:
        what = f"schema {name!r}" if version is None else f"version {version} of schema {name!r}"
        super().__init__(
            f"There is no {what}. Register one by ingesting with --schema FILE.yaml, or write one from data "
            "with: yarnit data infer-schema DATASET -o schema.yaml"
        )


class IngestError(InvalidInput):
    """A source file could not be read; says where (file, line, column) when it can."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 column: str | None = None) -> None:
        where = []
        if path is not None:
            where.append(str(path))
        if line is not None:
            where.append(f"line {line}")
        if column is not None:
            where.append(f"column {column!r}")
        prefix = (", ".join(where) + ": ") if where else ""
        super().__init__(prefix + message)
        self.path, self.line, self.column = path, line, column


class SchemaError(InvalidInput):
    """A schema document is invalid; says where (file, line, key) and what is valid."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        where = ", ".join(x for x in (path, None if line is None else f"line {line}") if x)
        super().__init__((f"{where}: " if where else "") + message)
        self.path, self.line = path, line


class DatasetUnavailable(Conflict):
    """A version exists in the history but its rows may no longer be read."""

    def __init__(self, ref: str, status: str, replacement: str | None) -> None:
        why = {
            "forgotten": "was rewritten without a forgotten data subject",
            "expired": "passed its retention period",
            "purged": "was purged",
        }.get(status, f"has status {status!r}")
        next_step = (f" Use {replacement} instead." if replacement else
                     " Ingest the data again if you still may keep it.")
        super().__init__(f"Dataset version {ref} {why}; its rows can no longer be read.{next_step}")
        self.ref, self.status, self.replacement = ref, status, replacement


class ValidationFailed(Conflict):
    """Validation found blocking anomalies; the pipeline must stop."""

    def __init__(self, report: ValidationReport) -> None:
        blocking = report.blocking
        listed = "; ".join(a.summary() for a in blocking[:5])
        more = f" (and {len(blocking) - 5} more)" if len(blocking) > 5 else ""
        super().__init__(
            f"Validation of {report.target} found {len(blocking)} blocking anomalies: {listed}{more}. "
            "Fix the data (or the schema, if the change is intended) and validate again: "
            "yarnit data validate"
        )
        self.report = report


__all__ = [
    "DatasetNotFound",
    "DatasetUnavailable",
    "IngestError",
    "SchemaError",
    "SchemaNotFound",
    "ValidationFailed",
]
