"""The overview, model and rollout pages: what serves, how healthy it is, what changed and why."""

from __future__ import annotations

from typing import Any

from markdown_it import MarkdownIt

from yarnit.charts import Bar, svg_hbar_chart
from yarnit.evaluation import card_for
from yarnit.monitoring.quality_store import SLICE_FIELDS
from yarnit.registry import ModelRegistry
from yarnit.storage import Workspace

from . import readers
from .layout import (
    DASH,
    action_form,
    esc,
    fmt,
    fmt_age,
    fmt_pct,
    fmt_time,
    link,
    num,
    page,
    parse,
    state,
    table,
)

HEADLINE_METRICS = ("auc_holdout", "auc", "log_loss", "brier", "ctr", "bias")


def budget_meter(slo: dict[str, Any], sep: str = " ") -> str:
    """An SLO's remaining error budget as a ``<meter>`` (0 to 100 %) with the figure beside it."""
    left = num(slo.get("budget_remaining"))
    if left is None:
        return f"<span></span>{sep}{DASH}"
    shown = max(0.0, min(1.0, left))
    return (f'<meter min="0" max="1" low="0.25" high="0.5" optimum="1" value="{shown:.3f}" '
            f'aria-label="{esc(slo.get("slo"))} error budget left">{fmt_pct(left, 0)}</meter>{sep}'
            f"{fmt_pct(left, 0)}")


def _age_s(ws: Workspace, value: object) -> float | None:
    at = parse(value)
    return None if at is None else (ws.clock.now() - at).total_seconds()


def overview(ws: Workspace) -> str:
    registry = ModelRegistry(ws)
    active = readers.incidents(ws, "active")
    state_file = readers.slo_state(ws)
    cards = []
    for m in readers.models(ws):
        name = m["name"]
        aliases = m["aliases"]
        prod = aliases.get("production")
        prod_version = registry.get(name, prod) if prod else None
        loop = readers.loop(ws, name)
        newest_day = max((d["day"] for d in (loop or {}).get("days", []) if d.get("checked_at")), default=None)
        slos = readers.slos_of(ws, name)
        budget = "".join(f'<li><a href="/ui/slos#{esc(s.get("id"))}">{esc(s.get("slo"))}</a>'
                         f'{budget_meter(s, "<span>")}</span>{state(s.get("state"))}</li>' for s in slos)
        open_here = [i for i in active if name in i.models]
        rows = [("production", f"v{prod}" if prod else DASH), ("canary", f"v{aliases['canary']}"
                                                              if "canary" in aliases else DASH),
                ("versions", str(m["n_versions"])),
                ("model freshness", fmt_age(_age_s(ws, prod_version.created_at)) if prod_version else DASH),
                ("data freshness", f"newest day checked: {esc(newest_day)}" if newest_day else DASH),
                ("open incidents", str(len(open_here)))]
        kv = "".join(f"<dt>{esc(k)}</dt><dd>{v if k in ('model freshness', 'data freshness') else esc(v)}</dd>"
                     for k, v in rows)
        extra = [link(f"/ui/models/{name}", "versions and history"), link(f"/ui/drift/{name}", "drift")]
        if readers.has_rollout(ws, name):
            extra.append(link(f"/ui/rollouts/{name}", "rollout"))
        cards.append(f'<section class="card" aria-labelledby="m-{esc(name)}"><h2 id="m-{esc(name)}">'
                     f'{link(f"/ui/models/{name}", name)}</h2><dl class="kv">{kv}</dl>'
                     f'<h3>Error budgets left</h3><ul class="budgets">{budget or "<li class=muted>No SLO names this model.</li>"}'
                     "</ul>"
                     f"<p>{' · '.join(extra)}</p></section>")
    body = [(f'<p class="muted">Monitor last ran {fmt_time(state_file.get("at"))}; workspace clock '
             f'{fmt_time(ws.clock.now().isoformat())}.</p>'),
            '<div class="cards">' + ("".join(cards) or '<p>No models yet: run <code>yarnit demo</code>.</p>')
            + "</div>"]
    body.append("<h2>Open incidents</h2>" + table(
        ["incident", "severity", "state", "models", "opened", "acknowledged"],
        [[link(f"/ui/incidents/{i.id}", i.title), esc(i.severity), state(i.state), esc(", ".join(i.models)),
          fmt_time(i.opened_at), esc(i.acked_by or "no")] for i in active], empty="No open incident."))
    body.append("<h2>Alerts of the last day</h2>" + alerts_table(readers.alerts_since(ws, 24)))
    return page("Overview", "".join(body), current="/", actions=True)


def alerts_table(alerts: list[dict[str, Any]], *, ack: bool = True) -> str:
    rows = []
    for a in alerts:
        acked = f"by {esc(a.get('acked_by'))}" if a.get("acked_by") else ""
        form = "" if not ack or a.get("state") != "firing" or a.get("acked_by") else action_form(
            "/api/alerts/actions/roll-through", "Acknowledge", f"Acknowledge alert {a.get('id')} "
            f"({a.get('slo')} {a.get('alert')})? It keeps firing until its SLO recovers.",
            payload=_json({"alert_ids": [str(a.get("id"))]}))
        rows.append([esc(a.get("slo")), state(a.get("alert")), state(a.get("state")), fmt_time(a.get("started_at")),
                     fmt_time(a.get("ended_at")), esc(a.get("summary") or ""), acked + form])
    return table(["SLO", "alert", "state", "started", "ended", "summary", "acknowledged"], rows,
                 empty="No alert in the last day.")


def _json(value: Any) -> str:
    import json

    return json.dumps(value, separators=(",", ":"))


QUALITY_WINDOWS = {"1d": 86400, "7d": 7 * 86400}


READINESS_SLOT = "<!-- yarnit:readiness -->"


def model_page(ws: Workspace, name: str, window: str = "1d", by: str | None = None) -> str:
    registry = ModelRegistry(ws)
    versions = registry.versions(name)  # ModelNotFound (404) for an unknown model
    aliases = registry.aliases(name)
    by_version: dict[int, list[str]] = {}
    for alias, v in aliases.items():
        by_version.setdefault(v, []).append(alias)
    rows = []
    for v in reversed(versions):
        m = v.metrics
        rows.append([f"v{v.version}", esc(", ".join(sorted(by_version.get(v.version, []))) or ""),
                     fmt_time(v.created_at.isoformat()),
                     *[fmt(m.get(k)) for k in HEADLINE_METRICS],
                     state("blessed" if m.get("blessed") else "not blessed") + (" " + state("tainted")
                                                                                 if v.tainted else ""),
                     link(f"/ui/runs/{v.run_id}", "run") if v.run_id else DASH])
    body = [f'<p>Aliases: {esc(", ".join(f"{a} → v{n}" for a, n in sorted(aliases.items())) or "none")}. '
            f'{link(f"/ui/drift/{name}", "Drift")} · {link("/ui/slos", "SLOs")}'
            + (f' · {link(f"/ui/rollouts/{name}", "Rollout")}' if readers.has_rollout(ws, name) else "") + "</p>"]
    body.append("<h2>Versions</h2>" + table(["version", "aliases", "created", *HEADLINE_METRICS, "gate", "made by"],
                                            rows, numeric=range(3, 3 + len(HEADLINE_METRICS))))
    body.append('<h2>Actions</h2><div class="actions">' + _actions(name, aliases, versions) + "</div>")
    body.append(READINESS_SLOT)  # the route puts the kept ML Test Score here (readiness_pages.ReadinessCache)
    body.append(f"<h2>Quality of the last {'day' if window == '1d' else '7 days'} (realized, with 95 % intervals)"
                f"{f', by {esc(by)}' if by else ''}</h2>" + _quality_picker(name, window, by)
                + _quality(ws, name, QUALITY_WINDOWS[window], window, by))
    history = registry.history(name)
    body.append("<h2>Alias history</h2>" + table(
        ["when", "alias", "from", "to", "action", "who", "why"],
        [[fmt_time(e.at.isoformat()), esc(e.alias), esc(f"v{e.from_version}" if e.from_version else DASH),
          esc(f"v{e.to_version}" if e.to_version else DASH), esc(e.action), esc(e.actor), esc(e.reason)]
         for e in reversed(history)]))
    sw = readers.switches(ws, name)
    body.append("<h2>Emergency switches and actions</h2>" + f"<p>Set: {esc(_switch_text(sw))}</p>" + table(
        ["when", "action", "who", "why"],
        [[fmt_time(h["at"]), esc(h["action"]), esc(h["actor"]), esc((h.get("detail") or {}).get("reason", ""))]
         for h in sw["history"]], empty="No emergency action yet."))
    current = registry.get(name, aliases["production"]) if "production" in aliases else versions[-1]
    body.append(f"<h2>Lineage of v{current.version}</h2>" + _lineage(readers.lineage_up(ws, current.id)))
    body.append(f"<h2>Model card of v{current.version}</h2>" + _card(current)
                + f'<p>{link(f"/ui/models/{name}/card?version={current.version}", "The whole model card")}: metrics '
                  "by distribution and slice with intervals, fairness, validity, the gate, the checklist.</p>")
    return page(f"Model {name}", "".join(body), actions=True)


def _switch_text(sw: dict[str, Any]) -> str:
    on = []
    if sw.get("training_frozen"):
        on.append(f"training stopped: {sw['training_frozen']}")
    if sw.get("force_fallback"):
        on.append("answering from the fallback")
    target = sw.get("rollback_target")
    return (", ".join(on) or "none") + f"; a rollback goes to {f'v{target}' if target else 'nothing (no earlier version)'}"


def _actions(name: str, aliases: dict[str, int], versions: list[Any]) -> str:
    base = f"/api/models/{name}/actions/"
    prod = aliases.get("production")
    candidates = [v.version for v in reversed(versions) if v.version != prod and not v.tainted]
    choose = ('<label>version <select name="version">' + "".join(f'<option value="{n}">v{n}</option>'
                                                                  for n in candidates) + "</select></label>")
    forms = [
        action_form(base + "roll-back", "Roll back production", f"Roll back {name}'s production alias from "
                    f"v{prod} to the version before it? Serving switches at once.", danger=True),
        action_form(base + "fall-back", "Fall back", f"Switch {name} to its declared fallback? Every request "
                    "is answered by the fallback until restored.", danger=True),
        action_form(base + "restore", "Restore", f"Restore {name} from its fallback to the routed versions?"),
        action_form(base + "stop-training", "Stop training", f"Stop training {name}? The loop will not train "
                    "or promote it until training is resumed.", danger=True),
        action_form(base + "resume-training", "Resume training", f"Resume training {name}?"),
    ]
    if candidates:
        forms.append(action_form(f"/api/models/{name}/aliases/production", "Promote to production",
                                 f"Move {name}'s production alias to the chosen version? It must be blessed and "
                                 "the error budget must allow it.", fields=choose))
    return "".join(forms)


def _quality_picker(name: str, window: str, by: str | None) -> str:
    """A GET form choosing the window and the slice field (no script: the choice is in the URL)."""
    windows = "".join(f'<option value="{w}"{" selected" if w == window else ""}>last {w}</option>'
                      for w in QUALITY_WINDOWS)
    fields = '<option value="">whole traffic</option>' + "".join(
        f'<option value="{esc(f)}"{" selected" if f == by else ""}>{esc(f)}</option>' for f in SLICE_FIELDS)
    return (f'<form class="picker" method="get" action="/ui/models/{esc(name)}" aria-label="Quality window and '
            f'slice"><label>window <select name="window">{windows}</select></label> <label>slice by <select '
            f'name="by">{fields}</select></label> <button type="submit">Show</button></form>')


def _quality(ws: Workspace, name: str, window_s: int, window: str, by: str | None = None) -> str:
    report = readers.quality(ws, name, window_s, by)
    groups = (report or {}).get("groups") or []

    def ci(values: Any) -> str:
        return DASH if not isinstance(values, list) or len(values) != 2 else f"[{fmt(values[0], '.3f')}, " \
                                                                             f"{fmt(values[1], '.3f')}]"
    rows = [[esc(f"v{g.get('version')}"), esc(g.get("slice") or "all"),
             fmt((g.get("realized") or {}).get("count"), ",.0f"), fmt((g.get("realized") or {}).get("labelled"), ",.0f"), fmt_pct((g.get("realized") or {}).get("ctr"), 2),
             ci((g.get("realized") or {}).get("ctr_ci")), fmt((g.get("realized") or {}).get("auc"), ".3f"),
             ci((g.get("realized") or {}).get("auc_ci")), fmt((g.get("realized") or {}).get("ece"), ".3f"),
             fmt(g.get("pending"), ",.0f")] for g in groups]
    return table(["version", "slice", "served", "labelled", "CTR", "CTR 95 % CI", "AUC", "AUC 95 % CI", "ECE",
                  "awaiting labels"], rows, numeric=(2, 3, 4, 6, 8, 9),
                 empty=f"No labelled predictions in the last {window}" + (f" with a {by} recorded" if by else "")
                 + " (yarnit monitor run joins them).")


def _lineage(graph: dict[str, Any] | None) -> str:
    if not graph or not graph.get("nodes"):
        return '<p class="muted">No lineage recorded.</p>'
    levels: dict[int, list[dict[str, Any]]] = {}
    for node in graph["nodes"]:
        levels.setdefault(int(node.get("depth", 0)), []).append(node)
    items = []
    for depth in sorted(levels):
        names = []
        for n in levels[depth]:
            label = str(n.get("label") or n.get("id"))
            if n.get("kind") == "run":
                names.append(link(f"/ui/runs/{n.get('id')}", label))
            else:
                names.append(esc(label) + (" " + state("tainted") if n.get("tainted") else ""))
        items.append(f"<li><strong>{'deployed model' if depth == 0 else f'{depth} step(s) up'}</strong>: "
                     f"{', '.join(names)}</li>")
    return f'<ol class="lineage">{"".join(items)}</ol>'


def _card(version: Any) -> str:
    m = version.metrics
    rows = [("ref", version.ref), ("created", version.created_at.isoformat()), ("format",
                                                                                 version.artifact_format.value),
            ("artifact sha256", version.artifact_sha256[:16] + "…"), ("code version", version.code_version or DASH),
            ("seed", version.seed if version.seed is not None else DASH),
            ("gate", "; ".join(map(str, m.get("gate_reasons") or [])) or DASH),
            ("inputs", ", ".join(sorted((version.signature or {}).get("inputs", {}) or []))[:400] or DASH)]
    return '<dl class="kv">' + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in rows) + "</dl>"


def card_page(ws: Workspace, name: str, version: int | None = None) -> str:
    """The whole model card of a version (default: production's), as ``GET /api/evaluations/{id}/card`` builds it:
    metrics per distribution and slice with bootstrap intervals, comparisons, calibration, fairness, validity,
    the gate's verdict, the history and the responsible-AI checklist (the Markdown rendered without raw HTML)."""
    card = card_for(ws, name, version=version)  # ModelNotFound / EvaluationNotFound: 404 saying what to run
    text = card.to_markdown().split("\n", 1)[1]  # its "# Model card: …" line is this page's one h1
    html = MarkdownIt("commonmark", {"html": False}).enable("table").render(text)
    html = html.replace("<table>", '<div class="scroll"><table>').replace("</table>", "</table></div>")
    versions = ModelRegistry(ws).versions(name)
    shown = card.version.version if card.version is not None else None
    others = " · ".join(link(f"/ui/models/{name}/card?version={v.version}", f"v{v.version}") if v.version != shown
                        else f"<strong>v{v.version}</strong>" for v in reversed(versions[-12:]))
    body = (f'<p>{link(f"/ui/models/{name}", f"Back to {name}")}. Cards of: {others}. Evaluation '
            f"<code>{esc(card.evaluation_id or DASH)}</code>; also at <code>/api/evaluations/"
            f"{esc(card.evaluation_id or '…')}/card</code>.</p><div class=\"card-md\">{html}</div>")
    return page(f"Model card: {card.title}", body)


def rollout_page(ws: Workspace, model: str) -> str:
    report = readers.rollout(ws, model)
    if report is None:
        return page(f"Rollout of {model}", f"<p>{esc(model)} has had no staged rollout.</p>")
    analysis = report.get("analysis") or {}
    stages = report.get("stages") or []
    kv = [("status", state(report.get("status"))),
          ("canary", esc(f"v{report.get('canary_version')} against baseline v{report.get('baseline_version')}")),
          ("stage", esc("load test: the canary starts after a passing yarnit loadtest of this version"
                        if report.get("awaiting") == "loadtest" else
                        f"{report.get('stage')} of {len(stages)} ({', '.join(f'{s:g}%' for s in stages)})")),
          ("load test", esc((report.get("loadtest") or {}).get("id") or DASH)),
          ("canary share now", esc(f"{num(report.get('canary_percent')) or 0:g}%")),
          ("started", f"{fmt_time(report.get('started_at'))} by {esc(report.get('started_by'))}"),
          ("last analysis", (f"{fmt_time(analysis.get('at'))}: {state(analysis.get('decision'))} "
                             f"score {fmt(analysis.get('score'), '.0f')}: {esc(analysis.get('reason') or '')}"))]
    body = ['<dl class="kv">' + "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in kv) + "</dl>"]
    metrics = analysis.get("metrics") or []
    body.append("<h2>Canary analysis per metric</h2>" + table(
        ["metric", "verdict", "baseline", "canary", "difference", "interval", "allowed", "p", "n (base / canary)",
         "why"],
        [[esc(m.get("name")), state(_verdict(m.get("verdict"))), fmt(m.get("baseline")), fmt(m.get("canary")),
          fmt(m.get("estimate")), esc(_interval(m.get("interval"))), fmt(m.get("allowed")), fmt(m.get("p_value"), ".2g"),
          esc(f"{m.get('baseline_n')} / {m.get('canary_n')}"), esc(m.get("reason") or "")] for m in metrics],
        empty="No analysis yet (the first one runs when the stage has baked)."))
    bars = [Bar(str(m.get("name")), abs(num(m.get("estimate")) or 0.0) if num(m.get("estimate")) is not None
                else None, num(m.get("allowed")), _verdict(m.get("verdict")) == "pass") for m in metrics]
    if bars:
        body.append('<figure><figcaption>Difference canary − baseline (absolute) against what is allowed'
                    "</figcaption>" + svg_hbar_chart(bars, chart_id="canary", title="Canary differences",
                                                     desc="Absolute canary minus baseline per metric; the mark is "
                                                          "the allowed difference.", missing_text="no data",
                                                     value_format=lambda v: f"{v:.3g}") + "</figure>")
    body.append(action_form(f"/api/rollouts/{model}/abort", "Abort rollout", f"Abort {model}'s rollout? The "
                            "canary gets no more traffic.", danger=True) if report.get("status") == "running" else "")
    body.append("<h2>Decisions</h2>" + table(
        ["when", "action", "stage", "verdict", "score", "why"],
        [[fmt_time(d.get("at")), esc(d.get("action")), esc(d.get("stage")), state(d.get("verdict")),
          fmt(d.get("score"), ".0f"), esc(d.get("reason") or "")] for d in reversed(report.get("decisions") or [])]))
    return page(f"Rollout of {model}", "".join(body), actions=True)


def _verdict(value: object) -> str:
    return {"Pass": "pass", "High": "fail", "Low": "fail", "Fail": "fail", "NoData": "no_data"}.get(
        str(value), str(value).lower())


def _interval(value: object) -> str:
    if isinstance(value, list) and len(value) == 2 and all(num(v) is not None for v in value):
        return f"[{value[0]:.3g}, {value[1]:.3g}]"
    return DASH


__all__ = ["alerts_table", "budget_meter", "card_page", "model_page", "overview", "rollout_page"]
