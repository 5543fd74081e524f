"""Render the 30-day operate demo's report: one self-contained HTML page, or rows for a terminal table.

The page is a single file with no external reference of any kind (no CDN, font, script or stylesheet
URL): inline CSS and server-rendered inline SVG (:mod:`yarnit.charts`), so it opens offline
and can be attached to a ticket. The report dict is treated as hostile: every string it carries is
HTML-escaped on the way out (a fault named ``<script>`` renders as text), numbers that are missing,
``None``, non-numeric or not finite show as "—", and every optional key may be absent.

The contract is the dict the demo builds (title, seed, days, start, elapsed_s, generated_at, faults,
targets, daily, events, answered_by, incidents); see ``docs/design.md`` ("demo report").
"""

from __future__ import annotations

import math
import re
import unicodedata
from datetime import UTC, datetime
from typing import Any

from yarnit.charts import (
    CHART_CSS,
    ERROR_COLOUR,
    FALLBACK_COLOUR,
    PALETTE,
    Bar,
    Series,
    Window,
    esc,
    svg_hbar_chart,
    svg_line_chart,
    svg_stacked_bars,
)

DASH = "—"
TIMELINE_KINDS = ("fault", "alert", "incident", "action", "rollout")
TABLE_HEADER = ["fault", "story", "injected at", "detected at", "time to detect", "detected by", "action",
                "recovered at", "CTR impact", "revenue impact", "met"]


def _num(value: object) -> float | None:
    """A finite float, or None for anything else (None, NaN, text, booleans).

    >>> _num(3), _num("3"), _num(float("nan")), _num(True)
    (3.0, None, None, None)
    """
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def fmt_hours(value: object) -> str:
    """A duration in hours: minutes below one hour, else hours with one decimal.

    >>> fmt_hours(0.25), fmt_hours(3.46), fmt_hours(None)
    ('15 min', '3.5 h', '—')
    """
    h = _num(value)
    if h is None:
        return DASH
    return f"{h * 60:.0f} min" if abs(h) < 1 else f"{h:,.1f} h"


def fmt_pct(value: object) -> str:
    """A signed percentage change (the impact columns).

    >>> fmt_pct(-12.345), fmt_pct(0.04), fmt_pct(None)
    ('−12.3%', '+0.0%', '—')
    """
    v = _num(value)
    return DASH if v is None else f"{'−' if v < 0 else '+'}{abs(v):,.1f}%"


def fmt_ctr(value: object) -> str:
    """A click-through rate as a percentage with two decimals.

    >>> fmt_ctr(0.04123), fmt_ctr(None)
    ('4.12%', '—')
    """
    v = _num(value)
    return DASH if v is None else f"{v * 100:.2f}%"


def fmt_money(value: object) -> str:
    """Revenue with thousands separators; cents only for small amounts that have them.

    >>> fmt_money(12345.678), fmt_money(9.5), fmt_money(0.0), fmt_money("x")
    ('12,346', '9.50', '0', '—')
    """
    v = _num(value)
    return DASH if v is None else (f"{v:,.2f}" if abs(v) < 100 and not v.is_integer() else f"{v:,.0f}")


def fmt_seconds(value: object) -> str:
    """Elapsed wall time.

    >>> fmt_seconds(12.34), fmt_seconds(3723), fmt_seconds(None)
    ('12.3 s', '1 h 2 min 3 s', '—')
    """
    v = _num(value)
    if v is None:
        return DASH
    if v < 60:
        return f"{v:.1f} s"
    h, rest = divmod(round(v), 3600)
    m, s = divmod(rest, 60)
    return (f"{h} h " if h else "") + f"{m} min {s} s"


def parse_time(value: object) -> datetime | None:
    """An ISO-8601 timestamp as an aware UTC datetime (naive means UTC), or None.

    >>> parse_time("2026-01-05T06:30:00+01:00").isoformat(), parse_time("soon")
    ('2026-01-05T05:30:00+00:00', None)
    """
    if not isinstance(value, str):
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).astimezone(UTC)


def fmt_time(value: object) -> str:
    """A timestamp to the minute in UTC; None shows as "—" and an unparsable string as itself.

    >>> fmt_time("2026-01-15T10:00:00+00:00"), fmt_time(None), fmt_time("later")
    ('2026-01-15 10:00', '—', 'later')
    """
    dt = parse_time(value)
    if dt is not None:
        return dt.strftime("%Y-%m-%d %H:%M")
    return DASH if value is None else str(value)


def answerer_kind(label: str) -> str:
    """Whether an ``answered_by`` label is a model version, a fallback or an error.

    >>> [answerer_kind(x) for x in ("ctr:v3", "heuristic", "ctr:v2 (fallback)", "HTTP 503")]
    ['model', 'fallback', 'fallback', 'error']
    """
    if label.startswith("HTTP ") or label.lower().startswith("error"):
        return "error"
    if label == "heuristic" or "(" in label or "fallback" in label.lower():
        return "fallback"
    return "model"


def _answerer_order(label: str) -> tuple[int, list[Any]]:
    kind = ("model", "fallback", "error").index(answerer_kind(label))
    return kind, [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", label)]


def answerer_colours(labels: list[str]) -> dict[str, str]:
    """Stack order and colour per answerer: model versions first (by version), then fallbacks, then errors.

    >>> answerer_colours(["HTTP 503", "ctr:v10", "heuristic", "ctr:v9"])
    {'ctr:v9': '#2b6cb0', 'ctr:v10': '#2f855a', 'heuristic': '#dd8a0e', 'HTTP 503': '#c53030'}
    """
    shades = {"model": list(PALETTE[:6]), "fallback": [FALLBACK_COLOUR, "#ecc94b", "#c05621"],
              "error": [ERROR_COLOUR, "#822727", "#fc8181"]}
    used = {"model": 0, "fallback": 0, "error": 0}
    out = {}
    for label in sorted(set(labels), key=_answerer_order):
        kind = answerer_kind(label)
        out[label] = shades[kind][used[kind] % len(shades[kind])]
        used[kind] += 1
    return out


def _plain(value: object) -> str:
    """Text safe for a terminal cell: control characters (escape sequences) become U+FFFD.

    >>> _plain("a\\x1b[31mb"), _plain(None)
    ('a\\ufffd[31mb', '—')
    """
    if value is None:
        return DASH
    return "".join("\ufffd" if unicodedata.category(c) == "Cc" else c for c in str(value))


def _list(report: dict[str, Any], key: str) -> list[dict[str, Any]]:
    items = report.get(key)
    return [x for x in items if isinstance(x, dict)] if isinstance(items, list) else []


def _ttd(fault: dict[str, Any]) -> str:
    target = fmt_hours(fault.get("target_h"))
    return fmt_hours(fault.get("ttd_h")) + ("" if target == DASH else f" (target {target})")


def fault_row(fault: dict[str, Any]) -> list[str]:
    """One fault as plain strings, in :data:`TABLE_HEADER` order."""
    met = fault.get("met")
    return [str(fault.get("name", "?")), str(fault.get("story") or DASH), fmt_time(fault.get("injected_at")),
            fmt_time(fault.get("detected_at")), _ttd(fault), str(fault.get("detected_by") or DASH),
            str(fault.get("action") or DASH), fmt_time(fault.get("recovered_at")),
            fmt_pct(fault.get("ctr_impact_pct")), fmt_pct(fault.get("revenue_impact_pct")),
            "yes" if met is True else "no" if met is False else DASH]


def render_table(report: dict[str, Any]) -> list[list[str]]:
    """Rows for a terminal table: :data:`TABLE_HEADER` first, then one row per fault in report order.

    Cells are plain text with control characters replaced; print them as literal text (``rich.text.Text``),
    not as markup.

    >>> rows = render_table({"faults": [{"name": "partner_lookup", "ttd_h": 2.0, "target_h": 12}]})
    >>> rows[1][0], rows[1][4], rows[1][5]
    ('partner_lookup', '2.0 h (target 12.0 h)', '—')
    """
    return [list(TABLE_HEADER)] + [[_plain(c) for c in fault_row(f)] for f in _list(report, "faults")]


def _day_offset(value: object, start: datetime | None) -> float | None:
    dt = parse_time(value)
    return None if dt is None or start is None else (dt - start).total_seconds() / 86400


def fault_windows(report: dict[str, Any]) -> list[Window]:
    """Each fault's [injected, ended] interval in days since the report's start (ongoing: to the end)."""
    start = parse_time(report.get("start"))
    if start is None and _list(report, "daily"):
        start = parse_time(str(_list(report, "daily")[0].get("day")))
    n_days = len(_list(report, "daily")) or (_num(report.get("days")) or 0)
    out = []
    for f in _list(report, "faults"):
        x0 = _day_offset(f.get("injected_at"), start)
        if x0 is not None:
            x1 = _day_offset(f.get("ended_at") or f.get("recovered_at"), start)
            out.append(Window(str(f.get("name", "?")), x0, x1 if x1 is not None else float(n_days)))
    return out


def _run_values(daily: list[dict[str, Any]], run: str, key: str) -> list[float | None]:
    return [_num(d.get(run, {}).get(key)) if isinstance(d.get(run), dict) else None for d in daily]


def charts(report: dict[str, Any]) -> list[tuple[str, str]]:
    """The four charts as (heading, svg) pairs."""
    daily = _list(report, "daily")
    labels = [str(d.get("day", ""))[5:] or str(i + 1) for i, d in enumerate(daily)]
    windows = fault_windows(report)
    names = ", ".join(w.label for w in windows) or "none"
    out = []
    for key, what, fmt in (("ctr", "click-through rate", fmt_ctr), ("revenue", "revenue", fmt_money)):
        series = [Series("faulted run", "s-faulted", _run_values(daily, "faulted", key)),
                  Series("clean run", "s-clean", _run_values(daily, "clean", key))]
        out.append((f"Daily {what}", svg_line_chart(
            series, windows, chart_id=f"chart-{key}", title=f"Daily {what}: faulted run vs clean run",
            desc=f"One point per day for each run; shaded bands mark the fault windows ({names}).",
            x_labels=labels, y_format=fmt)))
    bars = [Bar(str(f.get("name", "?")), _num(f.get("ttd_h")), _num(f.get("target_h")), f.get("met") is True)
            for f in _list(report, "faults")]
    out.append(("Time to detect", svg_hbar_chart(
        bars, chart_id="chart-ttd", title="Time to detect each fault, against its target",
        desc="One bar per fault, in hours from injection to detection; the vertical mark is the target.",
        value_format=fmt_hours)))
    stacks = []
    for d in daily:
        run = d.get("faulted") if isinstance(d.get("faulted"), dict) else {}
        answered = run.get("answered_by") if isinstance(run.get("answered_by"), dict) else {}
        stacks.append({str(k): v for k, v in answered.items() if _num(v) is not None})
    colours = answerer_colours([k for s in stacks for k in s])
    out.append(("Who answered requests (faulted run)", svg_stacked_bars(
        stacks, colours, windows, chart_id="chart-answered", title="Requests answered per day, by answerer",
        desc="Stacked bars per day of the faulted run: model versions, then fallbacks, then errors.",
        x_labels=labels)))
    return out


def _table(caption: str, header: list[str], rows: list[list[str]], cls: str = "") -> str:
    head = "".join(f'<th scope="col">{esc(h)}</th>' for h in header)
    body = "".join("<tr>" + f'<th scope="row">{esc(r[0])}</th>' + "".join(f"<td>{esc(c)}</td>" for c in r[1:])
                   + "</tr>" for r in rows)
    empty = f'<tr><td colspan="{len(header)}">none</td></tr>' if not rows else ""
    return (f'<div class="scroll"><table class="{cls}"><caption>{esc(caption)}</caption><thead><tr>{head}</tr>'
            f"</thead><tbody>{body}{empty}</tbody></table></div>")


def _targets(report: dict[str, Any]) -> str:
    items = []
    for t in _list(report, "targets"):
        ok = t.get("met") is True
        items.append(f'<li class="{"pass" if ok else "fail"}"><span class="badge">{"✓ PASS" if ok else "✗ FAIL"}'
                     f'</span> {esc(t.get("name", "?"))}: {esc(t.get("value", DASH))} '
                     f'<span class="muted">(target {esc(t.get("target", DASH))})</span></li>')
    return '<ul class="targets">' + ("".join(items) or "<li>no targets</li>") + "</ul>"


def _answered_totals(report: dict[str, Any]) -> str:
    totals = report.get("answered_by") if isinstance(report.get("answered_by"), dict) else {}
    runs = {r: (totals.get(r) if isinstance(totals.get(r), dict) else {}) for r in ("faulted", "clean")}
    labels = sorted({str(k) for r in runs.values() for k in r}, key=_answerer_order)
    rows = [[who] + [f"{_num(runs[r].get(who)) or 0:,.0f}" for r in runs] for who in labels]
    return _table("Requests answered over the whole run", ["answered by", "faulted run", "clean run"], rows)


def _ranker(report: dict[str, Any]) -> str:
    """Pages by the model they were sent to and who answered them, and the ranker's re-pins, both runs."""
    ranker = report.get("ranker") if isinstance(report.get("ranker"), dict) else {}
    rows, repins = [], []
    for run in ("faulted", "clean"):
        side = ranker.get(run) if isinstance(ranker.get(run), dict) else {}
        pages = side.get("pages") if isinstance(side.get("pages"), dict) else {}
        for model, answered in pages.items():
            answered = answered if isinstance(answered, dict) else {}
            for who in sorted(answered, key=_answerer_order):
                rows.append([f"{run} run", str(model), str(who), f"{_num(answered.get(who)) or 0:,.0f}"])
        repins += [[f"{run} run", fmt_time(r.get("at")), f"ctr:v{r.get('ctr')}", str(r.get("action")),
                    str(r.get("new_ranker") or DASH), str(r.get("reason") or "")] for r in _list(side, "repins")]
    return (_table("Pages by model and by who answered them", ["run", "sent to", "answered by", "pages"], rows)
            + _table("yarnit-ranker re-pins to a new production click model",
                     ["run", "at (UTC)", "click model", "action", "new ranker version", "why"], repins))


def _events(report: dict[str, Any]) -> str:
    events = [e for e in _list(report, "events") if e.get("run") == "faulted" and e.get("kind") in TIMELINE_KINDS]
    events.sort(key=lambda e: (parse_time(e.get("at")) or datetime.max.replace(tzinfo=UTC)))
    rows = [[fmt_time(e.get("at")), str(e.get("kind")), str(e.get("text", ""))] for e in events]
    return (f"<details><summary>{len(rows)} events of the faulted run (faults, alerts, incidents, actions, "
            f"rollouts)</summary>{_table('Events, faulted run', ['at (UTC)', 'kind', 'what happened'], rows, 'events')}"
            "</details>")


def _incidents(report: dict[str, Any]) -> str:
    out = []
    for inc in _list(report, "incidents"):
        resolved = fmt_time(inc.get("resolved_at")) if inc.get("resolved_at") else "unresolved"
        pm = inc.get("postmortem")
        out.append(f"<details><summary><strong>{esc(inc.get('id', '?'))}</strong> {esc(inc.get('title', ''))} "
                   f"<span class=\"muted\">({esc(inc.get('severity', '?'))}; opened {esc(fmt_time(inc.get('opened_at')))}"
                   f", resolved {esc(resolved)})</span></summary>"
                   + (f"<pre>{esc(pm)}</pre>" if pm else "<p>No postmortem.</p>") + "</details>")
    return "".join(out) or "<p>No incidents.</p>"


CSS = """
:root{--fg:#1a202c;--muted:#5a6473;--bg:#fff;--line:#d8dee6;--faulted:#c53030;--clean:#2b6cb0;--ok:#2f855a}
*{box-sizing:border-box}body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:var(--fg);background:var(--bg)}header,main{max-width:1200px;margin:0 auto;padding:1rem 1.25rem}
header{border-bottom:1px solid var(--line)}h1{font-size:1.5rem;margin:.2rem 0}h2{font-size:1.2rem;margin:1.6rem 0 .5rem}
.meta{display:flex;flex-wrap:wrap;gap:.4rem 1.4rem;margin:0;color:var(--muted)}.meta dt{display:inline;font-weight:600}
.meta dd{display:inline;margin:0 0 0 .3rem}.muted{color:var(--muted)}
.targets{list-style:none;padding:0}.targets li{padding:.2rem 0}.badge{font-weight:700;display:inline-block;min-width:5.5em}
.pass .badge{color:var(--ok)}.fail .badge{color:var(--faulted)}
.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%;font-size:.9rem}caption{text-align:left;
font-weight:600;padding:.3rem 0}th,td{border-bottom:1px solid var(--line);padding:.35rem .5rem;text-align:left;
vertical-align:top}thead th{background:#f4f6f9;white-space:nowrap}td.num{text-align:right}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,540px),1fr));gap:1rem}
figure{margin:0;border:1px solid var(--line);border-radius:6px;padding:.5rem;overflow-x:auto}
figcaption{font-weight:600;margin-bottom:.3rem}path.s-faulted{stroke:var(--faulted)}path.s-clean{stroke:var(--clean);
stroke-dasharray:5 3}circle.s-faulted,rect.s-faulted{fill:var(--faulted)}circle.s-clean,rect.s-clean{fill:var(--clean)}
.miss{font-style:italic}details{margin:.4rem 0;border:1px solid var(--line);border-radius:6px;padding:.4rem .7rem}
summary{cursor:pointer}pre{white-space:pre-wrap;word-break:break-word;background:#f7f8fa;padding:.7rem;
border-radius:4px;font-size:.85rem}
@media (max-width:600px){body{font-size:14px}header,main{padding:.6rem}th,td{padding:.3rem}}
""" + CHART_CSS


def render_html(report: dict[str, Any]) -> str:
    """The whole report as one self-contained HTML page (inline CSS and SVG; no URL, no script).

    >>> page = render_html({"title": "<b>t</b>", "faults": [{"name": "<script>alert(1)</script>"}]})
    >>> "<script>alert" in page, "&lt;script&gt;alert(1)&lt;/script&gt;" in page, "http" in page
    (False, True, False)
    """
    title = str(report.get("title") or "YarnIt operate demo")
    days = _num(report.get("days"))
    meta = [("seed", str(report.get("seed", DASH))), ("days", DASH if days is None else f"{days:,.0f}"),
            ("start", fmt_time(report.get("start"))), ("elapsed", fmt_seconds(report.get("elapsed_s"))),
            ("generated", fmt_time(report.get("generated_at")))]
    meta_html = "".join(f"<div><dt>{esc(k)}</dt><dd>{esc(v)}</dd></div>" for k, v in meta)
    figures = "".join(f'<figure><figcaption>{esc(h)}</figcaption>{svg}</figure>' for h, svg in charts(report))
    faults = _table("Injected faults: detection, mitigation and impact (faulted run vs clean run)",
                    TABLE_HEADER, [fault_row(f) for f in _list(report, "faults")], "faults")
    return ("<!DOCTYPE html>\n"
            '<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
            f'<header><h1>{esc(title)}</h1><dl class="meta">{meta_html}</dl></header><main>'
            f'<section aria-labelledby="h-targets"><h2 id="h-targets">Targets</h2>{_targets(report)}</section>'
            f'<section aria-labelledby="h-faults"><h2 id="h-faults">Faults</h2>{faults}</section>'
            f'<section aria-labelledby="h-charts"><h2 id="h-charts">Charts</h2><div class="charts">{figures}</div>'
            f"{_answered_totals(report)}{_ranker(report)}</section>"
            f'<section aria-labelledby="h-events"><h2 id="h-events">Timeline</h2>{_events(report)}</section>'
            f'<section aria-labelledby="h-incidents"><h2 id="h-incidents">Incidents and postmortems</h2>'
            f"{_incidents(report)}</section></main></body></html>\n")


__all__ = ["TABLE_HEADER", "answerer_colours", "answerer_kind", "fault_row", "fault_windows", "fmt_ctr", "fmt_hours",
           "fmt_money", "fmt_pct", "fmt_seconds", "fmt_time", "parse_time", "render_html", "render_table"]
