"""The public surface of yarnit.monitoring: every name in __all__ exists, listed once and sorted."""

from __future__ import annotations

import yarnit.monitoring as monitoring


def test_every_exported_name_exists_once_in_order() -> None:
    assert [n for n in monitoring.__all__ if not hasattr(monitoring, n)] == []
    assert monitoring.__all__ == sorted(set(monitoring.__all__))
