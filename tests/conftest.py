"""Shared fixtures: a simulated clock, workspaces on SQLite and PostgreSQL, service URLs.

Tests that need PostgreSQL or Redis read YARNIT_TEST_POSTGRES_URL /
YARNIT_TEST_REDIS_URL. Without them they skip with a one-line hint; with
CI=true a missing or unreachable service fails the test instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from yarnit.core import Settings, SimulatedClock, utc
from yarnit.storage import Workspace, open_workspace

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _service_url(variable: str, hint: str) -> str:
    url = os.environ.get(variable, "").strip()
    if not url:
        if IN_CI:
            pytest.fail(f"{variable} is not set in CI; .ci/run must export it")
        pytest.skip(f"{variable} not set: {hint}")
    return url


def postgres_url() -> str:
    url = _service_url(
        "YARNIT_TEST_POSTGRES_URL",
        "export YARNIT_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test to run PostgreSQL tests",
    )
    import psycopg

    try:
        with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), connect_timeout=3):
            pass
    except psycopg.OperationalError as exc:
        if IN_CI:
            pytest.fail(f"PostgreSQL at {url} is unreachable in CI: {exc}")
        pytest.skip(f"PostgreSQL at {url} unreachable: start it to run these tests")
    return url


def redis_url() -> str:
    url = _service_url(
        "YARNIT_TEST_REDIS_URL", "export YARNIT_TEST_REDIS_URL=redis://127.0.0.1:6379/0 to run Redis tests"
    )
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        if IN_CI:
            pytest.fail(f"Redis at {url} is unreachable in CI: {exc}")
        pytest.skip(f"Redis at {url} unreachable: start it to run these tests")
    return url


def _pg_schema_url(base: str) -> Iterator[str]:
    """A fresh PostgreSQL schema per test, dropped afterwards."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:16]}"
    plain = base.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(utc(2026, 1, 5, 9))


@pytest.fixture
def token_ws(tmp_path: Path, clock: SimulatedClock) -> Iterator[Workspace]:
    """A SQLite workspace with an API token and ctr v1 (production), v2 registered (tests/api, tests/security)."""
    from testsupport import TOKEN, register_ctr

    ws = open_workspace(Settings.for_home(tmp_path / "home", api_token=TOKEN), clock)
    register_ctr(ws)
    yield ws
    ws.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A metadata-store URL: every contract test runs on both backends."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/yarnit.db"
    else:
        yield from _pg_schema_url(postgres_url())


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return Settings.for_home(tmp_path / "home", db_url=db_url)


@pytest.fixture
def ws(settings: Settings, clock: SimulatedClock) -> Iterator[Workspace]:
    workspace = open_workspace(settings, clock)
    yield workspace
    workspace.close()


@pytest.fixture
def sqlite_ws(tmp_path: Path, clock: SimulatedClock) -> Iterator[Workspace]:
    """A workspace on the embedded default only (for tests that are not store contracts)."""
    workspace = open_workspace(Settings.for_home(tmp_path / "home"), clock)
    yield workspace
    workspace.close()
