"""The Redis online store: one hash per view version (field = entity key, value = packed blob).

A read is one ``HGET`` / ``HMGET`` round trip. A write is staged in a
separate hash (starting from a server-side ``COPY`` of the live hash for
incremental writes), filled chunk by chunk through pipelines, and committed by
one Lua script that checks nobody else committed meanwhile and renames the
staging hash over the live one. Until that rename nothing a reader sees has
changed, so a failed write leaves the previous values intact; the staging hash
is removed (and expires after a day if the writer died).

Keys (``prefix`` defaults to ``yarnit:``; set it with ``redis://…/0?prefix=myapp:``)::

    {prefix}fv:{view}@{version}        hash: entity → blob
    {prefix}meta:{view}@{version}      hash: rows, newest_event_us, watermark_us, materialized_at_us, generation
    {prefix}stage:{view}@{version}:{id} staging hash of a write in progress
    {prefix}tables                     set of view versions present
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis

from yarnit.core.errors import Unavailable
from yarnit.core.settings import redact_url

from ._codec import EncodedChunk, StorageKey, ViewCodec
from .errors import MaterializationConflict
from .online import TableState, WriteSummary

_STAGING_TTL_S = 86_400

_COMMIT = """
local gen = tonumber(redis.call('HGET', KEYS[3], 'generation') or '0')
if gen ~= tonumber(ARGV[1]) then return -1 end
local rows
if ARGV[5] == 'meta' then
  rows = redis.call('HLEN', KEYS[1])
elseif redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('UNLINK', KEYS[1])
  redis.call('RENAME', KEYS[2], KEYS[1])
  redis.call('PERSIST', KEYS[1])
  rows = redis.call('HLEN', KEYS[1])
else
  redis.call('UNLINK', KEYS[1])
  rows = 0
end
redis.call('HSET', KEYS[3], 'generation', gen + 1, 'rows', rows, 'newest_event_us', ARGV[2],
           'watermark_us', ARGV[3], 'materialized_at_us', ARGV[4])
if ARGV[7] ~= '' then redis.call('HSET', KEYS[3], 'source_seq', ARGV[7]) end
redis.call('SADD', KEYS[4], ARGV[6])
return rows
"""


def _split_prefix(url: str) -> tuple[str, str | None]:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = next((v for k, v in query if k == "prefix"), None)
    rest = urlencode([(k, v) for k, v in query if k != "prefix"])
    return urlunsplit(parts._replace(query=rest)), prefix


def _int(value: Any) -> int | None:
    if value is None or value in (b"", ""):
        return None
    return int(value)


class RedisOnlineStore:
    """Online store in Redis (tested against a real server in CI).

    Args:
        url: ``redis://host:port/db`` (``rediss://`` for TLS), optionally ``?prefix=...``.
        prefix: key namespace (overrides the URL's ``prefix``); default ``yarnit:``.
        socket_timeout_s: how long to wait for Redis before raising :class:`~yarnit.core.Unavailable`.
    """

    def __init__(self, url: str, *, prefix: str | None = None, socket_timeout_s: float = 5.0) -> None:
        self.url = url
        client_url, url_prefix = _split_prefix(url)
        self.prefix = prefix if prefix is not None else (url_prefix if url_prefix is not None else "yarnit:")
        self._client = redis.Redis.from_url(client_url, socket_timeout=socket_timeout_s,
                                            socket_connect_timeout=socket_timeout_s)
        self._live: dict[str, str] = {}
        self._commit = self._client.register_script(_COMMIT)

    def _unavailable(self, exc: BaseException) -> Unavailable:
        return Unavailable(
            f"The Redis online store at {redact_url(self.url)} did not answer ({exc}). Check that Redis is "
            "running and YARNIT_ONLINE_STORE is right."
        )

    def _key(self, table: str) -> str:
        key = self._live.get(table)
        if key is None:
            key = self._live[table] = f"{self.prefix}fv:{table}"
        return key

    # --- reads ---------------------------------------------------------------------------------
    def get(self, table: str, key: StorageKey) -> bytes | None:
        try:
            return self._client.hget(self._live.get(table) or self._key(table), key)  # type: ignore[return-value]
        except redis.RedisError as exc:
            raise self._unavailable(exc) from exc

    def get_many(self, table: str, keys: Sequence[StorageKey]) -> list[bytes | None]:
        if not keys:
            return []
        try:
            return self._client.hmget(self._live.get(table) or self._key(table), list(keys))  # type: ignore[return-value]
        except redis.RedisError as exc:
            raise self._unavailable(exc) from exc

    def state(self, table: str) -> TableState | None:
        try:
            raw = self._client.hgetall(f"{self.prefix}meta:{table}")
        except redis.RedisError as exc:
            raise self._unavailable(exc) from exc
        if not raw:
            return None
        meta = {k.decode(): v for k, v in raw.items()}
        return TableState(
            rows=int(meta.get("rows", 0)),
            newest_event_us=_int(meta.get("newest_event_us")),
            watermark_us=_int(meta.get("watermark_us")),
            materialized_at_us=_int(meta.get("materialized_at_us")),
            generation=int(meta.get("generation", 0)),
            source_seq=_int(meta.get("source_seq")),
        )

    def tables(self) -> list[str]:
        try:
            return sorted(m.decode() for m in self._client.smembers(f"{self.prefix}tables"))  # type: ignore[union-attr]
        except redis.RedisError as exc:
            raise self._unavailable(exc) from exc

    # --- writes --------------------------------------------------------------------------------
    def write(self, table: str, chunks: Iterable[EncodedChunk], *, full: bool, watermark_us: int,
              now_us: int, source_seq: int | None = None) -> WriteSummary:
        live = self._key(table)
        meta = f"{self.prefix}meta:{table}"
        staging = f"{self.prefix}stage:{table}:{uuid.uuid4().hex}"
        client = self._client
        try:
            before = self.state(table)
            generation = before.generation if before else 0
            if not full and client.exists(live):
                client.copy(live, staging)
                client.expire(staging, _STAGING_TTL_S)
            offered = written = 0
            newest: int | None = None
            for chunk in chunks:
                if not len(chunk):
                    continue
                offered += len(chunk)
                # Newer wins: compare with what the staging hash holds (the live values, or earlier chunks).
                current = client.hmget(staging, chunk.keys)
                best: dict[StorageKey, tuple[int, bytes]] = {}
                for key, ev, payload, old in zip(chunk.keys, chunk.event_us, chunk.payloads, current, strict=True):
                    if old is not None and ViewCodec.event_us_of(old) > ev:
                        continue
                    seen = best.get(key)
                    if seen is None or seen[0] <= ev:
                        best[key] = (ev, payload)
                if best:
                    pipe = client.pipeline(transaction=False)
                    pipe.hset(staging, mapping={k: v[1] for k, v in best.items()})
                    pipe.expire(staging, _STAGING_TTL_S)
                    pipe.execute()
                    written += len(best)
                top = max(chunk.event_us)
                newest = top if newest is None or top > newest else newest
            if full:
                mark = watermark_us
            else:
                mark = watermark_us if before is None or before.watermark_us is None else max(
                    watermark_us, before.watermark_us)
                if before is not None and before.newest_event_us is not None and (
                        newest is None or before.newest_event_us > newest):
                    newest = before.newest_event_us
            mode = "replace" if full or written else "meta"
            rows = self._commit(
                keys=[live, staging, meta, f"{self.prefix}tables"],
                args=[generation, "" if newest is None else newest, mark, now_us, mode, table,
                      "" if source_seq is None else source_seq],
            )
        except redis.RedisError as exc:
            raise self._unavailable(exc) from exc
        finally:
            try:
                client.unlink(staging)
            except redis.RedisError:  # pragma: no cover - it expires on its own
                pass
        if int(rows) < 0:
            raise MaterializationConflict(
                f"Another write to online table {table!r} committed while this one ran; nothing from this write "
                "was applied. Run the materialization again."
            )
        return WriteSummary(rows_offered=offered, rows_written=written, rows_total=int(rows),
                            newest_event_us=newest, watermark_us=mark)

    def delete(self, table: str, keys: Sequence[StorageKey]) -> int:
        if not keys:
            return 0
        try:
            return int(self._client.hdel(self._key(table), *keys))
        except redis.RedisError as exc:
            raise self._unavailable(exc) from exc

    def keys(self, table: str) -> Iterator[StorageKey]:
        try:
            found = [k.decode() for k, _ in self._client.hscan_iter(self._key(table), count=1000)]
        except redis.RedisError as exc:
            raise self._unavailable(exc) from exc
        return iter(found)

    def drop(self, table: str) -> None:
        try:
            self._client.unlink(self._key(table), f"{self.prefix}meta:{table}")
            self._client.srem(f"{self.prefix}tables", table)
        except redis.RedisError as exc:
            raise self._unavailable(exc) from exc

    # --- backup and restore (yarnit.features.online_backup) -----------------------------------------
    def export_tables(self, tables: Iterable[str]) -> Iterator[tuple[str, dict[bytes, bytes], dict[bytes, bytes]]]:
        """(table, live hash, meta hash) of each of ``tables`` present, found by SCAN on this store's prefix.

        Only this prefix's ``fv:`` keys are listed (never the whole database), and each table's two hashes
        are read in one MULTI/EXEC, so a materialization that commits meanwhile is seen whole or not at all.
        """
        wanted = set(tables)
        pattern = "".join("\\" + c if c in "*?[]\\" else c for c in self.prefix) + "fv:*"
        start = len(self.prefix) + len("fv:")
        try:
            present = sorted({k.decode()[start:] for k in self._client.scan_iter(match=pattern, count=1000)}
                             & wanted)
            for table in present:
                pipe = self._client.pipeline(transaction=True)
                pipe.hgetall(self._key(table))
                pipe.hgetall(f"{self.prefix}meta:{table}")
                rows, meta = pipe.execute()
                if rows or meta:
                    yield table, rows, meta
        except redis.RedisError as exc:
            raise self._unavailable(exc) from exc

    def has_table(self, table: str) -> bool:
        try:
            return bool(self._client.exists(self._key(table), f"{self.prefix}meta:{table}"))
        except redis.RedisError as exc:
            raise self._unavailable(exc) from exc

    def import_table(self, table: str, rows: dict[bytes, bytes], meta: dict[bytes, bytes]) -> None:
        """Replace ``table`` with ``rows`` and its ``meta``: staged, then swapped in one MULTI/EXEC."""
        live, meta_key = self._key(table), f"{self.prefix}meta:{table}"
        staging = f"{self.prefix}stage:{table}:{uuid.uuid4().hex}"
        items = list(rows.items())
        try:
            for i in range(0, len(items), 1000):
                pipe = self._client.pipeline(transaction=False)
                pipe.hset(staging, mapping=dict(items[i:i + 1000]))
                pipe.expire(staging, _STAGING_TTL_S)
                pipe.execute()
            pipe = self._client.pipeline(transaction=True)
            pipe.unlink(live, meta_key)
            if items:
                pipe.rename(staging, live)
                pipe.persist(live)
            if meta:
                pipe.hset(meta_key, mapping=meta)
            pipe.sadd(f"{self.prefix}tables", table)
            pipe.execute()
        except redis.RedisError as exc:
            with contextlib.suppress(redis.RedisError):
                self._client.unlink(staging)
            raise self._unavailable(exc) from exc

    def close(self) -> None:
        self._client.close()

    def __repr__(self) -> str:
        return f"RedisOnlineStore({redact_url(self.url)!r}, prefix={self.prefix!r})"


__all__ = ["RedisOnlineStore"]
