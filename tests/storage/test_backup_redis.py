"""A Redis online store in `yarnit backup`/`yarnit restore`: the workspace's view tables, by SCAN on its prefix.

Real Redis (YARNIT_TEST_REDIS_URL), each workspace under its own unique key prefix; the test removes
its prefixes afterwards and never touches other keys of the shared database.
"""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from conftest import redis_url

from features.support import user_activity, user_rows
from yarnit.core import Settings
from yarnit.core.clock import SimulatedClock, utc
from yarnit.features import FeatureRegistry, open_online_store
from yarnit.features.materialize import write_online
from yarnit.features.online import table_name
from yarnit.storage import open_workspace
from yarnit.storage.backup import BackupCorrupted, BackupRepository, create_backup, verify_backup
from yarnit.storage.restore import WorkspaceNotEmpty, restore_workspace

pytestmark = pytest.mark.redis


@pytest.fixture
def prefixes() -> Iterator[tuple[str, str, list[str]]]:
    base = redis_url()
    run = uuid.uuid4().hex[:12]
    made = [f"yarnit-test-{run}-{name}:" for name in ("source", "target", "fresh")]
    sep = "&" if "?" in base else "?"
    yield base, sep, made
    client = redis.Redis.from_url(base)
    try:
        for prefix in [*made, f"yarnit-test-{run}-sourcex:"]:
            keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
            if keys:
                client.unlink(*keys)
    finally:
        client.close()


def test_backup_dumps_the_view_tables_and_restore_writes_them_back(tmp_path: Path,
                                                                   prefixes: tuple[str, str, list[str]]) -> None:
    base, sep, (source_prefix, target_prefix, fresh_prefix) = prefixes
    url = f"{base}{sep}prefix={source_prefix}"
    clock = SimulatedClock(utc(2026, 1, 5, 9))
    client = redis.Redis.from_url(base)
    with open_workspace(Settings.for_home(tmp_path / "source", online_store=url), clock) as ws:
        FeatureRegistry(ws).apply([user_activity])
        table = table_name(user_activity)
        store = open_online_store(url)
        write_online(user_activity, store, [user_rows(("u1", "2026-01-05T07:00Z", 3, 0.1, "ES", True),
                                                      ("u2", "2026-01-05T08:00Z", 1, 0.5, "DE", False),
                                                      ("u3", "2026-01-05T08:30Z", None, None, None, None))],
                     clock=clock, full=True)
        # keys the backup must leave alone: a view table the workspace does not define, under the same prefix,
        # and a look-alike prefix (SCAN's pattern is the exact prefix)
        client.hset(f"{source_prefix}fv:someone-else@v1", "k", "v")
        client.hset(f"{source_prefix[:-1]}x:fv:{table}", "k", "v")
        repo = BackupRepository(tmp_path / "repo")
        made = create_backup(ws, repo)
        assert made.online_store == {"prefix": source_prefix, "tables": 1, "rows": 3}
        manifest = repo.manifest(made.id)
        entry = manifest["online_store"]
        assert entry["kind"] == "redis" and verify_backup(repo, made.id).ok
        with gzip.open(repo.blob_path(entry["sha256"])) as dump:
            lines = [json.loads(line) for line in dump]
        assert [line["table"] for line in lines[1:]] == [table] and len(lines[1]["rows"]) == 3
        source_rows = {k: store.get(table, k) for k in ("u1", "u2", "u3")}
        source_state = store.state(table)
        again = create_backup(ws, repo)  # an unchanged store gives the same bytes: stored once
        assert repo.manifest(again.id)["online_store"]["sha256"] == entry["sha256"]
        store.close()

    # a fresh workspace whose Redis prefix already holds the table: refused, nothing written
    taken_url = f"{base}{sep}prefix={fresh_prefix}"
    client.hset(f"{fresh_prefix}fv:{table}", "u9", b"x")
    with open_workspace(Settings.for_home(tmp_path / "taken", online_store=taken_url), clock) as ws:
        with pytest.raises(WorkspaceNotEmpty, match="Redis online store already holds 1 of the backup"):
            restore_workspace(ws, repo, made.id)
        assert client.hkeys(f"{fresh_prefix}fv:{table}") == [b"u9"]
        assert restore_workspace(ws, repo, made.id, force=True).online_store["rows"] == 3  # --force replaces it
        assert sorted(client.hkeys(f"{fresh_prefix}fv:{table}")) == [b"u1", b"u2", b"u3"]

    target_url = f"{base}{sep}prefix={target_prefix}"
    with open_workspace(Settings.for_home(tmp_path / "target", online_store=target_url), clock) as ws:
        report = restore_workspace(ws, repo, made.id)
        assert report.online_store == {"prefix": target_prefix, "tables": 1, "rows": 3}
        target = open_online_store(target_url)
        assert {k: target.get(table, k) for k in ("u1", "u2", "u3")} == source_rows
        assert target.state(table) == source_state and target.tables() == [table]
        target.close()
    assert not list(client.scan_iter(match=f"{target_prefix}fv:someone-else*"))
    client.close()

    # one flipped bit in the online-store blob: the restore refuses before writing anything
    blob = repo.blob_path(entry["sha256"])
    blob.chmod(0o644)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0x01
    blob.write_bytes(bytes(data))
    with open_workspace(Settings.for_home(tmp_path / "other"), clock) as ws:
        with pytest.raises(BackupCorrupted, match=entry["sha256"][:12]):
            restore_workspace(ws, repo, made.id)
