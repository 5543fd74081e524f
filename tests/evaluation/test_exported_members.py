"""The public surface of yarnit.evaluation: every name in __all__ exists, once; the core stays free of web code."""

from __future__ import annotations

import subprocess
import sys

import yarnit.evaluation as evaluation


def test_every_exported_name_exists_and_is_listed_once() -> None:
    assert len(evaluation.__all__) == len(set(evaluation.__all__))
    assert [name for name in evaluation.__all__ if not hasattr(evaluation, name)] == []


def test_the_names_recipes_and_edges_rely_on_are_exported() -> None:
    for name in ("EvaluationReport", "MetricValue", "ReportBuilder", "EvaluationStore", "Gate", "judge",
                 "gates_from_config", "check_validity", "ValidityProbe", "ModelCard", "card_for", "roc_auc"):
        assert name in evaluation.__all__


def test_importing_the_package_pulls_in_neither_fastapi_nor_typer() -> None:
    code = "import sys, yarnit.evaluation; print(sorted(m for m in ('fastapi', 'typer') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
