"""The SLO and drift pages: budgets and burn rates over time with their alert thresholds, drift per feature."""

from __future__ import annotations

from typing import Any

from yarnit.charts import Bar, Series, svg_hbar_chart, svg_line_chart
from yarnit.storage import Workspace

from . import readers
from .layout import DASH, esc, fmt, fmt_pct, fmt_time, num, page, parse, state, table
from .models_pages import alerts_table, budget_meter


def _hour_labels(points: list[dict[str, Any]]) -> list[str]:
    out = []
    for p in points:
        at = parse(p.get("at"))
        out.append(at.strftime("%m-%d %Hh") if at else "?")
    return out


def slos_page(ws: Workspace) -> str:
    state_file = readers.slo_state(ws)
    points = readers.slo_history(ws)
    labels = _hour_labels(points)
    body = [(f'<p class="muted">Evaluated by the monitor at {fmt_time(state_file.get("at"))}; '
             f"{len(points)} hourly points of history.</p>")]
    slos = readers.slos_of(ws)
    if not slos:
        body.append("<p>The monitor has not run yet: apply an SLO file (yarnit slo apply FILE) and run: "
                    "yarnit monitor run</p>")
    body.append("<h2>Summary</h2>" + table(
        ["SLO", "model", "SLI", "objective", "window", "state", "error budget left"],
        [[f'<a href="#{esc(s.get("id"))}">{esc(s.get("slo"))}</a>', esc(s.get("model") or DASH), esc(s.get("sli")),
          fmt_pct(s.get("objective"), 2), esc(s.get("window")), state(s.get("state")), budget_meter(s)]
         for s in slos]))
    for i, s in enumerate(slos):
        body.append(_one_slo(i, s, points, labels))
    body.append("<h2>Alerts of the last day</h2>" + alerts_table(readers.alerts_since(ws, 24)))
    return page("SLOs", "".join(body), current="/ui/slos", actions=True)


def _one_slo(i: int, s: dict[str, Any], points: list[dict[str, Any]], labels: list[str]) -> str:
    sid = str(s.get("id"))
    rules = [a for a in s.get("alerts") or [] if isinstance(a, dict)]
    rows = []
    for a in rules:
        long, short = a.get("long") or {}, a.get("short") or {}
        rows.append([state(a.get("severity")), esc(long.get("window")), fmt(long.get("burn_rate"), ".3g"),
                     esc(short.get("window")), fmt(short.get("burn_rate"), ".3g"),
                     fmt(a.get("burn_rate_threshold"), ".3g"), state("firing" if a.get("firing") else "ok")])
    period = s.get("period") or {}
    parts = [(f'<section aria-labelledby="{esc(sid)}-h"><h2 id="{esc(sid)}">'
              f'<span id="{esc(sid)}-h">{esc(s.get("slo"))}</span></h2>'),
             (f'<p>{esc(s.get("sli"))} of {esc(s.get("model") or "the service")}: objective '
             f'{fmt_pct(s.get("objective"), 2)} over {esc(s.get("window"))}; {fmt(period.get("good"), ",.0f")} good of '
             f'{fmt(period.get("total"), ",.0f")} ({fmt(period.get("burn_rate"), ".3g")}× the budget rate). '
             f'Budget left: {budget_meter(s)} {state(s.get("state"))}</p>'),
             table(["alert", "long window", "burn rate", "short window", "burn rate", "threshold", "now"], rows,
                   caption="Burn rate per window (an alert fires when both windows exceed its threshold)",
                   numeric=(2, 4, 5), empty="No burn-rate alert declared.")]
    series_points = [(p.get("slos") or {}).get(sid) or {} for p in points]
    if points:
        budget = Series("budget left", "s-p0", [num(p.get("budget")) for p in series_points])
        parts.append('<div class="charts"><figure><figcaption>Error budget left over time</figcaption>'
                     + svg_line_chart([budget], [], chart_id=f"budget-{i}", title=f"{s.get('slo')}: budget left",
                                      desc="Share of the error budget left at each hourly evaluation; below the "
                                           "dashed line the budget is spent.", x_labels=labels,
                                      y_format=lambda v: f"{v * 100:.0f}%", hlines=[("budget spent", 0.0)])
                     + "</figure>")
        windows = [(a.get("long") or {}).get("window") for a in rules]
        windows = [w for w in dict.fromkeys(windows) if w]
        series = [Series(f"{w} burn rate", f"s-p{(k + 1) % 8}", [num((p.get("burn") or {}).get(w))
                                                                for p in series_points])
                  for k, w in enumerate(windows)]
        thresholds = [(f"{a.get('severity')} ≥ {num(a.get('burn_rate_threshold')) or 0:g}× ({(a.get('long') or {}).get('window')})",
                       float(a["burn_rate_threshold"])) for a in rules if num(a.get("burn_rate_threshold")) is not None]
        if series:
            parts.append('<figure><figcaption>Burn rate per window, with the alert thresholds</figcaption>'
                         + svg_line_chart(series, [], chart_id=f"burn-{i}", title=f"{s.get('slo')}: burn rates",
                                          desc="Burn rate of each alert's long window at each hourly evaluation; "
                                               "dashed lines are the thresholds that fire the alerts.",
                                          x_labels=labels, y_format=lambda v: f"{v:g}", hlines=thresholds)
                         + "</figure>")
        parts.append("</div>")
    parts.append("</section>")
    return "".join(parts)


TOP_FEATURES = 6


def drift_page(ws: Workspace, model: str, days: int = 30, live: bool = False) -> str:
    """The last closed day's drift as the monitor recorded it (``live``: the last 24 h, computed from the
    stored hourly summaries now), and each important feature's distance day by day."""
    points = readers.drift_history(ws, model)[-days:]
    while points and points[0].get("state") == "no_data":  # days before the model served anything
        points = points[1:]
    served = [p for p in points if p.get("state") not in ("no_data", "error")]
    current = readers.drift(ws, model) if live or not served else served[-1]
    if current is None or (current.get("state") in (None, "no_data") and not current.get("columns")):
        reason = (current or {}).get("reason") or "no stored traffic summaries for this model yet (yarnit monitor run)"
        return page(f"Drift of {model}", f"<p>No drift to show: {esc(reason)}.</p>")
    columns = [c for c in current.get("columns") or [] if isinstance(c, dict)]
    window = current.get("window") or {}
    ref = current.get("reference") or {}
    dataset = current.get("dataset") or {}
    switch = (f'<a href="/ui/drift/{esc(model)}">the last closed day with traffic</a>' if live else
              f'<a href="/ui/drift/{esc(model)}?live=true">the last 24 hours, computed now</a>')
    body = [(f'<p>{"Last 24 hours" if live else "Last closed day with traffic"}: {fmt_time(window.get("start"))} to '
             f'{fmt_time(window.get("end"))}, {fmt(window.get("requests"), ",.0f")} requests, '
             f'{fmt(window.get("rows"), ",.0f")} rows; reference: {esc(ref.get("kind"))} '
             f'{esc(ref.get("dataset") or "")}. Dataset drift: {state(dataset.get("state"))} '
             f'({fmt_pct(dataset.get("share"), 0)} of the importance-weighted inputs drifted; alarm at '
             f'{fmt_pct(dataset.get("drift_share"), 0)}). Show {switch}.</p>')]
    bars = [Bar(str(c.get("column")), num(c.get("value")), num(c.get("threshold")), c.get("state") != "drift")
            for c in columns]
    body.append('<figure><figcaption>Distance per feature, against its threshold</figcaption>'
                + svg_hbar_chart(bars, chart_id="drift-now", title=f"{model}: drift per feature",
                                 desc="Each feature's distance between reference and current traffic; the mark is "
                                      "its drift threshold.", value_format=lambda v: f"{v:.3g}",
                                 missing_text="no data") + "</figure>")
    importance = ref.get("importance") or {}
    top = sorted((c for c in columns if num(c.get("value")) is not None),
                 key=lambda c: (-(num(importance.get(c.get("column"))) or 0.0), str(c.get("column"))))[:TOP_FEATURES]
    series = [Series(str(c.get("column")), f"s-p{k % 8}", [_distance(p, c.get("column")) for p in points])
              for k, c in enumerate(top)]
    if points and series:
        threshold = num(top[0].get("threshold"))
        labels = [(parse(p.get("end")) or ws.clock.now()).strftime("%m-%d") for p in points]
        body.append(f'<figure><figcaption>Distance per day over the last {len(points)} closed days (the '
                    f'{len(top)} most important features; kept by the monitor)</figcaption>'
                    + svg_line_chart(series, [], chart_id="drift-time", title=f"{model}: drift over time",
                                     desc="Each line is one feature's distance in the day ending at the label.",
                                     x_labels=labels, y_format=lambda v: f"{v:.2g}",
                                     hlines=[("threshold", threshold)] if threshold is not None else ())
                    + "</figure>")
    else:
        body.append('<p class="muted">No closed day of drift recorded yet: the monitor keeps one per day.</p>')
    failed = [p for p in points if p.get("state") == "error"]
    if failed:
        body.append("<p>Days without a drift figure: " + "; ".join(
            f"{fmt_time(p.get('end'))}: {esc(p.get('reason') or 'error')}" for p in failed) + "</p>")
    body.append("<h2>Per feature</h2>" + table(
        ["feature", "kind", "method", "distance", "threshold", "p", "reference n", "current n", "state"],
        [[esc(c.get("column")), esc(c.get("kind")), esc(c.get("method")), fmt(c.get("value"), ".3g"),
          fmt(c.get("threshold"), ".3g"), fmt(c.get("p_value"), ".2g"), fmt(c.get("reference_size"), ",.0f"),
          fmt(c.get("current_size"), ",.0f"), state(c.get("state"))] for c in columns], numeric=(3, 4, 5, 6, 7)))
    return page(f"Drift of {model}", "".join(body))


def _distance(point: dict[str, Any], column: object) -> float | None:
    found = next((c for c in point.get("columns") or [] if isinstance(c, dict) and c.get("column") == column), None)
    return num((found or {}).get("value"))


__all__ = ["drift_page", "slos_page"]
