"""Production readiness: the ML Test Score (Breck et al. 2017) of a model, from what the platform records.

``assess(ws, model)`` scores the 28 tests from the workspace's records (:mod:`.probes`);
``assess(ws, model, ci=True)`` counts only what yarnit's own CI runs (:mod:`.ci`). Section scores are
sums (1 automated, 0.5 manual, 0 otherwise); the final score is their minimum (:mod:`.rubric`).
"""

from .ci import CI_PROOF, ci_findings, tests_root
from .manual import Attestation, attest, attestations
from .rubric import SECTION_TITLES, SECTIONS, TESTS, TESTS_BY_ID, Evidence, Finding, Score, Test, interpretation
from .service import Assessment, assess

__all__ = ["CI_PROOF", "SECTIONS", "SECTION_TITLES", "TESTS", "TESTS_BY_ID", "Assessment", "Attestation", "Evidence",
           "Finding", "Score", "Test", "assess", "attest", "attestations", "ci_findings", "interpretation",
           "tests_root"]
