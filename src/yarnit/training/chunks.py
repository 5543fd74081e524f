"""A training set's features as chunks (issue 20): built part by part, never whole in memory.

A :class:`FeatureChunks` knows how many chunks there are and how to compute
one (in the ctr pipeline: read a few days of the log and apply the feature
transform). A trainer walks the chunks twice: once to learn the vocabulary
(the text values and how many matrix entries each chunk gives), once to fill
its matrix, which it allocates once at its final size. So the peak is the
trainer's matrix plus one chunk, not the matrix plus the whole feature frame
plus the raw log it came from.

Each chunk is also narrowed (:func:`narrow`): a float column whose values are
all exact in float32 (the 0/1 flags) is kept as float32, a category keeps its
smallest integer codes. Narrowing never changes a value, so the matrix, and
the model, are the same as from the whole frame.

Example:
    >>> import pandas as pd
    >>> parts = [pd.DataFrame({"x": [1.0, 0.0]}), pd.DataFrame({"x": [0.5]})]
    >>> chunks = FeatureChunks(lambda: parts, rows=3)
    >>> [len(c) for c in chunks], chunks.frame()["x"].tolist()
    ([2, 1], [1.0, 0.0, 0.5])
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import union_categoricals

#: Below this resident size a full garbage collection is not worth its cost: it walks every object the process
#: holds (in the operate demo, a server's and a monitor's too: 0.2 s a call, 5x the small pipeline's training
#: step), and what it could free is small beside a peak that matters only for big training sets.
GC_ABOVE_RSS_BYTES = 1 << 30


def resident_bytes() -> int | None:
    """This process's resident set size now (Linux ``/proc/self/statm``), None where that cannot be read."""
    import os

    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def release_memory() -> None:
    """Hand memory freed by Arrow's pool and by the C heap back to the system, so that the next, larger
    allocation (a trainer's matrix) does not stack on top of pages that are free but still held. Reference
    cycles are collected first only in a big process (:data:`GC_ABOVE_RSS_BYTES`)."""
    import gc

    import pyarrow as pa

    rss = resident_bytes()
    if rss is None or rss >= GC_ABOVE_RSS_BYTES:
        gc.collect()
    pa.default_memory_pool().release_unused()
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):  # glibc only
        libc.malloc_trim(0)


@functools.cache
def _libc() -> Any:
    """The C library, looked up once a process: ``find_library`` runs ``ldconfig -p`` in a forked child each
    time, and a process sampler saw each fork of a 1.2 GB Dask worker as another 1.2 GB process (issue 20)."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name) if name else None


def narrow(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with float64 columns that float32 holds exactly stored as float32 (no value changes)."""
    out = {}
    for column in frame.columns:
        series = frame[column]
        if series.dtype == np.float64:
            values = series.to_numpy()
            small = values.astype(np.float32)
            if np.array_equal(small, values, equal_nan=True):
                series = pd.Series(small, index=frame.index, name=column)
        out[column] = series
    return pd.DataFrame(out, index=frame.index)


def concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Row-wise concatenation; categories are united (in order of first appearance), numbers keep the widest
    type any part had, and the index runs 0..n-1."""
    if len(frames) == 1:
        return frames[0].reset_index(drop=True)
    out: dict[str, object] = {}
    for column in frames[0].columns:
        parts = [f[column] for f in frames]
        if all(isinstance(p.dtype, pd.CategoricalDtype) for p in parts):
            out[column] = union_categoricals([p.array for p in parts])
        else:
            dtype = np.result_type(*[p.dtype for p in parts])
            out[column] = np.concatenate([p.to_numpy(dtype=dtype) for p in parts])
    return pd.DataFrame(out)


@dataclass(frozen=True)
class FeatureChunks:
    """A feature frame in chunks: each call of ``chunks()`` computes them again, in training order.

    ``parts`` (optional) are the same chunks as picklable callables, each computing those of a share of the
    rows (the parts in order give the chunks in order): a Dask worker calls one where it runs, so the
    client never reads the rows (:mod:`.dask_parts`)."""

    chunks: Callable[[], Iterable[pd.DataFrame]]
    rows: int
    parts: tuple[Callable[[], Iterable[pd.DataFrame]], ...] = ()

    def __iter__(self) -> Iterator[pd.DataFrame]:
        yield from self.chunks()

    def __len__(self) -> int:
        return self.rows

    def frame(self) -> pd.DataFrame:
        """Every chunk in one frame (for a trainer that needs it whole; this holds it all in memory)."""
        return concat(list(self))

    @classmethod
    def of(cls, frame: pd.DataFrame) -> FeatureChunks:
        """A whole frame as one chunk."""
        return cls(lambda: [frame], rows=len(frame))


__all__ = ["GC_ABOVE_RSS_BYTES", "FeatureChunks", "concat", "narrow", "release_memory", "resident_bytes"]
