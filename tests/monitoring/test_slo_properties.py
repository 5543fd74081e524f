"""Property tests of SLO files (issue 22, bad input): docs/slos.yaml mutated at random, and random text.

Every mutated file either parses or is refused with a :class:`ConfigError` that names where the mistake is
(the SLO, the sink, the section, the unknown key); nothing else is ever raised. Examples are bounded so the
file runs in seconds. The pinned examples are defects these properties found: a list where the SLI kind
or a sink type goes (TypeError), a number written as text with a long exponent (minutes in Fraction), an
integer past Python's 4300-digit limit (a plain ValueError), and YAML aliases that stand for 10^8 values
(minutes and gigabytes writing the error message).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from testsupport.documents import JSON, mutated

from yarnit.core.errors import ConfigError
from yarnit.monitoring.slo import SLOFile, load_slo_file, parse_slo_file

pytestmark = pytest.mark.timeout(120)
# The same examples on every run (derandomize): CI is deterministic; raise max_examples to explore more.
PROPERTY = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
DOC = Path(__file__).resolve().parents[2] / "docs" / "slos.yaml"
BASE: dict[str, Any] = yaml.safe_load(DOC.read_text(encoding="utf-8"))

VALUES = st.one_of(JSON, st.sampled_from(["5m", "1h", "28d", "0m", "99.9", "1e-5", "nan", "-1", "ctr", "log",
                                         "file"]))


def _where(path: tuple[Any, ...]) -> str:
    """What an error about a change at ``path`` names at least: the SLO or sink it is in, or the section."""
    if len(path) >= 2 and path[0] == "slos":
        return f"slos[{path[1]}]"
    if len(path) >= 3 and path[:2] == ("alerts", "sinks"):
        return f"sinks[{path[2]}]"
    return str(path[0]) if path else ""


@PROPERTY
@given(mutation=mutated(BASE, VALUES))
@example(mutation=({**BASE, "slos": [{**BASE["slos"][0], "objective": "1e-99999999"}]},
                   [("replace", ("slos", 0, "objective"), "1e-99999999")]))
@example(mutation=({**BASE, "slos": [{**BASE["slos"][0], "objective": 10**5000}]},
                   [("replace", ("slos", 0, "objective"), 10**5000)]))
@example(mutation=({**BASE, "service": 10**5000}, [("replace", ("service",), 10**5000)]))
@example(mutation=({**BASE, "slos": [{**BASE["slos"][0], "sli": ["x"]}]},  # was a TypeError (unhashable)
                   [("replace", ("slos", 0, "sli"), ["x"])]))
@example(mutation=({**BASE, "alerts": {"sinks": [{"type": ["log"]}]}},  # was a TypeError (unhashable)
                   [("replace", ("alerts", "sinks", 0, "type"), ["log"])]))
def test_a_mutated_slo_file_parses_or_says_where_it_is_wrong(
        mutation: tuple[dict[str, Any], list[tuple[str, tuple[Any, ...], Any]]]) -> None:
    doc, changes = mutation
    try:
        parsed = parse_slo_file(doc, source="slos.yaml")
    except ConfigError as exc:
        message = str(exc)
        assert message.startswith("slos.yaml") and len(message) < 2000, message
        if len(changes) == 1:
            operation, path, detail = changes[0]
            named = str(detail) if operation == "add" and path == () else _where(path)
            assert named[:60] in message, (changes, message)
        return
    assert isinstance(parsed, SLOFile) and parsed.slos


@PROPERTY
@given(text=st.text(max_size=80) | st.builds(lambda a, b: a + b, st.sampled_from([
    DOC.read_text(encoding="utf-8")[:n] for n in (0, 200, 900, 1500)]), st.text(max_size=20)))
@example(text="service: s\nslos: [{name: a, sli: serving_availability, objective: 1" + "0" * 5000 + "}]")
@example(text="service: [\n")
def test_any_text_parses_or_is_a_config_error(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    path = tmp_path_factory.getbasetemp() / "slos-property.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_slo_file(path)
    except ConfigError as exc:
        assert "slos-property.yaml" in str(exc)


def test_yaml_aliases_that_stand_for_many_values_are_refused_at_once(tmp_path: Path) -> None:
    lines = ["labels:", "  l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 8)]  # 10^8 strings
    (tmp_path / "bomb.yaml").write_text("\n".join([*lines, "service: *l7", "slos: *l7", ""]), encoding="utf-8")
    started = time.monotonic()
    with pytest.raises(ConfigError, match=r"service must be a name .* got \[\[\["):
        load_slo_file(tmp_path / "bomb.yaml")
    # A bound no machine misses (it took minutes and gigabytes): the message is cut before it is written.
    assert time.monotonic() - started < 30
