"""The metadata store's errors give the advice that fits what went wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import insert

from yarnit.core import Settings, SimulatedClock
from yarnit.core.errors import InvalidInput, Unavailable
from yarnit.storage import open_workspace
from yarnit.storage.metadata import MetadataStore
from yarnit.storage.schema import models


def test_a_read_only_database_file_is_not_told_to_check_that_the_database_runs(tmp_path: Path,
                                                                                clock: SimulatedClock) -> None:
    open_workspace(Settings.for_home(tmp_path / "ws"), clock).close()
    # Opened read-only through SQLite's URI form: the same error as a file the user cannot write (root ignores
    # file modes, so chmod would prove nothing when the tests run as root).
    store = MetadataStore(f"sqlite:///file:{tmp_path}/ws/yarnit.db?mode=ro&uri=true")
    try:
        with pytest.raises(Unavailable) as caught:
            with store.begin() as conn:
                conn.execute(insert(models).values(name="m", description="", created_at=clock.now()))
    finally:
        store.close()
    message = str(caught.value)
    assert "read-only" in message and "write access" in message
    assert "database is running" not in message


def test_an_integer_sqlite_cannot_bind_is_invalid_input(tmp_path: Path, clock: SimulatedClock) -> None:
    ws = open_workspace(Settings.for_home(tmp_path / "ws"), clock)
    try:
        with pytest.raises(InvalidInput, match="too large to store"):
            with ws.metadata.begin() as conn:
                conn.exec_driver_sql("SELECT ?", (2**70,))
    finally:
        ws.close()
