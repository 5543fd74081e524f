"""A Redis online store in a workspace backup: the workspace's feature views, dumped and written back.

The embedded (SQLite) online store is a workspace file, so backups already copy it. A Redis store is
outside the workspace. :func:`dump_online_store` writes the live hash and the meta hash of every view
version the workspace defines (``feature_views``: ``{name}@{version}``). It finds them by SCAN on the
store's prefix, so other applications' keys and other prefixes in the same database are never read, and
it does not dump the whole database. The dump is gzip'd JSON lines (base64 fields and values), sorted
and with no timestamp in the gzip header, so an unchanged store gives the same bytes and the backup
repository keeps it once. The repository names the blob by its sha256, and ``yarnit backup verify`` and
``yarnit restore`` check it like every other blob. :func:`load_online_store` writes each table back
through a staging hash that one MULTI/EXEC swaps in, so a reader sees the old table or the restored one,
never a mix.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from yarnit.core.errors import IntegrityError, InvalidInput

from ._redis import RedisOnlineStore

DUMP_FORMAT = "yarnit-online-store-dump"


def is_redis(url: str) -> bool:
    return url.startswith(("redis://", "rediss://"))


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _hash(data: dict[bytes, bytes]) -> dict[str, str]:
    return {_b64(k): _b64(v) for k, v in sorted(data.items())}


def dump_online_store(url: str, tables: Iterable[str], out: IO[bytes]) -> dict[str, Any]:
    """Write the given view tables of the Redis store at ``url`` to ``out``; returns what was written."""
    if not is_redis(url):
        raise InvalidInput(f"Only a Redis online store is dumped here; {url.split(':', 1)[0]!r} is not one.")
    store = RedisOnlineStore(url)
    n_tables = n_rows = 0
    try:
        with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as stream:
            stream.write(json.dumps({"format": DUMP_FORMAT, "version": 1, "prefix": store.prefix}).encode() + b"\n")
            for table, rows, meta in store.export_tables(tables):
                line = {"table": table, "rows": _hash(rows), "meta": _hash(meta)}
                stream.write(json.dumps(line, sort_keys=True).encode() + b"\n")
                n_tables += 1
                n_rows += len(rows)
    finally:
        store.close()
    return {"prefix": store.prefix, "tables": n_tables, "rows": n_rows}


def read_online_dump(path: Path) -> Iterator[tuple[str, dict[bytes, bytes], dict[bytes, bytes]]]:
    with gzip.open(path, "rb") as stream:
        header = json.loads(stream.readline())
        if header.get("format") != DUMP_FORMAT:
            raise IntegrityError(f"{path} is not an online-store dump (format {header.get('format')!r}).")
        for raw in stream:
            line = json.loads(raw)
            yield (line["table"], {base64.b64decode(k): base64.b64decode(v) for k, v in line["rows"].items()},
                   {base64.b64decode(k): base64.b64decode(v) for k, v in line["meta"].items()})


def tables_in_dump(path: Path) -> list[str]:
    return [table for table, _, _ in read_online_dump(path)]


def occupied_tables(url: str, tables: Iterable[str]) -> list[str]:
    """Which of ``tables`` the store at ``url`` already holds (a restore would overwrite them)."""
    store = RedisOnlineStore(url)
    try:
        return [t for t in tables if store.has_table(t)]
    finally:
        store.close()


def load_online_store(url: str, path: Path) -> dict[str, Any]:
    """Write every table of the dump at ``path`` into the Redis store at ``url`` (under that store's prefix)."""
    store = RedisOnlineStore(url)
    n_tables = n_rows = 0
    try:
        for table, rows, meta in read_online_dump(path):
            store.import_table(table, rows, meta)
            n_tables += 1
            n_rows += len(rows)
    finally:
        store.close()
    return {"prefix": store.prefix, "tables": n_tables, "rows": n_rows}


__all__ = ["dump_online_store", "is_redis", "load_online_store", "occupied_tables", "read_online_dump",
           "tables_in_dump"]
