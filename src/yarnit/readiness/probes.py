"""The 28 probes: for each test of the ML Test Score, the record in the workspace that proves it.

A probe returns **automated** (1 point) only when it finds a record that the platform itself wrote while
running the test as part of its normal operation: a pipeline step, an evaluation with its gate verdict and
validity check, an SLO the monitor evaluated, a check of the continuous loop, a staged rollout, an alias
event written by the rollout controller. It returns **manual** (0.5) for a documented manual run: an
attestation (:mod:`.manual`), or a record of a run a person started once (a reproduction, a rollback from
the CLI). Otherwise **none**, with the command that would earn the point. Each probe prints what it read
(run id, evaluation id, SLO id, alert id, file), so a score can be checked by hand.

Probes of the data and model sections also look at the models a version bundles (the ranker's click
model): a ranker's features and its click model's development are that model's.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from .records import Records
from .rubric import AUTOMATED, MANUAL, NONE, Evidence, Finding, Level

Probe = Callable[[Records], Finding]
PROBES: dict[str, Probe] = {}
#: tests whose evidence may come from a bundled part (see the module docstring)
FROM_PARTS = ("data.", "model.")
ONLINE_WINDOW_S = 30 * 86400  # the label join's window read for online quality per version
OWN_ONLY = ("model.2",)  # online impact is the bundle's own: its part's canary says nothing about it


def probe(test_id: str) -> Callable[[Probe], Probe]:
    def register(fn: Probe) -> Probe:
        PROBES[test_id] = fn
        return fn
    return register


def found(test_id: str, level: Level, evidence: list[Evidence], note: str = "", to_earn: str | None = None
          ) -> Finding:
    return Finding(test_id, level, tuple(evidence), note, None if level == AUTOMATED else to_earn)


def _pipeline(rec: Records) -> str:
    return rec.pipelines[0] if rec.pipelines else ("yarnit-ctr" if rec.model == "ctr" else rec.model)


def _run_cmd(rec: Records) -> str:
    return f"yarnit pipeline run {_pipeline(rec)}"


def _validity(rec: Records) -> tuple[Any, dict[str, dict[str, Any]]] | None:
    """The newest evaluation's validity checks by name (the serving-runtime check of a candidate)."""
    for stored in rec.evaluations:
        section = rec.report(stored.id).sections.get("validity")
        if isinstance(section, dict) and section.get("checks"):
            return stored, {c["name"]: c for c in section["checks"] if isinstance(c, dict) and "name" in c}
    return None


def _validity_probe(test_id: str, rec: Records, names: tuple[str, ...], what: str) -> Finding:
    got = _validity(rec)
    if got is None:
        return found(test_id, NONE, [], f"no evaluation of {rec.model} carries a validity check ({what})",
                     _run_cmd(rec))
    stored, checks = got
    passed = [n for n in names if (checks.get(n) or {}).get("passed") is True]
    evidence = []
    for n in names:
        check = checks.get(n) or {}
        verdict = "passed" if check.get("passed") else "not passed"
        evidence.append(Evidence("validity", stored.id, f"{n}: {verdict} — {check.get('detail', 'not run')}"))
    if len(passed) == len(names):
        return found(test_id, AUTOMATED, evidence, f"the evaluate step checks {what} on every candidate")
    return found(test_id, NONE, evidence, f"the newest validity check did not pass {what}",
                 f"{_run_cmd(rec)}  (then: yarnit eval show {stored.id})")


def _num(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "n/a"


def _attested(rec: Records, test_id: str) -> Finding | None:
    a = rec.manual.get(test_id)
    if a is None:
        return None
    return found(test_id, MANUAL, [Evidence("attestation", a.doc, f"{a.reason} (by {a.actor} at {a.at}, "
                                            f"sha256 {a.doc_sha256[:12]})")], "a documented manual run",
                 None)


def missing(rec: Records, test_id: str, evidence: list[Evidence], note: str, to_earn: str) -> Finding:
    """No automated record: the attestation's half point if there is one, else 0 with the command to earn it."""
    return _attested(rec, test_id) or found(test_id, NONE, evidence, note, to_earn)


def _attest_cmd(rec: Records, test_id: str) -> str:
    return f"yarnit readiness {rec.model} --attest {test_id} --doc RESULTS.md --reason '…'"


# -- Features and data ---------------------------------------------------------------------------------

@probe("data.1")
def schema(rec: Records) -> Finding:
    hits = rec.runs_with_step("validate")
    if hits:
        run, step = hits[0]
        return found("data.1", AUTOMATED, [Evidence("step", f"{run.id}/validate", f"{step.state}: the data were "
                                                    "checked against the curated schema (types, ranges, domains, "
                                                    "missing values) before training")],
                     f"{len(hits)} of the newest runs validated their data")
    with_schema = [d for d in rec.datasets if d.schema_id]
    if with_schema:
        return found("data.1", MANUAL, [Evidence("dataset", d.ref, f"declared schema {d.schema_id}") for d in
                                        with_schema], "a schema is declared, but no pipeline step validates "
                                        "against it", _run_cmd(rec))
    return found("data.1", NONE, [], "no validate step and no declared schema", _run_cmd(rec))


@probe("data.2")
def beneficial(rec: Records) -> Finding:
    for v in reversed(rec.versions):
        weights = v.signature.get("feature_importance")
        if isinstance(weights, dict) and weights:
            low = sorted(weights.items(), key=lambda kv: kv[1])[:3]
            return found("data.2", AUTOMATED, [Evidence("model_version", v.ref, "train step recorded each input's "
                                                        "importance; lowest: " + ", ".join(
                                                            f"{k} {float(w):.3f}" for k, w in low))],
                         "the train step measures every input's contribution on each run")
    return missing(rec, "data.2", [], "no version records feature importances",
                                             f"{_run_cmd(rec)} --set trainer=logistic")


@probe("data.3")
def cost(rec: Records) -> Finding:
    trained = rec.runs_with_step("train")
    got = _validity(rec)
    evidence = []
    if trained:
        run, step = trained[0]
        evidence.append(Evidence("step", f"{run.id}/train", f"{step.wall_s or 0:.2f} s wall, {step.cpu_s or 0:.2f} s "
                                 f"CPU, {step.peak_rss_mb or 0:.0f} MB peak, {step.rows or 0} rows"))
    if got is not None:
        stored, checks = got
        for name in ("memory", "latency"):
            if name in checks:
                evidence.append(Evidence("validity", stored.id, f"{name}: {checks[name].get('detail')}"))
    if trained and got is not None and all((got[1].get(n) or {}).get("passed") for n in ("memory", "latency")):
        return found("data.3", AUTOMATED, evidence, "each run records its steps' time and memory, and the validity "
                     "check holds serving memory and latency to a budget (costs are per model, not per feature)")
    return missing(rec, "data.3", evidence, "no recorded training cost with a serving "
                                             "budget check", _run_cmd(rec))


@probe("data.4")
def meta_level(rec: Records) -> Finding:
    declared = [d for d in rec.datasets if d.subject_column or d.privacy.get("no_subject")]
    if declared:
        return found("data.4", AUTOMATED, [Evidence("dataset", d.ref, f"subject column {d.subject_column!r}, PII "
                                                    f"columns {list(d.pii_columns)}, retention class "
                                                    f"{d.retention_class!r}") for d in declared[:3]],
                     "ingest refuses personal data without a declared subject, and restricted columns reach "
                     "training only through their compliant transform")
    return missing(rec, "data.4", [], "the training data declare no subject or PII "
                                             "policy", "yarnit data ingest FILE --name NAME --subject user_id")


@probe("data.5")
def privacy(rec: Records) -> Finding:
    kept = [d for d in rec.datasets if d.retention_class]
    if kept and any(d.subject_column for d in kept):
        return found("data.5", AUTOMATED, [Evidence("dataset", d.ref, f"retention class {d.retention_class!r}, "
                                                    f"subjects hashed {str(d.subjects_sha256 or '')[:12]}…")
                                           for d in kept[:3]],
                     "retention is enforced by class, forgotten subjects are suppressed at every ingest, and raw "
                     "restricted reads are audited")
    return missing(rec, "data.5", [], "the training data have no retention class or "
                                             "subject column", "yarnit data retention show")


@probe("data.6")
def new_features(rec: Records) -> Finding:
    views = rec.feature_views
    if views:
        return found("data.6", AUTOMATED, [Evidence("feature_view", f"{v.view.name}@{v.version[:12]}",
                                                    "registered, versioned by its code") for v in views[:3]],
                     "a feature is a decorated function: backfill and materialization are platform jobs")
    latest = rec.latest
    transform = latest.signature.get("transform") if latest is not None else None
    if transform:
        return found("data.6", MANUAL, [Evidence("model_version", latest.ref, f"request-time transform "
                                                 f"{transform!r} (named and versioned in code)")],
                     "features are versioned transforms; no feature view is registered in this workspace",
                     "yarnit features backfill VIEW  (then: yarnit features materialize VIEW)")
    return missing(rec, "data.6", [], "no feature view or named transform",
                                             "yarnit features backfill VIEW")


@probe("data.7")
def feature_code(rec: Records) -> Finding:
    return _validity_probe("data.7", rec, ("golden_requests",),
                           "the feature code on golden requests, through the serving runtime")


# -- Model development -----------------------------------------------------------------------------------

@probe("model.1")
def checked_in(rec: Records) -> Finding:
    latest = rec.latest
    if latest is None:
        return found("model.1", NONE, [], f"{rec.model} has no version", _run_cmd(rec))
    code = latest.code_version
    if code and not code.endswith("+dirty"):
        return found("model.1", AUTOMATED, [Evidence("model_version", latest.ref, f"trained by run {latest.run_id} "
                                                     f"at commit {code[:12]}")],
                     "every run records the commit of the code it ran; review is the repository's")
    return missing(rec, "model.1", [Evidence("model_version", latest.ref, f"code "
                                                                         f"version {code!r}")],
                                              "trained from code with no commit or uncommitted changes",
                                              f"git commit, then {_run_cmd(rec)}")


@probe("model.2")
def proxy_correlates(rec: Records) -> Finding:
    evidence = []
    state = rec.rollout
    judged = None
    if state:
        last = state.get("last") or {}
        for m in last.get("metrics") or []:
            if isinstance(m, dict) and m.get("name") == "ctr" and m.get("canary") is not None:
                judged = {"at": last.get("at"), "canary": m.get("canary"), "baseline": m.get("baseline")}
    quality = rec.evaluated_slos("prediction_quality")
    evidence += _offline_and_online(rec)
    if judged is not None:
        evidence.append(Evidence("rollout", f"{rec.model}/{state.get('id')}",
                                 f"online CTR of v{state.get('canary_version')} {judged['canary']} judged against "
                                 f"v{state.get('baseline_version')}'s {judged['baseline']} at {judged['at']}"))
    for slo, status in quality:
        evidence.append(Evidence("slo", slo.id, f"prediction quality on served data: {status.get('state')}"))
    if evidence and rec.evaluations:
        evidence.insert(0, Evidence("evaluation", rec.evaluations[0].id, "offline AUC on the time-ordered holdout: "
                                    f"{_num(rec.evaluations[0].summary.get('auc'))}"))
        return found("model.2", AUTOMATED, evidence, "offline metrics are recorded per version and online quality "
                     "(from joined labels) is measured per version on served traffic, side by side; no "
                     "correlation coefficient is computed")
    return missing(rec, "model.2", evidence, "no online quality measured per version",
                                              f"yarnit rollout start {rec.model} --version V  (CTR judged from "
                                              "joined labels)")


def _offline_and_online(rec: Records) -> list[Evidence]:
    """Versions measured both offline (their evaluation's AUC) and online (AUC and CTR realized from joined labels)."""
    from yarnit.core.errors import YarnitError
    from yarnit.monitoring import quality

    from datetime import datetime

    from yarnit.core.clock import SimulatedClock

    at = rec.monitor_state.get("at")  # the 30 days up to the monitor's last pass (it joined the labels then)
    try:
        clock = SimulatedClock(datetime.fromisoformat(at)) if isinstance(at, str) else rec.ws.clock
        report = quality.quality_report(rec.ws, rec.model, window_s=ONLINE_WINDOW_S, clock=clock)
    except (YarnitError, OSError, ValueError):
        return []
    by_sha = {v.artifact_sha256: v for v in rec.versions}
    out = []
    for group in report.get("groups") or []:
        realized = group.get("realized") or {}
        if group.get("slice") or not realized.get("labelled"):
            continue
        version = next((v for v in rec.versions if str(v.version) == str(group.get("version"))), None)
        offline = next((e for e in rec.evaluations if version is not None and by_sha.get(e.artifact_sha256) is version
                        and e.summary.get("auc") is not None), None)
        if offline is not None:
            out.append(Evidence("quality", f"{rec.model}:v{group.get('version')}",
                                f"offline auc {_num(offline.summary['auc'])} ({offline.id}); online auc "
                                f"{_num(realized.get('auc'))}, ctr {_num(realized.get('ctr'))} over "
                                f"{realized.get('labelled')} labelled predictions"))
    return out


@probe("model.3")
def tuned(rec: Records) -> Finding:
    latest = rec.latest
    got = _tuning_of(rec, latest) if latest is not None else None
    if got is None:
        tunes = bool(rec.runs_with_step("tune", ("succeeded", "cached", "failed")))
        note = (f"the run that trained {latest.ref} has no tune step" if latest is not None and tunes else
                f"{_pipeline(rec)} has no tune step; record a manual study")
        return missing(rec, "model.3", [], note, _run_cmd(rec) if tunes else _attest_cmd(rec, "model.3"))
    run, report = got
    from yarnit.recipes.tuning import summary

    evidence = [Evidence("step", f"{run.id}/tune", summary(report))]
    configured = (report.get("configured") or {}).get("params") or {}
    differs = {k: (v, latest.params.get(k)) for k, v in configured.items()
               if k != "n_features" and latest.params.get(k) != v}
    if report.get("tuned") and configured and not differs:
        return found("model.3", AUTOMATED, evidence, f"each run searches {', '.join(report['searched'])} on a "
                     f"validation day and {latest.ref} was trained with values its search found best or "
                     "indistinguishable from the best")
    if differs:
        note = f"{latest.ref} was trained with other values than its run tuned: " + ", ".join(
            f"{k} tuned {a!r}, trained {b!r}" for k, (a, b) in differs.items())
    else:
        note = f"{latest.ref}'s values are not the best of its run's own search" if report.get("points") else \
            f"its run searched nothing: {report.get('note')}"
    best = (report.get("best") or {}).get("trainer_params")
    if best and not report.get("tuned"):
        to_earn = (f"{_run_cmd(rec)} --set 'trainer_params={json.dumps(best)}'  (then, unless the run promotes "
                   f"it: yarnit rollout start {rec.model} --version V)")
    elif report.get("reason") == "few_days" and isinstance(run.config.get("days"), int):
        to_earn = f"{_run_cmd(rec)} --set days={run.config['days'] + 1}"
    elif report.get("reason") == "no_grid":
        to_earn = (f"{_run_cmd(rec)} --set 'tuning={{\"grids\": {{\"{report.get('trainer')}\": "
                   "{\"PARAM\": [V1, V2]}}}'")
    else:
        to_earn = _run_cmd(rec)
    return missing(rec, "model.3", evidence, note, to_earn)


def _tuning_of(rec: Records, version: Any) -> tuple[Any, dict[str, Any]] | None:
    """The tune step's report of the run that trained ``version`` (None when that run did not tune)."""
    from yarnit.core.errors import YarnitError
    from yarnit.training.values import load_value

    run = next((r for r in rec.runs if r.id == version.run_id), None)
    if run is None and version.run_id:  # older than the newest runs read
        from yarnit.training import RunStore

        try:
            run = RunStore(rec.ws).get(version.run_id)
        except YarnitError:
            return None
    step = rec.step(run, "tune") if run is not None else None
    if step is None or step.state not in ("succeeded", "cached") or not (step.outputs or {}).get("report"):
        return None
    try:
        report = load_value(rec.ws.artifacts, step.outputs["report"])
    except (YarnitError, OSError, ValueError):  # the report's artifact was collected: no evidence left
        return None
    return (run, report) if isinstance(report, dict) else None


@probe("model.4")
def staleness(rec: Records) -> Finding:
    for stored in rec.evaluations:
        days = [d for d in stored.distributions if isinstance(d, dict) and d.get("kind") == "progressive"]
        if days:
            return found("model.4", AUTOMATED, [Evidence("evaluation", stored.id, f"quality on {len(days)} "
                                                         "successive days after the training cut-off")]
                         + [Evidence("slo", s.id, "model freshness") for s, _ in
                            rec.evaluated_slos("model_freshness")],
                         "each evaluation measures how quality decays day by day after training")
    older = [e for e in rec.evaluations if e.compared_with and e.summary.get("auc_production") is not None]
    if older:
        return found("model.4", AUTOMATED, [Evidence("evaluation", e.id, f"production v{e.compared_with.get('version')}"
                                                     f" (older data) auc {_num(e.summary['auc_production'])} vs the "
                                                     f"fresh candidate's {_num(e.summary.get('auc'))} on "
                                                     f"{e.summary.get('distribution')}") for e in older[:3]],
                     "each run scores production, trained on older data, beside the fresh candidate on the newest "
                     "day: the gap is what staleness costs")
    return missing(rec, "model.4", [], "no evaluation on progressive days or of an older model on new data",
                                              f"{_run_cmd(rec)} --set holdout_days=2")


@probe("model.5")
def simpler(rec: Records) -> Finding:
    for stored in rec.evaluations:
        checks = [c for c in (stored.verdict or {}).get("checks") or [] if isinstance(c, dict)]
        rows = [c for c in checks if c.get("kind") == "baseline" and c.get("status") in ("pass", "fail")]
        if rows:
            return found("model.5", AUTOMATED, [Evidence("gate", stored.id, f"{c.get('gate')}: {c.get('status')} — "
                                                         f"{c.get('message')}") for c in rows],
                         "the gate compares every candidate with a simpler baseline (popularity)")
    for run in rec.runs:
        ratio = run.metrics.get("ctr_ratio_vs_popularity") if isinstance(run.metrics, dict) else None
        check = rec.step(run, "check")
        if check is not None and check.state in ("succeeded", "cached"):
            return found("model.5", AUTOMATED, [Evidence("step", f"{run.id}/check", "closed-loop CTR compared with "
                                                         f"popularity ranking (ratio {ratio})")],
                         "the check step compares the ranker with popularity in a closed loop")
    return missing(rec, "model.5", [], "no gate against a simpler baseline",
                                              _run_cmd(rec))


@probe("model.6")
def slices(rec: Records) -> Finding:
    for stored in rec.evaluations:
        report = rec.report(stored.id)
        sliced = sorted({m.slice.split("=")[0] for m in report.metrics if m.slice})
        if sliced:
            return found("model.6", AUTOMATED, [Evidence("evaluation", stored.id, f"metrics per slice of "
                                                         f"{', '.join(sliced)}; gate "
                                                         f"{'blessed' if stored.blessed else 'refused'}")],
                         "each evaluation reports quality per slice and the gate judges them")
    return missing(rec, "model.6", [], "no evaluation with slices",
                                              f"{_run_cmd(rec)} --set 'slices=[\"device\", \"country\"]'")


@probe("model.7")
def inclusion(rec: Records) -> Finding:
    for stored in rec.evaluations:
        fairness = rec.report(stored.id).sections.get("fairness")
        if fairness:
            groups = sorted({str(f.get("group") or f.get("column")) for f in fairness if isinstance(f, dict)})
            return found("model.7", AUTOMATED, [Evidence("evaluation", stored.id, "fairness by " + ", ".join(groups))],
                         "each evaluation measures rates and differences per group (Fairlearn's definitions)")
    return missing(rec, "model.7", [], "no evaluation with fairness groups",
                                              f"{_run_cmd(rec)} --set 'fairness_groups=[\"language\"]'")


# -- ML infrastructure ----------------------------------------------------------------------------------

@probe("infrastructure.1")
def reproducible(rec: Records) -> Finding:
    for run in rec.runs:
        if run.reproduces and run.state == "succeeded":
            return found("infrastructure.1", MANUAL, [Evidence("reproduction", run.id, f"reproduced run "
                                                               f"{run.reproduces}")],
                         "a reproduction is on record, started by hand (`yarnit runs reproduce`)",
                         "CI reproduces the pipeline on every change: yarnit readiness MODEL --ci")
    target = rec.latest.run_id if rec.latest is not None else None
    return missing(rec, "infrastructure.1", [], "no reproduction on record",
                                                       f"yarnit runs reproduce {target or 'RUN'}")


@probe("infrastructure.2")
def unit_tested(rec: Records) -> Finding:
    return _validity_probe("infrastructure.2", rec, ("loads", "not_collapsed"),
                           "that the model loads in the serving runtime and its answers are not collapsed")


@probe("infrastructure.3")
def integration(rec: Records) -> Finding:
    for run in rec.runs:
        steps = rec.steps(run.id)
        if run.state == "succeeded" and steps and all(s.state in ("succeeded", "cached") for s in steps) \
                and any(s.step == "register" for s in steps):
            what = f"all {len(steps)} steps succeeded or cached, data selection to register"
            return found("infrastructure.3", AUTOMATED, [Evidence("run", run.id, what)],
                         "every run goes end to end, from data to a registered version")
    return missing(rec, "infrastructure.3", [], "no run went end to end",
                                                       _run_cmd(rec))


@probe("infrastructure.4")
def validated(rec: Records) -> Finding:
    prod = rec.production
    if prod is None:
        return found("infrastructure.4", NONE, [], f"{rec.model} has no production version",
                     f"yarnit models promote {rec.model} VERSION")
    problem = rec.registry.blessing_problem(prod)
    if problem is None:
        gated = next((e for e in rec.evaluations if e.artifact_sha256 == prod.artifact_sha256 and e.blessed), None)
        return found("infrastructure.4", AUTOMATED, [Evidence("gate", gated.id if gated else prod.ref,
                                                              f"{prod.ref} blessed by its gate, validity passed")],
                     "promotion to production needs a blessed gate verdict on the version's exact bytes")
    checked = _checked_by_its_run(rec, prod)
    if checked is not None:
        return found("infrastructure.4", AUTOMATED, [checked], "the run that registered production judged it "
                     "before promoting it (a blessed verdict of its check step)")
    forced = [e for e in rec.history if e.action == "force-promote" and e.to_version == prod.version]
    return found("infrastructure.4", NONE, [Evidence("model_version", prod.ref, problem)] +
                 [Evidence("alias_event", prod.ref, f"force-promote by {e.actor}: {e.reason}") for e in forced],
                 "production is not a blessed version", f"yarnit eval run {rec.model} --version {prod.version}")


def _checked_by_its_run(rec: Records, version: Any) -> Evidence | None:
    """A pipeline whose own check step blesses (the ranker's closed loop): the run that registered ``version``."""
    run = next((r for r in rec.runs if r.id == version.run_id), None)
    if run is None or run.metrics.get("blessed") is not True:
        return None
    for name in ("check", "gate"):
        step = rec.step(run, name)
        if step is not None and step.state in ("succeeded", "cached"):
            return Evidence("step", f"{run.id}/{name}", f"{version.ref} blessed by the {name} step before it was "
                            "promoted")
    return None


@probe("infrastructure.5")
def debuggable(rec: Records) -> Finding:
    latest = rec.latest
    probe_rows = latest.signature.get("probe") if latest is not None else None
    transform = latest.signature.get("transform") if latest is not None else None
    if latest is not None and transform and probe_rows:
        return found("infrastructure.5", MANUAL, [Evidence("model_version", latest.ref, f"named transform "
                                                           f"{transform!r}, {len(probe_rows)} probe requests")],
                     "one request can be replayed through the recorded transform and model by hand "
                     "(yarnit.features.get_transform, then the registry's predictor); there is no step-by-step "
                     "debugger", _attest_cmd(rec, "infrastructure.5"))
    return missing(rec, "infrastructure.5", [], "no recorded transform or "
                                                       "probe request", _attest_cmd(rec, "infrastructure.5"))


@probe("infrastructure.6")
def canary(rec: Records) -> Finding:
    state = rec.rollout
    if state:
        decisions = state.get("decisions") or []
        return found("infrastructure.6", AUTOMATED, [Evidence("rollout", f"{rec.model}/{state.get('id')}",
                                                              f"v{state.get('canary_version')} vs "
                                                              f"v{state.get('baseline_version')}: "
                                                              f"{state.get('status')}, {len(decisions)} decisions")],
                     "versions go to production through a staged rollout with canary analysis")
    return missing(rec, "infrastructure.6", [], "no staged rollout on record",
                                                       f"yarnit rollout start {rec.model} --version V")


@probe("infrastructure.7")
def rollback(rec: Records) -> Finding:
    moves = [e for e in rec.history if e.action == "rollback" or "rollback" in (e.reason or "")]
    automatic = [e for e in moves if not e.actor.startswith("user:")]
    target = rec.registry.rollback_target(rec.model, "production") if rec.production else None
    if automatic:
        e = automatic[-1]
        return found("infrastructure.7", AUTOMATED, [Evidence("alias_event", rec.model, f"{e.action} v{e.from_version}"
                                                              f" → v{e.to_version} by {e.actor} at "
                                                              f"{e.at.isoformat()}")],
                     "rollbacks are performed by the platform (rollout controller, incident mitigation)")
    if rec.rollout and target is not None:
        return found("infrastructure.7", AUTOMATED, [Evidence("rollout", f"{rec.model}/{rec.rollout.get('id')}",
                                                              "a failing canary is rolled back automatically"),
                                                     Evidence("model_version", f"{rec.model}:v{target}",
                                                              "the version a rollback of production would restore")],
                     "staged rollouts roll back on a failing canary; `yarnit models rollback` moves production back")
    if moves:
        e = moves[-1]
        return found("infrastructure.7", MANUAL, [Evidence("alias_event", rec.model, f"{e.action} by {e.actor}")],
                     "rolled back by hand", f"yarnit rollout start {rec.model} --version V")
    return missing(rec, "infrastructure.7", [], "no rollback on record and "
                                                       "no staged rollout to roll back automatically",
                                                       f"yarnit rollout start {rec.model} --version V")


# -- Monitoring -----------------------------------------------------------------------------------------

@probe("monitoring.1")
def dependencies(rec: Records) -> Finding:
    days = rec.loop.get("days") or {}
    checked = [d for d, entry in sorted(days.items()) if isinstance(entry, dict) and entry.get("checks")]
    tickets = [a for a in rec.alerts if a.sli == "data_validation"]
    if checked:
        evidence = [Evidence("loop", f"loop-{rec.model}", f"data checks on {len(checked)} days, newest {checked[-1]}")]
        evidence += [Evidence("alert", a.id, f"{a.alert_name}: {a.state}") for a in tickets[-3:]]
        return found("monitoring.1", AUTOMATED, evidence, "the loop checks each day of the upstream data and "
                     "tickets a change (volume, slices, distributions) in the alert store")
    return missing(rec, "monitoring.1", [], "no continuous loop checked this "
                                                   "model's upstream data", f"yarnit loop run --world DIR --model "
                                                   f"{rec.model}")


@probe("monitoring.2")
def invariants(rec: Records) -> Finding:
    evidence = []
    training = rec.runs_with_step("validate")
    if training:
        evidence.append(Evidence("step", f"{training[0][0].id}/validate", "training inputs checked against the schema"))
    latest = rec.latest
    policy = latest.signature.get("input_policy") if latest is not None else None
    if policy:
        evidence.append(Evidence("model_version", latest.ref, f"input contract on {len(policy)} serving fields "
                                 "(refuse, impute or fix)"))
    completeness = rec.evaluated_slos("input_completeness")
    evidence += [Evidence("slo", s.id, f"input completeness: {st.get('state')}") for s, st in completeness]
    if policy and (training or completeness):
        return found("monitoring.2", AUTOMATED, evidence, "training data are validated and every served request "
                     "is conformed to the version's input contract")
    return missing(rec, "monitoring.2", evidence, "invariants are not checked on "
                                                   "both paths", "yarnit slo apply slos.yaml  (an "
                                                   "input_completeness SLO), then: yarnit monitor run")


@probe("monitoring.3")
def skew(rec: Records) -> Finding:
    return _validity_probe("monitoring.3", rec, ("serving_matches_training",),
                           "that the serving path reproduces training-time scores on the same requests")


@probe("monitoring.4")
def stale(rec: Records) -> Finding:
    slos = rec.evaluated_slos("model_freshness")
    if slos:
        return found("monitoring.4", AUTOMATED, [Evidence("slo", s.id, f"model freshness: {st.get('state')}, "
                                                          f"budget left {st.get('budget_remaining')}")
                                                 for s, st in slos], "the monitor pages when production gets "
                     "too old")
    return missing(rec, "monitoring.4", [], "no model_freshness SLO evaluated",
                                                   "yarnit slo apply slos.yaml  (a model_freshness SLO), then: "
                                                   "yarnit monitor run")


@probe("monitoring.5")
def numerically_stable(rec: Records) -> Finding:
    return _validity_probe("monitoring.5", rec, ("finite_in_range",),
                           "that every answer is finite and within range (no NaN or inf)")


@probe("monitoring.6")
def regressions(rec: Records) -> Finding:
    slos = rec.evaluated_slos("serving_latency", "serving_availability")
    evidence = [Evidence("slo", s.id, f"{s.sli}: {st.get('state')}, budget left {st.get('budget_remaining')}")
                for s, st in slos]
    trained = rec.runs_with_step("train")
    if trained:
        run, step = trained[0]
        evidence.append(Evidence("step", f"{run.id}/train",
                                 f"{step.wall_s or 0:.2f} s, {step.peak_rss_mb or 0:.0f} MB"))
    if any(s.sli == "serving_latency" for s, _ in slos):
        return found("monitoring.6", AUTOMATED, evidence, "serving latency has an SLO with burn-rate alerts; "
                     "training time and memory are recorded per step")
    return missing(rec, "monitoring.6", evidence, "no serving latency SLO "
                                                   "evaluated", "yarnit slo apply slos.yaml  (a serving_latency "
                                                   "SLO), then: yarnit monitor run")


@probe("monitoring.7")
def served_quality(rec: Records) -> Finding:
    slos = rec.evaluated_slos("prediction_quality", "label_completeness")
    evidence = [Evidence("slo", s.id, f"{s.sli}: {st.get('state')}") for s, st in slos]
    days = rec.loop.get("days") or {}
    labelled = [d for d, e in sorted(days.items()) if isinstance(e, dict) and e.get("label")]
    if labelled:
        evidence.append(Evidence("loop", f"loop-{rec.model}", f"labels joined to served predictions on "
                                 f"{len(labelled)} days"))
    if any(s.sli == "prediction_quality" for s, _ in slos) or (rec.rollout and labelled):
        return found("monitoring.7", AUTOMATED, evidence, "quality on served traffic is measured from joined "
                     "labels and judged (SLO or canary analysis)")
    return missing(rec, "monitoring.7", evidence, "quality on served data is not "
                                                   "judged", "yarnit slo apply slos.yaml  (a prediction_quality "
                                                   "SLO), then: yarnit monitor run")


def run_probe(test_id: str, rec: Records) -> Finding:
    """The probe's finding; for data and model tests, the best of this model's and its parts' findings."""
    own = PROBES[test_id](rec)
    if own.level == AUTOMATED or not (test_id.startswith(FROM_PARTS) and test_id not in OWN_ONLY) or not rec.parts:
        return own
    best, via = own, None
    for part in rec.parts:
        other = PROBES[test_id](part)
        if other.points > best.points or (via is None and best.points == 0 and other.points == 0):
            best, via = other, part.model  # at 0, the part's command: its recipe makes the data and the model
    if via is None:
        return own
    return Finding(test_id, best.level, best.evidence, f"via {via}: {best.note}", best.to_earn)


__all__ = ["PROBES", "run_probe"]
