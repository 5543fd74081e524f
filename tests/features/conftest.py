"""Fixtures of the feature store tests: online stores on SQLite and Redis, small views and rows."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import redis_url

from features.support import country_product, product_stats, user_activity

from yarnit.features import FeatureView, OnlineStore, open_online_store


def _delete_prefix(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.unlink(*keys)
    finally:
        client.close()


@pytest.fixture(params=["sqlite", "redis"])
def online_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An online store URL: the contract runs on the embedded default and on a real Redis."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/online.db"
        return
    base = redis_url()
    prefix = f"yarnit-test-{uuid.uuid4().hex[:12]}:"
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}prefix={prefix}"
    finally:
        _delete_prefix(base, prefix)


@pytest.fixture
def online(online_url: str) -> Iterator[OnlineStore]:
    store = open_online_store(online_url)
    yield store
    store.close()


@pytest.fixture
def user_view() -> FeatureView:
    return user_activity


@pytest.fixture
def product_view() -> FeatureView:
    return product_stats


@pytest.fixture
def composite_view() -> FeatureView:
    return country_product
