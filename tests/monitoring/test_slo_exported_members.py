"""The SLO part of yarnit.monitoring's public surface; the core stays free of web and CLI code."""

from __future__ import annotations

import subprocess
import sys

import yarnit.monitoring as monitoring


def test_every_exported_name_exists_and_is_listed_once() -> None:
    assert len(monitoring.__all__) == len(set(monitoring.__all__))
    assert [name for name in monitoring.__all__ if not hasattr(monitoring, name)] == []


def test_the_slo_names_are_exported() -> None:
    for name in ("SLO", "load_slo_file", "parse_slo_file", "EventCounts", "BurnRateMonitor", "evaluate",
                 "SLISource", "CountsSource", "ErrorBudgetPolicy", "read_counts_jsonl"):
        assert name in monitoring.__all__


def test_importing_the_package_pulls_in_neither_fastapi_nor_typer() -> None:
    code = "import sys, yarnit.monitoring; print(sorted(m for m in ('fastapi', 'typer') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
