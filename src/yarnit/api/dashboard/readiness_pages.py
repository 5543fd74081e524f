"""The ML Test Score pages: each model's section scores, and one model's 28 tests with their evidence.

The scores come from :func:`yarnit.readiness.assess` over stored records (no evaluation runs); the bars
mark 3, the project's target for every section (RELIABILITY.md target 24).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from yarnit.charts import Bar, svg_hbar_chart
from yarnit.readiness import SECTION_TITLES, SECTIONS, TESTS_BY_ID, Assessment, Finding, assess
from yarnit.registry import ModelRegistry
from yarnit.storage import Workspace

from .layout import DASH, esc, fmt, link, page, table

TARGET = 3.0  # every section >= 3 (RELIABILITY.md §7, target 24)
LEVEL_CSS = {"automated": "ok", "manual": "warn", "none": "bad"}


def _chart(result: Assessment, chart_id: str) -> str:
    bars = [Bar(SECTION_TITLES[s], result.score.sections[s], TARGET, result.score.sections[s] >= TARGET)
            for s in SECTIONS]
    return svg_hbar_chart(bars, chart_id=chart_id, title=f"ML Test Score of {result.model} per section",
                          desc=f"Points per section out of 7; the mark is the target of {TARGET:g}. Final score "
                               f"(the minimum): {result.score.final:g}.", value_format=lambda v: f"{v:g}")


def readiness_overview(ws: Workspace, ci: bool = False) -> str:
    rows, charts = [], []
    for entry in ModelRegistry(ws).list_models():
        result = assess(ws, entry["name"], ci=ci)
        rows.append([link(f"/ui/readiness/{result.model}" + ("?ci=true" if ci else ""), result.model),
                     *[fmt(result.score.sections[s], "g") for s in SECTIONS], fmt(result.score.final, "g")])
        reading = f"{result.model}: {result.score.final:g}. {result.to_dict()['interpretation']}"
        charts.append(f"<figure><figcaption>{esc(reading)}</figcaption>{_chart(result, f'rs-{len(charts)}')}"
                      "</figure>")
    mode = ("counting only what CI runs (tests in yarnit's suite)" if ci else "from the workspace's records")
    other = link("/ui/readiness" if ci else "/ui/readiness?ci=true", "workspace records" if ci else "only what CI runs")
    body = (f'<p class="muted">The ML Test Score (Breck et al. 2017), {esc(mode)}: 1 point per test the platform '
            f"runs automatically, 0.5 per documented manual test; the final score is the minimum over the four "
            f"sections. Show {other}.</p>"
            + table(["model", *[SECTION_TITLES[s] for s in SECTIONS], "final"], rows,
                    numeric=(1, 2, 3, 4, 5), empty="No model registered yet.")
            + (f'<div class="charts">{"".join(charts)}</div>' if charts else ""))
    return page("Readiness: the ML Test Score", body, current="/ui/readiness")


def _row(f: Finding) -> list[str]:
    test = TESTS_BY_ID[f.test_id]
    evidence = "<br>".join(f'{esc(e.kind)} <code style="overflow-wrap:anywhere">{esc(e.ref)}</code>: '
                           f"{esc(e.detail)}" for e in f.evidence)
    badge = f'<span class="state {LEVEL_CSS[f.level]}">{esc(f.level)}</span>'
    return [esc(f"{test.number}. {test.title}"), badge + " " + fmt(f.points, "g"),
            (evidence or DASH) + (f'<br><span class="muted">{esc(f.note)}</span>' if f.note else ""),
            f'<code style="overflow-wrap:anywhere">{esc(f.to_earn)}</code>' if f.to_earn else DASH]


def _sections(result: Assessment, level: int = 2) -> list[str]:
    """Per section: its points and a table of its tests (state, evidence, the command that earns a point)."""
    out = []
    for section in SECTIONS:
        rows = [_row(f) for f in result.score.findings if TESTS_BY_ID[f.test_id].section == section]
        out.append(f'<h{level} id="readiness-{section}">{esc(SECTION_TITLES[section])}: '
                   f"{fmt(result.score.sections[section], 'g')} / 7</h{level}>"
                   + table(["test", "points", "evidence", "to earn the missing point"], rows))
    return out


def readiness_page(ws: Workspace, name: str, ci: bool = False) -> str:
    result = assess(ws, name, ci=ci)  # ModelNotFound: 404 naming how to list models
    body = [f'<dl class="kv"><dt>final score</dt><dd>{fmt(result.score.final, "g")} '
            f'({esc(result.to_dict()["interpretation"])})</dd><dt>counted</dt><dd>'
            f'{"only what CI runs" if ci else "the workspace records"}</dd></dl>',
            f"<figure>{_chart(result, 'readiness')}</figure>", *_sections(result)]
    return page(f"Readiness of {name}", "".join(body))


def readiness_pending(name: str) -> str:
    """The model page's part while its first assessment is being computed (in the background: scoring takes
    longer than the page's whole first-render budget)."""
    return (f'<h2 id="readiness">Readiness: ML Test Score</h2><p class="muted">Being scored from this workspace\'s '
            f"own records; it shows here on the next view. "
            f'{link(f"/ui/readiness/{name}", "The readiness page")} waits for it · '
            f'{link(f"/api/readiness/{name}", "as JSON")}.</p>')


def readiness_section(result: Assessment, *, age_s: float) -> str:
    """The model page's part: the final score, the four section scores, every missing point with the command
    that earns it, and (folded) all 28 tests with their evidence. ``age_s``: how old the assessment is."""
    name = result.model
    sections = table(["section", "points (of 7)", f"target {TARGET:g}"],
                     [[link(f"/ui/readiness/{name}#readiness-{s}", SECTION_TITLES[s]),
                       fmt(result.score.sections[s], "g"),
                       f'<span class="state {"ok" if result.score.sections[s] >= TARGET else "bad"}">'
                       f'{"met" if result.score.sections[s] >= TARGET else "below"}</span>'] for s in SECTIONS],
                     numeric=(1,))
    missing = [_row(f) for f in result.score.findings if f.points < 1]
    age = "just now" if age_s < 1 else f"{age_s:.0f} s ago"
    return (f'<h2 id="readiness">Readiness: ML Test Score {fmt(result.score.final, "g")}</h2>'
            f'<p class="muted">{esc(result.to_dict()["interpretation"])} Counted from this workspace\'s own records '
            f"(computed {esc(age)}; rescored after each new record); the final score is the lowest section. "
            f'{link(f"/ui/readiness/{name}", "The readiness page")} · '
            f'{link(f"/api/readiness/{name}", "as JSON")}.</p>'
            + sections
            + f"<h3>Missing points ({len(missing)} of 28 tests below 1 point)</h3>"
            + table(["test", "points", "evidence", "to earn the missing point"], missing,
                    empty="None: every test earns its point.")
            + "<details><summary>All 28 tests with their evidence</summary>" + "".join(_sections(result, 3))
            + "</details>")


READINESS_TTL_S = 60.0  # real seconds an assessment is served before it is recomputed (in the background)
WAIT_S = 30.0  # how long a page waits for a background scoring of its model before scoring it itself


@dataclass
class _Kept:
    result: Assessment
    at: float  # time.monotonic() when it was computed
    records: tuple[object, ...]  # records_fingerprint() read just before it was computed


def records_fingerprint(ws: Workspace) -> tuple[object, ...]:
    """A cheap summary of the records scoring reads: row counts and newest times of the stores, and the
    modification times of the files (SLOs, the monitor's state and alerts, loop and rollout states). Equal
    fingerprints: nothing the score depends on was recorded since (a few ms; scoring takes hundreds)."""
    from sqlalchemy import func, select

    from yarnit.storage.schema import (
        alias_events, audit_log, dataset_versions, evaluations, feature_views, model_versions, runs,
    )

    queries = [select(func.count(), func.max(runs.c.started_at), func.max(runs.c.ended_at)),
               *(select(func.count()).select_from(t) for t in (alias_events, audit_log, dataset_versions,
                                                                 evaluations, feature_views, model_versions))]
    with ws.metadata.begin() as conn:
        rows = tuple(tuple(conn.execute(q).one()) for q in queries)
    files: list[tuple[str, int]] = []
    home = Path(ws.home)
    for folder in (home, home / "monitoring", home / "continuous", home / "continuous" / "rollouts"):
        try:
            with os.scandir(folder) as entries:
                files += [(e.path, e.stat().st_mtime_ns) for e in entries if e.is_file() and
                          e.name.endswith((".json", ".jsonl", ".yaml"))]
        except OSError:
            continue
    return rows + tuple(sorted(files))


class ReadinessCache:
    """Each model's workspace assessment for the model page: stale-while-revalidate.

    Scoring reads every store (about 0.5 s on a ten-day demo workspace under load: too much for a page whose
    first render must stay under 500 ms). The model page uses :meth:`peek`: its first view starts the scoring
    in a background thread and says so; later views get the kept one at once, and when the records changed
    since (:func:`records_fingerprint`: a run, an alias move, an attestation, a monitor pass) or it is older
    than ``ttl_s`` (real elapsed time), one background thread rescores it while the old one is still shown,
    with its age: the view after a change shows the change. :meth:`get` (the readiness pages) computes it
    when nothing is kept, sharing a background scoring already under way.
    """

    def __init__(self, ttl_s: float = READINESS_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._kept: dict[str, _Kept] = {}
        self._busy: set[str] = set()
        self._done: dict[str, threading.Event] = {}  # set when the model's background scoring ends
        self._lock = threading.Lock()

    def get(self, ws: Workspace, model: str) -> tuple[Assessment, float]:
        """The assessment of ``model`` and its age in seconds (ModelNotFound for an unknown model)."""
        with self._lock:
            kept = self._kept.get(model)
            pending = self._done.get(model) if kept is None and model in self._busy else None
        if pending is not None and pending.wait(WAIT_S):  # a background scoring is at it: share its result
            with self._lock:
                kept = self._kept.get(model)
        if kept is None:
            return self._compute(ws, model), 0.0
        return self._shown(ws, model, kept)

    def peek(self, ws: Workspace, model: str) -> tuple[Assessment, float] | None:
        """The kept assessment of ``model`` and its age, never waiting: None while it is scored in the background
        (started here if no one is at it). A page that must render within its budget shows what is kept."""
        with self._lock:
            kept = self._kept.get(model)
        if kept is None:
            self._refresh(ws, model)
            return None
        return self._shown(ws, model, kept)

    def _shown(self, ws: Workspace, model: str, kept: _Kept) -> tuple[Assessment, float]:
        """``kept`` with its age, rescored in the background when it is past ``ttl_s`` or the records changed."""
        age = time.monotonic() - kept.at
        if age > self.ttl_s or records_fingerprint(ws) != kept.records:
            self._refresh(ws, model)
        return kept.result, age

    def _compute(self, ws: Workspace, model: str) -> Assessment:
        records = records_fingerprint(ws)  # before scoring: a record made meanwhile triggers a rescore
        result = assess(ws, model)
        with self._lock:
            self._kept[model] = _Kept(result, time.monotonic(), records)
        return result

    def _refresh(self, ws: Workspace, model: str) -> None:
        threading.Thread(target=self._background, args=(ws, model), name=f"yarnit-readiness-{model}",
                         daemon=True).start()

    def _background(self, ws: Workspace, model: str, *, only_if_missing: bool = False) -> None:
        """Score ``model`` unless another thread is at it (or, ``only_if_missing``, it is kept already)."""
        with self._lock:
            if model in self._busy or (only_if_missing and model in self._kept):
                return
            self._busy.add(model)
            done = self._done[model] = threading.Event()
        try:
            self._compute(ws, model)
        except Exception:  # noqa: BLE001 - best effort: a page scores it itself (and shows any error)
            pass
        finally:
            with self._lock:
                self._busy.discard(model)
            done.set()


__all__ = ["READINESS_TTL_S", "ReadinessCache", "readiness_overview", "readiness_page", "readiness_pending",
           "readiness_section",
           "records_fingerprint"]
