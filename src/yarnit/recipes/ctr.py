"""The Yarn Product Click Prediction Model as a training pipeline (``yarnit pipeline run yarnit-ctr``).

select → validate → split → train → evaluate → gate → register

* select: simulate the YarnIt world (or take a recorded dataset) and record
  the impression log as a dataset version. The ground-truth click
  probabilities go to a separate dataset, used for scoring and never as
  features.
* validate: check the log before training, including label sanity (ch. 15,
  case 5: a test set whose positive rate is implausible is rejected).
* split: the last day is the holdout, so no future leaks into training. A
  probe of raw holdout requests travels with the model (golden requests).
* train: compute ``ctr_features_v1`` on the training days with its vectorized
  twin and run the configured trainer (logistic, hist_gbm or lightgbm), warm
  started from production when asked. Features are recomputed from the
  dataset, not stored, which is cheaper than writing and reading them back.
* evaluate: AUC, log loss, Brier score and bias on the named holdout,
  compared with a popularity baseline and the ground-truth oracle.
* gate: bless or refuse, giving every reason.
* register: record the version with its lineage; promote it if it is blessed
  and promotion is enabled.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

from yarnit.core.errors import InvalidInput
from yarnit.data import Datasets
from yarnit.features.request_time_frame import FRAME_TRANSFORMS
from yarnit.registry import AliasNotFound, ModelNotFound, ModelRegistry, load_predictor
from yarnit.training import Pipeline, RunStore, Step, StepContext, TrainedModel, ValueKind
from yarnit.training.trainers import make_trainer

from .affinity import add_user_affinity

TRANSFORM = "ctr_features_v1"
LABEL = "clicked"
RAW_INPUTS = {
    "country": "string", "language": "string", "device": "string", "product_type": "string", "fiber": "string",
    "weight_class": "string", "color": "string", "brand": "string", "is_partner": "bool", "in_stock": "bool",
    "price_usd": "double", "discount": "double", "user_price_sensitivity": "double", "hour": "int",
    "day_of_week": "int", "query": "string",
}
REQUIRED = (*RAW_INPUTS, "position", "day", "product_id", "impression_id", LABEL)

DEFAULTS: dict[str, Any] = {
    "model": "ctr",
    "dataset": "yarnit-impressions",
    "source": "world",  # or "dataset": train on an existing version of `dataset`
    "days": 3,
    "world_seed": 0,
    "sessions_per_day": 1500,
    "faults": [],  # world fault specs, e.g. ["click_log_outage@2"] (see: yarnit world faults)
    "dataset_version": None,  # with source=dataset: a version number, or None for the newest
    "holdout_days": 1,
    "transform": TRANSFORM,  # or "ctr_features_v2" (adds product appeal, shopper tastes, query-name match)
    "trainer": "logistic",
    "trainer_params": {},
    "warm_start": False,
    "positive_rate_band": [0.005, 0.5],
    "min_auc": 0.6,
    "min_lift_over_popularity": 0.0,
    "max_regression_vs_production": 0.01,
    "promote": True,
    "probe_rows": 64,
}


class BlockingAnomalies(InvalidInput):
    """Validation found problems that make training on this data wrong."""


def _native(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


# --- steps -------------------------------------------------------------------
def select(ctx: StepContext) -> dict[str, Any]:
    cfg = ctx.config
    datasets = Datasets(ctx.workspace)
    if cfg["source"] == "dataset":
        version = datasets.get(cfg["dataset"], cfg.get("dataset_version"))
        ctx.count_rows(version.row_count)
        return {"dataset": {"id": version.id, "ref": version.ref}, "truth": {"id": None}}
    if cfg["source"] != "world":
        raise InvalidInput(f"source={cfg['source']!r} is not valid; use 'world' or 'dataset'.")
    from yarnit.world import World, WorldConfig, parse_fault

    base = WorldConfig(seed=int(cfg["world_seed"]), sessions_per_day=int(cfg["sessions_per_day"]))
    faults = tuple(parse_fault(spec, start=base.start) for spec in cfg["faults"])
    world = World(WorldConfig(seed=base.seed, sessions_per_day=base.sessions_per_day, faults=faults))
    logs, truths = [], []
    for partition in world.run(int(cfg["days"])):
        logs.append(partition.impressions)
        truths.append(partition.truth[["impression_id", "p_click"]].assign(day=partition.day))
        ctx.log(f"world day {partition.day}: {len(partition.impressions)} impressions")
    log = pd.concat(logs, ignore_index=True)
    source = (f"yarnit world seed={cfg['world_seed']} days={cfg['days']} sessions/day={cfg['sessions_per_day']}"
              + (f" faults={','.join(cfg['faults'])}" if cfg["faults"] else ""))
    version = datasets.ingest_frame(cfg["dataset"], log, source=source, run_id=ctx.run_id,
                                    retention_class="events", pii_columns=["user_id"])
    truth = datasets.ingest_frame(f"{cfg['dataset']}-truth", pd.concat(truths, ignore_index=True),
                                  source=f"ground truth of {version.ref} (scoring only)", parents=[version.id],
                                  run_id=ctx.run_id)
    ctx.count_rows(len(log))
    return {"dataset": {"id": version.id, "ref": version.ref}, "truth": {"id": truth.id, "ref": truth.ref}}


def _path(ctx: StepContext, ref: dict[str, Any]) -> Any:
    datasets = Datasets(ctx.workspace)
    for version in datasets.list():
        if version.id == ref["id"]:
            return ctx.workspace.artifacts.verify(version.artifact_sha256)
    raise InvalidInput(f"Dataset version {ref.get('ref', ref['id'])} is gone (purged?); rerun select.")


def _read(ctx: StepContext, ref: dict[str, Any], columns: list[str] | None = None,
          filters: list[tuple[str, str, Any]] | None = None) -> pd.DataFrame:
    """Columns of a verified dataset version; text columns come back dictionary-encoded (categorical)."""
    path = _path(ctx, ref)
    schema = pq.read_schema(path)
    wanted = columns or schema.names
    missing = [c for c in wanted if c not in schema.names]
    if missing:
        raise BlockingAnomalies(
            f"Dataset {ref.get('ref')} lacks columns {missing}; it must follow the YarnIt impression schema."
        )
    text = [c for c in wanted if pa.types.is_string(schema.field(c).type) or pa.types.is_large_string(
        schema.field(c).type)]
    return pq.read_table(path, columns=wanted, filters=filters, read_dictionary=text).to_pandas()


def validate(ctx: StepContext, dataset: dict[str, Any]) -> dict[str, Any]:
    schema = pq.read_schema(_path(ctx, dataset))
    anomalies: list[dict[str, Any]] = []
    missing = [c for c in REQUIRED if c not in schema.names]
    if missing:
        anomalies.append({"severity": "blocking", "column": ",".join(missing), "kind": "missing_columns",
                          "evidence": f"columns {missing} are absent",
                          "fix": "Produce the impression log with the YarnIt schema (see yarnit world generate)."})
    frame = _read(ctx, dataset, [c for c in ("day", LABEL) if c in schema.names])
    if frame.empty:
        anomalies.append({"severity": "blocking", "column": "*", "kind": "empty", "evidence": "0 rows",
                          "fix": "Check the upstream export; training on nothing is the ch. 7 failure."})
    if LABEL in frame.columns and "day" in frame.columns and not frame.empty:
        nulls = int(frame[LABEL].isna().sum())
        if nulls:
            anomalies.append({"severity": "blocking", "column": LABEL, "kind": "missing_labels",
                              "evidence": f"{nulls} rows without a label", "fix": "Wait for the label join."})
        low, high = ctx.config["positive_rate_band"]
        for day, rate in frame.groupby("day")[LABEL].mean().items():
            if not low <= rate <= high:
                anomalies.append({
                    "severity": "blocking", "column": LABEL, "kind": "label_rate", "day": str(day),
                    "evidence": f"positive rate {rate:.4f} on {day} is outside the expected band [{low}, {high}]",
                    "fix": "Labels look incomplete (a click-log outage?) or corrupted; fix the label source and "
                           "rerun, or widen positive_rate_band if this is real.",
                })
    blocking = [a for a in anomalies if a["severity"] == "blocking"]
    report = {"rows": len(frame), "anomalies": anomalies, "blocking": len(blocking)}
    ctx.count_rows(len(frame))
    if blocking:
        raise BlockingAnomalies(
            f"Validation of {dataset.get('ref')} found {len(blocking)} blocking anomalies; first: "
            f"{blocking[0]['evidence']}. {blocking[0]['fix']}"
        )
    return {"report": report}


def split(ctx: StepContext, dataset: dict[str, Any]) -> dict[str, Any]:
    """Choose the time-ordered holdout (the last ``holdout_days`` days) and a probe of raw requests."""
    days = sorted(_read(ctx, dataset, ["day"])["day"].unique())
    holdout_days = int(ctx.config["holdout_days"])
    if len(days) <= holdout_days:
        raise InvalidInput(
            f"A time-ordered holdout of {holdout_days} day(s) needs more days of data; got {len(days)}. "
            "Generate more days (days=3 or more)."
        )
    cut = days[-holdout_days]
    probe_rows = _read(ctx, dataset, [*RAW_INPUTS, "product_id", "product_name", "product_clicks_7d"],
                       filters=[("day", ">=", cut)]).head(int(ctx.config["probe_rows"]))
    probe = [{k: _native(v) for k, v in row.items()} for row in probe_rows.to_dict("records")]
    return {"split": {"holdout_from": str(cut), "train_days": [str(d) for d in days[:-holdout_days]],
                      "holdout_days": [str(d) for d in days[-holdout_days:]], "probe": probe,
                      "distribution": f"time-ordered holdout from {cut}"}}


V2_INPUTS = {"user_id": "string", "product_id": "string", "product_name": "string", "product_clicks_7d": "int"}


def _features(ctx: StepContext, dataset: dict[str, Any], split_: dict[str, Any], part: str,
              extra: tuple[str, ...] = (), transform: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Features (the transform's vectorized form) and the kept columns of the train or holdout part.

    ``ctr_features_v2`` needs each shopper's click history, so it reads every day and adds the
    point-in-time affinities (clicks strictly before each impression's day) before cutting the part.
    """
    name = transform or ctx.config.get("transform", TRANSFORM)
    if name not in FRAME_TRANSFORMS:
        raise InvalidInput(f"transform={name!r} is not valid; known: {', '.join(FRAME_TRANSFORMS)}.")
    cut = pd.Timestamp(split_["holdout_from"]).date()
    columns = list(dict.fromkeys([*RAW_INPUTS, "position", LABEL, *extra]))
    if name == "ctr_features_v2":
        frame = _read(ctx, dataset, list(dict.fromkeys([*columns, *V2_INPUTS, "day"])))
        frame = add_user_affinity(frame)
        frame = frame[(frame["day"] < cut) if part == "train" else (frame["day"] >= cut)].reset_index(drop=True)
    else:
        frame = _read(ctx, dataset, columns, filters=[("day", "<" if part == "train" else ">=", cut)])
    return FRAME_TRANSFORMS[name](frame), frame[list(dict.fromkeys([LABEL, *extra]))]


def _production(ctx: StepContext) -> Any:
    try:
        return ModelRegistry(ctx.workspace).resolve(ctx.config["model"], "production")
    except (ModelNotFound, AliasNotFound):
        return None


def train(ctx: StepContext, dataset: dict[str, Any], split: dict[str, Any]) -> dict[str, Any]:
    trainer = make_trainer(ctx.config["trainer"], **ctx.config["trainer_params"])
    features, kept = _features(ctx, dataset, split, "train")
    init = None
    production = _production(ctx) if ctx.config["warm_start"] else None
    if production is not None and production.params.get("trainer") == trainer.name:
        artifact = ctx.workspace.artifacts.get_bytes(production.artifact_sha256)
        init = TrainedModel(artifact, production.artifact_format, trainer.name, params=production.params)
        ctx.log(f"warm start from {production.ref}")
    model = trainer.fit(features, kept[LABEL].to_numpy(), seed=ctx.seed, init=init, dask_client=ctx.dask_client)
    ctx.count_rows(len(features))
    ctx.metric("training_rows_per_s", model.training.get("rows_per_s"))
    return {"model": TrainedModel(
        artifact=model.artifact, artifact_format=model.artifact_format, trainer=model.trainer,
        params=model.params | {"trainer": model.trainer},
        signature={"inputs": RAW_INPUTS | (V2_INPUTS if ctx.config["transform"] == "ctr_features_v2" else {}),
                   "output": "click probability", "transform": ctx.config["transform"]},
        training=model.training, probe=split["probe"])}


def _score(predictor: Any, features: pd.DataFrame) -> np.ndarray:
    records = features.astype({c: object for c in features.columns if features[c].dtype == "category"})
    return np.asarray(predictor.predict_proba(records.to_dict("records")), dtype=float)


def _auc(y: np.ndarray, scores: np.ndarray) -> float | None:
    return float(roc_auc_score(y, scores)) if len(np.unique(y)) == 2 else None


def evaluate(ctx: StepContext, model: TrainedModel, dataset: dict[str, Any], split: dict[str, Any],
             truth: dict[str, Any]) -> dict[str, Any]:
    """Score the holdout through the serving path (the predictor on transformed dicts)."""
    predictor = load_predictor(model.artifact, model.artifact_format)
    features, kept = _features(ctx, dataset, split, "holdout", ("product_id", "impression_id"))
    scores = _score(predictor, features)
    y = kept[LABEL].to_numpy()
    clipped = np.clip(scores, 1e-7, 1 - 1e-7)
    cut = pd.Timestamp(split["holdout_from"]).date()
    history = _read(ctx, dataset, ["product_id", LABEL], filters=[("day", "<", cut)])
    popularity = history.groupby("product_id", observed=True)[LABEL].mean()
    baseline = kept["product_id"].astype(object).map(popularity).astype(float).fillna(
        float(history[LABEL].mean())).to_numpy()
    report: dict[str, Any] = {
        "distribution": f"time-ordered holdout: {split['holdout_days'][0]} to {split['holdout_days'][-1]} "
                        f"({len(y)} impressions)",
        "auc": _auc(y, scores), "log_loss": float(log_loss(y, clipped, labels=[0, 1])),
        "brier": float(brier_score_loss(y, scores)), "mean_prediction": float(scores.mean()),
        "ctr": float(y.mean()), "bias": float(scores.mean() - y.mean()), "prediction_std": float(scores.std()),
        "auc_popularity": _auc(y, baseline), "n": len(y),
    }
    if truth.get("id"):
        truth_frame = _read(ctx, truth, ["impression_id", "p_click"], filters=[("day", ">=", cut)])
        p = kept[["impression_id"]].astype(object).merge(truth_frame, on="impression_id", how="left")["p_click"]
        report["auc_oracle"] = _auc(y, p.to_numpy()) if not p.isna().any() else None
    production = _production(ctx)
    if production is not None and production.signature.get("transform") == TRANSFORM:
        prod_predictor = ModelRegistry(ctx.workspace).load(production)
        report["auc_production"] = _auc(y, _score(prod_predictor, features))
        report["production_version"] = production.version
    for key in ("auc", "auc_popularity", "auc_oracle", "auc_production"):
        if report.get(key) is not None:
            ctx.metric(f"{key}_holdout", report[key])
    ctx.count_rows(len(y))
    return {"report": report}


def gate(ctx: StepContext, report: dict[str, Any]) -> dict[str, Any]:
    cfg = ctx.config
    reasons: list[str] = []
    auc = report.get("auc")
    if auc is None:
        reasons.append(f"AUC is undefined on {report['distribution']}: the holdout has one label value only.")
    else:
        if auc < cfg["min_auc"]:
            reasons.append(f"auc {auc:.4f} < min_auc {cfg['min_auc']} on {report['distribution']}.")
        pop = report.get("auc_popularity")
        if pop is not None and auc < pop + cfg["min_lift_over_popularity"]:
            reasons.append(f"auc {auc:.4f} does not beat the popularity baseline {pop:.4f} "
                           f"+ {cfg['min_lift_over_popularity']}: a simpler model is better.")
        prod = report.get("auc_production")
        if prod is not None and auc < prod - cfg["max_regression_vs_production"]:
            reasons.append(f"auc {auc:.4f} < production v{report['production_version']} {prod:.4f} - "
                           f"{cfg['max_regression_vs_production']}: retrain, or raise max_regression_vs_production "
                           "if the drop is intended.")
    blessed = not reasons
    ctx.metric("blessed", blessed)
    return {"verdict": {"blessed": blessed, "reasons": reasons}}


def register(ctx: StepContext, model: TrainedModel, report: dict[str, Any], verdict: dict[str, Any],
             dataset: dict[str, Any]) -> dict[str, Any]:
    from yarnit.core.hashing import sha256_bytes
    from yarnit.registry import ArtifactFormat

    registry = ModelRegistry(ctx.workspace)
    name = ctx.config["model"]
    sha = sha256_bytes(model.artifact)
    # Identical bytes are the same model: reuse the version (a cached rerun, or a resume after a crash
    # between registering and recording this step) instead of registering a duplicate.
    existing = [v for v in (registry.versions(name) if registry.exists(name) else []) if v.artifact_sha256 == sha]
    metrics = {k: v for k, v in report.items() if isinstance(v, int | float | str | type(None))}
    metrics |= {"auc_holdout": report.get("auc"), "blessed": verdict["blessed"], "gate_reasons": verdict["reasons"],
                "training": model.training}
    if existing:
        version = existing[-1]
    else:
        version = registry.register(
            name, model.artifact, ArtifactFormat(model.artifact_format), signature=model.signature | {
                "probe": model.probe}, metrics=metrics, params=model.params, dataset_version_ids=[dataset["id"]],
            run_id=ctx.run_id, code_version=RunStore(ctx.workspace).get(ctx.run_id).code_version, seed=ctx.seed, description="Yarn Product Click Prediction Model")
    promoted = False
    if verdict["blessed"] and ctx.config["promote"]:
        if registry.aliases(name).get("production") != version.version:
            registry.promote(name, version.version, actor=f"pipeline:{ctx.run_id}",
                             reason=f"blessed by gate: auc {report.get('auc')}")
        promoted = True
    ctx.metric("model_version", version.version)
    return {"model_version": {"model": name, "version": version.version, "id": version.id, "promoted": promoted}}


def ctr_pipeline() -> Pipeline:
    """The click model's pipeline with its default configuration."""
    return Pipeline(
        "yarnit-ctr",
        [
            Step("select", select, outputs={"dataset": ValueKind.REF, "truth": ValueKind.REF}, retries=2,
                 reuse_in_reproduction=True),
            Step("validate", validate, inputs={"dataset": "select.dataset"}, outputs={"report": ValueKind.REPORT}),
            Step("split", split, inputs={"dataset": "select.dataset"}, outputs={"split": ValueKind.REPORT}),
            Step("train", train, inputs={"dataset": "select.dataset", "split": "split.split"},
                 outputs={"model": ValueKind.MODEL}),
            Step("evaluate", evaluate, inputs={"model": "train.model", "dataset": "select.dataset",
                                              "split": "split.split", "truth": "select.truth"},
                 outputs={"report": ValueKind.REPORT}, cacheable=False),
            Step("gate", gate, inputs={"report": "evaluate.report"}, outputs={"verdict": ValueKind.REPORT},
                 cacheable=False),
            Step("register", register, inputs={"model": "train.model", "report": "evaluate.report",
                                              "verdict": "gate.verdict", "dataset": "select.dataset"},
                 outputs={"model_version": ValueKind.REF}, cacheable=False),
        ],
        config=DEFAULTS,
        description="Yarn Product Click Prediction Model: world → dataset → features → model → gate → registry",
    )


__all__ = ["DEFAULTS", "LABEL", "RAW_INPUTS", "TRANSFORM", "BlockingAnomalies", "ctr_pipeline"]
