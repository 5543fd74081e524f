"""docs/benchmarks.md's generated summary (benchmarks/summary.py, `make bench-docs`) and `make bench`'s runner.

The generator runs on a copy of the committed results and a document with markers: a rewrite is
idempotent, keeps every byte outside the markers, and a missing, corrupt or old-format results file
becomes a row saying so rather than an exception. Every bench_*.py must have an entry, so a new
benchmark cannot be left out of the summary silently.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"_bench_{name}_under_test", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


summary = _load("summary")

MACHINE = {"cpu": "Test CPU", "cores": 2, "memory_gib": 24.0, "os": "Linux test", "python": "3.11.7"}
VERSIONS = {"yarnit": "0.1.0", "python": "3.11.7"}
PEERS = {"feast": "0.67.0"}
# Bytes a careless rewrite would lose: trailing spaces, a tab, CRLF, non-ASCII, no newline at the very end.
BEFORE = "# Benchmarks\n\nIntro with trailing spaces   \n\ttab line\r\nµ×–\n\n"
AFTER = "\n## World\n\nHand-written prose. \n| a | b |\n|---|---|\nlast line without newline"


@pytest.fixture()
def results(tmp_path: Path) -> Path:
    out = tmp_path / "results"
    out.mkdir()
    for path in (BENCHMARKS / "results").glob("*.json"):
        if path.name != "machine.json":
            shutil.copy2(path, out / path.name)
    return out


def _rewrite(doc: Path, results: Path) -> dict:
    return summary.rewrite(doc, results, machine=MACHINE, versions=VERSIONS, peers=PEERS)


def test_rewrite_is_idempotent_and_keeps_every_byte_outside_the_markers(tmp_path: Path, results: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_bytes((BEFORE + summary.BEGIN + "\nstale table\n" + summary.END + "\n" + AFTER).encode())

    first = _rewrite(doc, results)
    once = doc.read_bytes()
    second = _rewrite(doc, results)

    assert first["changed"] and not second["changed"]
    assert doc.read_bytes() == once
    text = once.decode()
    assert text.startswith(BEFORE + summary.BEGIN) and text.endswith(summary.END + "\n" + AFTER)
    assert "stale table" not in text
    assert first["problems"] == [] and first["rows"] > 40
    assert "| features | online read 1 entity × 10 features, SQLite, p99 |" in text
    assert "Test CPU, 2 cores, 24.0 GiB, Linux test, Python 3.11.7" in text


def test_first_rewrite_puts_the_section_before_the_first_section(tmp_path: Path, results: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_bytes((BEFORE + AFTER).encode())

    _rewrite(doc, results)
    text = doc.read_bytes().decode()

    # before the first "## " heading; the text around it is as it was, the heading behind a blank line
    assert text.startswith(BEFORE + "\n" + summary.BEGIN)
    assert text.endswith(summary.END + "\n\n" + AFTER.removeprefix("\n"))
    assert not _rewrite(doc, results)["changed"]


def test_missing_corrupt_and_old_format_results_are_reported_not_raised(tmp_path: Path, results: Path) -> None:
    (results / "world.json").unlink()
    (results / "data.json").write_text("{not json", encoding="utf-8")
    # an old format: none of the keys the script writes now
    (results / "features.json").write_text(json.dumps({"summary": {}}), encoding="utf-8")
    doc = tmp_path / "benchmarks.md"
    doc.write_text(BEFORE + AFTER, encoding="utf-8")

    report = _rewrite(doc, results)

    problems = dict(p.split(": ", 1) for p in report["problems"])
    assert set(problems) == {"world.json", "data.json", "features.json"}
    assert problems["world.json"].startswith("no results file: run `python benchmarks/bench_world.py`")
    assert problems["data.json"].startswith("unreadable (JSONDecodeError")
    assert problems["features.json"].startswith("could not read its figures (KeyError")
    text = doc.read_text(encoding="utf-8")
    assert "3 results file(s) missing or unreadable" in text
    assert "| serving | single-row throughput vs MLflow serving |" in text  # the others are still summarized


def test_a_begin_marker_without_its_end_is_refused_with_the_fix(tmp_path: Path, results: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text(BEFORE + summary.BEGIN + "\nhalf a section\n" + AFTER, encoding="utf-8")
    before = doc.read_bytes()

    with pytest.raises(ValueError, match="begin marker but not .* run make bench-docs again"):
        _rewrite(doc, results)
    assert doc.read_bytes() == before


def test_a_scripts_own_targets_list_is_used_as_written(tmp_path: Path, results: Path) -> None:
    (results / "serving_soak.json").write_text(json.dumps({"command": "x", "targets": [
        {"target": "memory flat over the soak", "figure": 1.25, "unit": "MiB/h", "goal": "|slope| <= 6",
         "peer": None, "ratio": None, "verdict": "met"},
        {"target": "no errors", "figure": 0.01, "unit": "of sent", "goal": "0", "verdict": "not met"},
        {"target": "odd verdict", "figure": None, "verdict": "maybe"}]}), encoding="utf-8")
    entry = summary.entry_for("bench_serving_soak.py")

    rows = summary.summarize_file(entry, "serving_soak.json", results).rows

    assert [(r.target, r.figure, r.verdict) for r in rows] == [
        ("memory flat over the soak", "1.250 MiB/h", "met"), ("no errors", "0.010 of sent", "not met"),
        ("odd verdict", "n/a", "reported")]


def test_every_benchmark_script_has_a_summary_entry_and_its_results_read() -> None:
    entries = {e.script: e for e in summary.BENCHMARKS}
    assert set(summary.scripts()) == set(entries), "add an Entry in benchmarks/summary.py for each bench_*.py"
    for entry in entries.values():
        assert entry.results or entry.note, f"{entry.script}: name its results file(s) or say why it has none"
        for name in entry.results:
            read = summary.summarize_file(entry, name)
            assert read.problem == "", f"{name}: {read.problem}"
            assert read.rows, f"{name}: no target rows"
            assert {r.verdict for r in read.rows} <= set(summary.VERDICTS)


def test_judge_compares_medians_in_the_stated_direction() -> None:
    assert summary.judge({"median": 9.0, "min": 1, "max": 99}, 10, at_most=True) == "met"
    assert summary.judge(10.5, 10, at_most=True) == "not met"
    assert summary.judge(2.0, 2.0, at_most=False) == "met"
    assert summary.judge(None, 1, at_most=True) == "reported"


def test_run_all_lists_every_script_and_rejects_an_unknown_name(capsys: pytest.CaptureFixture[str]) -> None:
    run_all = _load("run_all")

    assert run_all.main(["--list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["script"] for r in listed] == summary.scripts()
    assert next(r for r in listed if r["script"] == "bench_serving_soak.py")["quick"] is True
    assert run_all.resolve(["serving", "bench_world.py", "bench_training"]) == [
        "bench_serving.py", "bench_world.py", "bench_training.py"]
    with pytest.raises(SystemExit, match="no benchmark named 'nope'; the benchmarks are: .*serving_soak"):
        run_all.resolve(["nope"])
    with pytest.raises(SystemExit):  # a script's own options go to one script only
        run_all.main(["serving", "training", "--", "--reps", "1"])
    assert "options after -- go to one script; 2 are chosen" in capsys.readouterr().err


def test_peer_versions_are_read_from_each_peers_venv_without_importing_it(tmp_path: Path) -> None:
    site = tmp_path / "venvs" / "feast" / "lib" / "python3.11" / "site-packages"
    (site / "feast-0.67.0.dist-info").mkdir(parents=True)
    (site / "feast-0.67.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: feast\nVersion: 0.67.0\n")
    entries = [summary.Entry("bench_features.py", ("features.json",), "Feast", None, (("feast", "feast"),)),
               summary.Entry("bench_data.py", ("data.json",), "GX", None, (("gx", "great_expectations"),))]

    assert summary.peer_versions(entries, tmp_path / "venvs") == {"feast": "0.67.0",
                                                                   "great_expectations": "not installed here"}
