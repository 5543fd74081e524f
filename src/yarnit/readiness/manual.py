"""Manual tests, documented: the half point of the ML Test Score.

The paper gives 0.5 point to a test "run manually, with the results documented and distributed". Such a
run leaves no record the platform could find, so its owner records it:
``yarnit readiness MODEL --attest TEST --doc FILE --reason TEXT`` writes one ``audit_log`` row (action
``readiness.manual``, subject ``model:<name>``) with the actor, the clock time, the document's path and
its sha256. An attestation never earns the automated point, and ``--ci`` ignores it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import and_, insert, select

from yarnit.core.errors import InvalidInput
from yarnit.core.hashing import sha256_file
from yarnit.core.text import check_plain_text
from yarnit.storage import Workspace
from yarnit.storage.schema import audit_log

ACTION = "readiness.manual"
MAX_DOC_BYTES = 50 * 1024 * 1024


@dataclass(frozen=True)
class Attestation:
    test_id: str
    doc: str
    doc_sha256: str
    reason: str
    actor: str
    at: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def attest(ws: Workspace, model: str, test_id: str, doc: Path, *, reason: str, actor: str) -> Attestation:
    """Record that ``test_id`` was run by hand for ``model``, its results documented in ``doc``."""
    from .rubric import TESTS_BY_ID

    if test_id not in TESTS_BY_ID:
        raise InvalidInput(f"No ML Test Score test {test_id!r}; the tests are data.1 … data.7, model.1 … model.7, "
                           "infrastructure.1 … infrastructure.7 and monitoring.1 … monitoring.7.")
    check_plain_text("reason", reason)
    if not reason.strip():
        raise InvalidInput("An attestation needs --reason: what was run, by whom, and where the results went.")
    path = Path(doc).resolve()
    if not path.is_file():
        raise InvalidInput(f"The document {doc} is not a file: pass the file that holds the results (--doc).")
    if path.stat().st_size > MAX_DOC_BYTES:
        raise InvalidInput(f"The document {doc} is larger than {MAX_DOC_BYTES} bytes; attest a summary instead.")
    found = Attestation(test_id, str(path), sha256_file(path), reason.strip(), actor, ws.clock.now().isoformat())
    with ws.metadata.begin() as conn:
        conn.execute(insert(audit_log).values(at=ws.clock.now(), actor=actor[:128], action=ACTION,
                                              subject=f"model:{model}", detail={
                                                  "test": test_id, "doc": found.doc, "doc_sha256": found.doc_sha256,
                                                  "reason": found.reason}))
    return found


def attestations(ws: Workspace, model: str) -> list[Attestation]:
    """Every attestation of ``model``, oldest first."""
    with ws.metadata.begin() as conn:
        rows = conn.execute(select(audit_log).where(and_(audit_log.c.action == ACTION,
                                                         audit_log.c.subject == f"model:{model}"))
                            .order_by(audit_log.c.id)).mappings().all()
    out = []
    for r in rows:
        d = r["detail"] or {}
        out.append(Attestation(str(d.get("test")), str(d.get("doc")), str(d.get("doc_sha256")),
                               str(d.get("reason")), r["actor"], r["at"].isoformat()))
    return out


__all__ = ["ACTION", "Attestation", "attest", "attestations"]
