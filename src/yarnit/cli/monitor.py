"""``yarnit monitor …``: watch live models (drift, quality with delayed labels, the monitor's runs).

Each group of commands lives in its own module and attaches itself here:
``monitor_quality`` adds ``labels`` and ``quality``.
"""

from __future__ import annotations

import typer

from .monitor_quality import register as _register_quality

app = typer.Typer(help="Monitoring: drift, prediction quality with delayed labels, SLO runs.", no_args_is_help=True)
_register_quality(app)
