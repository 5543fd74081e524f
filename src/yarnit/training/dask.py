"""Connecting to Dask: the scheduler in settings, or a local cluster of worker processes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from yarnit.core.errors import MissingDependency, Unavailable


@contextlib.contextmanager
def dask_client(scheduler: str | None, *, n_workers: int = 2) -> Iterator[Any]:
    """A ``distributed.Client`` to ``scheduler``, or to a LocalCluster started (and stopped) here."""
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:  # pragma: no cover - dask[distributed] is a core dependency
        raise MissingDependency("Dask training needs: pip install 'dask[distributed]'") from exc
    if scheduler:
        try:
            client = Client(scheduler, timeout=10)
        except OSError as exc:
            raise Unavailable(
                f"Could not reach the Dask scheduler at {scheduler} ({exc}). Start it (dask scheduler) or unset "
                "YARNIT_DASK_SCHEDULER to use a local cluster."
            ) from exc
        try:
            yield client
        finally:
            client.close()
        return
    with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      host="127.0.0.1") as cluster, Client(cluster) as client:
        yield client


__all__ = ["dask_client"]
