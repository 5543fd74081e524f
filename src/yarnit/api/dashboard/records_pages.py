"""The data, incidents and runs pages: dataset versions and their checks, incident timelines, pipeline steps."""

from __future__ import annotations

from typing import Any

from yarnit.charts import Bar, DagNode, svg_dag, svg_hbar_chart
from yarnit.incidents import render_postmortem
from yarnit.storage import Workspace

from . import readers
from .layout import DASH, action_form, esc, fmt, fmt_time, link, page, state, table


def data_page(ws: Workspace) -> str:
    versions = readers.datasets(ws, limit=200)
    body = ["<h2>Dataset versions (newest 200)</h2>" + table(
        ["dataset", "rows", "created", "source", "status", "retention", "subjects"],
        [[esc(v["ref"]), fmt(v["row_count"], ",.0f"), fmt_time(v["created_at"]), esc(str(v["source"] or "")[:80]),
          state(v["status"]), esc(v["retention_class"] or DASH), fmt(v["subject_count"], ",.0f")]
         for v in versions], numeric=(1, 6), empty="No dataset yet.")]
    rows = []
    for model in readers.loop_models(ws):
        for day in reversed((readers.loop(ws, model) or {}).get("days", [])):
            checks = ((day.get("checks") or {}).get("checks") or {})
            failed = [c for c in checks.values() if isinstance(c, dict) and c.get("status") == "fail"]
            quarantine = day.get("quarantine") or {}
            reasons = ", ".join(f"{k}: {v}" for k, v in (quarantine.get("reasons") or {}).items())
            verdict = "fail" if failed else "pass" if checks and all(
                c.get("status") == "pass" for c in checks.values() if isinstance(c, dict)) else "no_verdict"
            rows.append([esc(model), esc(day.get("day")), state(day.get("phase")), state(verdict),
                         esc("; ".join(f"{c.get('check')}: {c.get('why') or ''}" for c in failed) or DASH),
                         fmt(quarantine.get("rows"), ",.0f") + (f" ({esc(reasons)})" if reasons else ""),
                         esc((day.get("label") or {}).get("note") or DASH)])
    body.append("<h2>Anomalies: the continuous loop's daily data checks and quarantine</h2>" + table(
        ["model", "day", "phase", "checks", "failed checks", "rows quarantined", "labels"], rows,
        empty="No continuous loop has checked a day yet."))
    body.append("<h2>Deletion receipts</h2>" + table(
        ["receipt", "subject (hash)", "requested", "due by", "completed", "status", "datasets to retrain"],
        [[esc(r.id), esc(r.subject_hash[:12] + "…"), fmt_time(r.requested_at.isoformat()),
          fmt_time(r.due_by.isoformat()), fmt_time(r.completed_at.isoformat() if r.completed_at else None),
          state(r.status), esc(", ".join(r.to_retrain) or DASH)] for r in readers.receipts(ws)],
        empty="No deletion request yet."))
    return page("Data", "".join(body), current="/ui/data")


def incidents_page(ws: Workspace) -> str:
    chosen = readers.incidents(ws, "all")
    rows = [[link(f"/ui/incidents/{i.id}", i.title), esc(i.severity), state(i.state), esc(", ".join(i.models)),
             fmt_time(i.opened_at), fmt_time(i.phases.get("resolution")), esc(i.acked_by or DASH),
             esc(len(i.alerts))] for i in chosen]
    return page("Incidents", table(["incident", "severity", "state", "models", "opened", "resolved", "acknowledged by",
                                    "alerts"], rows, empty="No incident yet.", numeric=(7,)), current="/ui/incidents")


def incident_page(ws: Workspace, incident_id: str) -> str:
    i = readers.incident(ws, incident_id)  # IncidentNotFound: 404 naming the way to list them
    phases = "".join(f"<dt>{esc(k.replace('_', ' '))}</dt><dd>{fmt_time(v)}</dd>" for k, v in i.phases.items())
    roles = ", ".join(f"{k}: {v}" for k, v in i.roles.items()) or DASH
    body = [(f'<dl class="kv"><dt>severity</dt><dd>{esc(i.severity)}</dd><dt>state</dt><dd>{state(i.state)}</dd>'
            f"<dt>models</dt><dd>{esc(', '.join(i.models) or DASH)}</dd><dt>acknowledged</dt>"
            f"<dd>{esc(i.acked_by or 'no')} {fmt_time(i.acked_at) if i.acked_at else ''}</dd><dt>roles</dt>"
            f"<dd>{esc(roles)}</dd>{phases}</dl>")]
    if i.state != "resolved":
        base = f"/api/incidents/{i.id}"
        forms = [] if i.acked_by else [action_form(base + "/ack", "Acknowledge", f"Acknowledge incident "
                                                   f"{i.title}? You will be recorded as having it.", reason=False)]
        forms.append(action_form(base + "/resolve", "Resolve", f"Resolve incident {i.title}?"))
        body.append('<h2>Actions</h2><div class="actions">' + "".join(forms) + "</div>")
    body.append("<h2>Alerts</h2>" + table(
        ["alert", "SLO", "kind", "state", "started", "ended"],
        [[esc(a.get("alert_name") or aid), esc(a.get("slo")), state(a.get("alert")), state(a.get("state")),
          fmt_time(a.get("started_at")), fmt_time(a.get("ended_at"))] for aid, a in i.alerts.items()]))
    body.append("<h2>Triage: changes before the outage, most likely first</h2>" + table(
        ["rank", "when", "change", "relation", "who"],
        [[esc(t.get("rank")), fmt_time(t.get("at")), esc(t.get("summary")), esc(t.get("relation")),
          esc(t.get("actor") or DASH)] for t in i.triage], empty="Triage listed no change."))
    body.append("<h2>Mitigations</h2>" + table(
        ["policy", "attempts", "last result"],
        [[esc(name), esc(m.get("attempts", DASH)), esc(str(m.get("last") or m.get("result") or DASH)[:200])]
         for name, m in i.mitigations.items()], empty="No automatic mitigation ran."))
    body.append("<h2>Timeline</h2>" + table(
        ["#", "when", "what", "who", "summary"],
        [[esc(e.seq), fmt_time(e.at), esc(e.kind), esc(e.actor), esc(e.summary)] for e in i.events], numeric=(0,)))
    body.append(f"<h2>Postmortem draft</h2><details><summary>Show the postmortem (Markdown; also at "
                f"<code>/api/incidents/{esc(i.id)}?format=markdown</code>)</summary><pre>"
                f"{esc(render_postmortem(i))}</pre></details>")
    return page(f"Incident: {i.title}", "".join(body), actions=True)


def runs_page(ws: Workspace) -> str:
    rows = [[link(f"/ui/runs/{r.id}", r.id), esc(r.pipeline), state(r.state), fmt_time(r.started_at.isoformat()),
             fmt(_duration(r), ".1f"), esc(r.source or DASH), esc((r.error or "")[:120])] for r in readers.runs(ws)]
    return page("Pipeline runs", table(["run", "pipeline", "state", "started", "seconds (workspace clock)", "source",
                                        "error"], rows, numeric=(4,), empty="No pipeline run yet."),
                current="/ui/runs")


def _duration(r: Any) -> float | None:
    if r.ended_at is None:
        return None
    return (r.ended_at - r.started_at).total_seconds()


DAG_CSS = {"succeeded": "dag-ok", "cached": "dag-cached", "failed": "dag-bad", "interrupted": "dag-bad",
           "running": "dag-running"}


def step_graph(pipeline: str, steps: list[Any], *, finished: bool = False) -> tuple[list[DagNode],
                                                                                   list[tuple[str, str, str]]]:
    """The run's steps as graph nodes, and an edge for each input.

    A ``finished`` run (every step recorded) is drawn from what it recorded: an input with the same sha256 as
    another step's output came from that step. Otherwise the steps and edges are the pipeline's declared
    inputs (a built-in pipeline, :func:`readers.pipeline_inputs`), so the steps the run never started show
    as not run; the definitions are imported only then (importing the recipes costs about a second).
    """
    declared = None if finished else readers.pipeline_inputs(pipeline)
    recorded = {s.step: s for s in steps}
    if declared is not None and not set(recorded) <= set(declared):
        declared = None  # the definition changed since this run: trust what the run recorded
    names = list(declared) if declared is not None else [s.step for s in steps]
    edges: list[tuple[str, str, str]] = []
    if declared is not None:
        for name, inputs in declared.items():
            edges += [(src.split(".", 1)[0], name, f"{src} → {name}.{param}") for param, src in inputs.items()]
    else:
        made = {str((entry or {}).get("sha256")): (s.step, output) for s in steps
                for output, entry in (s.outputs or {}).items()}
        for s in steps:
            for param, entry in (s.inputs or {}).items():
                source = made.get(str((entry or {}).get("sha256")))
                if source is not None and source[0] != s.step:
                    edges.append((source[0], s.step, f"{source[0]}.{source[1]} → {s.step}.{param}"))
    nodes = []
    for name in names:
        s = recorded.get(name)
        if s is None:
            nodes.append(DagNode(name, name, "not run", "dag-pending", f"{name}: not run"))
            continue
        seconds = "cache hit" if s.state == "cached" else (f"{s.wall_s:.2f} s" if s.wall_s is not None else "")
        detail = f"{s.state} · {seconds}" if seconds else s.state
        rate = f", {s.rows_per_s:,.0f} rows/s" if s.rows_per_s else ""
        nodes.append(DagNode(name, name, detail, DAG_CSS.get(s.state, "dag-pending"),
                             f"{name}: {s.state}, {s.attempts} attempt(s){rate}" + (f"; {s.error[:200]}" if s.error
                                                                                     else "")))
    return nodes, edges


def run_page(ws: Workspace, run_id: str) -> str:
    r, steps = readers.run(ws, run_id)  # RunNotFound: 404
    body = [f'<dl class="kv"><dt>pipeline</dt><dd>{esc(r.pipeline)}</dd><dt>state</dt><dd>{state(r.state)}</dd>'
            f"<dt>started</dt><dd>{fmt_time(r.started_at.isoformat())}</dd><dt>source</dt><dd>{esc(r.source or DASH)}"
            f"</dd><dt>seed</dt><dd>{esc(r.seed)}</dd><dt>code</dt><dd>{esc((r.code_version or DASH)[:12])}</dd>"
            + (f"<dt>error</dt><dd>{esc(r.error)}</dd>" if r.error else "")
            + (f"<dt>resume with</dt><dd><code>{esc(r.resume_command)}</code></dd>" if r.resume_command else "")
            + "</dl>"]
    flow = " → ".join(f"{esc(s.step)} {state(s.state)}" for s in steps)
    body.append(f"<h2>Steps</h2><p aria-label=\"step order\">{flow or DASH}</p>")
    nodes, edges = step_graph(r.pipeline, steps, finished=r.state == "succeeded")
    if nodes:
        body.append('<figure><figcaption>Pipeline graph: each step with its state and wall time; an arrow is an '
                    'input (green: succeeded, blue dashed: answered from the step cache, red: failed, grey: not '
                    'run)</figcaption>' + svg_dag(nodes, edges, chart_id="dag", title=f"{r.pipeline}: step graph",
                                                  desc=f"{len(nodes)} steps and {len(edges)} inputs passed between "
                                                       "them, top to bottom in the order they can run.")
                    + "</figure>")
    if steps:
        bars = [Bar(s.step, s.wall_s, None, s.state in ("succeeded", "cached")) for s in steps]
        body.append('<figure><figcaption>Wall time per step (seconds; red: not succeeded)</figcaption>'
                    + svg_hbar_chart(bars, chart_id="steps", title="Step durations", desc="Wall seconds per step; "
                                     "a step answered from the cache took none.", value_format=lambda v: f"{v:.2g}",
                                     missing_text="not run") + "</figure>")
    body.append(table(
        ["step", "state", "attempts", "seconds", "CPU s", "peak MB", "rows", "rows/s", "cache", "error"],
        [[esc(s.step), state(s.state), esc(s.attempts), fmt(s.wall_s, ".2f"), fmt(s.cpu_s, ".2f"),
          fmt(s.peak_rss_mb, ",.0f"), fmt(s.rows, ",.0f"), fmt(s.rows_per_s, ",.0f"),
          "hit" if s.state == "cached" else ("miss" if s.cache_key else DASH), esc((s.error or "")[:160])]
         for s in steps], numeric=(2, 3, 4, 5, 6, 7)))
    metrics = sorted(r.metrics.items())
    body.append("<h2>Metrics</h2>" + table(["metric", "value"], [[esc(k), fmt(v) if isinstance(v, int | float)
                                                                 else esc(str(v)[:120])] for k, v in metrics]))
    return page(f"Run {run_id}", "".join(body))


__all__ = ["DAG_CSS", "data_page", "incident_page", "incidents_page", "run_page", "runs_page", "step_graph"]
