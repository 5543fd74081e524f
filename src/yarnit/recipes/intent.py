"""YarnIt's query-intent classifier, trained from human labels (``yarnit pipeline run yarnit-intent``).

select → train → evaluate → register

* select: the newest version of a published label set (``labels_dataset``, made by ``yarnit labels
  publish``), or, with ``source=world``, a label task over the world's queries answered by the simulated
  rater pool and published first, so the whole loop runs without people;
* train: hashed character n-grams and a multinomial logistic regression
  (:class:`yarnit.labels.active.TextClassifier`) on a seeded 80 % of the labels, packed as an
  ``yarnit-intent-npz`` artifact: the weights and class names as plain numpy arrays, never a pickle;
* evaluate: accuracy and macro-F1 on the held-out 20 % of the labels, scored from the artifact's bytes (what
  serving loads), with the label set's quality summary beside them (agreement, flagged raters, sources,
  guideline version): a model's figures are only as good as the labels they are measured against;
* register: the version, with lineage ``label set -trained_on-> model``, so the model traces back through the
  label task to the guideline version its labels were made under. The signature says ``"output": "class"``
  with the class names, so the data plane answers each query's intent by name with its probability
  (``POST /v1/models/yarnit-intent:predict``; OIP v2: a ``class`` BYTES tensor beside ``probability``), behind
  serving's prediction cache. Not promoted by default (``promote=true`` moves production).

:class:`CachedIntentClassifier` puts the model behind serving's :class:`~yarnit.serving.cache.PredictionCache`
(keyed by model version and query) and counts its hit rate: shoppers repeat queries.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from yarnit.core.errors import InvalidInput
from yarnit.data import Datasets
from yarnit.labels import Labels
from yarnit.labels.active import TextClassifier, featurize
from yarnit.registry import ArtifactFormat, ModelRegistry
from yarnit.registry.formats import dump_arrays, load_arrays
from yarnit.serving.cache import PredictionCache, instance_key
from yarnit.training import (
    Param,
    Pipeline,
    RunStore,
    Step,
    StepContext,
    TrainedModel,
    ValueKind,
)

from .common import registered_version

N_FEATURES = 2**13  # featurize()'s hashing width: a stored model must match it

DEFAULTS: dict[str, Any] = {
    "model": "yarnit-intent",
    "source": "dataset",  # or "world": label the world's queries with the simulated raters first
    "labels_dataset": "intent-labels",
    "items": 600,  # with source=world
    "world_seed": 0,
    "holdout_share": 0.2,
    "c": 10.0,
    "min_accuracy": 0.7,  # register anyway, but say when the model is below this on the holdout
    "promote": False,
}

PARAMS = (
    Param("model", str, "registered model name"),
    Param("source", str, "where the labels come from", choices=("dataset", "world")),
    Param("labels_dataset", str, "dataset name of the published label set"),
    Param("items", int, "with source=world: queries to label", ge=40, le=20_000),
    Param("world_seed", int, "with source=world: seed of the queries and the raters", ge=0),
    Param("holdout_share", float, "share of the labels held out for evaluation", ge=0.05, le=0.5),
    Param("c", float, "inverse regularization strength of the logistic regression", ge=1e-4, le=1e4),
    Param("min_accuracy", float, "holdout accuracy below which the run warns", ge=0.0, le=1.0),
    Param("promote", bool, "move the production alias (the data plane then answers the intent by name)"),
)


class IntentModel:
    """The artifact: class names, weights and biases of the logistic regression over hashed n-grams."""

    def __init__(self, classes: Sequence[str], coef: np.ndarray, intercept: np.ndarray) -> None:
        self.classes = tuple(str(c) for c in classes)
        self.coef = np.asarray(coef, dtype=np.float64)
        self.intercept = np.asarray(intercept, dtype=np.float64)
        if self.coef.shape != (len(self.classes), N_FEATURES) or self.intercept.shape != (len(self.classes),):
            raise InvalidInput(f"An intent model needs {len(self.classes)} x {N_FEATURES} weights; got "
                               f"{self.coef.shape} and {self.intercept.shape}.")

    @classmethod
    def from_classifier(cls, model: TextClassifier) -> IntentModel:
        fitted = model._model
        if fitted is None:
            raise InvalidInput("The intent model needs labels of at least two classes to learn from.")
        k = len(model.classes)
        coef, intercept = np.full((k, N_FEATURES), 0.0), np.full(k, -1e3)  # classes never seen: never chosen
        rows = np.asarray(fitted.classes_)
        if len(rows) == 2:  # sklearn keeps one row for two classes: p(second) = sigmoid(w.x + b)
            coef[rows[1]], intercept[rows[1]] = fitted.coef_[0], fitted.intercept_[0]
            coef[rows[0]], intercept[rows[0]] = 0.0, 0.0
        else:
            coef[rows], intercept[rows] = fitted.coef_, fitted.intercept_
        return cls(model.classes, coef, intercept)

    def to_bytes(self) -> bytes:
        return dump_arrays({"classes": np.array(self.classes, dtype=str), "coef": self.coef,
                            "intercept": self.intercept})

    @classmethod
    def from_bytes(cls, data: bytes) -> IntentModel:
        arrays = load_arrays(data)
        missing = {"classes", "coef", "intercept"} - set(arrays)
        if missing:
            raise InvalidInput(f"The intent artifact lacks {sorted(missing)}; retrain with yarnit-intent.")
        return cls([str(c) for c in arrays["classes"]], arrays["coef"], arrays["intercept"])

    def probabilities(self, queries: Sequence[str]) -> np.ndarray:
        """Class probabilities, one row per query (softmax of the linear scores)."""
        scores = np.asarray(featurize(queries) @ self.coef.T) + self.intercept
        scores -= scores.max(axis=1, keepdims=True)
        exp = np.exp(scores)
        return exp / exp.sum(axis=1, keepdims=True)

    def classify(self, queries: Sequence[str]) -> list[tuple[str, float]]:
        proba = self.probabilities(queries)
        return [(self.classes[int(i)], float(p[int(i)])) for i, p in zip(proba.argmax(axis=1), proba, strict=True)]

    def class_probabilities(self, instances: list[dict[str, Any]]) -> np.ndarray:
        """The serving protocol of a classifier: each instance's (``query`` field) probability per class."""
        return self.probabilities([str(i.get("query", "")) for i in instances])

    def predict_proba(self, instances: list[dict[str, Any]]) -> np.ndarray:
        """The probability of each instance's most likely intent (what batch scoring and evaluation read)."""
        return np.asarray(self.class_probabilities(instances).max(axis=1))


class CachedIntentClassifier:
    """An intent model behind a prediction cache keyed by (model version, query), with its hit rate."""

    def __init__(self, model: IntentModel, version_id: str, *, max_entries: int = 10_000) -> None:
        self.model = model
        self.version_id = version_id
        self.cache = PredictionCache(max_entries=max_entries)

    def classify(self, query: str) -> tuple[str, float]:
        key = instance_key(self.version_id, {"query": query})
        cached = self.cache.get(key) if key is not None else None
        if cached is not None:
            # one float per entry (the cache's value type): class index + confidence / 2, confidence in [0, 1]
            index = math.floor(cached)
            return self.model.classes[index], (cached - index) * 2.0
        label, confidence = self.model.classify([query])[0]
        if key is not None:
            self.cache.put(key, self.model.classes.index(label) + min(confidence, 1.0) / 2.0)
        return label, confidence

    @property
    def hit_rate(self) -> float:
        total = self.cache.hits + self.cache.misses
        return self.cache.hits / total if total else 0.0


# --- steps -------------------------------------------------------------------
def select(ctx: StepContext) -> dict[str, Any]:
    """The label set to learn from (with source=world: labelled by the simulated raters, then published)."""
    cfg = ctx.config
    if cfg["source"] == "world":
        _label_the_world(ctx, int(cfg["items"]), int(cfg["world_seed"]), str(cfg["labels_dataset"]))
    elif cfg["source"] != "dataset":
        raise InvalidInput(f"source={cfg['source']!r} is not valid; use 'dataset' or 'world'.")
    version = Datasets(ctx.workspace).get(cfg["labels_dataset"])
    summary = Labels(ctx.workspace).label_set_summary(version.id)
    ctx.count_rows(version.row_count)
    return {"labels": {"id": version.id, "ref": version.ref, "summary": summary}}


def _label_the_world(ctx: StepContext, items: int, seed: int, dataset: str) -> None:
    from yarnit.labels import run_raters
    from yarnit.world import INTENTS, RaterPool, labeling_queries

    frame = labeling_queries(seed, items)
    truth = {k: INTENTS.index(v) for k, v in zip(frame["query_id"], frame["intent"], strict=True)}
    queries = Datasets(ctx.workspace).ingest_frame(f"{dataset}-queries", frame[["query_id", "query"]],
                                                   source=f"world labeling queries seed={seed}", run_id=ctx.run_id)
    labels = Labels(ctx.workspace)
    labels.define_schema("query-intent", INTENTS, "The shopper's intent: a specific product, a broad category, "
                         "a brand, or a how-to question.", actor=f"run:{ctx.run_id}")
    task = f"{dataset}-{queries.version}"
    try:
        labels.task(task)
    except LookupError:
        pool = RaterPool.default(len(INTENTS), seed=seed)
        golden_rows = np.random.default_rng(seed).choice(items, max(4, items // 10), replace=False)
        labels.create_task(task, dataset=queries.ref, schema="query-intent", raters=[p.rater_id for p in pool.profiles],
                           overlap=3, key_column="query_id", text_column="query", seed=seed,
                           golden={frame["query_id"][i]: frame["intent"][i] for i in golden_rows},
                           actor=f"run:{ctx.run_id}")
        run_raters(labels, task, lambda r, k, p: INTENTS[pool.answer(r, k, truth[k])])
    labels.publish(task, dataset, actor=f"run:{ctx.run_id}")
    ctx.log(f"world: {items} queries labelled by the simulated pool in task {task}")


def _frame(ctx: StepContext, labels: dict[str, Any]) -> pd.DataFrame:
    frame = Datasets(ctx.workspace).read(Datasets(ctx.workspace).get_by_id(labels["id"]))
    text = next((c for c in ("query", "text", "name") if c in frame.columns), None)
    if text is None or "label" not in frame.columns:
        raise InvalidInput(f"Label set {labels['ref']} has no text column (query, text or name) or no label "
                           "column; publish it with: yarnit labels publish TASK DATASET")
    return pd.DataFrame({"text": frame[text].astype(str), "label": frame["label"].astype(str)})


def _holdout(n: int, share: float, seed: int) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    mask[np.random.default_rng([seed, 0x1E7]).permutation(n)[: max(1, round(share * n))]] = True
    return mask


def train(ctx: StepContext, labels: dict[str, Any]) -> dict[str, Any]:
    cfg = ctx.config
    frame = _frame(ctx, labels)
    classes = tuple(sorted(set(frame["label"])))
    held = _holdout(len(frame), float(cfg["holdout_share"]), ctx.seed)
    part = frame[~held]
    y = np.array([classes.index(c) for c in part["label"]])
    model = IntentModel.from_classifier(TextClassifier(classes, c=float(cfg["c"]), seed=ctx.seed)
                                        .fit(featurize(part["text"].tolist()), y))
    ctx.count_rows(len(part))
    return {"model": TrainedModel(
        artifact=model.to_bytes(), artifact_format=ArtifactFormat.INTENT, trainer="hashed-char-ngrams+logistic",
        params={"c": float(cfg["c"]), "n_features": N_FEATURES, "ngram_range": [2, 4]},
        signature={"inputs": {"query": "string"}, "classes": list(classes), "output": "class"},
        training={"rows": len(part)}, probe=[{"query": q} for q in part["text"].head(3)])}


def evaluate(ctx: StepContext, model: TrainedModel, labels: dict[str, Any]) -> dict[str, Any]:
    """Accuracy and macro-F1 on the held-out labels, scored from the artifact's bytes."""
    cfg = ctx.config
    frame = _frame(ctx, labels)
    held = frame[_holdout(len(frame), float(cfg["holdout_share"]), ctx.seed)]
    loaded = IntentModel.from_bytes(model.artifact)
    predicted = [label for label, _ in loaded.classify(held["text"].tolist())]
    truth = held["label"].tolist()
    accuracy = float(np.mean([p == t for p, t in zip(predicted, truth, strict=True)]))
    f1s = []
    for c in loaded.classes:
        tp = sum(p == c and t == c for p, t in zip(predicted, truth, strict=True))
        fp = sum(p == c and t != c for p, t in zip(predicted, truth, strict=True))
        fn = sum(p != c and t == c for p, t in zip(predicted, truth, strict=True))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0)
    ctx.metric("accuracy", accuracy)
    ctx.metric("macro_f1", float(np.mean(f1s)))
    if accuracy < float(cfg["min_accuracy"]):
        ctx.log(f"evaluate: holdout accuracy {accuracy:.3f} is below min_accuracy {cfg['min_accuracy']}")
    per_class = dict(zip(loaded.classes, f1s, strict=True))
    stored = _store_evaluation(ctx, model, labels, accuracy, per_class, len(held))
    return {"report": {"accuracy": accuracy, "macro_f1": float(np.mean(f1s)), "holdout_rows": len(held),
                       "per_class_f1": per_class, "label_quality": labels["summary"], "evaluation_id": stored,
                       "note": "measured against consensus labels, not the truth: see label_quality"}}


def label_quality(summary: dict[str, Any]) -> dict[str, Any]:
    """The label set's quality figures a model card shows: agreement, consensus method, raters, guideline."""
    return {"dataset": summary.get("dataset"), "task": summary.get("task"),
            "guideline_version": summary.get("schema"), "definition_versions": summary.get("definition_versions"),
            "consensus_method": summary.get("method"), "raters": summary.get("raters"),
            "flagged_raters": summary.get("flagged_raters"), "labels": summary.get("labels"),
            "by_source": summary.get("by_source"), "mean_confidence": summary.get("mean_confidence"),
            "agreement": summary.get("agreement")}


def _store_evaluation(ctx: StepContext, model: TrainedModel, labels: dict[str, Any], accuracy: float,
                      per_class: dict[str, float], rows: int) -> str:
    """The holdout figures as a stored evaluation (found later by the artifact's sha256), with the label set's
    quality as its ``label_quality`` section, so the model card shows both."""
    from yarnit.core.hashing import sha256_bytes
    from yarnit.evaluation import Distribution, EvaluationReport, EvaluationStore, MetricValue

    share = float(ctx.config["holdout_share"])
    holdout = Distribution("holdout", "iid", f"seeded random {share:.0%} of label set {labels['ref']} ({rows} "
                           "consensus labels)", rows, (labels["id"],), {"seed": ctx.seed, "share": share})
    values = [MetricValue("accuracy", "holdout", accuracy, n=rows),
              MetricValue("macro_f1", "holdout", float(np.mean(list(per_class.values()))), n=rows)]
    values += [MetricValue("f1", "holdout", f1, slice=f"class={name}") for name, f1 in per_class.items()]
    report = EvaluationReport(
        ctx.config["model"], {"artifact_sha256": sha256_bytes(model.artifact),
                              "format": model.artifact_format.value, "trainer": model.trainer},
        (holdout,), tuple(values), sections={"label_quality": label_quality(labels["summary"])},
        run_id=ctx.run_id, dataset_version_ids=(labels["id"],),
        notes=("measured against consensus labels, not the truth: read the figures beside the label quality",))
    return EvaluationStore(ctx.workspace).add(report).id


def register(ctx: StepContext, model: TrainedModel, report: dict[str, Any], labels: dict[str, Any]) -> dict[str, Any]:
    registry = ModelRegistry(ctx.workspace)
    name = ctx.config["model"]
    version = registered_version(registry, name, model.artifact)
    if version is None:
        version = registry.register(
            name, model.artifact, ArtifactFormat.INTENT, signature=model.signature,
            metrics={"accuracy": report["accuracy"], "macro_f1": report["macro_f1"],
                     "per_class_f1": report["per_class_f1"], "label_quality": report["label_quality"],
                     "evaluation_id": report.get("evaluation_id")},
            params=model.params, dataset_version_ids=[labels["id"]], run_id=ctx.run_id,
            code_version=RunStore(ctx.workspace).get(ctx.run_id).code_version, seed=ctx.seed,
            description=f"YarnIt query intent from label set {labels['ref']} (schema "
                        f"{labels['summary'].get('schema')})")
    if ctx.config["promote"]:
        registry.set_alias(name, "production", version.version, actor=f"run:{ctx.run_id}",
                           reason=f"yarnit-intent run {ctx.run_id}")
    return {"model_version": {"id": version.id, "ref": version.ref}}


def intent_pipeline() -> Pipeline:
    """The query-intent classifier's pipeline with its default configuration."""
    return Pipeline(
        "yarnit-intent",
        [
            Step("select", select, outputs={"labels": ValueKind.REF}, cacheable=False),
            Step("train", train, inputs={"labels": "select.labels"}, outputs={"model": ValueKind.MODEL}),
            Step("evaluate", evaluate, inputs={"model": "train.model", "labels": "select.labels"},
                 outputs={"report": ValueKind.REPORT}),
            Step("register", register, inputs={"model": "train.model", "report": "evaluate.report",
                                               "labels": "select.labels"},
                 outputs={"model_version": ValueKind.REF}, cacheable=False),
        ],
        config=DEFAULTS,
        params=PARAMS,
        description="YarnIt query intent: human labels → hashed n-grams + logistic regression → holdout with the "
                    "labels' quality → registry",
    )


__all__ = ["DEFAULTS", "PARAMS", "CachedIntentClassifier", "IntentModel", "intent_pipeline", "label_quality"]
