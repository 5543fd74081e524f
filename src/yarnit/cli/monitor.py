"""``yarnit monitor …``: the monitor's commands (``run`` lives in :mod:`.monitor_run`, attached to this app)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Monitoring: run the SLO monitor, drift and quality.", no_args_is_help=True)

__all__ = ["app"]
