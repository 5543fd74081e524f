"""The SLO and drift pages: budgets and burn rates over time with their alert thresholds, drift per feature."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from yarnit.charts import Bar, Series, svg_hbar_chart, svg_histograms, svg_line_chart
from yarnit.core.errors import InvalidInput
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


HIST_WINDOWS = {"1h": 3600, "6h": 6 * 3600, "1d": 86400, "7d": 7 * 86400}


def drift_page(ws: Workspace, model: str, days: int = 30, live: bool = False, pick: FeaturePick | None = None) -> str:
    """The last closed day's drift as the monitor recorded it (``live``: the last 24 h, computed from the
    stored hourly summaries now), each important feature's distance day by day, and one chosen feature
    (``pick``: feature, window, end, reference) drawn as reference and current histograms with its distance
    over every recorded day."""
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
    body.append(_one_feature(ws, model, current, columns, top, points, pick or FeaturePick(), live))
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


@dataclass(frozen=True)
class FeaturePick:
    """What the drift page's feature picker asks for (the query string; empty: the page's defaults)."""

    feature: str = ""
    window: str = "1d"
    end: str = ""
    reference: str = "training"


def _one_feature(ws: Workspace, model: str, current: dict[str, Any], columns: list[dict[str, Any]],
                 top: list[dict[str, Any]], points: list[dict[str, Any]], pick: FeaturePick, live: bool) -> str:
    names = [str(c.get("column")) for c in columns] + ["prediction"]
    feature = pick.feature or (str(top[0].get("column")) if top else names[0])
    if feature not in names:
        raise InvalidInput(f"{model} has no feature {feature!r} in its drift report; its features: "
                           f"{', '.join(names)}.")
    shown_end = parse((current.get("window") or {}).get("end")) or ws.clock.now()
    end = parse(pick.end) if pick.end else shown_end
    if end is None or end.tzinfo is None:
        raise InvalidInput(f"end must be an ISO time with its zone (such as 2026-01-30T00:00:00+00:00), got "
                           f"{pick.end!r}.")
    report = readers.feature_histograms(ws, model, feature, HIST_WINDOWS[pick.window], end, pick.reference)
    recorded = [parse(p.get("end")) for p in reversed(points)]
    hour = ws.clock.now().replace(minute=0, second=0, microsecond=0)  # the newest whole hour, then each day
    ends = list(dict.fromkeys([hour.isoformat(), *(e.isoformat() for e in recorded if e is not None),
                               shown_end.isoformat()]))
    if end.isoformat() not in ends:
        ends.insert(0, end.isoformat())

    def options(values: list[tuple[str, str]], chosen: str) -> str:
        return "".join(f'<option value="{esc(v)}"{" selected" if v == chosen else ""}>{esc(text)}</option>'
                       for v, text in values)
    end_choices = [(e, (parse(e) or shown_end).strftime("%Y-%m-%d %H:%M")) for e in ends]
    form = (f'<form class="picker" method="get" action="/ui/drift/{esc(model)}" aria-label="Feature, window and '
            f'reference">' + ('<input type="hidden" name="live" value="true">' if live else "")
            + f'<label>feature <select name="feature">{options([(n, n) for n in names], feature)}</select></label> '
            f'<label>window <select name="window">{options([(w, f"{w} ending at") for w in HIST_WINDOWS], pick.window)}'
            f'</select></label> <label>end <select name="end">{options(end_choices, end.isoformat())}</select>'
            f'</label> <label>reference <select name="reference">'
            f'{options([("training", "training data"), ("previous", "the window before")], pick.reference)}'
            '</select></label> <button type="submit">Show</button></form>')
    window = (report or {}).get("window") or {}
    ref = (report or {}).get("reference") or {}
    ref_text = (f"the window before ({fmt_time(ref.get('start'))} to {fmt_time(ref.get('end'))})"
                if ref.get("kind") == "window" else f"training data {esc(ref.get('dataset') or DASH)}")
    parts = [f'<section aria-labelledby="one-feature"><h2 id="one-feature">One feature: {esc(feature)}</h2>', form,
             (f'<p>Current: {fmt_time(window.get("start"))} to {fmt_time(window.get("end"))}, '
              f'{fmt(window.get("requests"), ",.0f")} requests; reference: {ref_text}.</p>')]
    hist = (report or {}).get("histogram")
    if report is None or hist is None:
        why = (report or {}).get("reason") or (report or {}).get("reference", {}).get("reason") or "no data"
        parts.append(f'<p class="muted">No histograms for {esc(feature)} in this window: {esc(why)}.</p>')
    else:
        d = report.get("drift") or {}
        parts.append(f'<p>Distance {fmt(d.get("value"), ".3g")} ({esc(d.get("method"))}) against threshold '
                     f'{fmt(d.get("threshold"), ".3g")}: {state(d.get("state"))}; {fmt(hist.get("reference_n"), ",.0f")} '
                     f'reference and {fmt(hist.get("current_n"), ",.0f")} current values.</p>')
        what = "bins of equal width (the left edge shown)" if hist.get("kind") == "numeric" else "categories"
        parts.append('<figure><figcaption>Reference against current: share of values per '
                     f'{"bin" if hist.get("kind") == "numeric" else "category"}</figcaption>'
                     + svg_histograms(hist["labels"], [Series("reference", "s-p4", hist["reference"]),
                                                       Series("current", "s-p0", hist["current"])],
                                      chart_id="drift-hist", title=f"{model}: {feature}, reference and current",
                                      desc=f"Share of {feature}'s values in each of the {len(hist['labels'])} "
                                           f"{what}, reference beside current, read from the stored sketches.")
                     + "</figure>")
    series = [_distance(p, feature) for p in points]
    if any(v is not None for v in series):
        threshold = num(next((c.get("threshold") for c in columns if c.get("column") == feature), None))
        labels = [(parse(p.get("end")) or ws.clock.now()).strftime("%m-%d") for p in points]
        parts.append(f'<figure><figcaption>{esc(feature)}: distance per day, as the monitor recorded it'
                     '</figcaption>' + svg_line_chart([Series(feature, "s-p0", series)], [], chart_id="drift-one",
                                                     title=f"{model}: {feature} drift over time",
                                                     desc="The feature's distance in each closed day; the dashed "
                                                          "line is its threshold.", x_labels=labels,
                                                     y_format=lambda v: f"{v:.2g}",
                                                     hlines=[("threshold", threshold)] if threshold is not None
                                                     else ()) + "</figure>")
    parts.append("</section>")
    return "".join(parts)


def _distance(point: dict[str, Any], column: object) -> float | None:
    found = next((c for c in point.get("columns") or [] if isinstance(c, dict) and c.get("column") == column), None)
    return num((found or {}).get("value"))


__all__ = ["HIST_WINDOWS", "FeaturePick", "drift_page", "slos_page"]
