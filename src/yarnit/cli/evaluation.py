"""``yarnit eval …``: evaluate a model version, show stored evaluations, gate them, write model cards.

* ``yarnit eval run ctr --version 3 --slice country --fairness language`` evaluates a
  registered version on a dataset (default: the time-ordered holdout of the data it
  was trained on), validity-checks it in the serving runtime and stores the report;
* ``yarnit eval show [ID] [--model ctr]`` lists evaluations or shows one;
* ``yarnit eval gate ID|--model ctr [--gates gates.yaml]`` applies gates (data) and
  records the verdict; it exits with code 1 when the candidate is not blessed, so a
  script or CI job can stop on it;
* ``yarnit eval card ctr [--version 3] [--format html] [--out card.html]`` writes the
  model card.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from yarnit.core.atomic import atomic_write_text
from yarnit.core.errors import ConfigError

from .common import JSON_OPTION, cli_errors, console, emit, workspace

app = typer.Typer(help="Evaluations: metrics on named distributions, validity, gates, model cards.",
                  no_args_is_help=True)


def _fmt(value: Any, ci: Any = None) -> str:
    if value is None:
        return "undefined"
    text = f"{value:.4f}"
    if ci:
        text += f" [{ci[0]:.4f}, {ci[1]:.4f}]"
    return text


def _load_gates(path: Path | None) -> list[Any]:
    from yarnit.evaluation import gates_from_config, standard_gates

    if path is None:
        return standard_gates(min_value=0.6, positive_rate_band=(0.005, 0.5))
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"Cannot read gates file {str(path)!r}: {exc.strerror}. Give a YAML or JSON list of "
                          "gates.") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"Gates file {str(path)!r} is not valid YAML: {exc}") from None
    if isinstance(data, dict) and "gates" in data:
        data = data["gates"]
    return gates_from_config(data)


@app.command("run")
@cli_errors
def run(model: str = typer.Argument(..., help="Model name."),
        version: int | None = typer.Option(None, min=1, help="Version to evaluate (default: --alias)."),
        alias: str = typer.Option("production", help="Alias to evaluate when no --version is given."),
        dataset: str | None = typer.Option(None, help="Dataset NAME[:vN] or id (default: the training data)."),
        label: str = typer.Option("clicked", help="Label column (0/1)."),
        since: str | None = typer.Option(None, help="First day of the time-ordered holdout (default: the "
                                                     "training run's split)."),
        slices: list[str] = typer.Option([], "--slice", help="Slice column or column=value (repeatable)."),
        fairness: list[str] = typer.Option([], "--fairness", help="Sensitive column for group fairness."),
        threshold: float = typer.Option(0.1, min=0.0, max=1.0, help="Fairness threshold on the prediction."),
        group: str | None = typer.Option(None, help="Group column for ranking metrics (e.g. session_id)."),
        k: int = typer.Option(10, min=1, help="k for precision/recall/NDCG@k."),
        compare: str | None = typer.Option("production", help="Alias to compare with; '' for none."),
        resamples: int = typer.Option(1000, min=10, max=100_000, help="Bootstrap resamples."),
        validity: bool = typer.Option(True, help="Run the validity check in the serving runtime."),
        as_json: bool = JSON_OPTION) -> None:
    """Evaluate a registered version and store the report (with lineage)."""
    from yarnit.evaluation import Bootstrap, EvaluationRequest, evaluate_version

    request = EvaluationRequest(model=model, version=version, alias=alias, dataset=dataset, label=label, since=since,
                                slices=tuple(slices), fairness=tuple(fairness), fairness_threshold=threshold,
                                ranking_group=group, k=k, compare_with=compare or None, validity=validity,
                                bootstrap=Bootstrap(resamples=resamples))
    with workspace() as ws:
        stored, report = evaluate_version(ws, request)
    data = stored.to_dict()

    def human() -> None:
        console.print(f"evaluation {stored.id} of {model} v{stored.model_version} on "
                      f"{report.distribution().description}")
        table = Table("metric", "value [95% CI]")
        for metric in ("auc", "pr_auc", "log_loss", "brier", "ece", "bias", "positive_rate"):
            m = report.get(metric)
            if m is not None:
                table.add_row(metric, _fmt(m.value, m.ci))
        console.print(table)
        validity_section = report.sections.get("validity")
        if validity_section:
            console.print("validity: " + ("passed" if validity_section["passed"] else
                                          "FAILED: " + "; ".join(validity_section["reasons"])))
        console.print(f"gate it with: yarnit eval gate {stored.id}")

    emit(data, as_json, human)


@app.command("show")
@cli_errors
def show(evaluation_id: str | None = typer.Argument(None, help="Evaluation id (ev_…); omit to list."),
         model: str | None = typer.Option(None, help="Only this model's evaluations."),
         version: int | None = typer.Option(None, min=1, help="Only this version's evaluations."),
         limit: int = typer.Option(20, min=1, max=1000, help="How many to list."),
         as_json: bool = JSON_OPTION) -> None:
    """List evaluations, or show one: distributions, metrics with intervals, slices, validity, verdict."""
    from yarnit.evaluation import EvaluationStore

    with workspace() as ws:
        store = EvaluationStore(ws)
        if evaluation_id is None:
            rows = store.list(model, version=version, limit=limit)

            def human_list() -> None:
                table = Table("id", "model", "version", "created", "distribution", "auc", "validity", "blessed")
                for r in rows:
                    table.add_row(r.id, r.model_name, "" if r.model_version is None else f"v{r.model_version}",
                                  r.created_at.isoformat(timespec="seconds"), r.primary_distribution,
                                  _fmt(r.summary.get("auc"), r.summary.get("auc_ci")),
                                  {True: "pass", False: "FAIL", None: ""}[r.validity_passed],
                                  {True: "yes", False: "no", None: ""}[r.blessed])
                console.print(table)

            emit([r.to_dict() for r in rows], as_json, human_list)
            return
        stored = store.get(evaluation_id)
        report = store.report(evaluation_id)
    data = stored.to_dict() | {"report": report.to_dict()}

    def human() -> None:
        console.print(f"evaluation {stored.id}: {stored.model_name} "
                      + (f"v{stored.model_version}" if stored.model_version else
                         f"candidate {stored.artifact_sha256[:12]}")
                      + f", {stored.created_at.isoformat(timespec='seconds')}")
        table = Table("distribution", "rows", "auc", "log loss", "ece", "bias")
        for d in report.distributions:
            values = [report.get(m, distribution=d.name) for m in ("auc", "log_loss", "ece", "bias")]
            table.add_row(d.description, str(d.rows), *(_fmt(v.value, v.ci) if v else "" for v in values))
        console.print(table)
        sliced = [m for m in report.select(metric="auc", distribution=report.primary, subject="candidate") if m.slice]
        if sliced:
            table = Table("slice", "rows", "auc [95% CI]", "vs production (paired)")
            for m in sliced:
                delta = report.get("auc", distribution=report.primary, slice=m.slice, subject="delta:production")
                table.add_row(m.slice, str(m.n), _fmt(m.value, m.ci), _fmt(delta.value, delta.ci) if delta else "")
            console.print(table)
        if stored.verdict:
            console.print("verdict: " + ("blessed" if stored.verdict["blessed"] else "NOT blessed"))
            for reason in stored.verdict["reasons"]:
                console.print(f"  - {reason}")
        for note in report.notes:
            console.print(f"note: {note}")

    emit(data, as_json, human)


@app.command("gate")
@cli_errors
def gate(evaluation_id: str | None = typer.Argument(None, help="Evaluation id (default: the newest of --model)."),
         model: str | None = typer.Option(None, help="Gate the newest evaluation of this model."),
         version: int | None = typer.Option(None, min=1, help="… of this version."),
         gates_file: Path | None = typer.Option(None, "--gates", help="YAML/JSON list of gates (default: "
                                                "min auc 0.6, beat popularity, not worse than production by "
                                                "0.01, label band [0.005, 0.5], validity)."),
         as_json: bool = JSON_OPTION) -> None:
    """Apply gates to a stored evaluation and record the verdict; exit code 1 when not blessed."""
    from yarnit.evaluation import EvaluationStore, judge, latest_evaluation

    gates = _load_gates(gates_file)
    with workspace() as ws:
        store = EvaluationStore(ws)
        if evaluation_id is None:
            if model is None:
                raise typer.BadParameter("give an evaluation id, or --model NAME")
            evaluation_id = latest_evaluation(ws, model, version=version).id
        verdict = judge(store.report(evaluation_id), gates)
        store.record_verdict(evaluation_id, verdict)
    data = verdict.to_dict() | {"evaluation_id": evaluation_id}

    def human() -> None:
        console.print(f"{evaluation_id}: " + ("blessed" if verdict.blessed else "NOT blessed"))
        for reason in verdict.reasons:
            console.print(f"  - {reason}")
        skipped = verdict.skipped
        if skipped:
            console.print(f"  ({len(skipped)} checks skipped; --json lists them)")

    emit(data, as_json, human)
    if not verdict.blessed:
        raise typer.Exit(1)


@app.command("card")
@cli_errors
def card(model: str = typer.Argument(..., help="Model name."),
         version: int | None = typer.Option(None, min=1, help="Version (default: production, else the newest "
                                                              "evaluated)."),
         evaluation_id: str | None = typer.Option(None, "--evaluation", help="Use this evaluation."),
         fmt: str = typer.Option("markdown", "--format", help="markdown or html."),
         out: Path | None = typer.Option(None, help="Write the card to this file instead of stdout."),
         as_json: bool = JSON_OPTION) -> None:
    """Write the model card (Markdown or HTML) with the responsible-AI checklist."""
    from yarnit.evaluation import card_for

    if fmt not in ("markdown", "html"):
        raise typer.BadParameter(f"--format must be markdown or html, got {fmt!r}")
    with workspace() as ws:
        model_card = card_for(ws, model, version=version, evaluation_id=evaluation_id)
    text = model_card.to_html() if fmt == "html" else model_card.to_markdown()
    if out is not None:
        atomic_write_text(out, text)
    data = {"model": model, "title": model_card.title, "evaluation_id": model_card.evaluation_id, "format": fmt,
            "path": None if out is None else str(out)} | ({} if out is not None else {"card": text})

    def human() -> None:
        if out is not None:
            console.print(f"model card of {model_card.title} written to {out}")
        else:
            typer.echo(text)

    emit(data, as_json, human)


__all__ = ["app"]
