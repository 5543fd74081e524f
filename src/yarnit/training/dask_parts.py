"""LightGBM's training data on Dask, built by the workers (issue 20): no process holds the whole matrix.

A :class:`~yarnit.training.chunks.FeatureChunks` with ``parts`` (picklable callables, each computing the
feature chunks of a share of the log, e.g. one row group of the dataset file) is built on the workers:

1. *scan*: one task per part counts its rows and collects each text column's values; the client unites
   the value sets into the category lists (small) and learns each part's row count.
2. *encode*: one task per part (on any worker) reads, transforms and encodes its part into a float32
   matrix, shuffles its rows (seeded per part) and cuts them into one piece per worker.
3. *place*: each piece is copied to its own worker (a task pinned there), so every worker's partition is
   a sample of every part and no partition is a single day (LightGBM on Dask builds a feature's bins
   from one worker's data: a day-constant ``day_of_week`` would be dropped).

The client holds the labels (a byte a row), the category lists and futures, never a part's rows. Each
worker holds its pieces once: float32, because LightGBM copies a worker's pieces into one array before it
bins them, so the worker briefly holds its share twice; float32 keeps those two copies at the size of one
float64 share. Category codes and 0/1 flags are exact in float32; other numbers are rounded to 24 bits.

Chunks without ``parts`` (a frame already in the client: a history transform's) are encoded in the client
one chunk at a time and scattered, piece by piece, in the same layout.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pandas as pd

from yarnit.core.errors import InvalidInput

from .chunks import FeatureChunks

Part = Callable[[], Iterable[pd.DataFrame]]
Encoder = Callable[[pd.DataFrame, list[Any], dict[str, list[str]]], np.ndarray]
Scanner = Callable[[FeatureChunks, "dict[str, list[str]] | None"], tuple[list[Any], int, dict[str, list[str]]]]


def scan(client: Any, chunks: FeatureChunks, categories: dict[str, list[str]] | None, scanner: Scanner
         ) -> tuple[list[Any], list[int], dict[str, list[str]]]:
    """Columns, each part's rows and the category lists (given, or united from the parts' own), scanned on
    the workers. Without ``parts`` the client scans its chunks (one part: the whole)."""
    if not chunks.parts:
        columns, rows, found = scanner(chunks, categories)
        return columns, [rows], found
    futures = client.map(_scan_part, chunks.parts, scanner=scanner, categories=categories, pure=False)
    scanned = client.gather(futures)
    columns = next((c for c, rows, _ in scanned if rows), [])
    if categories is None:
        texts = {c for _, rows, found in scanned if rows for c in found}
        categories = {c: sorted(set().union(*(found.get(c, ()) for _, _, found in scanned))) for c in columns
                      if c in texts}
    return columns, [rows for _, rows, _ in scanned], categories


def _scan_part(part: Part, *, scanner: Scanner, categories: dict[str, list[str]] | None
               ) -> tuple[list[Any], int, dict[str, list[str]]]:
    return scanner(FeatureChunks(part, rows=0), categories)


def partitions(client: Any, chunks: FeatureChunks, rows: list[int], columns: list[Any],
               categories: dict[str, list[str]], y: np.ndarray, seed: int, encoder: Encoder) -> tuple[Any, Any]:
    """(X, y) as Dask arrays whose blocks live on the workers, each worker's blocks a shuffled sample of
    every part; float32 features."""
    import dask.array as da

    if sum(rows) != len(y):
        raise InvalidInput(f"The feature chunks gave {sum(rows)} rows for {len(y)} labels; they must match.")
    workers = sorted(client.scheduler_info()["workers"])
    n = max(1, len(workers))
    xs: list[Any] = []
    ys: list[Any] = []
    row = 0
    if chunks.parts:
        for index, (part, count) in enumerate(zip(chunks.parts, rows, strict=True)):
            if count:
                encoded = client.submit(_encode, part, columns=columns, categories=categories,
                                        labels=y[row:row + count], seed=(seed, index), n=n, encoder=encoder,
                                        pure=False)
                _place(client, encoded, count, n, workers, (len(columns), y.dtype), xs, ys)
            row += count
    else:  # a frame already in the client: encode a chunk at a time here, scatter its pieces
        for index, chunk in enumerate(chunks):
            count = len(chunk)
            pieces = _split(encoder(chunk, columns, categories).astype(np.float32), y[row:row + count],
                            (seed, index), n)
            for w, (x, labels) in enumerate(pieces):
                if len(labels):
                    where = [workers[w]] if workers else None
                    xs.append(da.from_delayed(client.scatter(x, workers=where), shape=x.shape, dtype=x.dtype))
                    ys.append(da.from_delayed(client.scatter(labels, workers=where), shape=labels.shape,
                                              dtype=labels.dtype))
            row += count
            del pieces
        if row != len(y):
            raise InvalidInput(f"The feature chunks gave {row} rows for {len(y)} labels; they must match.")
    return da.concatenate(xs), da.concatenate(ys)


def _split(x: np.ndarray, labels: np.ndarray, seed: tuple[int, int], n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` pieces of a shuffle of (x, labels), seeded by (run seed, part): sizes ceil(rows / n), the last
    smaller (see :func:`_sizes`)."""
    order = np.random.default_rng(seed).permutation(len(labels))
    size = -(-len(labels) // n)
    return [(x[order[w * size:(w + 1) * size]], labels[order[w * size:(w + 1) * size]]) for w in range(n)]


def _sizes(rows: int, n: int) -> list[int]:
    size = -(-rows // n)
    return [max(0, min(size, rows - w * size)) for w in range(n)]


def _encode(part: Part, *, columns: list[Any], categories: dict[str, list[str]], labels: np.ndarray,
            seed: tuple[int, int], n: int, encoder: Encoder) -> list[tuple[np.ndarray, np.ndarray]]:
    """On a worker: the part's float32 matrix, shuffled and cut into ``n`` pieces with their labels."""
    matrix = np.empty((len(labels), len(columns)), dtype=np.float32)
    row = 0
    for chunk in part():
        if row + len(chunk) > len(labels):
            raise InvalidInput(f"A part of the log gave more rows than the {len(labels)} it had when scanned.")
        matrix[row:row + len(chunk)] = encoder(chunk, columns, categories)
        row += len(chunk)
    if row != len(labels):
        raise InvalidInput(f"A part of the log gave {row} rows, not the {len(labels)} it had when scanned.")
    return _split(matrix, labels, seed, n)


def _take(pieces: list[tuple[np.ndarray, np.ndarray]], w: int, which: int) -> np.ndarray:
    return pieces[w][which]


def _place(client: Any, encoded: Any, rows: int, n: int, workers: list[str], layout: tuple[int, Any],
           xs: list[Any], ys: list[Any]) -> None:
    """Pin piece ``w`` of an encoded part on worker ``w`` (a copy made there); the blocks go to xs, ys."""
    import dask.array as da

    width, label_type = layout
    for w, size in enumerate(_sizes(rows, n)):
        if not size:
            continue
        where = {"workers": [workers[w]], "allow_other_workers": False} if workers else {}
        x = client.submit(_take, encoded, w, 0, pure=False, **where)
        labels = client.submit(_take, encoded, w, 1, pure=False, **where)
        xs.append(da.from_delayed(x, shape=(size, width), dtype=np.float32))
        ys.append(da.from_delayed(labels, shape=(size,), dtype=label_type))


__all__ = ["partitions", "scan"]
