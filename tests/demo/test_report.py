"""The operate demo's report page: self-contained, parseable, escaped, and complete for any report dict."""

from __future__ import annotations

import copy
import doctest
import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any

import pytest

from yarnit import charts as report_svg
from yarnit.demo import report as rep

START = datetime(2026, 1, 5, tzinfo=UTC)
HOSTILE = "<script>alert(1)</script>"
VOID = {"meta", "br", "hr", "img", "input", "link", "wbr", "col", "area", "base", "source"}


def _iso(day: float) -> str:
    return (START + timedelta(days=day)).isoformat()


def _fault(name: str, day: float, hours: float, ttd_h: float | None, target_h: float, cls: str) -> dict[str, Any]:
    detected = None if ttd_h is None else _iso(day + ttd_h / 24)
    return {"name": name, "story": f"ch. 11 story: {name}", "class": cls, "spec": f"{name}@{day:g}:{hours:g}",
            "injected_at": _iso(day), "ended_at": _iso(day + hours / 24), "detected_at": detected, "ttd_h": ttd_h,
            "target_h": target_h, "detected_by": None if ttd_h is None else "ctr-inputs (page)",
            "action": None if ttd_h is None else "fall_back", "mitigated_at": detected,
            "recovered_at": None if ttd_h is None else _iso(day + hours / 24 + 0.1),
            "ctr_faulted": 0.031, "ctr_clean": 0.042, "ctr_impact_pct": -26.19, "revenue_faulted": 9100.0,
            "revenue_clean": 10400.0, "revenue_impact_pct": -12.5, "met": ttd_h is not None and ttd_h <= target_h}


def make_report() -> dict[str, Any]:
    """A realistic 30-day report with four faults: three detected (one late), one never detected."""
    faults = [_fault("partner_lookup", 4, 12, 1.5, 4, "serving"), _fault("stale_features", 10, 48, 30.25, 24, "data"),
              _fault("label_delay", 17, 24, None, 48, "labels"), _fault("bad_rollout", 24, 6, 0.25, 1, "serving")]
    daily = []
    for i in range(30):
        version = "ctr:v1" if i < 12 else "ctr:v2"
        hit = any(f["injected_at"] <= _iso(i + 0.5) <= f["ended_at"] for f in faults)
        run = {"ctr": 0.042, "revenue": 10400.0 + 10 * i, "sessions": 1500, "requests": 422,
               "answered_by": {version: 410, "heuristic": 12, "HTTP 503": 0}, "production": version,
               "pages": 0, "tickets": 0}
        faulted = dict(run, ctr=0.031 if hit else 0.0415, answered_by={version: 300 if hit else 410,
                                                                        "heuristic": 110 if hit else 12,
                                                                        "HTTP 503": 12 if hit else 0})
        daily.append({"day": (START + timedelta(days=i)).date().isoformat(), "faulted": faulted, "clean": run})
    events = [{"at": f["injected_at"], "run": "faulted", "kind": "fault", "text": f"injected {f['spec']}"}
              for f in faults]
    events += [{"at": _iso(4.06), "run": "faulted", "kind": "alert", "text": "ctr-inputs page"},
               {"at": _iso(4.07), "run": "faulted", "kind": "action", "text": "fall_back ctr"},
               {"at": _iso(3), "run": "faulted", "kind": "train", "text": "trained ctr:v1 (not a timeline kind)"},
               {"at": _iso(5), "run": "clean", "kind": "rollout", "text": "clean-run rollout (other run)"}]
    return {
        "title": "YarnIt: 30 days of operation", "seed": 7, "days": 30, "start": START.isoformat(),
        "elapsed_s": 754.2, "generated_at": _iso(30), "faults": faults,
        "targets": [{"name": "every fault detected", "value": "3/4", "target": "4/4", "met": False},
                    {"name": "fallback answers under 5%", "value": "3.1%", "target": "≤ 5%", "met": True}],
        "daily": daily, "events": events,
        "answered_by": {"faulted": {"ctr:v1": 4000, "ctr:v2": 7000, "heuristic": 900},
                        "clean": {"ctr:v1": 4900, "ctr:v2": 7300, "heuristic": 300}},
        "incidents": [{"id": "INC-1", "title": "CTR inputs broken", "severity": "SEV2", "opened_at": _iso(4.06),
                       "resolved_at": _iso(4.6), "postmortem": "# Postmortem\n\n- impact: <b>bold</b> & more"}],
    }


class Page(HTMLParser):
    """Checks nesting while it parses; keeps text, attributes, and each <svg>'s first child tag."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.text: list[str] = []
        self.attrs: list[tuple[str, str, str | None]] = []
        self.svgs: list[dict[str, Any]] = []
        self.ids: set[str] = set()
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += [(tag, k, v) for k, v in attrs]
        self.ids |= {v for k, v in attrs if k == "id" and v}
        if self.svgs and self.stack and self.stack[-1] == "svg" and self.svgs[-1]["first"] is None:
            self.svgs[-1]["first"] = tag
        if tag == "svg":
            self.svgs.append({"first": None, "attrs": dict(attrs)})
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += [(tag, k, v) for k, v in attrs]

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1] if self.stack else None}>"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: str) -> Page:
    parser = Page()
    parser.feed(page)
    parser.close()
    assert parser.stack == [], f"unclosed: {parser.stack}"
    return parser


def test_page_parses_and_has_the_semantic_structure() -> None:
    p = parse(rep.render_html(make_report()))
    for tag in ("header", "main", "section", "table", "caption", "details", "summary", "pre", "figure"):
        assert tag in p.tags, tag
    scopes = {v for t, k, v in p.attrs if t == "th" and k == "scope"}
    assert scopes == {"col", "row"}
    assert ("meta", "name", "viewport") in p.attrs


def test_page_is_self_contained() -> None:
    page = rep.render_html(make_report())
    lowered = page.lower()
    for needle in ("http://", "https://", "src=", "<link", "<script", "url(", "@import", "//cdn"):
        assert needle not in lowered, needle
    assert "<style>" in page


def test_each_fault_and_its_time_to_detect_appear() -> None:
    report = make_report()
    text = " ".join(parse(rep.render_html(report)).text)
    for fault in report["faults"]:
        assert fault["name"] in text
        assert rep.fmt_hours(fault["ttd_h"]) in text
    assert "1.5 h (target 4.0 h)" in text and "30.2 h (target 24.0 h)" in text and "15 min (target 1.0 h)" in text
    assert "— (target 48.0 h)" in text and "not detected" in text  # the undetected fault
    assert "−26.2%" in text and "−12.5%" in text and "754" not in text and "12 min 34 s" in text


def test_one_svg_per_chart_each_with_title_desc_and_legend() -> None:
    page = rep.render_html(make_report())
    p = parse(page)
    assert len(p.svgs) == 4
    assert [s["attrs"]["id"] for s in p.svgs] == ["chart-ctr", "chart-revenue", "chart-ttd", "chart-answered"]
    for svg in p.svgs:
        assert svg["first"] == "title"
        assert svg["attrs"]["role"] == "img"
        assert set(svg["attrs"]["aria-labelledby"].split()) <= p.ids
    for chart in re.findall(r"<svg.*?</svg>", page, flags=re.DOTALL):
        assert '<g class="legend">' in chart and "<desc " in chart


def test_fault_windows_are_shaded_on_the_daily_charts() -> None:
    page = rep.render_html(make_report())
    found = re.finditer(r'<svg[^>]*id="(chart-[a-z]+)".*?</svg>', page, flags=re.DOTALL)
    charts = {m.group(1): m.group(0) for m in found}
    for key in ("chart-ctr", "chart-revenue", "chart-answered"):
        assert charts[key].count('<g class="win">') == 4
        assert "partner_lookup" in charts[key]
    windows = rep.fault_windows(make_report())
    assert (windows[0].label, round(windows[0].x0, 3), round(windows[0].x1, 3)) == ("partner_lookup", 4.0, 4.5)
    assert charts["chart-ttd"].count('class="target"') == 4
    assert charts["chart-answered"].index("ctr:v1") < charts["chart-answered"].index("heuristic") \
        < charts["chart-answered"].index("HTTP 503")


def test_hostile_strings_come_out_escaped_everywhere() -> None:
    report = make_report()
    report["title"] = HOSTILE
    report["faults"][0].update(name=HOSTILE, story=HOSTILE, detected_by=HOSTILE, action='"><img onerror=x>')
    report["targets"][0]["name"] = HOSTILE
    report["events"][0]["text"] = HOSTILE
    report["incidents"][0].update(title=HOSTILE, postmortem=f"# PM\n{HOSTILE}\n")
    report["daily"][3]["faulted"]["answered_by"][HOSTILE] = 5
    report["answered_by"]["faulted"][HOSTILE] = 5
    page = rep.render_html(report)
    assert HOSTILE not in page and "<img" not in page and "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    p = parse(page)
    assert "script" not in p.tags and "img" not in p.tags
    assert sum(HOSTILE in t for t in p.text) >= 8  # escaped, not stripped: the reader sees the name as text


def test_none_and_missing_values_render_as_a_dash() -> None:
    report = make_report()
    bare = {"name": "mystery"}  # every optional key missing
    nones = {k: None for k in report["faults"][0]} | {"name": "all_none", "met": False}
    report["faults"] += [bare, nones]
    report["daily"][5]["clean"] = None
    report["daily"][6]["faulted"]["ctr"] = float("nan")
    report["elapsed_s"] = None
    page = rep.render_html(report)
    parse(page)
    rows = rep.render_table(report)
    assert rows[-2] == ["mystery", "—", "—", "—", "—", "—", "—", "—", "—", "—", "—"]
    assert rows[-1][2:] == ["—", "—", "—", "—", "—", "—", "—", "—", "no"]
    assert "None" not in page and "nan" not in page.lower()
    ctr = re.search(r'<svg[^>]*id="chart-ctr".*?</svg>', page, flags=re.DOTALL).group(0)
    faulted_path = re.search(r'class="line s-faulted" d="([^"]*)"', ctr).group(1)
    assert faulted_path.count("M") == 2  # the NaN day breaks the line instead of dropping to zero


@pytest.mark.parametrize("report", [{}, {"faults": [], "daily": [], "events": [], "incidents": []},
                                    {"faults": "not a list", "daily": [None, 3], "answered_by": []}])
def test_empty_or_malformed_report_still_renders(report: dict[str, Any]) -> None:
    p = parse(rep.render_html(report))
    assert len(p.svgs) == 4
    text = " ".join(p.text)
    assert "No incidents." in text and "no targets" in text and "none" in text
    assert rep.render_table(report) == [rep.TABLE_HEADER]


def test_render_table_rows_match_the_faults() -> None:
    report = make_report()
    rows = rep.render_table(report)
    assert rows[0] == rep.TABLE_HEADER
    assert [r[0] for r in rows[1:]] == [f["name"] for f in report["faults"]]
    assert all(len(r) == len(rep.TABLE_HEADER) for r in rows)
    assert rows[1] == ["partner_lookup", "ch. 11 story: partner_lookup", "2026-01-09 00:00", "2026-01-09 01:30",
                       "1.5 h (target 4.0 h)", "ctr-inputs (page)", "fall_back", "2026-01-09 14:24", "−26.2%",
                       "−12.5%", "yes"]
    assert rows[3][3] == "—" and rows[3][10] == "no"


def test_render_table_neutralises_terminal_escape_sequences() -> None:
    report = {"faults": [{"name": "evil\x1b[2J\x07", "story": "a\nb"}]}
    row = rep.render_table(report)[1]
    assert "\x1b" not in row[0] and "\x07" not in row[0] and row[0].startswith("evil")
    assert "\n" not in row[1]


def test_timeline_holds_only_the_faulted_runs_operational_events_in_time_order() -> None:
    report = make_report()
    report["events"].reverse()
    page = rep.render_html(report)
    timeline = re.search(r'<section aria-labelledby="h-events">.*?</section>', page, flags=re.DOTALL).group(0)
    assert "6 events of the faulted run" in timeline
    assert "not a timeline kind" not in timeline and "other run" not in timeline
    times = re.findall(r'<th scope="row">(2026-[^<]+)</th>', timeline)
    assert times == sorted(times) and len(times) == 6


def test_input_report_is_not_mutated() -> None:
    report = make_report()
    before = copy.deepcopy(report)
    rep.render_html(report)
    rep.render_table(report)
    assert report == before


@pytest.mark.parametrize("module", [rep, report_svg])
def test_module_examples_hold(module: Any) -> None:
    assert doctest.testmod(module).failed == 0
