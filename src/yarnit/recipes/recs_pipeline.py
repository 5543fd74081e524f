"""The five recommenders as a training pipeline (``yarnit pipeline run yarnit-recs``).

select → split → train → evaluate → gate → register

* select: simulate the YarnIt world (or take a recorded impression log) and
  record its interactions (clicks and purchases) and the newest catalog as
  dataset versions. ``user_id`` is PII there, as in the impression log.
* split: the last day is the holdout, so no future leaks into training.
* train: fit all five recommenders on the training days and pack them, with
  the catalog they saw, into one ``yarnit-recs-npz`` artifact (numpy arrays
  read with ``allow_pickle=False`` and a JSON manifest; never a pickle).
* evaluate: load the artifact back from its bytes (what serving will load)
  and score every recommender's top-k on what each user clicked in the
  holdout: precision@k, recall@k, NDCG@k, catalog coverage and novelty. The
  report is stored with lineage, each recommender as a subject.
* gate: absolute sanity for every recommender (finite metrics in range, some
  coverage, enough users evaluated, the best NDCG above a floor), and each
  recommender other than ``popular`` must not be below popularity on at least
  one offline metric (``vs_popular_metrics``). Those that pass are the ones
  the ranker may generate candidates from; ``popular`` always stays, as the
  universal fallback.
* register: record the version with its lineage and the blessed list in its
  signature; promote it when blessed.
"""

from __future__ import annotations

import math
import time
from typing import Any

import pandas as pd

from yarnit.core.errors import InvalidInput
from yarnit.data import Datasets
from yarnit.data.restricted import read_compliant
from yarnit.registry import ArtifactFormat, ModelRegistry
from yarnit.training import Param, Pipeline, RunStore, Step, StepContext, TrainedModel, ValueKind

from .common import promote_and_report, registered_version
from .recommenders import CATALOG_FIELDS, RECOMMENDERS, RecommenderSet, score_recommenders

METRICS = ("precision_at_k", "recall_at_k", "ndcg_at_k", "coverage", "novelty")

DEFAULTS: dict[str, Any] = {
    "model": "yarnit-recs",
    "source": "world",  # or "dataset": derive interactions from an impression log dataset version
    "dataset": "yarnit-impressions",  # with source=dataset
    "dataset_version": None,
    "interactions_dataset": "yarnit-interactions",
    "catalog_dataset": "yarnit-catalog",
    "days": 4,
    "world_seed": 0,
    "sessions_per_day": 1500,
    "n_users": 10_000,
    "holdout_days": 1,
    "recommenders": list(RECOMMENDERS),
    "params": {"collaborative": {"factors": 32, "seed": 0}, "cross_sell": {"upsell_weight": 0.2}},
    "k": 10,
    "min_eval_users": 20,
    "min_best_ndcg": 0.001,  # the set must find something: the best recommender's NDCG@k is above this
    "vs_popular_metrics": list(METRICS),  # a recommender must not be below popularity on at least one of these
    "golden_users": 8,
    "promote": True,
}

PARAMS = (
    Param("model", str, "registered model name"),
    Param("source", str, "where the interactions come from", choices=("world", "dataset")),
    Param("dataset", str, "with source=dataset: the impression log's dataset name"),
    Param("dataset_version", int | None, "with source=dataset: a version number, or null for the newest", ge=1),
    Param("interactions_dataset", str, "dataset name of the recorded interactions"),
    Param("catalog_dataset", str, "dataset name of the recorded catalog"),
    Param("days", int, "days of world data", ge=2, le=3660),
    Param("world_seed", int, "seed of the simulated world", ge=0),
    Param("sessions_per_day", int, "world sessions per day", ge=1, le=10_000_000),
    Param("n_users", int, "shoppers in the world", ge=1),
    Param("holdout_days", int, "days held out for evaluation", ge=1),
    Param("recommenders", list[str], f"recommenders to train, of: {', '.join(RECOMMENDERS)}"),
    Param("params", dict[str, dict[str, Any]], "per-recommender parameters"),
    Param("k", int, "k of precision/recall/NDCG@k", ge=1),
    Param("min_eval_users", int, "least shoppers evaluated", ge=1),
    Param("min_best_ndcg", float, "gate: the best recommender's least NDCG@k", ge=0, le=1),
    Param("vs_popular_metrics", list[str], f"metrics compared with popularity, of: {', '.join(METRICS)}"),
    Param("golden_users", int, "shoppers of the golden set", ge=0),
    Param("promote", bool, "promote a blessed model to production"),
)


# --- steps -------------------------------------------------------------------
def select(ctx: StepContext) -> dict[str, Any]:
    """Interactions (clicks, purchases) and the newest catalog, recorded as dataset versions."""
    cfg = ctx.config
    datasets = Datasets(ctx.workspace)
    if cfg["source"] == "dataset":
        log = read_compliant(ctx.workspace, datasets.get(cfg["dataset"], cfg.get("dataset_version"))).to_pandas()
        interactions, catalog = _from_impressions(log)
        source = f"interactions of {cfg['dataset']}"
    elif cfg["source"] == "world":
        from yarnit.world import World, WorldConfig

        from .recommenders import interactions_from_world

        world = World(WorldConfig(seed=int(cfg["world_seed"]), sessions_per_day=int(cfg["sessions_per_day"]),
                                  n_users=int(cfg["n_users"])))
        parts = []
        for partition in world.run(int(cfg["days"])):
            parts.append(partition)
            ctx.log(f"world day {partition.day}: {len(partition.clicks)} clicks, "
                    f"{len(partition.purchases)} purchases")
        interactions, catalog = interactions_from_world(parts)
        source = (f"yarnit world seed={cfg['world_seed']} days={cfg['days']} sessions/day={cfg['sessions_per_day']} "
                  f"users={cfg['n_users']}")
    else:
        raise InvalidInput(f"source={cfg['source']!r} is not valid; use 'world' or 'dataset'.")
    version = datasets.ingest_frame(cfg["interactions_dataset"], interactions, source=source, run_id=ctx.run_id,
                                    retention_class="events", pii_columns=["user_id"])
    products = datasets.ingest_frame(cfg["catalog_dataset"], catalog[list(CATALOG_FIELDS)].reset_index(drop=True),
                                     source=f"catalog beside {version.ref}", run_id=ctx.run_id)
    ctx.count_rows(len(interactions))
    return {"interactions": {"id": version.id, "ref": version.ref},
            "catalog": {"id": products.id, "ref": products.ref}}


def _from_impressions(log: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Clicks and purchases of an impression log as interactions, and each product's newest served values."""
    missing = [c for c in ("user_id", "product_id", "session_id", "day", "clicked", "purchased", *CATALOG_FIELDS)
               if c not in log.columns]
    if missing:
        raise InvalidInput(f"The impression log lacks columns {missing}; record it with the yarnit-ctr pipeline.")
    keys = ["user_id", "product_id", "session_id", "day"]
    interactions = pd.concat([log.loc[log["clicked"].astype(bool), keys].assign(kind="click"),
                              log.loc[log["purchased"].astype(bool), keys].assign(kind="purchase")],
                             ignore_index=True)
    catalog = log.sort_values("day").drop_duplicates("product_id", keep="last")
    return interactions, catalog[list(CATALOG_FIELDS)].reset_index(drop=True)


def _load(ctx: StepContext, ref: dict[str, Any]) -> pd.DataFrame:
    datasets = Datasets(ctx.workspace)
    frame = read_compliant(ctx.workspace, datasets.get_by_id(ref["id"])).to_pandas()
    for column in ("user_id", "product_id", "session_id", "kind", "product_name", "product_type", "fiber",
                   "weight_class", "color", "brand"):
        if column in frame.columns:
            frame[column] = frame[column].astype(object)
    return frame


def split(ctx: StepContext, interactions: dict[str, Any]) -> dict[str, Any]:
    days = sorted(_load(ctx, interactions)["day"].unique())
    holdout = int(ctx.config["holdout_days"])
    if len(days) <= holdout:
        raise InvalidInput(f"A time-ordered holdout of {holdout} day(s) needs more days of interactions; got "
                           f"{len(days)}. Generate more days (days=3 or more).")
    cut = days[-holdout]
    return {"split": {"holdout_from": str(cut), "train_days": [str(d) for d in days[:-holdout]],
                      "holdout_days": [str(d) for d in days[-holdout:]],
                      "distribution": f"time-ordered holdout from {cut}"}}


def _parts(ctx: StepContext, interactions: dict[str, Any], split_: dict[str, Any]
           ) -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = _load(ctx, interactions)
    cut = pd.Timestamp(split_["holdout_from"]).date()
    day = pd.to_datetime(frame["day"]).dt.date
    return frame[day < cut].reset_index(drop=True), frame[day >= cut].reset_index(drop=True)


def train(ctx: StepContext, interactions: dict[str, Any], catalog: dict[str, Any],
          split: dict[str, Any]) -> dict[str, Any]:
    cfg = ctx.config
    started = time.perf_counter()
    train_part, holdout = _parts(ctx, interactions, split)
    products = _load(ctx, catalog)
    names = list(cfg["recommenders"])
    recs = RecommenderSet.fit(train_part, products, names=names, params=cfg["params"],
                              meta={"trained_on": split["train_days"]})
    artifact = recs.to_bytes()
    seconds = time.perf_counter() - started
    # golden requests: a few holdout users (and one nobody knows); the runtime checks these answers at load
    users = [str(u) for u in holdout["user_id"].drop_duplicates().head(int(cfg["golden_users"]))] + ["u-unknown"]
    probe = [{"user_id": u, "k": int(cfg["k"])} for u in users]
    golden = [{"instance": p, "items": s["items"]} for p, s in zip(probe, recs.rank(probe), strict=True)]
    ctx.count_rows(len(train_part))
    ctx.log(f"fitted {', '.join(names)} on {len(train_part)} interactions in {seconds:.2f} s")
    signature = {"output": "ranking", "inputs": {"user_id": "string", "k": "int", "recommender": "string"},
                 "recommenders": names, "golden": golden, "pii": ["user_id"],
                 "fallback": {"kind": "ranking", "popular": recs.popular(100)}}
    return {"model": TrainedModel(
        artifact=artifact, artifact_format=ArtifactFormat.RECS_NPZ, trainer="recommenders",
        params={"recommenders": names, "params": cfg["params"]}, signature=signature,
        training={"rows": len(train_part), "seconds": seconds, "items": len(products)}, probe=probe)}


def evaluate(ctx: StepContext, model: TrainedModel, interactions: dict[str, Any], catalog: dict[str, Any],
             split: dict[str, Any]) -> dict[str, Any]:
    """Every recommender's top-k on the holdout, from the artifact's bytes; stored as an evaluation."""
    from yarnit.core.hashing import sha256_bytes
    from yarnit.evaluation import EvaluationReport, EvaluationStore, MetricValue, time_ordered_holdout

    cfg = ctx.config
    k = int(cfg["k"])
    recs = RecommenderSet.from_bytes(model.artifact)  # the bytes serving will load, not the fitted objects
    train_part, holdout = _parts(ctx, interactions, split)
    products = _load(ctx, catalog)
    scores = score_recommenders(recs.models, train_part, holdout, products, k=k)
    days = split["holdout_days"]
    users = scores[0].users if scores else 0
    distribution = time_ordered_holdout(days[0], days[-1], rows=users, unit="users",
                                        dataset_version_ids=[interactions["id"]])
    values = [MetricValue(metric, distribution.name, getattr(s, metric), subject=s.name, n=s.users)
              for s in scores for metric in METRICS]
    sha = sha256_bytes(model.artifact)
    evaluation = EvaluationReport(cfg["model"], {"artifact_sha256": sha, "format": model.artifact_format.value,
                                                 "trainer": model.trainer}, (distribution,), tuple(values),
                                  run_id=ctx.run_id, dataset_version_ids=(interactions["id"],),
                                  notes=(f"top-{k} of each recommender against the items each user clicked in the "
                                         "holdout; subjects are the recommenders",))
    stored = EvaluationStore(ctx.workspace).add(evaluation)
    table = {s.name: {metric: getattr(s, metric) for metric in METRICS} | {"users": s.users} for s in scores}
    for name, row in table.items():
        ctx.metric(f"{name}.ndcg_at_k", row["ndcg_at_k"])
    ctx.count_rows(len(holdout))
    return {"report": {"k": k, "distribution": distribution.description, "users": users, "scores": table,
                       "evaluation_id": stored.id}}


def _sane(name: str, row: dict[str, Any], min_users: int) -> list[str]:
    problems = []
    for metric in METRICS:
        value = row.get(metric)
        if value is None or not math.isfinite(value):
            problems.append(f"{metric} is {value!r}, not a finite number")
    for metric in ("precision_at_k", "recall_at_k", "ndcg_at_k", "coverage"):
        value = row.get(metric)
        if value is not None and math.isfinite(value) and not 0.0 <= value <= 1.0:
            problems.append(f"{metric} {value:.4f} is outside [0, 1]")
    if not row.get("coverage"):
        problems.append("it recommends no catalog item at all (coverage 0)")
    if row.get("users", 0) < min_users:
        problems.append(f"only {row.get('users', 0)} holdout users were evaluated (< min_eval_users {min_users})")
    return [f"{name}: {p}" for p in problems]


def gate(ctx: StepContext, report: dict[str, Any]) -> dict[str, Any]:
    """Bless the set (and list the recommenders the ranker may use), giving every reason as a sentence."""
    cfg = ctx.config
    table: dict[str, dict[str, Any]] = report["scores"]
    if "popular" not in table:
        raise InvalidInput("The evaluation has no 'popular' recommender; it is the baseline and the fallback.")
    base = table["popular"]
    reasons: list[str] = []
    per: dict[str, dict[str, Any]] = {}
    compared = [m for m in cfg["vs_popular_metrics"] if m in METRICS]
    for name, row in table.items():
        problems = _sane(name, row, int(cfg["min_eval_users"]))
        if name != "popular" and not problems:
            wins = [m for m in compared if row[m] >= base[m]]
            if not wins:
                problems.append(f"{name}: below popularity on every compared metric ("
                                + ", ".join(f"{m} {row[m]:.4f} < {base[m]:.4f}" for m in compared) + ")")
        per[name] = {"blessed": not problems, "reasons": problems}
        reasons.extend(problems)
    best = max(table, key=lambda n: table[n]["ndcg_at_k"] if per[n]["blessed"] else -1.0)
    blessed = per["popular"]["blessed"]
    if table[best]["ndcg_at_k"] <= float(cfg["min_best_ndcg"]):
        blessed = False
        reasons.append(f"the best recommender ({best}) has NDCG@{report['k']} {table[best]['ndcg_at_k']:.4f} <= "
                       f"min_best_ndcg {cfg['min_best_ndcg']}: the set finds nothing users click")
    if not per["popular"]["blessed"]:
        reasons.append("popular, the universal fallback, is not sane: the set cannot be served")
    serving = [n for n in table if per[n]["blessed"]]
    if blessed:
        reasons.insert(0, f"blessed: {', '.join(serving)} may generate candidates; best NDCG: {best}")
    for reason in reasons:
        ctx.log(f"gate: {reason}")
    ctx.metric("blessed", blessed)
    return {"verdict": {"blessed": blessed, "reasons": reasons, "recommenders": per, "serving": serving,
                        "best": best, "evaluation_id": report.get("evaluation_id")}}


def register(ctx: StepContext, model: TrainedModel, report: dict[str, Any], verdict: dict[str, Any],
             interactions: dict[str, Any], catalog: dict[str, Any]) -> dict[str, Any]:
    registry = ModelRegistry(ctx.workspace)
    name = ctx.config["model"]
    version = registered_version(registry, name, model.artifact)
    if version is None:
        signature = model.signature | {"serving": verdict["serving"], "best": verdict["best"]}
        metrics = {"k": report["k"], "scores": report["scores"], "blessed": verdict["blessed"],
                   "gate_reasons": verdict["reasons"], "evaluation_id": report.get("evaluation_id"),
                   "training": model.training}
        version = registry.register(
            name, model.artifact, ArtifactFormat.RECS_NPZ, signature=signature, metrics=metrics, params=model.params,
            dataset_version_ids=[interactions["id"], catalog["id"]], run_id=ctx.run_id,
            code_version=RunStore(ctx.workspace).get(ctx.run_id).code_version, seed=ctx.seed,
            description="YarnIt recommenders (popular, browsing, cross-sell, content, collaborative)")
    return promote_and_report(ctx, registry, version, verdict,
                              f"blessed by gate: {verdict['reasons'][0] if verdict['reasons'] else ''}")


def recs_pipeline() -> Pipeline:
    """The recommenders' pipeline with its default configuration."""
    return Pipeline(
        "yarnit-recs",
        [
            Step("select", select, outputs={"interactions": ValueKind.REF, "catalog": ValueKind.REF}, retries=2,
                 reuse_in_reproduction=True),
            Step("split", split, inputs={"interactions": "select.interactions"}, outputs={"split": ValueKind.REPORT}),
            Step("train", train, inputs={"interactions": "select.interactions", "catalog": "select.catalog",
                                         "split": "split.split"}, outputs={"model": ValueKind.MODEL}),
            Step("evaluate", evaluate, inputs={"model": "train.model", "interactions": "select.interactions",
                                               "catalog": "select.catalog", "split": "split.split"},
                 outputs={"report": ValueKind.REPORT}),
            Step("gate", gate, inputs={"report": "evaluate.report"}, outputs={"verdict": ValueKind.REPORT},
                 cacheable=False),
            Step("register", register, inputs={"model": "train.model", "report": "evaluate.report",
                                               "verdict": "gate.verdict", "interactions": "select.interactions",
                                               "catalog": "select.catalog"},
                 outputs={"model_version": ValueKind.REF}, cacheable=False),
        ],
        config=DEFAULTS,
        params=PARAMS,
        description="YarnIt recommenders: world → interactions → five recommenders → offline evaluation → gate "
                    "→ registry",
    )


__all__ = ["DEFAULTS", "METRICS", "PARAMS", "recs_pipeline"]
