"""Fixtures for data tests: a small click log with subjects, PII and slices, its schema, a keyed workspace.

Helpers are handed out as fixtures (``make_clicks``, ``schema_yaml``) because test
folders are not packages here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from yarnit.data import DatasetSchema
from yarnit.storage import Workspace

SCHEMA_YAML = """\
dataset: clicks
subject: user_id
slices: [country]
label: {column: clicked, positive_rate: [0.05, 0.6]}
retention: events
volume: {max_drop: 0.5}
columns:
  event_id: {type: int64, nullable: false, unique: true}
  user_id: {type: string, nullable: false}
  email: {type: string, pii: drop}
  country: {type: string, nullable: false, domain: [DE, FR, US, JP]}
  device: {type: string, domain: [mobile, desktop]}
  price: {type: float64, nullable: false, min: 0, max: 500}
  position: {type: int64, min: 1, max: 10}
  clicked: {type: bool, nullable: false, environments: [training]}
"""

HMAC_KEY = "test-hmac-key-0123456789abcdef0123456789"


def make_clicks(n: int = 400, seed: int = 0, *, users: int = 40, start_id: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "event_id": np.arange(start_id, start_id + n, dtype=np.int64),
        "user_id": [f"u{u:03d}" for u in rng.integers(0, users, n)],
        "email": [f"person{u}@example.org" for u in rng.integers(0, users, n)],
        "country": np.array(["DE", "FR", "US", "JP"])[rng.integers(0, 4, n)],
        "device": np.array(["mobile", "desktop"])[rng.integers(0, 2, n)],
        "price": rng.uniform(1, 400, n).round(2),
        "position": rng.integers(1, 11, n),
        "clicked": rng.random(n) < 0.2,
    })


@pytest.fixture
def schema_yaml() -> str:
    return SCHEMA_YAML


@pytest.fixture(name="make_clicks")
def make_clicks_fixture() -> Callable[..., pd.DataFrame]:
    return make_clicks


@pytest.fixture
def schema() -> DatasetSchema:
    return DatasetSchema.from_yaml(SCHEMA_YAML, path="clicks.yaml")


@pytest.fixture
def keyed_ws(ws: Workspace) -> Iterator[Workspace]:
    """The contract workspace (SQLite and PostgreSQL) with an HMAC key in its settings."""
    ws.settings = replace(ws.settings, hmac_key=HMAC_KEY)
    yield ws
