"""``yarnit readiness MODEL``: the ML Test Score of a model, with the evidence for each test."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from yarnit.readiness import SECTION_TITLES, SECTIONS, assess, attest
from yarnit.readiness.rubric import TESTS_BY_ID

from .common import JSON_OPTION, cli_errors, console, emit, plain, workspace

MARK = {"automated": "1", "manual": "0.5", "none": "0"}


@cli_errors
def readiness(model: str = typer.Argument(..., help="Registered model name (e.g. ctr, yarnit-ranker)."),
              ci: bool = typer.Option(False, "--ci", help="Count only what CI runs: each test's proof is a test in "
                                      "yarnit's suite (yarnit.readiness.ci), checked to exist."),
              tests_root: Path | None = typer.Option(None, "--tests-root", help="yarnit's tests/ directory for --ci "
                                                     "(default: the one beside this source tree)."),
              attest_test: str | None = typer.Option(None, "--attest", metavar="TEST", help="Record a documented "
                                                     "manual run of TEST (e.g. model.3): 0.5 point."),
              doc: Path | None = typer.Option(None, "--doc", help="With --attest: the file holding the results."),
              reason: str = typer.Option("", "--reason", help="With --attest: what was run, by whom."),
              as_json: bool = JSON_OPTION) -> None:
    """Score MODEL on the 28 tests of the ML Test Score (Breck et al. 2017) from what the platform records.

    1 point for a test the platform runs automatically (a pipeline step, a gate, an evaluated SLO, a rollout
    …), 0.5 for a documented manual one, 0 otherwise; a section is the sum of its 7 tests and the final score
    is the minimum over the four sections. Every test shows its evidence, and every missing point the command
    that would earn it. --ci counts only the tests yarnit's own CI runs.
    """
    from yarnit.access import cli_actor

    with workspace() as ws:
        if attest_test is not None:
            if doc is None:
                raise typer.BadParameter("--attest needs --doc FILE (the documented results).")
            attest(ws, model, attest_test, doc, reason=reason, actor=cli_actor())
        result = assess(ws, model, ci=ci, tests=tests_root)
    data = result.to_dict()

    def human() -> None:
        table = Table(title=f"ML Test Score of {model} ({'counting only what CI runs' if ci else 'workspace records'})")
        for column in ("test", "points", "evidence", "to earn the missing point"):
            table.add_column(column, overflow="fold")
        for f in result.score.findings:
            test = TESTS_BY_ID[f.test_id]
            evidence = "\n".join(f"{e.kind} {e.ref}: {e.detail}" for e in f.evidence) or f.note
            if f.evidence and f.note:
                evidence += f"\n({f.note})"
            table.add_row(plain(f"{f.test_id} {test.title}"), MARK[f.level], plain(evidence), plain(f.to_earn or ""))
        console.print(table)
        sums = ", ".join(f"{SECTION_TITLES[s]} {result.score.sections[s]:g}/7" for s in SECTIONS)
        console.print(plain(f"sections: {sums}"))
        console.print(plain(f"final score (minimum over the sections): {result.score.final:g} — "
                            f"{data['interpretation']}"))

    emit(data, as_json, human)


__all__ = ["readiness"]
