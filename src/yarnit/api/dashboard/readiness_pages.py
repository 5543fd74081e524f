"""The ML Test Score pages: each model's section scores, and one model's 28 tests with their evidence.

The scores come from :func:`yarnit.readiness.assess` over stored records (no evaluation runs); the bars
mark 3, the project's target for every section (RELIABILITY.md target 24).
"""

from __future__ import annotations

from yarnit.charts import Bar, svg_hbar_chart
from yarnit.readiness import SECTION_TITLES, SECTIONS, TESTS_BY_ID, Assessment, assess
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


def readiness_page(ws: Workspace, name: str, ci: bool = False) -> str:
    result = assess(ws, name, ci=ci)  # ModelNotFound: 404 naming how to list models
    body = [f'<dl class="kv"><dt>final score</dt><dd>{fmt(result.score.final, "g")} '
            f'({esc(result.to_dict()["interpretation"])})</dd><dt>counted</dt><dd>'
            f'{"only what CI runs" if ci else "the workspace records"}</dd></dl>',
            f"<figure>{_chart(result, 'readiness')}</figure>"]
    for section in SECTIONS:
        rows = []
        for f in result.score.findings:
            test = TESTS_BY_ID[f.test_id]
            if test.section != section:
                continue
            evidence = "<br>".join(f'{esc(e.kind)} <code style="overflow-wrap:anywhere">{esc(e.ref)}</code>: '
                                   f"{esc(e.detail)}" for e in f.evidence)
            badge = f'<span class="state {LEVEL_CSS[f.level]}">{esc(f.level)}</span>'
            rows.append([esc(f"{test.number}. {test.title}"), badge + " " + fmt(f.points, "g"),
                         (evidence or DASH) + (f'<br><span class="muted">{esc(f.note)}</span>' if f.note else ""),
                         f'<code style="overflow-wrap:anywhere">{esc(f.to_earn)}</code>' if f.to_earn else DASH])
        body.append(f"<h2>{esc(SECTION_TITLES[section])}: {fmt(result.score.sections[section], 'g')} / 7</h2>"
                    + table(["test", "points", "evidence", "to earn the missing point"], rows))
    return page(f"Readiness of {name}", "".join(body))


__all__ = ["readiness_overview", "readiness_page"]
