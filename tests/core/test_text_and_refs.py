"""Free text from outside and ``name:vN`` references: one checker each."""

from __future__ import annotations

import pytest

from yarnit.core.errors import InvalidInput
from yarnit.core.ids import MAX_VERSION, check_version, parse_versioned_ref
from yarnit.core.text import check_plain_text, visible_controls


@pytest.mark.parametrize(("ref", "expected"), [("ctr", ("ctr", None)), ("ctr:v3", ("ctr", 3)), ("ctr:7", ("ctr", 7)),
                                               (f"a.b-c:v{MAX_VERSION}", ("a.b-c", MAX_VERSION))])
def test_parse_versioned_ref_reads_every_form(ref: str, expected: tuple[str, int | None]) -> None:
    assert parse_versioned_ref("Model", ref) == expected


@pytest.mark.parametrize("ref", ["ctr:v0", f"ctr:v{MAX_VERSION + 1}", "ctr:v99999999999999999999",
                                 "ctr:v" + "9" * 5000])
def test_a_version_out_of_range_names_the_range(ref: str) -> None:
    with pytest.raises(InvalidInput, match="whole numbers from 1 to 2147483647") as caught:
        parse_versioned_ref("Model", ref)
    assert len(str(caught.value)) < 300  # a 5,000-digit number is not repeated back


@pytest.mark.parametrize("value", [0, -1, 2**70, True, 1.0])
def test_check_version_refuses_anything_but_a_stored_version_number(value: object) -> None:
    with pytest.raises(InvalidInput):
        check_version("Model", "ctr", value)  # type: ignore[arg-type]


def test_a_malformed_ref_says_what_to_use() -> None:
    with pytest.raises(InvalidInput, match="is not a dataset reference; use NAME"):
        parse_versioned_ref("Dataset", "Bad Name:v1", usage="use NAME or NAME:vN.")


def test_output_escapes_controls_but_keeps_lines_and_tabs() -> None:
    assert visible_controls("a\x1b[31mb\x9b\u202ec\td\n") == "a\\x1b[31mb\\x9b\\u202ec\td\n"


@pytest.mark.parametrize("text", ["\x00", "a\nb", "a\tb", "\x7f", "\x85", "\u2066"])
def test_plain_text_refuses_every_control_character(text: str) -> None:
    with pytest.raises(InvalidInput, match="control character"):
        check_plain_text("reason", text)
    assert check_plain_text("reason", "Lisää villaa — ok ✓") == "Lisää villaa — ok ✓"
