"""Artifact garbage collection: blobs that no row references, removed after a grace period.

Every writer stores the blob first and records the row that names it second
(``ModelRegistry.register``, dataset ingest, pipeline step outputs), so a crash
in between leaves a blob that nothing references and nothing will ever read.
Some of those blobs hold personal data (a Parquet file of an interrupted
ingest), so they must not pile up unseen: ``yarnit data forget`` scans them
(:func:`unreferenced`) and this module removes them.

What counts as a reference is decided conservatively: any 64-hex string in any
text or JSON column of any table keeps a blob alive (a cache key or a content
hash that happens to equal a blob's name only keeps a blob a little longer).
Three tables are not references: the purge queue, the deletion receipts (they
name blobs in order to delete them) and the GC's own marks.

A sweep is mark-and-sweep with a clock-driven grace period. The first sweep
that finds an unreferenced blob records it (``artifact_orphans``: first seen at
the workspace clock's now, and the file's mtime); a sweep at least ``grace``
later deletes it if it is still unreferenced and its mtime is unchanged. A
writer that stores bytes that already exist touches the file
(:func:`~yarnit.storage.artifacts.touch_existing`), so an orphan that an
in-flight write is about to reference is marked afresh instead of deleted.
The delete itself moves the blob aside (one rename), looks at its mtime once
more and only then unlinks it, putting it back if it was touched; a writer
whose touch finds the name gone links its own staged copy in. So a writer
that finds its bytes already stored never records a row for a deleted blob,
however the two interleave. What the grace period (a day by default) still
guards: a writer that stored *new* bytes and takes longer than the grace
period to record its row loses the blob (``yarnit models restore NAME
VERSION --file FILE`` or ``yarnit restore --model NAME`` repairs it).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import JSON, Connection, String, Text, delete, insert, select, update

from yarnit.core.atomic import make_dirs
from yarnit.core.errors import InvalidInput

from .artifacts import LocalArtifactStore
from .schema import artifact_orphans, artifact_purges, deletion_receipts, metadata
from .workspace import Workspace

DEFAULT_GRACE = timedelta(days=1)
_SHA = re.compile(r"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")
# Tables that name blobs in order to delete them (or to track them as garbage): not references.
NOT_REFERENCES = frozenset({artifact_orphans.name, artifact_purges.name, deletion_receipts.name})


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)


def shas_in(values: Iterable[Any]) -> set[str]:
    """Every 64-hex string found in ``values`` (strings, or JSON documents searched recursively)."""
    found: set[str] = set()
    for value in values:
        for text in _strings(value):
            if len(text) >= 64:
                found.update(_SHA.findall(text))
    return found


def referenced(conn: Connection) -> set[str]:
    """Every blob name that some row of the metadata store references (conservatively, see the module doc)."""
    found: set[str] = set()
    for table in metadata.sorted_tables:
        if table.name in NOT_REFERENCES:
            continue
        columns = [c for c in table.columns if isinstance(c.type, (String, Text, JSON))
                   and (not isinstance(c.type, String) or c.type.length is None or c.type.length >= 64)]
        if not columns:
            continue
        result = conn.execute(select(*columns)).yield_per(5000)
        for row in result:
            found |= shas_in(row)
    return found


def unreferenced(ws: Workspace) -> list[str]:
    """Blobs stored in ``ws``'s artifact store that no row references (right now), sorted."""
    with ws.metadata.begin() as conn:
        refs = referenced(conn)
    return sorted(sha for sha in ws.artifacts.iter_shas() if sha not in refs)


def _delete_unless_touched(store: LocalArtifactStore, sha: str, mtime_ns: int) -> bool:
    """Move the blob aside, look at its mtime once more, then delete it, or put it back if a writer touched it.

    A writer that finds the name gone once the blob is moved aside links its own copy in
    (:func:`~yarnit.storage.artifacts.touch_existing`), so no interleaving leaves a new row without its bytes.
    """
    path = store.path_for(sha)
    aside = store.root / "staging" / f"gc-{os.getpid()}-{sha}"
    make_dirs(aside.parent)
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return False
    if aside.stat().st_mtime_ns != mtime_ns:
        with contextlib.suppress(FileExistsError):
            os.link(aside, path)  # touched meanwhile: it is in use again
        aside.unlink()
        return False
    aside.unlink()
    store.ops.fsync_dir(path.parent)
    return True


@dataclass(frozen=True)
class GCReport:
    """What one sweep found and did."""

    scanned: int = 0
    referenced: int = 0
    newly_marked: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    bytes_removed: int = 0
    rescued: list[str] = field(default_factory=list)
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"scanned": self.scanned, "referenced": self.referenced, "newly_marked": self.newly_marked,
                "waiting": self.waiting, "removed": self.removed, "bytes_removed": self.bytes_removed,
                "rescued": self.rescued, "dry_run": self.dry_run}


class ArtifactGC:
    """Find unreferenced blobs and remove them once they have been unreferenced for ``grace``."""

    def __init__(self, workspace: Workspace, *, grace: timedelta = DEFAULT_GRACE) -> None:
        self.ws = workspace
        self.grace = grace

    def sweep(self, *, dry_run: bool = False) -> GCReport:
        """Mark new orphans, forget marks of blobs referenced again, delete orphans past the grace period."""
        if self.grace < timedelta(0):
            raise InvalidInput(f"The GC grace period must be 0 or more, got {self.grace}. Use e.g. --grace-hours 24.")
        now = self.ws.clock.now()
        store = self.ws.artifacts
        present = list(store.iter_shas())
        with self.ws.metadata.begin() as conn:
            refs = referenced(conn)
            marks = {r["sha256"]: r for r in conn.execute(select(artifact_orphans)).mappings()}
        orphans = [sha for sha in present if sha not in refs]
        orphan_set = set(orphans)
        rescued = sorted(sha for sha in marks if sha not in orphan_set)
        newly: list[str] = []
        waiting: list[str] = []
        due: list[str] = []
        stats: dict[str, tuple[int, int]] = {}
        for sha in orphans:
            try:
                st = store.path_for(sha).stat()
            except FileNotFoundError:
                continue
            stats[sha] = (st.st_size, st.st_mtime_ns)
            mark = marks.get(sha)
            if mark is None or mark["mtime_ns"] != st.st_mtime_ns:
                newly.append(sha)  # new, or stored again since it was marked: the grace period starts now
            elif mark["first_seen_at"] + self.grace <= now:
                due.append(sha)
            else:
                waiting.append(sha)
        if dry_run:
            return GCReport(scanned=len(present), referenced=len(present) - len(orphans), newly_marked=newly,
                            waiting=waiting, removed=due, bytes_removed=sum(stats[s][0] for s in due),
                            rescued=rescued, dry_run=True)
        with self.ws.metadata.begin() as conn:
            if rescued:
                conn.execute(delete(artifact_orphans).where(artifact_orphans.c.sha256.in_(rescued)))
            for sha in newly:
                size, mtime_ns = stats[sha]
                if sha in marks:
                    conn.execute(update(artifact_orphans).where(artifact_orphans.c.sha256 == sha).values(
                        size=size, mtime_ns=mtime_ns, first_seen_at=now))
                else:
                    conn.execute(insert(artifact_orphans).values(sha256=sha, size=size, mtime_ns=mtime_ns,
                                                                 first_seen_at=now))
        removed: list[str] = []
        freed = 0
        if due:
            # Look again just before deleting: a row recorded since the first look keeps its blob.
            with self.ws.metadata.begin() as conn:
                refs = referenced(conn)
            for sha in due:
                path = store.path_for(sha)
                try:
                    unchanged = sha not in refs and path.stat().st_mtime_ns == stats[sha][1]
                except FileNotFoundError:
                    unchanged = False
                if unchanged and _delete_unless_touched(store, sha, stats[sha][1]):
                    removed.append(sha)
                    freed += stats[sha][0]
            with self.ws.metadata.begin() as conn:
                conn.execute(delete(artifact_orphans).where(artifact_orphans.c.sha256.in_(due)))
        return GCReport(scanned=len(present), referenced=len(present) - len(orphans), newly_marked=newly,
                        waiting=waiting, removed=removed, bytes_removed=freed,
                        rescued=sorted(set(rescued) | {s for s in due if s not in removed}))


__all__ = ["DEFAULT_GRACE", "ArtifactGC", "GCReport", "referenced", "shas_in", "unreferenced"]
