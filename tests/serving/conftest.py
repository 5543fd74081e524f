"""Fixtures for serving tests (helpers live in serving/helpers.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from serving.helpers import Faults, make_service, register_versions
from yarnit.core import SimulatedClock
from yarnit.serving import InferenceService
from yarnit.storage import Workspace


@pytest.fixture
def faults(clock: SimulatedClock) -> Faults:
    return Faults(clock)


@pytest.fixture
def ctr_ws(sqlite_ws: Workspace) -> Workspace:
    register_versions(sqlite_ws)
    return sqlite_ws


@pytest.fixture
def service_factory(ctr_ws: Workspace) -> Iterator[Callable[..., InferenceService]]:
    made: list[InferenceService] = []

    def factory(faults: Faults | None = None, **options: Any) -> InferenceService:
        service = make_service(ctr_ws, faults, **options)
        made.append(service)
        return service

    yield factory
    for service in made:
        service.close()
