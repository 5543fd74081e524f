"""``yarnit labels …``: label schemas and tasks, raters' answers, quality, consensus, label sets, Label Studio.

``yarnit labels world-task`` builds a whole task from the YarnIt world's queries (with their true intents as
golden items) and lets the simulated rater pool answer it, so the loop can be tried without people.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from .common import JSON_OPTION, cli_errors, console, emit, plain, workspace

app = typer.Typer(help="Human labels: schemas, tasks, raters, golden questions, consensus (book ch. 4).",
                  no_args_is_help=True)
TASK = typer.Argument(..., help="Label task name (see: yarnit labels tasks).")


def _read_text(path: Path) -> str:
    from yarnit.core.errors import InvalidInput

    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"Cannot read {path}: {exc}. Give a readable UTF-8 text file.") from None


def _read_json(path: Path) -> Any:
    from yarnit.core.errors import InvalidInput

    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}).") from None


@app.command("schema")
@cli_errors
def schema(name: str = typer.Argument(..., help="Schema name, e.g. query-intent."),
           classes: str = typer.Option(..., "--classes", help="Comma-separated classes."),
           guideline: Path = typer.Option(..., "--guideline", help="Text file: how raters choose each class."),
           as_json: bool = JSON_OPTION) -> None:
    """Define a label schema (a new version when the classes or the guideline change)."""
    from yarnit.access import cli_actor
    from yarnit.labels import Labels

    with workspace() as ws:
        made = Labels(ws).define_schema(name, [c.strip() for c in classes.split(",") if c.strip()],
                                        _read_text(guideline), actor=cli_actor())
    emit(made.to_dict(), as_json, lambda: console.print(f"label schema {made.ref}: {', '.join(made.classes)}"))


@app.command("create")
@cli_errors
def create(name: str = typer.Argument(..., help="New task name."),
           dataset: str = typer.Option(..., "--dataset", help="Dataset version to label, NAME or NAME:vN."),
           schema_ref: str = typer.Option(..., "--schema", help="Label schema, NAME or NAME:vN."),
           raters: list[str] = typer.Option(..., "--rater", help="A rater id (repeat)."),
           overlap: int = typer.Option(3, "--overlap", min=1, help="Raters per item."),
           key: str = typer.Option(..., "--key", help="Column with the item key."),
           text: str = typer.Option(..., "--text", help="Column with the text raters read."),
           golden: Path | None = typer.Option(None, "--golden", help="JSON object {item_key: class} of golden items."),
           seed: int = typer.Option(0, "--seed"),
           min_accuracy: float = typer.Option(0.6, "--min-accuracy", help="Flag raters confidently below this "
                                              "golden accuracy."),
           flagged_weight: float = typer.Option(0.1, "--flagged-weight", help="What a flagged rater's answer "
                                                "counts in majority vote."),
           as_json: bool = JSON_OPTION) -> None:
    """Create a label task: items to k raters each, golden items hidden in every rater's queue."""
    from yarnit.access import cli_actor
    from yarnit.core.errors import InvalidInput
    from yarnit.labels import Labels, QualityPolicy

    gold = _read_json(golden) if golden is not None else {}
    if not isinstance(gold, dict):
        raise InvalidInput(f"{golden} must hold a JSON object {{item_key: class}}.")
    with workspace() as ws:
        task = Labels(ws).create_task(name, dataset=dataset, schema=schema_ref, raters=raters, overlap=overlap,
                                      key_column=key, text_column=text, golden=gold, seed=seed, actor=cli_actor(),
                                      policy=QualityPolicy(min_accuracy=min_accuracy, flagged_weight=flagged_weight))
    emit(task.to_dict(), as_json, lambda: console.print(
        f"label task {task.name}: {task.counts['items']} items ({task.counts['golden']} golden), "
        f"{task.counts['assigned']} assignments over {len(task.raters)} raters"))


@app.command("tasks")
@cli_errors
def tasks(as_json: bool = JSON_OPTION) -> None:
    """Every label task."""
    from yarnit.labels import Labels

    with workspace() as ws:
        labels = Labels(ws)
        rows = [labels.task(t.name).to_dict() for t in labels.tasks()]

    def human() -> None:
        table = Table("task", "schema", "items", "golden", "answers", "raters", "overlap")
        for r in rows:
            table.add_row(r["name"], r["schema"], str(r["counts"]["items"]), str(r["counts"]["golden"]),
                          str(r["counts"]["answers"]), str(len(r["raters"])), str(r["overlap"]))
        console.print(table if rows else "no label tasks (create one: yarnit labels create …)")

    emit({"tasks": rows}, as_json, human)


@app.command("show")
@cli_errors
def show(name: str = TASK, as_json: bool = JSON_OPTION) -> None:
    """One task: schema, dataset, counts, the guideline in force."""
    from yarnit.labels import Labels

    with workspace() as ws:
        labels = Labels(ws)
        task = labels.task(name)
        schema_now = labels.schema(task.schema_name, task.schema_version)
    data = task.to_dict() | {"guideline": schema_now.guideline, "classes": list(schema_now.classes)}
    emit(data, as_json, lambda: console.print(plain(json.dumps(data, indent=2, default=str))))


@app.command("next")
@cli_errors
def next_items(name: str = TASK, rater: str = typer.Argument(..., help="Rater id."),
               limit: int = typer.Option(10, "--limit", min=1, max=1000), as_json: bool = JSON_OPTION) -> None:
    """The rater's next items to label (golden items among them, unmarked)."""
    from yarnit.labels import Labels

    with workspace() as ws:
        rows = Labels(ws).next_items(name, rater, limit=limit)

    def human() -> None:
        for r in rows:
            hint = f"  (model suggests: {r['prelabel']})" if r["prelabel"] else ""
            console.print(plain(f"{r['item_key']}  {r['text']}{hint}"))

    emit({"items": rows}, as_json, human)


@app.command("answer")
@cli_errors
def answer(name: str = TASK, item: str = typer.Argument(..., help="Item key."),
           rater: str = typer.Argument(..., help="Rater id."), label: str = typer.Argument(..., help="The class."),
           as_json: bool = JSON_OPTION) -> None:
    """Record a rater's answer for an item."""
    from yarnit.labels import Labels

    with workspace() as ws:
        given = Labels(ws).answer(name, item, rater, label)
    emit(given.to_dict(), as_json, lambda: console.print(f"{rater}: {item} = {label} (answer {given.seq})"))


@app.command("guideline")
@cli_errors
def guideline(name: str = TASK, file: Path = typer.Option(..., "--file", help="The new guideline text."),
              classes: str | None = typer.Option(None, "--classes", help="New comma-separated classes."),
              as_json: bool = JSON_OPTION) -> None:
    """Change the task's guideline (a new schema version; earlier answers keep theirs)."""
    from yarnit.access import cli_actor
    from yarnit.labels import Labels

    with workspace() as ws:
        made = Labels(ws).update_guideline(name, _read_text(file), actor=cli_actor(),
                                           classes=None if classes is None else [c.strip() for c in classes.split(",")])
    emit(made.to_dict(), as_json, lambda: console.print(f"task {name} now labels under {made.ref}"))


@app.command("quality")
@cli_errors
def quality(name: str = TASK, as_json: bool = JSON_OPTION) -> None:
    """Raters' golden accuracy, drift and flags; inter-rater agreement."""
    from yarnit.labels import Labels

    with workspace() as ws:
        labels = Labels(ws)
        raters = [q.to_dict() for q in labels.quality(name).values()]
        agreement = labels.agreement(name)
        prelabels = labels.prelabel_effect(name)
    data = {"raters": raters, "agreement": agreement, "prelabels": prelabels}

    def human() -> None:
        table = Table("rater", "answers", "golden", "accuracy", "drift", "flagged at", "weight")
        for r in raters:
            acc = "-" if r["accuracy"] is None else f"{r['accuracy']:.2f}"
            drift = "-" if r["drift"] is None else f"{r['drift']:+.2f}"
            table.add_row(plain(r["rater"]), str(r["answers"]), str(r["golden_answers"]), acc, drift,
                          str(r["flagged_at_answer"] or "-"), f"{r['weight']:g}")
        console.print(table)
        fmt = {k: ("-" if agreement[k] is None else f"{agreement[k]:.3f}")
               for k in ("krippendorff_alpha", "fleiss_kappa", "cohen_kappa_mean")}
        console.print(f"agreement: Krippendorff alpha {fmt['krippendorff_alpha']}, Fleiss kappa "
                      f"{fmt['fleiss_kappa']}, mean pairwise Cohen kappa {fmt['cohen_kappa_mean']}")
        if prelabels["anchoring"] is not None:
            console.print(f"pre-labels: raters agree with the model {prelabels['shown']['agree_with_prelabel']:.2f} "
                          f"when shown, {prelabels['hidden']['agree_with_prelabel']:.2f} when hidden "
                          f"(anchoring {prelabels['anchoring']:+.2f})")

    emit(data, as_json, human)


@app.command("prelabel")
@cli_errors
def prelabel(name: str = TASK, show_share: float = typer.Option(0.5, "--show-share", min=0.0, max=1.0,
                                                                help="Share of items whose pre-label is shown."),
             as_json: bool = JSON_OPTION) -> None:
    """Pre-label every item with a model fitted on the task's labels so far (shown on a seeded share)."""
    from yarnit.labels import Labels

    with workspace() as ws:
        count = Labels(ws).prelabel_from_model(name, show_share=show_share)
    emit({"prelabelled": count}, as_json, lambda: console.print(
        f"{count} items pre-labelled; see the anchoring effect with: yarnit labels quality {name}"))


@app.command("consensus")
@cli_errors
def consensus(name: str = TASK, method: str = typer.Option("dawid_skene", "--method",
                                                           help="dawid_skene or majority."),
              as_json: bool = JSON_OPTION) -> None:
    """The label each item settles on, with confidence and source."""
    from yarnit.labels import Labels

    with workspace() as ws:
        rows = [c.to_dict() for c in Labels(ws).consensus(name, method=method)]

    def human() -> None:
        table = Table("item", "text", "label", "confidence", "raters", "source")
        for r in rows:
            table.add_row(plain(r["item_key"]), plain(r["text"]), r["label"] or "-", f"{r['confidence']:.2f}",
                          str(r["rater_count"]), r["source"])
        console.print(table)

    emit({"method": method, "labels": rows}, as_json, human)


@app.command("review")
@cli_errors
def review(name: str = TASK, item: str | None = typer.Argument(None, help="Item key to settle (omit: list the "
                                                                   "review queue)."),
           label: str | None = typer.Argument(None, help="The class the reviewer decides."),
           as_json: bool = JSON_OPTION) -> None:
    """The QA review queue (items the raters did not agree on), or settle one item."""
    from yarnit.access import cli_actor
    from yarnit.core.errors import InvalidInput
    from yarnit.labels import Labels

    with workspace() as ws:
        labels = Labels(ws)
        if item is None:
            rows = [c.to_dict() for c in labels.review_queue(name)]
            emit({"queue": rows}, as_json, lambda: [console.print(plain(
                f"{r['item_key']}  {r['text']}  -> {r['label']} ({r['confidence']:.2f})")) for r in rows])
            return
        if label is None:
            raise InvalidInput("Give the class to settle the item on: yarnit labels review TASK ITEM CLASS")
        labels.review(name, item, label, reviewer=cli_actor())
    emit({"item_key": item, "label": label}, as_json, lambda: console.print(f"{item} settled as {label}"))


@app.command("prioritize")
@cli_errors
def prioritize(name: str = TASK, n: int = typer.Option(20, "--n", min=1, max=10_000),
               strategy: str = typer.Option("uncertainty_diversity", "--strategy",
                                            help="uncertainty_diversity, uncertainty or random."),
               as_json: bool = JSON_OPTION) -> None:
    """Active learning: move the items the current model most needs to the front of the raters' queues."""
    from yarnit.labels import Labels

    with workspace() as ws:
        keys = Labels(ws).prioritize(name, n, strategy=strategy)
    emit({"prioritized": keys}, as_json, lambda: console.print(f"{len(keys)} items moved to the front"))


@app.command("publish")
@cli_errors
def publish(name: str = TASK, dataset: str = typer.Argument(..., help="Dataset name for the label set."),
            method: str = typer.Option("dawid_skene", "--method"), as_json: bool = JSON_OPTION) -> None:
    """Publish the consensus as a dataset version with per-label metadata and lineage to the task."""
    from yarnit.access import cli_actor
    from yarnit.labels import Labels

    with workspace() as ws:
        labels = Labels(ws)
        version = labels.publish(name, dataset, method=method, actor=cli_actor())
        summary = labels.label_set_summary(version.id)
    emit(version.to_dict() | {"label_summary": summary}, as_json,
         lambda: console.print(f"label set {version.ref} ({version.row_count} labels; flagged raters: "
                               f"{', '.join(summary['flagged_raters']) or 'none'})"))


@app.command("export")
@cli_errors
def export(name: str = TASK, out: Path = typer.Option(..., "--out", help="JSON file to write."),
           as_json: bool = JSON_OPTION) -> None:
    """Export the task in Label Studio's JSON format (answers as annotations, golden as ground truth)."""
    from yarnit.core.atomic import atomic_write_text
    from yarnit.labels import Labels, export_tasks

    with workspace() as ws:
        tasks_out = export_tasks(Labels(ws), name)
    atomic_write_text(out, json.dumps(tasks_out, indent=1))
    emit({"tasks": len(tasks_out), "path": str(out)}, as_json,
         lambda: console.print(f"{len(tasks_out)} Label Studio tasks written to {out}"))


@app.command("import")
@cli_errors
def import_(file: Path = typer.Argument(..., help="Label Studio JSON export."),
            task: str = typer.Option(..., "--task", help="New task name."),
            dataset: str = typer.Option(..., "--dataset", help="Dataset name for the imported texts."),
            schema_ref: str = typer.Option(..., "--schema", help="Label schema the choices belong to."),
            raters: list[str] = typer.Option([], "--rater", help="Extra raters for unanswered items (repeat)."),
            as_json: bool = JSON_OPTION) -> None:
    """Import Label Studio tasks (texts, annotations, ground truth) as a new label task."""
    from yarnit.access import cli_actor
    from yarnit.labels import Labels, import_tasks

    data = _read_json(file)
    with workspace() as ws:
        made = import_tasks(Labels(ws), data, task_name=task, dataset_name=dataset, schema=schema_ref,
                            raters=raters, actor=cli_actor())
    emit(made.to_dict(), as_json, lambda: console.print(
        f"label task {made.name}: {made.counts['items']} items, {made.counts['answers']} answers imported"))


@app.command("world-task")
@cli_errors
def world_task(name: str = typer.Argument("query-intent", help="Task (and dataset) name."),
               n: int = typer.Option(300, "--items", min=20, max=20_000),
               golden_share: float = typer.Option(0.1, "--golden-share", min=0.01, max=0.5),
               seed: int = typer.Option(0, "--seed"), as_json: bool = JSON_OPTION) -> None:
    """Label the world's search queries by intent with the simulated rater pool (a demo of the whole loop)."""
    import numpy as np

    from yarnit.access import cli_actor
    from yarnit.data import Datasets
    from yarnit.labels import Labels, run_raters
    from yarnit.world import INTENTS, RaterPool, labeling_queries

    frame = labeling_queries(seed, n)
    truth = {k: INTENTS.index(v) for k, v in zip(frame["query_id"], frame["intent"], strict=True)}
    chosen = np.random.default_rng(seed).choice(n, max(1, int(golden_share * n)), replace=False)
    with workspace() as ws:
        version = Datasets(ws).ingest_frame(name, frame[["query_id", "query"]], source=f"world queries seed={seed}")
        labels = Labels(ws)
        labels.define_schema("query-intent", INTENTS, WORLD_GUIDELINE, actor=cli_actor())
        pool = RaterPool.default(len(INTENTS), seed=seed)
        labels.create_task(name, dataset=version.ref, schema="query-intent", raters=[p.rater_id for p in pool.profiles],
                           overlap=3, key_column="query_id", text_column="query", seed=seed,
                           golden={frame["query_id"][i]: frame["intent"][i] for i in chosen}, actor=cli_actor())
        run_raters(labels, name, lambda r, k, p: INTENTS[pool.answer(r, k, truth[k], prelabel=None if p is None
                                                                    else INTENTS.index(p))], step_s=30)
        task = labels.task(name)
    emit(task.to_dict(), as_json, lambda: console.print(
        f"label task {name}: {task.counts['answers']} simulated answers; see: yarnit labels quality {name}"))


WORLD_GUIDELINE = """Label what the shopper is looking for.
specific_product: the query names a product closely enough to pick few items (two or more of fiber, weight,
colour for yarn; a size for needles and hooks; a colour for notions).
broad_category: a kind of product without enough detail to pick few items ("merino yarn", "stitch markers").
brand: the query names a brand, with or without other words ("fjordull merino").
how_to: the shopper asks how to do something ("how to cast on", "cable tutorial").
"""
