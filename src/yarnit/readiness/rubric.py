"""The ML Test Score rubric: 28 tests in four sections, and how the paper turns them into one number.

Breck, Cai, Nielsen, Salib and Sculley, "The ML Test Score: A Rubric for ML Production Readiness and
Technical Debt Reduction" (IEEE Big Data 2017). Each test earns **0.5 point** when it is run manually with
its results documented and distributed, and **1 point** when a system runs it automatically and
repeatedly. A section's score is the sum of its tests (at most 7). The final score is the **minimum** of
the four section scores: "all four sections are important", so a system must consider all of them to
raise it. The test names below are the paper's wording (docs: ../shared/RELIABILITY.md §1.1).

Example:
    >>> found = {t.id: Finding(t.id, AUTOMATED) for t in TESTS}
    >>> found["monitoring.1"] = Finding("monitoring.1", MANUAL)
    >>> score = Score.of(found)
    >>> score.sections["monitoring"], score.final
    (6.5, 6.5)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Section = Literal["data", "model", "infrastructure", "monitoring"]
SECTIONS: tuple[Section, ...] = ("data", "model", "infrastructure", "monitoring")
SECTION_TITLES: dict[str, str] = {"data": "Features and data", "model": "Model development",
                                  "infrastructure": "ML infrastructure", "monitoring": "Monitoring"}

Level = Literal["automated", "manual", "none"]
AUTOMATED: Level = "automated"
MANUAL: Level = "manual"
NONE: Level = "none"
POINTS: dict[str, float] = {AUTOMATED: 1.0, MANUAL: 0.5, NONE: 0.0}


@dataclass(frozen=True)
class Test:
    """One of the 28 tests: ``id`` is ``<section>.<n>`` (``data.1`` … ``monitoring.7``)."""

    section: Section
    number: int
    title: str

    @property
    def id(self) -> str:
        return f"{self.section}.{self.number}"


_TITLES: dict[Section, tuple[str, ...]] = {
    "data": (
        "Feature expectations are captured in a schema",
        "All features are beneficial",
        "No feature's cost is too much",
        "Features adhere to meta-level requirements",
        "The data pipeline has appropriate privacy controls",
        "New features can be added quickly",
        "All input feature code is tested",
    ),
    "model": (
        "Every model spec is code-reviewed and checked into a repository",
        "Offline proxy metrics correlate with actual online impact metrics",
        "All hyperparameters have been tuned",
        "The impact of model staleness is known",
        "A simpler model is not better",
        "Model quality is sufficient on all important data slices",
        "The model has been tested for considerations of inclusion",
    ),
    "infrastructure": (
        "Training is reproducible",
        "Model specification code is unit tested",
        "The full ML pipeline is integration tested",
        "Model quality is validated before attempting to serve it",
        "The model allows debugging by observing the step-by-step computation of training or inference on a "
        "single example",
        "Models are tested via a canary process before they enter production serving environments",
        "Models can be quickly and safely rolled back to a previous serving version",
    ),
    "monitoring": (
        "Dependency changes result in notification",
        "Data invariants hold in training and serving inputs",
        "Training and serving features compute the same values",
        "Models are not too stale",
        "The model is numerically stable",
        "The model has not experienced a dramatic or slow-leak regression in training speed, serving latency, "
        "throughput, or RAM usage",
        "The model has not experienced a regression in prediction quality on served data",
    ),
}

TESTS: tuple[Test, ...] = tuple(Test(section, i + 1, title) for section in SECTIONS
                                for i, title in enumerate(_TITLES[section]))
TESTS_BY_ID: dict[str, Test] = {t.id: t for t in TESTS}


@dataclass(frozen=True)
class Evidence:
    """One record that proves (part of) a test: what kind of record, which one, and what it says."""

    kind: str  # run, step, evaluation, gate, validity, slo, alert, rollout, alias_event, reproduction, test, …
    ref: str  # the run id, evaluation id, SLO id, alert id, file or pytest node id
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "ref": self.ref, "detail": self.detail}


@dataclass(frozen=True)
class Finding:
    """What was found for one test: its level (automated, manual, none), the evidence and how to earn more."""

    test_id: str
    level: Level
    evidence: tuple[Evidence, ...] = ()
    note: str = ""
    to_earn: str | None = None  # the command that would earn the missing point(s); None at 1 point

    @property
    def points(self) -> float:
        return POINTS[self.level]

    def to_dict(self) -> dict[str, Any]:
        test = TESTS_BY_ID[self.test_id]
        return {"id": self.test_id, "section": test.section, "number": test.number, "title": test.title,
                "level": self.level, "points": self.points, "evidence": [e.to_dict() for e in self.evidence],
                "note": self.note, "to_earn": self.to_earn}


def interpretation(final: float) -> str:
    """The paper's Table V reading of a final score."""
    if final <= 0:
        return "More of a research project than a productionized system."
    if final <= 1:
        return "Not totally untested, but it is worth considering the possibility of serious holes in reliability."
    if final <= 2:
        return "There's been first pass at basic productionization, but additional investment may be needed."
    if final <= 3:
        return "Reasonably tested, but it's possible that more of those tests and procedures may be automated."
    if final <= 5:
        return "Strong levels of automated testing and monitoring, appropriate for mission-critical systems."
    return "Exceptional levels of automated testing and monitoring."


@dataclass(frozen=True)
class Score:
    """Section sums and their minimum, exactly as the paper computes them."""

    findings: tuple[Finding, ...]
    sections: Mapping[str, float] = field(default_factory=dict)
    final: float = 0.0

    @classmethod
    def of(cls, findings: Mapping[str, Finding] | Sequence[Finding]) -> Score:
        """Score a complete set of findings (one per test; a missing or unknown test is refused)."""
        by_id = dict(findings) if isinstance(findings, Mapping) else {f.test_id: f for f in findings}
        unknown = sorted(set(by_id) - set(TESTS_BY_ID))
        missing = [t.id for t in TESTS if t.id not in by_id]
        if unknown or missing:
            raise ValueError(f"A score needs exactly the 28 tests; unknown {unknown}, missing {missing}.")
        ordered = tuple(by_id[t.id] for t in TESTS)
        sections = {s: sum(f.points for f in ordered if TESTS_BY_ID[f.test_id].section == s) for s in SECTIONS}
        return cls(ordered, sections, min(sections.values()))

    def to_dict(self) -> dict[str, Any]:
        return {"final": self.final, "sections": dict(self.sections), "interpretation": interpretation(self.final),
                "tests": [f.to_dict() for f in self.findings]}


__all__ = ["AUTOMATED", "MANUAL", "NONE", "POINTS", "SECTIONS", "SECTION_TITLES", "TESTS", "TESTS_BY_ID",
           "Evidence", "Finding", "Level", "Score", "Section", "Test", "interpretation"]
