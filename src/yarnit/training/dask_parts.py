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

4. *train* (:func:`train`): one task per worker, pinned there, takes the blocks that worker holds and
   trains with LightGBM's own socket network (``tree_learner="data"``): its ``Dataset`` is built from the
   *list* of blocks (``LGBM_DatasetCreateFromMats``), so no worker ever concatenates its share
   (``lightgbm.dask``'s ``_train_part`` does, a full copy even of one block). Rank 0 returns the model text.

The client holds the labels, the category lists and futures, never a part's rows. Each worker holds its
pieces once, in float32 (category codes and 0/1 flags are exact in float32; other numbers are rounded to
24 bits), plus LightGBM's binned ``Dataset``.

Chunks without ``parts`` (a frame already in the client: a history transform's) are encoded in the client
one chunk at a time and scattered, piece by piece, in the same layout.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pandas as pd

from yarnit.core.errors import InvalidInput, Unavailable

from .chunks import FeatureChunks

Part = Callable[[], Iterable[pd.DataFrame]]
Encoder = Callable[[pd.DataFrame, list[Any], dict[str, list[str]]], np.ndarray]
Scanner = Callable[[FeatureChunks, "dict[str, list[str]] | None"], tuple[list[Any], int, dict[str, list[str]]]]
#: worker address -> (its feature blocks, its label blocks): futures of arrays held by that worker
Blocks = dict[str, tuple[list[Any], list[Any]]]

#: LightGBM's socket time-out (minutes) for the workers' network: how long a worker waits for another (to
#: connect, or for a round's histograms). lightgbm.dask uses 120; a worker whose peer failed to bind its port
#: waits this long before the retry can run on it (one thread a worker), so it is kept short.
NETWORK_TIME_OUT_MINUTES = 10


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
               categories: dict[str, list[str]], y: np.ndarray, seed: int, encoder: Encoder) -> Blocks:
    """Each worker's blocks (futures of float32 features and float32 labels held by that worker), each worker's
    blocks a shuffled sample of every part."""
    if sum(rows) != len(y):
        raise InvalidInput(f"The feature chunks gave {sum(rows)} rows for {len(y)} labels; they must match.")
    workers = sorted(client.scheduler_info()["workers"])
    if not workers:
        raise Unavailable("The Dask cluster has no workers to train on; start some (dask worker) and retry.")
    y = np.asarray(y, dtype=np.float32)  # LightGBM's label type: a worker uses its label blocks as they are
    n = len(workers)
    blocks: Blocks = {w: ([], []) for w in workers}
    row = 0
    if chunks.parts:
        for index, (part, count) in enumerate(zip(chunks.parts, rows, strict=True)):
            if count:
                encoded = client.submit(_encode, part, columns=columns, categories=categories,
                                        labels=y[row:row + count], seed=(seed, index), n=n, encoder=encoder,
                                        pure=False)
                _place(client, encoded, count, workers, blocks)
            row += count
    else:  # a frame already in the client: encode a chunk at a time here, scatter its pieces
        for index, chunk in enumerate(chunks):
            count = len(chunk)
            pieces = _split(encoder(chunk, columns, categories).astype(np.float32), y[row:row + count],
                            (seed, index), n)
            for w, (x, labels) in enumerate(pieces):
                if len(labels):
                    for which, value in enumerate((x, labels)):
                        blocks[workers[w]][which].append(client.scatter(value, workers=[workers[w]], hash=False))
            row += count
            del pieces
        if row != len(y):
            raise InvalidInput(f"The feature chunks gave {row} rows for {len(y)} labels; they must match.")
    return {w: held for w, held in blocks.items() if held[0]}


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


def _place(client: Any, encoded: Any, rows: int, workers: list[str], blocks: Blocks) -> None:
    """Pin piece ``w`` of an encoded part on worker ``w`` (a copy made there), x and y into ``blocks``."""
    for w, size in enumerate(_sizes(rows, len(workers))):
        if size:
            for which in (0, 1):
                blocks[workers[w]][which].append(client.submit(_take, encoded, w, which, pure=False,
                                                               workers=[workers[w]], allow_other_workers=False))


def train(client: Any, blocks: Blocks, params: dict[str, Any], rounds: int, names: list[str],
          cat_index: list[int]) -> str:
    """LightGBM's model text, trained by every worker of ``blocks`` on the blocks it holds, over LightGBM's own
    socket network (data-parallel trees). Each worker's task is pinned to it and builds its ``Dataset`` from
    its list of blocks, never one concatenated array. If the network cannot be set up (a port taken between
    finding it free and LightGBM binding it), the training is tried once more on fresh ports."""
    from distributed import wait

    workers = sorted(blocks)
    # every block in place first, so that the workers start training together: LightGBM gives up connecting to
    # a peer after about two minutes, and a worker still encoding would start its training task later
    wait([f for xs, ys in blocks.values() for f in xs + ys])
    try:
        return _train_once(client, blocks, workers, params, rounds, names, cat_index)
    except Exception as first:  # the task's own error, re-raised unless it is a network failure
        if not _network_failure(first):
            raise
        try:
            return _train_once(client, blocks, workers, params, rounds, names, cat_index)
        except Exception as second:
            if not _network_failure(second):
                raise
            raise Unavailable(
                f"LightGBM's network between the Dask workers ({', '.join(workers)}) could not be set up, twice, "
                f"on fresh ports: {second}. Check that the workers can open and reach TCP ports on each other's "
                "hosts (a firewall between machines?)."
            ) from second


def _network_failure(exc: BaseException) -> bool:
    """A LightGBM error from setting up or using its socket network (bind, connect, socket time-out)."""
    text = str(exc).lower()
    return type(exc).__name__ == "LightGBMError" and any(
        word in text for word in ("bind", "connect", "socket", "network", "linker"))


def _train_once(client: Any, blocks: Blocks, workers: list[str], params: dict[str, Any], rounds: int,
                names: list[str], cat_index: list[int]) -> str:
    network: dict[str, Any] = {}
    if len(workers) > 1:
        found = {w: client.submit(_free_port, workers=[w], allow_other_workers=False, pure=False) for w in workers}
        ports = client.gather(found)
        network = {"tree_learner": "data", "num_machines": len(workers), "pre_partition": True,
                   "time_out": NETWORK_TIME_OUT_MINUTES,
                   "machines": ",".join(f"{urlparse(w).hostname}:{ports[w]}" for w in workers)}
    futures = [client.submit(_train_worker, blocks[w][0], blocks[w][1], params=params | network | (
                                 {"local_listen_port": ports[w]} if network else {}),
                             rounds=rounds, names=names, cat_index=cat_index, rank=rank,
                             workers=[w], allow_other_workers=False, pure=False)
               for rank, w in enumerate(workers)]
    try:
        results = client.gather(futures)
    except BaseException:
        client.cancel(futures)
        raise
    return results[0]


def _free_port() -> int:
    """On a worker: a TCP port free there now (bound and released; LightGBM binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("", 0))
        return int(probe.getsockname()[1])


def _train_worker(xs: list[np.ndarray], ys: list[np.ndarray], *, params: dict[str, Any], rounds: int,
                  names: list[str], cat_index: list[int], rank: int) -> str | None:
    """On a worker: train on its blocks, with the others (``params["machines"]``); rank 0 returns the model.

    The ``Dataset`` is built from the list of float32 blocks as they are (LightGBM reads each in place); only
    the labels (4 bytes a row) are joined into one array."""
    import lightgbm

    label = ys[0] if len(ys) == 1 else np.concatenate(ys)
    dataset = lightgbm.Dataset(list(xs), label, feature_name=names, categorical_feature=cat_index,
                               free_raw_data=True)
    booster = None
    try:
        booster = lightgbm.train(params, dataset, num_boost_round=rounds, keep_training_booster=True)
        return booster.model_to_string() if rank == 0 else None
    finally:
        if booster is not None and "machines" in params:
            booster.free_network()


__all__ = ["NETWORK_TIME_OUT_MINUTES", "Blocks", "partitions", "scan", "train"]
