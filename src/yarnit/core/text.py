"""Text that reaches a terminal or an audit record: control characters refused on input, made visible on output.

An audit ``reason`` typed by one operator is printed later on another
operator's terminal (``yarnit models history``). Escape sequences in it could
recolour or clear that terminal, retitle its window or hide the rest of the
row, so free text from outside is refused when it holds a control character
(no reason needs one: it is one line of prose), and anything printed for a
human passes :func:`visible_controls`, which covers rows stored before the
check existed.

Controls are the Unicode category ``Cc`` (C0, DEL, C1 including the 8-bit CSI
``\\x9b``) plus the bidirectional overrides and isolates, which reorder what
the eye reads ("Trojan Source", CVE-2021-42574).

Example:
    >>> visible_controls("rolled back\\x1b[2J")
    'rolled back\\\\x1b[2J'
    >>> check_plain_text("reason", "canary looked fine")
    'canary looked fine'
"""

from __future__ import annotations

import re

from .errors import InvalidInput

_BIDI = "\u202a-\u202e\u2066-\u2069"
#: One character class for everything refused or escaped: C0, DEL, C1, bidi overrides and isolates.
CONTROL_CHARACTERS = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI}]")
_OUTPUT_CONTROLS = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI}]")  # output keeps \t and \n


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def visible_controls(text: str) -> str:
    """``text`` with every control character (but tab and newline) shown as its escape, e.g. ``\\x1b``."""
    return _OUTPUT_CONTROLS.sub(_escape, text)


def check_plain_text(field: str, value: str) -> str:
    """Refuse free text holding a control character (any, tab and newline included); return it unchanged."""
    found = CONTROL_CHARACTERS.search(value)
    if found is not None:
        raise InvalidInput(f"{field} contains the control character {_escape(found)} at position {found.start()}; "
                           f"{field} is one line of plain text. Remove the control characters (escape "
                           "sequences, tabs, newlines) and send it again.")
    return value


__all__ = ["CONTROL_CHARACTERS", "check_plain_text", "visible_controls"]
