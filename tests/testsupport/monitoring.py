"""Monitoring fixtures: a workspace SLO file and steady traffic into the real prediction log."""

from __future__ import annotations

from typing import Any

import yaml

from yarnit.core.clock import SimulatedClock
from yarnit.monitoring.workspace import prediction_log_dir, slo_path
from yarnit.serving.predlog import PredictionLog

PER_MINUTE = 20
RUNBOOK = "https://runbooks.example/ctr-availability"


def write_slos(home: Any, *, sinks: list[dict[str, Any]], runbook: str = RUNBOOK, extra: tuple = ()) -> None:
    """``$YARNIT_HOME/slos.yaml`` with ctr's availability SLO (99.9 % over 30d), ``extra`` SLOs and ``sinks``."""
    doc = {"service": "yarnit-serving",
           "slos": [{"name": "ctr-availability", "sli": "serving_availability", "model": "ctr", "objective": 99.9,
                     "window": "30d", "runbook": runbook}, *extra],
           "alerts": {"sinks": sinks}}
    slo_path(home).write_text(yaml.safe_dump(doc))


class Traffic:
    """``PER_MINUTE`` requests a minute into the workspace's real prediction log, answered by the model or not."""

    def __init__(self, ws: Any, clock: SimulatedClock) -> None:
        self.clock = clock
        self.log = PredictionLog(prediction_log_dir(ws.home), clock, fsync=False, aggregate_window_s=1e9)
        self.n = 0

    def minute(self, served_by: str = "model", *, flush: bool = True) -> None:
        """One minute of requests at the clock's now, then the clock moves a minute on."""
        for _ in range(PER_MINUTE):
            self.n += 1
            self.log.append({"request_id": f"r{self.n}", "time": self.clock.now(), "role": "primary",
                             "protocol": "v1", "model": "ctr", "status": 200, "latency_ms": 5.0, "key": None,
                             "version": 1, "alias": "production", "served_by": served_by, "predictions": [0.5]})
        if flush:
            assert self.log.flush()
        self.clock.advance(60)

    def healthy(self, minutes: int) -> None:
        """``minutes`` of requests all answered by the model, written with one flush at the end."""
        for _ in range(minutes):
            self.minute(flush=False)
        assert self.log.flush()

    def close(self) -> None:
        self.log.close()
