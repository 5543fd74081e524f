"""What every CLI command shares: the workspace, --json output, one-line errors."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console

from yarnit.core.errors import YarnitError
from yarnit.core.settings import load_settings
from yarnit.storage import Workspace, open_workspace

P = ParamSpec("P")
R = TypeVar("R")

console = Console(stderr=True)


def workspace() -> Workspace:
    """The workspace named by the environment (YARNIT_HOME, YARNIT_DB_URL …)."""
    return open_workspace(load_settings())


def cli_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn a YarnitError into one clear line on stderr and exit code 1 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except YarnitError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None

    return wrapper


def emit(value: Any, as_json: bool, human: Callable[[], None]) -> None:
    """Print ``value`` as JSON on stdout, or run the human renderer."""
    if as_json:
        sys.stdout.write(json.dumps(value, default=str, indent=2) + "\n")
    else:
        human()


JSON_OPTION = typer.Option(False, "--json", help="Print machine-readable JSON.")

__all__ = ["JSON_OPTION", "cli_errors", "console", "emit", "workspace"]
