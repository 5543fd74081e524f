"""Helpers of the load-test tests (tests/deploy/test_loadtest*.py): production's logged traffic, the CLI."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner, Result

from yarnit.cli.app import app
from yarnit.monitoring.workspace import prediction_log_dir
from yarnit.serving.predlog import PredictionLog
from yarnit.storage import Workspace

LOGGED = 300  # distinct instances production served (more than a test run needs: 100 per version)
_runner = CliRunner()


def cli(home: Path, *args: str) -> Result:
    """``yarnit ARGS`` in-process, on the workspace at ``home``."""
    return _runner.invoke(app, list(args), env={"YARNIT_HOME": str(home)})


def log_traffic(ws: Workspace, n: int = LOGGED) -> None:
    """``n`` distinct requests ctr's production answered, written by the real prediction log."""
    log = PredictionLog(prediction_log_dir(ws.home), ws.clock, fsync=False)
    for i in range(n):
        log.append({"request_id": f"r{i}", "time": ws.clock.now(), "role": "primary", "protocol": "v1",
                    "model": "ctr", "status": 200, "version": 1, "alias": "production", "served_by": "model",
                    "latency_ms": 1.0, "predictions": [0.5],
                    "instances": [{"fiber": ("merino", "acrylic", "alpaca")[i % 3], "price": float(i)}]})
    log.close()
