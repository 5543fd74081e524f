"""What every CLI command shares: the workspace, --json output, one error boundary, a safe console.

The error boundary (:func:`cli_errors`, on every command) prints one line on
stderr and exits 1: a :class:`YarnitError` as its message, anything else as
``unexpected <type>: <message>`` with the way to get the traceback
(``yarnit --debug …``). Text printed for a human shows control characters as
escapes (``\\x1b``): a reason stored in the audit history cannot drive the
reader's terminal (:mod:`yarnit.core.text`).
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any, ParamSpec, TypeVar

import click
import typer
from rich.console import Console
from rich.text import Text

from yarnit.core.errors import YarnitError
from yarnit.core.settings import load_settings
from yarnit.core.text import visible_controls
from yarnit.storage import Workspace, open_workspace

P = ParamSpec("P")
R = TypeVar("R")



class SafeConsole(Console):
    """A rich console that renders control characters in strings as visible escapes (``\\x1b``).

    Every string a command prints (tables, trees, progress lines) passes
    through ``render_str``, so one override covers data read back from the
    store, including rows written before input was checked.
    """

    def render_str(self, text: str, **kwargs: Any) -> Any:
        return super().render_str(visible_controls(text), **kwargs)


def console_width(stream: Any, environ: Mapping[str, str] = os.environ) -> int | None:
    """The width human output is laid out for: the terminal's (None: rich asks it), else ``COLUMNS``, else 160.

    Rich lays out for 80 columns when the stream is not a terminal; ``make demo`` or a CI log then got the
    demo's fault table squeezed to one word a line.
    """
    isatty = getattr(stream, "isatty", None)
    if (callable(isatty) and isatty()) or environ.get("COLUMNS", "").strip().isdigit():
        return None
    return 160


console = SafeConsole(stderr=True, width=console_width(sys.stderr))


class _Options:
    debug = False  # set by ``yarnit --debug``: unexpected errors keep their traceback


options = _Options()


def plain(text: str) -> Text:
    """Free text from the store (a reason, an actor) as a table cell: control characters escaped and never
    read as rich markup, which would turn ``[link=…]`` into a terminal hyperlink escape sequence."""
    return Text(visible_controls(text))


def one_line(message: str) -> str:
    """``message`` as one line of plain text: control characters escaped, whitespace runs collapsed."""
    return " ".join(visible_controls(message).split())


def fail(message: str) -> typer.Exit:
    """Print ``error: <message>`` as one line on stderr; return the Exit(1) for the caller to raise."""
    typer.echo(f"error: {one_line(message)}", err=True)
    return typer.Exit(1)


def workspace() -> Workspace:
    """The workspace named by the environment (YARNIT_HOME, YARNIT_DB_URL …)."""
    return open_workspace(load_settings())


def cli_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """The error boundary: one clear line on stderr and exit code 1, never a traceback (unless --debug)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except YarnitError as exc:
            raise fail(str(exc)) from None
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort, typer.Exit,
                typer.Abort):
            raise  # usage errors and exits are click's to print (typer's Exit is not click's in every version)
        except Exception as exc:  # noqa: BLE001 - the boundary: anything else is a bug or an unhandled case
            if options.debug:
                raise
            raise fail(f"unexpected {type(exc).__name__}: {exc} (rerun as 'yarnit --debug …' for the traceback, "
                       "and report it if the input was right)") from None

    return wrapper


def emit(value: Any, as_json: bool, human: Callable[[], None]) -> None:
    """Print ``value`` as JSON on stdout, or run the human renderer."""
    if as_json:
        sys.stdout.write(json.dumps(value, default=str, indent=2) + "\n")
    else:
        human()


JSON_OPTION = typer.Option(False, "--json", help="Print machine-readable JSON.")

__all__ = ["JSON_OPTION", "SafeConsole", "cli_errors", "console", "emit", "fail", "one_line", "options", "plain",
           "workspace"]
