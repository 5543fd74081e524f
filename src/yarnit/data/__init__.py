"""Data management: dataset versions (and, as issues land, schemas, validation, lineage, privacy)."""

from .versions import DatasetNotFound, DatasetVersion, Datasets, table_to_parquet_bytes

__all__ = ["DatasetNotFound", "DatasetVersion", "Datasets", "table_to_parquet_bytes"]
