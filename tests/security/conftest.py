from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def canary_secret(tmp_path: Path) -> tuple[Path, str]:
    """A file outside the workspace whose text must never come back from anything yarnit serves or prints."""
    outside = tmp_path / "outside"
    outside.mkdir()
    text = "CANARY-4f1c2b9e-never-served"
    secret = outside / "secret.json"
    secret.write_text(f'{{"canary": "{text}", "model": "ctr", "stages": []}}', encoding="utf-8")
    return secret, text
