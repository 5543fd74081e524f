"""Model cards in Markdown and HTML, with the book's responsible-AI checklist (CH6-R1).

A card is built from what yarnit already recorded: the model version and its
lineage (datasets, run, code version), the stored evaluation (metrics by
distribution and slice with intervals, calibration, fairness, validity), the
gate's verdict and the metric's history across versions. What only people
know (intended use, consent, recourse, owner) comes from :class:`CardInfo`;
a checklist item nobody answered is shown as **missing**, never left out.

The HTML is rendered from the Markdown (markdown-it-py, raw HTML disabled), so
the two never disagree and text from configuration cannot inject markup.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from yarnit.registry import ModelVersion

from .errors import GateConfigError
from .report import EvaluationReport, MetricValue

CHECKLIST: tuple[tuple[str, str], ...] = (
    ("use_case", "Use case: what the model decides, for whom"),
    ("data_consent", "Data consent: on what basis the training data was collected and may be used"),
    ("training_intervention", "Training intervention: pre-, in- or post-processing for fairness, or none"),
    ("stress_tests", "Stress tests: rare slices and hard cases the model was evaluated on"),
    ("fairness_monitoring", "Fairness-drift monitoring: how group gaps are watched after launch"),
    ("fallback", "Fallback: what serves when the model is wrong or down"),
    ("user_recourse", "User recourse: how a person affected by a decision can contest or avoid it"),
)
MISSING = "**missing**: nobody has answered this yet"


@dataclass(frozen=True)
class CardInfo:
    """What only people can say about a model. Unanswered checklist items show as missing."""

    owner: str = ""
    description: str = ""
    intended_use: str = ""
    out_of_scope: str = ""
    use_case: str = ""
    data_consent: str = ""
    training_intervention: str = ""
    stress_tests: str = ""
    fairness_monitoring: str = ""
    fallback: str = ""
    user_recourse: str = ""

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> CardInfo:
        config = dict(config or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise GateConfigError(f"Unknown model card keys {unknown}; known: {', '.join(sorted(known))}.")
        bad = [k for k, v in config.items() if not isinstance(v, str)]
        if bad:
            raise GateConfigError(f"Model card entries must be text; {bad} are not.")
        return cls(**config)

    def to_dict(self) -> dict[str, str]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _num(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _with_ci(m: MetricValue | None, digits: int = 4) -> str:
    if m is None:
        return ""
    if m.value is None:
        return f"undefined ({m.undefined})" if m.undefined else "undefined"
    text = f"{m.value:.{digits}f}"
    if m.ci is not None:
        text += f" [{m.ci[0]:.{digits}f}, {m.ci[1]:.{digits}f}]"
    return text


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    out = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return out


@dataclass
class ModelCard:
    """Everything a card shows; :meth:`to_markdown` and :meth:`to_html` render it."""

    report: EvaluationReport
    version: ModelVersion | None = None
    info: CardInfo = field(default_factory=CardInfo)
    verdict: Mapping[str, Any] | None = None
    aliases: Mapping[str, int] = field(default_factory=dict)
    datasets: Sequence[Mapping[str, Any]] = ()
    history: Sequence[Mapping[str, Any]] = ()
    evaluation_id: str | None = None

    @property
    def title(self) -> str:
        if self.version is not None:
            return f"{self.version.model_name} v{self.version.version}"
        sha = str(self.report.candidate.get("artifact_sha256", ""))[:12]
        return f"{self.report.model} candidate {sha}"

    def checklist(self) -> list[tuple[str, str, str]]:
        """(key, question, answer) for each CH6-R1 item; derived answers fill gaps where the record has them."""
        derived: dict[str, str] = {}
        stress = [d for d in self.report.distributions if d.kind in ("stress", "golden")]
        if stress:
            parts = []
            for d in stress:
                auc = self.report.get("auc", distribution=d.name)
                parts.append(f"{d.description}: AUC {_with_ci(auc)}" if auc is not None else d.description)
            derived["stress_tests"] = "; ".join(parts)
        baselines = [s for s in self.report.subjects() if s in ("popularity", "fallback")]
        if baselines:
            derived["fallback"] = "; ".join(
                f"{s} baseline evaluated beside the model: AUC {_num(self.report.value('auc', subject=s))}"
                for s in baselines)
        fairness = self.report.sections.get("fairness") or []
        out = []
        for key, question in CHECKLIST:
            given = getattr(self.info, key)
            auto = derived.get(key, "")
            if key == "fairness_monitoring" and fairness and not given:
                auto = ("measured at every evaluation (" + ", ".join(f["column"] for f in fairness) +
                        "); drift of these gaps after launch is not monitored yet")
            answer = given + (f" (recorded: {auto})" if given and auto else "") if given else (auto or MISSING)
            out.append((key, question, answer))
        return out

    def to_markdown(self) -> str:
        r = self.report
        lines = [f"# Model card: {self.title}", ""]
        desc = self.info.description or (self.version.metrics.get("description") if self.version else "") or ""
        if desc:
            lines += [desc, ""]
        lines += ["## Summary", ""]
        facts: list[tuple[str, Any]] = [("model", r.model), ("owner", self.info.owner or MISSING)]
        if self.version is not None:
            v = self.version
            on = ", ".join(a for a, n in sorted(self.aliases.items()) if n == v.version) or "none"
            facts += [("version", f"v{v.version} ({v.id})"), ("created", v.created_at.isoformat()),
                      ("artifact", f"{v.artifact_format.value}, sha256 {v.artifact_sha256}"), ("aliases", on),
                      ("trained by run", v.run_id or "unknown"), ("code version", v.code_version or "unknown"),
                      ("seed", v.seed), ("tainted", f"yes: {v.taint_reason}" if v.tainted else "no")]
        else:
            facts += [("artifact", f"sha256 {r.candidate.get('artifact_sha256')}")]
        if self.evaluation_id:
            facts.append(("evaluation", self.evaluation_id))
        if self.verdict is not None:
            facts.append(("gate verdict", "blessed" if self.verdict.get("blessed") else "NOT blessed"))
        lines += _table(["", ""], facts) + [""]
        lines += ["## Intended use", "", self.info.intended_use or MISSING, ""]
        if self.info.out_of_scope:
            lines += ["Out of scope: " + self.info.out_of_scope, ""]
        lines += ["## Data", ""]
        if self.datasets:
            lines += _table(["dataset version", "rows", "source", "PII columns"],
                            [(d.get("ref"), d.get("rows"), d.get("source"),
                              ", ".join(d.get("pii_columns") or []) or "none")
                             for d in self.datasets]) + [""]
        elif r.dataset_version_ids:
            lines += ["Dataset versions: " + ", ".join(r.dataset_version_ids), ""]
        if self.version is not None:
            sig = self.version.signature
            inputs = sig.get("inputs") or {}
            lines += [f"Inputs: {', '.join(sorted(inputs)) or 'not recorded'}; request-time transform: "
                      f"{sig.get('transform') or 'none'}; output: {sig.get('output') or 'not recorded'}.", ""]
            training = self.version.metrics.get("training") or {}
            if training.get("rows"):
                lines += [f"Trained on {training['rows']} rows.", ""]
        confidence = int(100 * float((r.sections.get("bootstrap") or {}).get("confidence", 0.95)))
        lines += ["## Metrics by distribution", "",
                  f"Every number is a (metric, distribution) pair; brackets hold the {confidence}% bootstrap interval.",
                  ""]
        rows = []
        for d in r.distributions:
            m = {k: r.get(k, distribution=d.name) for k in ("auc", "pr_auc", "log_loss", "brier", "ece", "bias")}
            n = next((x.n for x in m.values() if x is not None), d.rows)
            rows.append((f"{d.name}: {d.description}", n, *(_with_ci(x) for x in m.values())))
        lines += _table(["distribution", "rows", "AUC", "PR-AUC", "log loss", "Brier", "ECE", "bias"], rows) + [""]
        lines += _classification(r)
        lines += _label_quality(r.sections.get("label_quality"))
        others = [s for s in r.subjects() if s != "candidate" and not s.startswith("delta:")]
        if others:
            lines += ["## Compared with other models", ""]
            rows = []
            for d in r.distributions:
                for s in others:
                    auc = r.get("auc", distribution=d.name, subject=s)
                    if auc is None:
                        continue
                    delta = r.get("auc", distribution=d.name, subject=f"delta:{s}")
                    log_loss = r.value("log_loss", distribution=d.name, subject=s)
                    rows.append((d.name, r.reference_label(s), _with_ci(auc), _num(log_loss),
                                 _with_ci(delta) if delta is not None else ""))
            lines += _table(["distribution", "model", "AUC", "log loss", "candidate - model (AUC, paired)"], rows)
            lines += [""]
        sliced = [m for m in r.select(metric="auc", distribution=r.primary, subject="candidate") if m.slice]
        if sliced:
            lines += [f"## Slices of {r.primary}", ""]
            rows = []
            for m in sliced:
                rate = r.get("positive_rate", distribution=r.primary, slice=m.slice)
                ll = r.get("log_loss", distribution=r.primary, slice=m.slice)
                delta = r.get("auc", distribution=r.primary, slice=m.slice, subject="delta:production")
                rows.append((m.slice, m.n, m.positives, _num(rate.value if rate else None), _with_ci(m),
                             _num(ll.value if ll else None), _with_ci(delta) if delta else ""))
            lines += _table(["slice", "rows", "positives", "positive rate", "AUC", "log loss", "vs production (AUC)"],
                            rows) + [""]
        calibration = (r.sections.get("calibration") or {}).get("candidate")
        if calibration:
            lines += ["## Calibration", "", f"ECE {_num(calibration.get('ece'))} on {r.primary}.", ""]
            lines += _table(["bucket", "rows", "mean prediction", "positive rate"],
                            [(f"[{b['low']:.1f}, {b['high']:.1f}]", b["n"], _num(b["mean_prediction"]),
                              _num(b["positive_rate"])) for b in calibration.get("buckets", []) if b["n"]]) + [""]
        ranking = r.sections.get("ranking")
        if ranking:
            lines += [f"## Ranking (groups: {ranking.get('group')}, k = {ranking.get('k')})", ""]
            lines += _table(["metric", "value"], [(name, _with_ci(r.get(name, distribution=ranking.get("distribution"),
                                                                         slice=ranking.get("slice", ""))))
                                                  for name in ("precision_at_k", "recall_at_k", "ndcg_at_k", "map")])
            lines += [""]
        for f in r.sections.get("fairness") or []:
            lines += [f"## Fairness by {f['column']} (threshold {f['threshold']:g}, {f['distribution']})", ""]
            lines += _table(["group", "rows", "positives", "selection rate", "TPR", "FPR"],
                            [(g["group"], g["n"], g["positives"], _num(g["selection_rate"]),
                              _num(g["true_positive_rate"]), _num(g["false_positive_rate"])) for g in f["groups"]])
            dp, eo = f["demographic_parity_difference"], f["equalized_odds_difference"]

            def fmt(x: Mapping[str, Any]) -> str:
                if x.get("value") is None:
                    return f"undefined ({x.get('undefined')})"
                ci = x.get("ci")
                return f"{x['value']:.4f}" + (f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "")

            lines += ["", f"Demographic-parity difference {fmt(dp)}; equalized-odds difference {fmt(eo)} "
                          "(Fairlearn's between-groups definitions)."]
            lines += [f"- {note}" for note in f.get("notes", [])] + [""]
        validity = r.sections.get("validity")
        if validity:
            lines += ["## Validity", ""]
            lines += _table(["check", "result", "detail"],
                            [(c["name"], {True: "pass", False: "FAIL", None: "not run"}[c["passed"]], c["detail"])
                             for c in validity.get("checks", [])]) + [""]
        if self.verdict is not None:
            lines += ["## Gate verdict", "", "Blessed." if self.verdict.get("blessed") else "Not blessed:", ""]
            lines += [f"- {reason}" for reason in self.verdict.get("reasons", [])]
            lines += [""]
        if self.history:
            lines += ["## History (AUC on each evaluation's primary distribution)", ""]
            lines += _table(["evaluated", "version", "distribution", "AUC", "blessed"],
                            [(h.get("created_at"), f"v{h['model_version']}" if h.get("model_version") else
                              str(h.get("artifact_sha256", ""))[:12], h.get("distribution"), _num(h.get("value")),
                              {True: "yes", False: "no", None: ""}[h.get("blessed")]) for h in self.history]) + [""]
        lines += ["## Responsible-AI checklist (book CH6-R1)", ""]
        lines += _table(["item", "answer"], [(question, answer) for _k, question, answer in self.checklist()])
        missing = [k for k, _q, a in self.checklist() if a == MISSING]
        lines += ["", f"{len(CHECKLIST) - len(missing)} of {len(CHECKLIST)} items answered"
                  + (f"; missing: {', '.join(missing)}." if missing else "."), ""]
        if r.notes:
            lines += ["## Notes", ""] + [f"- {n}" for n in r.notes] + [""]
        return "\n".join(lines)

    def to_html(self) -> str:
        from markdown_it import MarkdownIt

        body = MarkdownIt("commonmark", {"html": False}).enable("table").render(self.to_markdown())
        style = ("body{font-family:system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;color:#222}"
                 "table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.25rem .5rem;"
                 "text-align:left;vertical-align:top}th{background:#f4f4f4}")
        return (f"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<title>Model card: {html.escape(self.title)}</title><style>{style}</style></head>\n"
                f"<body>\n{body}</body></html>\n")


def _classification(r: EvaluationReport) -> list[str]:
    """A classifier's figures (accuracy, macro-F1, F1 per class) on each distribution that has them."""
    rows = []
    for d in r.distributions:
        accuracy, macro = r.get("accuracy", distribution=d.name), r.get("macro_f1", distribution=d.name)
        if accuracy is None and macro is None:
            continue
        per_class = [m for m in r.select(metric="f1", distribution=d.name, subject="candidate") if m.slice]
        rows.append((f"{d.name}: {d.description}", accuracy.n if accuracy else d.rows, _with_ci(accuracy),
                     _with_ci(macro), ", ".join(f"{m.slice.split('=', 1)[-1]} {_num(m.value, 3)}" for m in per_class)))
    if not rows:
        return []
    return ["## Classification", ""] + _table(["distribution", "rows", "accuracy", "macro-F1", "F1 per class"],
                                              rows) + [""]


def _label_quality(quality: Mapping[str, Any] | None) -> list[str]:
    """How good the labels the model learned from and was measured against are (book ch. 4)."""
    if not quality:
        return []
    agreement = quality.get("agreement") or {}
    flagged = quality.get("flagged_raters") or []
    facts = [("label set", quality.get("dataset")), ("label task", quality.get("task")),
             ("guideline version", quality.get("guideline_version")),
             ("definition versions of the answers", ", ".join(str(v) for v in quality.get("definition_versions")
                                                                or []) or "not recorded"),
             ("consensus method", quality.get("consensus_method")), ("raters", quality.get("raters")),
             ("flagged raters (golden questions)", ", ".join(flagged) or "none"),
             ("labels", quality.get("labels")),
             ("labels by source", ", ".join(f"{k} {v}" for k, v in (quality.get("by_source") or {}).items())),
             ("mean consensus confidence", _num(quality.get("mean_confidence"), 3)),
             ("Krippendorff's alpha (nominal)", _num(agreement.get("krippendorff_alpha"), 3)),
             ("Fleiss' kappa", _num(agreement.get("fleiss_kappa"), 3)),
             ("Cohen's kappa (mean over rater pairs)", _num(agreement.get("cohen_kappa_mean"), 3))]
    return ["## Label quality", "", "The model learned from, and was measured against, consensus labels of human "
            "raters, not the truth: its figures are only as good as these.", ""] + _table(["", ""], facts) + [""]


__all__ = ["CHECKLIST", "CardInfo", "ModelCard"]
