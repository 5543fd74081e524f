"""Reading sources in chunks: CSV, Parquet, JSON Lines and Arrow IPC files, with progress.

Every reader yields Arrow record batches, so a file of any size streams through
bounded memory. Errors name the file, the line and the column: Arrow's own
messages do not carry line numbers, so on failure the file is re-examined
(vectorized casts with bisection, then one pass of Python's csv module up to
the bad record) to find the first bad line. The happy path never loops over
rows in Python.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.ipc as ipc
import pyarrow.json as pjson
import pyarrow.parquet as pq

from .errors import IngestError
from .schema import DatasetSchema, yarnit_type

Format = Literal["csv", "parquet", "jsonl", "arrow"]
FORMATS: tuple[str, ...] = ("csv", "parquet", "jsonl", "arrow")
_SUFFIXES: dict[str, str] = {
    ".csv": "csv", ".tsv": "csv", ".txt": "csv",
    ".parquet": "parquet", ".pq": "parquet",
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
    ".arrow": "arrow", ".feather": "arrow", ".ipc": "arrow", ".arrows": "arrow",
}
DEFAULT_BLOCK_BYTES = 16 << 20
_ROW_GROUP_READ_LIMIT = 4 << 20


@dataclass(frozen=True)
class Progress:
    """How far a read has come (``total_bytes`` is None when unknown)."""

    rows: int
    bytes_read: int
    total_bytes: int | None


ProgressCallback = Callable[[Progress], None]


def detect_format(path: str | Path, declared: str | None = None) -> str:
    """The format of ``path``: ``declared`` if given, else from the file suffix."""
    if declared is not None:
        if declared not in FORMATS:
            raise IngestError(f"format {declared!r} is not supported; use one of {', '.join(FORMATS)}.",
                              path=str(path))
        return declared
    suffixes = [s.lower() for s in Path(path).suffixes]
    for suffix in reversed(suffixes):
        if suffix in _SUFFIXES:
            return _SUFFIXES[suffix]
    raise IngestError(f"cannot tell the format from the suffix {''.join(suffixes) or '(none)'!r}; pass "
                      f"--format with one of {', '.join(FORMATS)}.", path=str(path))


class _Counting(io.RawIOBase):
    """A read-only file wrapper that counts the bytes handed out (for progress)."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.count += n
        return n

    def close(self) -> None:
        self.raw.close()
        super().close()


def read_batches(path: str | Path, fmt: str | None = None, *, schema: DatasetSchema | None = None,
                 delimiter: str | None = None, block_bytes: int = DEFAULT_BLOCK_BYTES,
                 progress: ProgressCallback | None = None) -> Iterator[pa.RecordBatch]:
    """Yield the rows of a file as record batches; raise :class:`IngestError` naming file/line/column."""
    p = Path(path)
    kind = detect_format(p, fmt)
    if not p.is_file():
        raise IngestError("does not exist or is not a file; check the path.", path=str(p))
    size = p.stat().st_size
    if size == 0:
        raise IngestError("is empty (0 bytes): there is nothing to ingest.", path=str(p))
    rows = 0
    readers = {"csv": _csv_batches, "parquet": _parquet_batches, "jsonl": _jsonl_batches, "arrow": _arrow_batches}
    source = readers[kind](p, schema=schema, delimiter=delimiter, block_bytes=block_bytes)
    for batch, position in source:
        rows += batch.num_rows
        if progress is not None:
            progress(Progress(rows=rows, bytes_read=min(position, size), total_bytes=size))
        yield batch


# -- CSV ------------------------------------------------------------------------
def _csv_delimiter(path: Path, delimiter: str | None) -> str:
    if delimiter is not None:
        return delimiter
    return "\t" if path.suffix.lower() == ".tsv" else ","


def _csv_batches(path: Path, *, schema: DatasetSchema | None, delimiter: str | None,
                 block_bytes: int) -> Iterator[tuple[pa.RecordBatch, int]]:
    sep = _csv_delimiter(path, delimiter)
    types = {} if schema is None else {n: c.arrow_type for n, c in schema.columns.items()}
    private = _private_columns(schema)
    convert = pcsv.ConvertOptions(column_types=types, strings_can_be_null=True)
    read = pcsv.ReadOptions(block_size=block_bytes)
    parse = pcsv.ParseOptions(delimiter=sep)
    raw = open(path, "rb")  # noqa: SIM115 - closed in finally, wrapped for byte counting
    counting = _Counting(raw)
    try:
        try:
            reader = pcsv.open_csv(io.BufferedReader(counting, 1 << 20), read_options=read, parse_options=parse,
                                   convert_options=convert)
        except pa.ArrowInvalid as exc:
            raise _csv_error(path, str(exc), sep, types, private) from None
        header = reader.schema.names
        _check_header(path, header)
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            except pa.ArrowInvalid as exc:
                raise _csv_error(path, str(exc), sep, types, private) from None
            yield batch, counting.count
    finally:
        counting.close()


def _check_header(path: Path, header: list[str]) -> None:
    seen: set[str] = set()
    for index, name in enumerate(header):
        if not name.strip():
            raise IngestError(f"header field #{index + 1} is empty; every column needs a name.",
                              path=str(path), line=1)
        if name in seen:
            raise IngestError(f"header names column {name!r} twice; column names must be unique.",
                              path=str(path), line=1, column=name)
        seen.add(name)


_COLUMN_INDEX = re.compile(r"column #(\d+)")


def _private_columns(schema: DatasetSchema | None) -> set[str]:
    """Columns whose values must never appear in an error message (PII, the subject id)."""
    if schema is None:
        return set()
    return {n for n, c in schema.columns.items() if c.pii is not None} | ({schema.subject} if schema.subject else set())


def _csv_error(path: Path, message: str, sep: str, types: dict[str, pa.DataType],
               private: set[str] | None = None) -> IngestError:
    """Turn an Arrow CSV error into one that names the line and column."""
    if "Empty CSV file" in message:
        return IngestError("is empty: there is no header and no data.", path=str(path), line=1)
    with open(path, newline="", encoding="utf-8", errors="replace") as stream:
        reader = csv.reader(stream, delimiter=sep)
        try:
            header = next(reader)
        except StopIteration:
            return IngestError("is empty: there is no header and no data.", path=str(path), line=1)
        width = len(header)
        match = _COLUMN_INDEX.search(message)
        if "parse error" in message or match is None:
            line = reader.line_num + 1
            for record in reader:
                if len(record) != width:
                    return IngestError(
                        f"has {len(record)} fields where the header has {width} "
                        f"({', '.join(header)}). Quote values that contain {sep!r}, or fix the line.",
                        path=str(path), line=line)
                line = reader.line_num + 1
            return IngestError(f"could not be parsed as CSV: {message}", path=str(path))
    index = int(match.group(1))
    name = header[index] if index < len(header) else f"#{index + 1}"
    target = types.get(name)
    located = _locate_bad_value(path, sep, name, target) if target is not None else None
    if located is None:
        return IngestError(f"a value cannot be read ({message}).", path=str(path), column=name)
    record_index, value = located
    line = _line_of_record(path, sep, record_index)
    shown = "(a personal value, not shown)" if name in (private or set()) else \
        repr(value if len(value) <= 40 else value[:37] + "...")
    return IngestError(f"value {shown} is not a valid {yarnit_type(target)}; fix the value or declare the column's "
                       "type in the schema.", path=str(path), line=line, column=name)


def _locate_bad_value(path: Path, sep: str, name: str, target: pa.DataType) -> tuple[int, str] | None:
    """(record index, raw text) of the first value of ``name`` that does not convert to ``target``."""
    reader = pcsv.open_csv(path, parse_options=pcsv.ParseOptions(delimiter=sep),
                           convert_options=pcsv.ConvertOptions(include_columns=[name],
                                                               column_types={name: pa.string()},
                                                               strings_can_be_null=True))
    offset = 0
    for batch in reader:
        column = batch.column(0)
        if _casts(column, target):
            offset += len(column)
            continue
        lo, hi = 0, len(column)  # invariant: the first bad value is in [lo, hi)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if _casts(column.slice(lo, mid - lo), target):
                lo = mid
            else:
                hi = mid
        return offset + lo, str(column[lo].as_py())
    return None


def _casts(values: pa.Array, target: pa.DataType) -> bool:
    try:
        pc.cast(values, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False
    return True


def _line_of_record(path: Path, sep: str, record_index: int) -> int:
    """The 1-based line where data record ``record_index`` (0-based, after the header) starts."""
    with open(path, newline="", encoding="utf-8", errors="replace") as stream:
        reader = csv.reader(stream, delimiter=sep)
        next(reader, None)
        line = reader.line_num + 1
        for i, _record in enumerate(reader):
            if i == record_index:
                return line
            line = reader.line_num + 1
    return line


# -- Parquet, Arrow IPC, JSON Lines -------------------------------------------
def _parquet_batches(path: Path, *, block_bytes: int, **_: object) -> Iterator[tuple[pa.RecordBatch, int]]:
    try:
        file = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise IngestError(f"is not a readable Parquet file ({exc}).", path=str(path)) from None
    meta = file.metadata
    total_rows = max(meta.num_rows, 1)
    size = path.stat().st_size
    done = 0
    with contextlib.closing(file):
        for index in range(meta.num_row_groups):
            rows = meta.row_group(index).num_rows
            # Whole row groups read fastest (multi-threaded); stream huge ones in batches.
            parts = ([file.read_row_group(index)] if rows <= _ROW_GROUP_READ_LIMIT
                     else file.iter_batches(batch_size=1 << 20, row_groups=[index]))
            for part in parts:
                for batch in (part.to_batches() if isinstance(part, pa.Table) else [part]):
                    done += batch.num_rows
                    yield batch, int(size * done / total_rows)


def _arrow_batches(path: Path, **_: object) -> Iterator[tuple[pa.RecordBatch, int]]:
    size = path.stat().st_size
    try:
        source = pa.memory_map(str(path))
    except OSError as exc:
        raise IngestError(f"cannot be opened ({exc}).", path=str(path)) from None
    with source:
        try:
            reader = ipc.open_file(source)
            n = reader.num_record_batches
            for i in range(n):
                yield reader.get_batch(i), int(size * (i + 1) / max(n, 1))
            return
        except pa.ArrowInvalid:
            source.seek(0)
        try:
            stream = ipc.open_stream(source)
            for batch in stream:
                yield batch, source.tell()
        except pa.ArrowInvalid as exc:
            raise IngestError(f"is not an Arrow IPC file or stream ({exc}).", path=str(path)) from None


def _jsonl_batches(path: Path, *, schema: DatasetSchema | None, block_bytes: int,
                   **_: object) -> Iterator[tuple[pa.RecordBatch, int]]:
    explicit = None if schema is None else pa.schema([(n, c.arrow_type) for n, c in schema.columns.items()])
    parse = pjson.ParseOptions(explicit_schema=explicit, unexpected_field_behavior="infer")
    raw = open(path, "rb")  # noqa: SIM115 - closed in finally
    counting = _Counting(raw)
    try:
        try:
            reader = pjson.open_json(io.BufferedReader(counting, 1 << 20),
                                     read_options=pjson.ReadOptions(block_size=block_bytes),
                                     parse_options=parse)
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    break
                yield batch, counting.count
        except pa.ArrowInvalid as exc:
            raise _jsonl_error(path, str(exc), schema) from None
    finally:
        counting.close()


def _jsonl_error(path: Path, message: str, schema: DatasetSchema | None) -> IngestError:
    with open(path, encoding="utf-8", errors="replace") as stream:
        for number, text in enumerate(stream, start=1):
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as exc:
                return IngestError(f"is not valid JSON ({exc.msg} at character {exc.colno}); each line must "
                                   "be one JSON object.", path=str(path), line=number)
            if not isinstance(record, dict):
                return IngestError(f"holds a JSON {type(record).__name__}, not an object; each line must be "
                                   "one JSON object.", path=str(path), line=number)
            if schema is not None:
                for name, col in schema.columns.items():
                    if name in record and record[name] is not None and not _casts(
                            pa.array([record[name]]), col.arrow_type):
                        shown = ("(a personal value, not shown)" if name in _private_columns(schema)
                                 else repr(record[name]))
                        return IngestError(f"value {shown} is not a valid {col.type}.",
                                           path=str(path), line=number, column=name)
    return IngestError(f"could not be read as JSON Lines: {message}", path=str(path))


__all__ = ["FORMATS", "Progress", "ProgressCallback", "detect_format", "read_batches"]
