"""The Yarn Product Click Prediction Model as a training pipeline (``yarnit pipeline run yarnit-ctr``).

select → (reference) → validate → split → golden → tune → train → (baseline) → evaluate → gate → register

* select: simulate the YarnIt world (or take a recorded dataset) and record
  the impression log as a dataset version. The ground-truth click
  probabilities go to a separate dataset, used for scoring and never as
  features.
* validate: check each day of the log before training against the curated
  schema (types, ranges, domains; :mod:`.impressions_schema`) and an average
  day of the previous training data (volume, per-slice volume: biased loss,
  ch. 7; distribution change: an upstream unit change, ch. 3), plus label
  sanity (ch. 15, case 5: an implausible positive rate is rejected).
  reference names that previous training data (never cached; it keys
  validate's cache, as baseline keys evaluate's).
* split: the last day is the holdout, so no future leaks into training. A
  probe of raw holdout requests travels with the model (golden requests).
* golden: the golden-data prober (:mod:`.golden_records`): six known records
  through this run's ingest, validation, split and features; each must come
  out exactly as computed by hand, or the run fails here, before training.
* tune: fit the trainer on a small grid of its regularisation (:mod:`.tuning`) on the earlier training
  days, score each on the last training day (never the holdout), and record whether the configured values
  are the best or indistinguishable from it (ML Test Score model.3). It never changes what train fits.
* train: compute ``ctr_features_v1`` on the training days with its vectorized
  twin and run the configured trainer (logistic, hist_gbm or lightgbm), warm
  started from production when asked. Features are recomputed from the
  dataset, not stored, which is cheaper than writing and reading them back;
  they come in chunks of ``CHUNK_ROWS`` rows that the trainer encodes into a
  matrix allocated once (issue 20: memory does not hold the whole frame).
* baseline: which version holds ``production`` now (never cached; it keys
  evaluate's cache, so an unchanged pipeline reuses its evaluation until
  production moves).
* evaluate: yarnit.evaluation on named distributions (time-ordered holdout with
  slices, fairness, ranking and calibration; stress sets; the golden set),
  against production, the popularity baseline and the ground-truth oracle,
  with bootstrap intervals; the validity check loads the candidate in the
  serving runtime in a separate process. The report is stored with lineage.
* gate: bless or refuse with the standard and configured gates, giving every
  reason.
* register: record the version with its lineage; promote it if it is blessed
  and promotion is enabled.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import Field

from yarnit.core.atomic import make_dirs
from yarnit.core.errors import InvalidInput
from yarnit.data import Datasets
from yarnit.data.restricted import columns_to_read, compliant_table, restrictions_of
from yarnit.features.request_time_frame import FRAME_TRANSFORMS
from yarnit.features.shopper_history import history_features
from yarnit.registry import AliasNotFound, ModelNotFound, ModelRegistry, load_predictor
from yarnit.serving.inputs import policy_from_training
from yarnit.training import Param, Pipeline, RunStore, Step, StepContext, TrainedModel, ValueKind
from yarnit.training.chunks import FeatureChunks, narrow, release_memory
from yarnit.training.trainers import TRAINERS, check_dask_trainer, make_trainer

from .affinity import HISTORY_TRANSFORMS, add_user_affinity
from .common import HoldoutComparison, promote_and_report, registered_version
from .impressions_schema import ValidationOverrides
from .tuning import DEFAULT_GRIDS

TRANSFORM = "ctr_features_v1"
LABEL = "clicked"
RAW_INPUTS = {
    "country": "string", "language": "string", "device": "string", "product_type": "string", "fiber": "string",
    "weight_class": "string", "color": "string", "brand": "string", "is_partner": "bool", "in_stock": "bool",
    "price_usd": "double", "discount": "double", "user_price_sensitivity": "double", "hour": "int",
    "day_of_week": "int", "query": "string",
}
REQUIRED = (*RAW_INPUTS, "position", "day", "product_id", "impression_id", LABEL)
SERVING_FIXED = {"position": 1}  # training features every scoring path sets to a constant (see the model card)

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
    "transform": TRANSFORM,  # or "ctr_features_v2" (adds product appeal, shopper tastes, query-name match), or
    # "ctr_features_v3" (adds local hour, query-type mismatch, price per product type, smoothed shopper history)
    "trainer": "logistic",
    "trainer_params": {},
    "warm_start": False,
    # tune: a grid per trainer (trainer keyword -> values, the configured value added), the training days scored
    # (the last of the training days; never the holdout) and the rows fitted at most (the newest)
    "tuning": {"grids": DEFAULT_GRIDS, "validation_days": 1, "max_rows": 20_000,
               "tolerance": 0.0005},
    "positive_rate_band": [0.005, 0.5],
    "removed": [],  # [time_column, start, end] windows left out of the data (remove_bad_data): less volume expected
    "validation": {},  # overrides of the curated schema's thresholds (see PARAMS)
    "min_auc": 0.6,
    "min_lift_over_popularity": 0.0,
    "max_regression_vs_production": 0.01,
    "promote": True,
    "probe_rows": 64,
    # evaluate and gate (yarnit.evaluation); the scalar keys above feed the standard gates
    "slices": ["country", "language", "device", "product_type", "is_partner"],
    "fairness_groups": ["language"],  # fairness by site language (a proxy for nationality)
    "fairness_threshold": 0.1,  # a product counts as "selected" when its predicted CTR is at least this
    "ranking_k": 5,  # precision/recall/NDCG@k over each session's slate
    "bootstrap_resamples": 1000,
    "golden_rows": 2000,
    "new_product_days": 30,
    "validity": {"max_memory_mb": 1024, "max_latency_ms": 50, "min_prediction_std": 0.001, "tolerance": 1e-6},
    "gates": [
        {"name": "auc_per_slice_vs_production", "kind": "change", "metric": "auc", "slice": "*",
         "max_regression": 0.02, "significant": True, "min_rows": 200, "min_positives": 10},
        {"name": "log_loss_vs_production", "kind": "change", "metric": "log_loss", "max_regression": 0.005,
         "significant": True},
        {"name": "golden_auc_vs_production", "kind": "change", "metric": "auc", "distribution": "golden",
         "max_regression": 0.02, "significant": True, "required": False},
        {"name": "slice_coverage", "kind": "coverage", "slice": "*", "min_share": 0.02, "min_ratio": 0.5},
    ],
    "card": {
        "owner": "YarnIt search and discovery team",
        "description": "Yarn Product Click Prediction Model: the probability that a shopper clicks a product "
                       "shown on a search or browse page.",
        "intended_use": "Order YarnIt products on search and browse pages by predicted click probability.",
        "out_of_scope": "Pricing, stock or credit decisions; anything about a shopper beyond ranking products.",
        "use_case": "Ranks products for one shopper's page; it decides order, never whether a product is "
                    "available to anyone.",
        "data_consent": "Impressions and clicks of yarnit.ai shoppers under the store's terms; user_id is PII, "
                        "never a feature, and deletion requests are honoured (yarnit data forget).",
        "training_intervention": "None: no re-weighting or fairness constraint. Position is a training feature "
                                 "to absorb position bias and is fixed to 1 when scoring, online and in batch.",
        "user_recourse": "Every product stays reachable through search and category browsing whatever its "
                         "score; complaints reach the store's support team.",
    },
}


PARAMS = (
    Param("model", str, "registered model name"),
    Param("dataset", str, "dataset name of the impression log"),
    Param("source", str, "where the data comes from", choices=("world", "dataset")),
    Param("days", int, "days of world data (the last holdout_days are the holdout)", ge=1, le=3660),
    Param("world_seed", int, "seed of the simulated world", ge=0),
    Param("sessions_per_day", int, "world sessions per day", ge=1, le=10_000_000),
    Param("faults", list[str], "world fault specs NAME@DAY[:HOURS][,k=v] (see: yarnit world faults)"),
    Param("dataset_version", int | None, "with source=dataset: a version number, or null for the newest", ge=1),
    Param("holdout_days", int, "days held out for evaluation", ge=1),
    Param("transform", str, "feature transform", choices=tuple(FRAME_TRANSFORMS)),
    Param("trainer", str, "trainer", choices=tuple(TRAINERS)),
    Param("trainer_params", dict[str, Any], "keyword arguments of the trainer"),
    Param("warm_start", bool, "continue from production's model when the trainer matches"),
    Param("tuning", dict[str, Any], "tune step: grids per trainer, validation_days, max_rows, tolerance (log loss)"),
    Param("positive_rate_band", Annotated[list[float], Field(min_length=2, max_length=2)],
          "[low, high] plausible click rate"),
    Param("removed", list[Annotated[list[str], Field(min_length=3, max_length=3)]],
          "[time_column, start, end] windows removed from the data on purpose (remove_bad_data); validation expects "
          "a day's volume in proportion to the hours of it that were kept"),
    Param("validation", ValidationOverrides, "thresholds of the curated impression schema to relax "
          "(volume_max_drop, slice_max_drop, slice_min_rows, drift_threshold, slices)"),
    Param("min_auc", float, "gate: least holdout AUC", ge=0, le=1),
    Param("min_lift_over_popularity", float, "gate: least AUC lift over the popularity baseline"),
    Param("max_regression_vs_production", float, "gate: largest AUC drop vs production", ge=0),
    Param("promote", bool, "promote a blessed model to production"),
    Param("probe_rows", int, "raw holdout requests kept with the model", ge=0),
    Param("slices", list[str], "evaluation slices (column or column=value)"),
    Param("fairness_groups", list[str], "columns whose groups are compared for fairness"),
    Param("fairness_threshold", float, "predicted CTR at which a product counts as selected", ge=0, le=1),
    Param("ranking_k", int, "k of precision/recall/NDCG@k", ge=1),
    Param("bootstrap_resamples", int, "bootstrap resamples of the intervals", ge=0),
    Param("golden_rows", int, "rows of the golden set", ge=1),
    Param("new_product_days", int, "a product listed less than this many days ago is new", ge=0),
    Param("validity", dict[str, Any], "budget of the serving-runtime validity check"),
    Param("gates", list[dict[str, Any]], "configured gates (yarnit.evaluation)"),
    Param("card", dict[str, Any], "model card fields"),
)


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
    source = (f"yarnit world seed={cfg['world_seed']} days={cfg['days']} sessions/day={cfg['sessions_per_day']}"
              + (f" faults={','.join(cfg['faults'])}" if cfg["faults"] else ""))
    # One day at a time (issue 20): each simulated day goes to a staging Parquet file, then the days stream into
    # the dataset version, so memory holds one day of the log, not all of it. Staging first lets a column that
    # appears part-way (an upstream rename) or is all missing on some day take one type across the days, as
    # converting the concatenated log did.
    staging = make_dirs(ctx.workspace.artifacts.root / "staging")
    stem = f"ctr-{os.getpid()}-{os.urandom(6).hex()}"  # our pid in the name: recover() removes them if we are killed
    truth_path = staging / f"{stem}-truth.parquet"
    rows = 0
    try:
        schemas: list[pa.Schema] = []
        with _TruthFile(truth_path) as truths:
            for partition in world.run(int(cfg["days"])):
                table = pa.Table.from_pandas(partition.impressions, preserve_index=False)
                pq.write_table(table, staging / f"{stem}-day-{partition.index:05d}.parquet")
                schemas.append(table.schema)
                # user_id travels with the truth so a deletion request finds the subject's rows here too
                truths.write(partition.truth[["impression_id", "user_id", "p_click"]].assign(day=partition.day))
                rows += table.num_rows
                ctx.log(f"world day {partition.day}: {len(partition.impressions)} impressions")
                del table, partition
        unified = pa.unify_schemas(schemas, promote_options="permissive")
        days = sorted(staging.glob(f"{stem}-day-*.parquet"))
        release_memory()  # what the simulation freed, before the ingest's chunks
        # Row groups of PART_ROWS: a Dask worker reads one at a time when training (issue 20); the ingest still
        # profiles 1M-row chunks, so the version's statistics are those of the 1M-row-group layout.
        version = datasets.ingest_batches(cfg["dataset"], (_conform(pq.read_table(d), unified) for d in days),
                                          source=source, where=source, run_id=ctx.run_id, retention_class="events",
                                          pii_columns=["user_id"], subject="user_id", row_group_rows=PART_ROWS)
        truth = datasets.ingest_file(f"{cfg['dataset']}-truth", truth_path, fmt="parquet",
                                     source=f"ground truth of {version.ref} (scoring only)", parents=[version.id],
                                     run_id=ctx.run_id, retention_class="events", subject="user_id")
    finally:
        for path in staging.glob(f"{stem}-*"):
            path.unlink(missing_ok=True)
        release_memory()
    ctx.count_rows(rows)
    return {"dataset": {"id": version.id, "ref": version.ref}, "truth": {"id": truth.id, "ref": truth.ref}}



class _TruthFile:
    """A Parquet file written one day's frame at a time (the first day's column types hold for every day)."""

    def __init__(self, path: Any) -> None:
        self.path, self.writer = path, None

    def write(self, frame: pd.DataFrame) -> None:
        table = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, table.schema)
        self.writer.write_table(table.cast(self.writer.schema))

    def __enter__(self) -> _TruthFile:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.writer is not None:
            self.writer.close()


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with ``schema``'s columns, in its order and types (a column it lacks is all missing)."""
    columns = [table.column(f.name).cast(f.type) if f.name in table.column_names else pa.nulls(table.num_rows, f.type)
               for f in schema]
    return pa.Table.from_arrays(columns, schema=schema)


def _path(ctx: StepContext, ref: dict[str, Any]) -> Any:
    from yarnit.data import DatasetNotFound

    try:
        version = Datasets(ctx.workspace).get_by_id(ref["id"])
    except DatasetNotFound:
        raise InvalidInput(f"Dataset version {ref.get('ref', ref['id'])} is gone (purged?); rerun select.") from None
    return ctx.workspace.artifacts.verify(version.artifact_sha256)


def _read(ctx: StepContext, ref: dict[str, Any], columns: list[str] | None = None,
          filters: list[tuple[str, str, Any]] | None = None) -> pd.DataFrame:
    """Columns of a verified dataset version; text columns come back dictionary-encoded (categorical)."""
    path = _path(ctx, ref)
    restrictions = restrictions_of(ctx.workspace, Datasets(ctx.workspace).get_by_id(ref["id"]))
    if restrictions:  # a training frame sees restricted columns only through their compliant transform (CH4-R3)
        stored = columns_to_read(columns, restrictions, where=str(ref.get("ref", ref["id"])))
        table = pq.read_table(path, columns=stored, filters=filters)
        return compliant_table(table, restrictions, requested=columns).to_pandas()
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


def reference(ctx: StepContext, dataset: dict[str, Any]) -> dict[str, Any]:
    """The previous training data: the dataset version that the newest succeeded run of this pipeline trained
    on (same dataset name, other data than ``dataset``), or none. Never cached, and cheap: it keys
    validate's cache, so validation reruns only when its data or its reference changes."""
    store, datasets = RunStore(ctx.workspace), Datasets(ctx.workspace)
    by_id = {v.id: v for v in datasets.list(ctx.config["dataset"])}
    for run in store.list(ctx.pipeline, limit=200):
        if run.state != "succeeded" or run.id == ctx.run_id:
            continue
        steps = {record.step: record for record in store.steps(run.id)}
        if "train" not in steps or steps["train"].state not in ("succeeded", "cached"):
            continue  # the run validated but never trained (a pipeline subset): not training data
        entry = (steps["select"].outputs or {}).get("dataset") if "select" in steps else None
        previous = by_id.get((entry or {}).get("value", {}).get("id"))
        if previous is not None and previous.active and previous.id != dataset["id"]:
            return {"previous": {"id": previous.id, "ref": previous.ref}}
    return {"previous": {"id": None}}


def _average_day(stats: Any, days: int) -> Any:
    """Statistics of an average day of the previous training data: row and slice counts divided by the
    number of days (frequencies and quantiles are per row already)."""
    from yarnit.data.statistics import DatasetStatistics

    return DatasetStatistics(row_count=round(stats.row_count / days), columns=stats.columns,
                             slices={s: {v: round(c / days) for v, c in counts.items()}
                                     for s, counts in stats.slices.items()})


def _kept_share(day: str, removed: list[Any]) -> float:
    """The share of ``day`` (UTC) outside the removed windows ``[time_column, start, end]`` (1.0: none removed)."""
    start = pd.Timestamp(day, tz="UTC")
    end = start + pd.Timedelta(days=1)
    spans = sorted((max(start, _utc(lo)), min(end, _utc(hi))) for _column, lo, hi in removed)
    cut, reach = 0.0, start
    for lo, hi in spans:  # overlapping windows are counted once
        lo = max(lo, reach)
        if hi > lo:
            cut += (hi - lo).total_seconds()
            reach = hi
    return max(0.0, 1.0 - cut / 86_400.0)


def _utc(value: Any) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _scaled_day(stats: Any, share: float) -> Any:
    """An average day's statistics with row and slice counts scaled to ``share`` of the day."""
    from yarnit.data.statistics import DatasetStatistics

    return DatasetStatistics(row_count=round(stats.row_count * share), columns=stats.columns,
                             slices={s: {v: round(c * share) for v, c in counts.items()}
                                     for s, counts in stats.slices.items()})


def _median_day(daily: list[Any]) -> Any:
    """Without previous training data: the median day of this dataset's row and slice counts (one bad day
    among three cannot move it). It has no column profiles, so distributions are not compared."""
    from yarnit.data.statistics import DatasetStatistics

    values = {(s, v) for d in daily for s, counts in d.slices.items() for v in counts}
    slices: dict[str, dict[str, int]] = {}
    for s, v in sorted(values):
        slices.setdefault(s, {})[v] = int(np.median([d.slices.get(s, {}).get(v, 0) for d in daily]))
    return DatasetStatistics(row_count=int(np.median([d.row_count for d in daily])), columns={}, slices=slices)


def _anomaly(a: Any, day: str | None) -> dict[str, Any]:
    return {"severity": "blocking" if a.blocking else "warning", "kind": a.kind, "column": a.column, "day": day,
            "evidence": a.message, "details": a.evidence, "fix": a.suggested_fix}


def _days_of(path: Any) -> list[Any]:
    """The distinct values of a stored dataset's ``day`` column, sorted (none without one)."""
    import pyarrow.compute as pc

    if "day" not in pq.read_schema(path).names:
        return []
    return sorted(v for v in pc.unique(pq.read_table(path, columns=["day"]).column("day")).to_pylist()
                  if v is not None)


def _day_table(path: Any, day: Any) -> pa.Table:
    """The rows of one day of a stored dataset (Parquet skips the row groups that cannot hold it)."""
    return pq.read_table(path, filters=[("day", "==", day)])


#: A log of at most this many rows is read once and cut into days in memory by ``validate`` (a few tens of MB);
#: a bigger one is streamed a day at a time (issue 20). The daily runs of the operate demo are a few thousand rows.
WHOLE_LOG_ROWS = 1 << 18


def _by_day(table: pa.Table, days: list[Any]) -> Iterator[tuple[Any, pa.Table]]:
    """Each day of an in-memory table with its rows, in ``days`` order."""
    values = table.column("day")
    for day in days:
        yield day, table.filter(pc.equal(values, pa.scalar(day, values.type)))


def _day_tables(path: Any, days: list[Any]) -> Iterator[tuple[Any, pa.Table]]:
    """Each day of a stored dataset with its rows, in ``days`` order. A small log (:data:`WHOLE_LOG_ROWS`) is read
    whole and cut in memory; a bigger one stored in day order (the world's) is read once, batch by batch; any
    other is read with one filtered scan per day."""
    stored = pq.ParquetFile(path)
    if stored.metadata.num_rows <= WHOLE_LOG_ROWS:
        yield from _by_day(pq.read_table(path), days)
        return
    column = pq.read_table(path, columns=["day"]).column("day")
    ordered = column.null_count == 0 and (len(column) < 2 or bool(pc.all(pc.greater_equal(
        column.slice(1), column.slice(0, len(column) - 1))).as_py()))
    if not ordered:
        for day in days:
            yield day, _day_table(path, day)
        return
    pending: list[pa.Table] = []
    current = None
    for batch in stored.iter_batches(batch_size=1 << 16):  # about a third of a day: memory holds one day
        table = pa.Table.from_batches([batch])
        values = table.column("day")
        for day in pc.unique(values).to_pylist():
            part = table.filter(pc.equal(values, pa.scalar(day, values.type)))
            if current is not None and day != current:
                yield current, pa.concat_tables(pending)
                pending = []
            current = day
            pending.append(part)
        del batch, table, values
    if current is not None:
        yield current, pa.concat_tables(pending)

#: The per-day profiles (in day order) of the logs this process validated last, keyed by (artifact path, slices).
#: The path names the content (sha256), so an entry is the profile of those bytes. A daily loop's reference is the
#: log the previous run validated: its days' profiles are taken from here instead of reading and profiling each
#: day again (each ``profile`` opens a DuckDB connection: in the operate demo that made validate about 30% dearer
#: than before issue 20). A few small objects per day.
_DAY_PROFILES: dict[tuple[str, tuple[str, ...]], list[Any]] = {}
_DAY_PROFILES_KEPT = 4


#: Day profiles keyed by the day's rows themselves (sha256 of the day's table in Arrow IPC form, schema included)
#: and the slices. Consecutive windows of a daily loop share all but their newest day, as equal rows (a day's rows
#: come from its daily version), so each day is profiled once instead of once per window that holds it. Equal
#: bytes are an equal table, and ``profile`` is a function of the table: a hit is the profile it would compute.
_PROFILES_BY_ROWS: dict[tuple[str, tuple[str, ...]], Any] = {}
_PROFILES_BY_ROWS_KEPT = 64


class _Sha256Sink:
    """A write-only file that keeps only the sha256 of what is written to it (no copy of the data is held)."""

    def __init__(self) -> None:
        import hashlib

        self.digest, self.closed = hashlib.sha256(), False

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def _rows_sha256(table: pa.Table) -> str:
    """sha256 of ``table`` written as an Arrow IPC stream (in batches of 64 Ki rows, hashed as they are written,
    so a big day is not copied): equal digests, equal schema and values."""
    sink = _Sha256Sink()
    with pa.ipc.new_stream(pa.PythonFile(sink, mode="w"), table.schema) as writer:
        writer.write_table(table, max_chunksize=1 << 16)
    return sink.digest.hexdigest()


def _day_profile(part: pa.Table, slices: Any) -> Any:
    """``profile(part, slices=slices)``, from :data:`_PROFILES_BY_ROWS` when these rows were profiled before."""
    from yarnit.data.statistics import profile

    key = (_rows_sha256(part), tuple(slices))
    known = _PROFILES_BY_ROWS.pop(key, None)
    if known is None:
        known = profile(part, slices=slices)
    _PROFILES_BY_ROWS[key] = known  # newest last: the oldest entry goes first
    while len(_PROFILES_BY_ROWS) > _PROFILES_BY_ROWS_KEPT:
        _PROFILES_BY_ROWS.pop(next(iter(_PROFILES_BY_ROWS)))
    return known


def _remember_days(path: Any, slices: Any, daily: list[Any]) -> None:
    key = (str(path), tuple(slices))
    if key not in _DAY_PROFILES:
        _DAY_PROFILES[key] = daily
        while len(_DAY_PROFILES) > _DAY_PROFILES_KEPT:
            _DAY_PROFILES.pop(next(iter(_DAY_PROFILES)))


def validate(ctx: StepContext, dataset: dict[str, Any], previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """Check each day of the log against the curated schema (types, ranges, domains, missing values) and
    against an average day of the previous training data (``previous``, from the reference step: volume,
    per-slice volume, distribution change), plus label sanity per day."""
    import pyarrow.compute as pc

    from yarnit.data.statistics import merge_statistics, profile
    from yarnit.data.validation import validate as check

    from .impressions_schema import DAILY_COLUMNS, impressions_schema  # noqa: PLC0415 - with the step

    schema = impressions_schema(ctx.config["validation"])
    path = _path(ctx, dataset)
    stored = pq.ParquetFile(path)
    num_rows = stored.metadata.num_rows
    previous = previous or {"id": None}
    previous_id = previous.get("id")
    anomalies: list[dict[str, Any]] = []
    has_days = "day" in stored.schema_arrow.names and num_rows > 0
    if has_days:  # one day in memory at a time (issue 20): each day is read, profiled and checked alone
        whole = pq.read_table(path) if num_rows <= WHOLE_LOG_ROWS else None  # a small log: read once, cut in memory
        day_values = sorted(pc.unique((whole if whole is not None else pq.read_table(path, columns=["day"]))
                                      .column("day")).to_pylist())

        def log_days() -> Iterator[tuple[Any, pa.Table]]:
            return _by_day(whole, day_values) if whole is not None else _day_tables(path, day_values)

        daily = {str(day): _day_profile(part, schema.slices) for day, part in log_days()}
        if None not in day_values:
            _remember_days(path, schema.slices, list(daily.values()))
        if previous_id:
            reference_path = _path(ctx, previous)
            reference_days = _days_of(reference_path)
            if reference_days:
                known = _DAY_PROFILES.get((str(reference_path), tuple(schema.slices)))
                stats = merge_statistics(known if known is not None else (
                    _day_profile(part, schema.slices) for _day, part in _day_tables(reference_path, reference_days)))
            else:
                stats = profile(pq.read_table(reference_path), slices=schema.slices)
            average = _average_day(stats, max(1, len(reference_days)))
            baseline = f"an average day of the previous training data {previous.get('ref')}"
        else:
            average = _median_day(list(daily.values()))
            baseline = (f"the median day of {dataset.get('ref')} (no previous training data: volumes only, "
                        "distributions not compared)")
        low, high = ctx.config["positive_rate_band"]
        for value, part in log_days():
            day = str(value)
            kept = _kept_share(day, ctx.config.get("removed") or [])
            report = check(part, schema, previous=_scaled_day(average, kept) if kept < 1.0 else average,
                           statistics=daily[day], target=f"{dataset.get('ref')} day {day}",
                           baseline=baseline if kept >= 1.0 else f"{baseline}, scaled to the {kept:.0%} of the day "
                                                                 "that was not removed (remove_bad_data)")
            anomalies += [_anomaly(a, day) for a in report.anomalies
                          if a.blocking or not (a.kind == "distribution_change" and a.column in DAILY_COLUMNS)]
            del part
        if LABEL in stored.schema_arrow.names:
            labels = (whole.select(["day", LABEL]) if whole is not None
                      else pq.read_table(path, columns=["day", LABEL])).to_pandas()
            for day, rate in labels.groupby("day")[LABEL].mean().items():
                if not low <= rate <= high:
                    anomalies.append({
                        "severity": "blocking", "column": LABEL, "kind": "label_rate", "day": str(day),
                        "evidence": f"positive rate {rate:.4f} on {day} is outside the expected band [{low}, {high}]",
                        "fix": "Labels look incomplete (a click-log outage?) or corrupted; fix the label source and "
                               "rerun, or widen positive_rate_band if this is real.",
                    })
    else:
        baseline = "none (the data has no days)"
        table = pq.read_table(path)
        anomalies += [_anomaly(a, None) for a in check(table, schema, target=str(dataset.get("ref"))).anomalies]
    release_memory()
    blocking = [a for a in anomalies if a["severity"] == "blocking"]
    report_ = {"rows": num_rows, "anomalies": anomalies, "blocking": len(blocking), "baseline": baseline,
               "schema": schema.dataset}
    ctx.count_rows(num_rows)
    for a in blocking[:20]:
        ctx.log(f"blocking {a['kind']} in {a['column'] or 'the data'} on {a['day']}: {a['evidence']}")
    if blocking:
        named = "; ".join(f"{a['kind']}" + (f" in {a['column']!r}" if a["column"] else "")
                          + (f" on {a['day']}" if a["day"] else "") + f": {a['evidence']}" for a in blocking[:3])
        raise BlockingAnomalies(
            f"Validation of {dataset.get('ref')} against the curated impression schema and {baseline} found "
            f"{len(blocking)} blocking anomalies: {named}. {blocking[0]['fix']}"
        )
    return {"report": report_}


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
    del probe_rows
    release_memory()  # the holdout's row groups were decoded for 64 rows: hand that memory back before train
    return {"split": {"holdout_from": str(cut), "train_days": [str(d) for d in days[:-holdout_days]],
                      "holdout_days": [str(d) for d in days[-holdout_days:]], "probe": probe,
                      "distribution": f"time-ordered holdout from {cut}"}}


V2_INPUTS = {"user_id": "string", "product_id": "string", "product_name": "string", "product_clicks_7d": "int"}


def _features(ctx: StepContext, dataset: dict[str, Any], split_: dict[str, Any], part: str,
              extra: tuple[str, ...] = (), transform: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Features (the transform's vectorized form) and the kept columns of the train or holdout part.

    ``ctr_features_v2`` and ``v3`` need each shopper's click history, so they read every day and add the
    point-in-time history (the days whose log had closed before each impression) before cutting the part.
    """
    name = transform or ctx.config.get("transform", TRANSFORM)
    if name not in FRAME_TRANSFORMS:
        raise InvalidInput(f"transform={name!r} is not valid; known: {', '.join(FRAME_TRANSFORMS)}.")
    cut = pd.Timestamp(split_["holdout_from"]).date()
    columns = list(dict.fromkeys([*RAW_INPUTS, "position", LABEL, *extra]))
    if name in HISTORY_TRANSFORMS:
        wanted = [*columns, *V2_INPUTS, "day", *(["event_time"] if "event_time" in pq.read_schema(
            _path(ctx, dataset)).names else [])]
        frame = _read(ctx, dataset, list(dict.fromkeys(wanted)))
        frame = add_user_affinity(frame)
        frame = frame[(frame["day"] < cut) if part == "train" else (frame["day"] >= cut)].reset_index(drop=True)
    else:
        frame = _read(ctx, dataset, columns, filters=[("day", "<" if part == "train" else ">=", cut)])
    return FRAME_TRANSFORMS[name](frame), frame[list(dict.fromkeys([LABEL, *extra]))]


def golden(ctx: StepContext, split: dict[str, Any]) -> dict[str, Any]:
    """The golden-data prober (:mod:`.golden_records`): six known records through this run's ingest, validation,
    split and feature path with this run's config; each must come out exactly as computed by hand.

    Never cached (a probe that is not run proves nothing). Records ``golden.injected``, ``golden.correct`` and
    ``golden.correctness`` as run metrics, and fails the run before training when a record is wrong, naming
    the record and the field. The golden records are their own dataset version (``<dataset>-golden``), so
    they never reach training, serving, monitoring or a deletion receipt.
    """
    from yarnit.data.validation import validate as check

    from .golden_records import GoldenRecordsWrong, golden_frame, run_golden_probe
    from .impressions_schema import impressions_schema  # noqa: PLC0415 - with the step

    cfg = ctx.config
    frame = golden_frame(split)
    version = Datasets(ctx.workspace).ingest_frame(
        f"{cfg['dataset']}-golden", frame, run_id=ctx.run_id,
        source="golden-data prober: synthetic impressions of yarnit.recipes.golden_records (never trained on)",
        subject="user_id")  # searchable by a deletion request (it finds no real person), so no receipt lists it
        # as unchecked
    ref = {"id": version.id, "ref": version.ref}
    table = pq.read_table(_path(ctx, ref))
    report = check(table, impressions_schema(cfg["validation"]), target=version.ref)
    rejected = [f"{a.kind} in {a.column or 'the data'}: {a.message}" for a in report.anomalies if a.blocking]
    result = run_golden_probe(lambda part: _features(ctx, ref, split, part, extra=("impression_id",)), label=LABEL,
                              rejected=rejected)
    ctx.metric("golden.injected", result.injected)
    ctx.metric("golden.correct", result.correct)
    ctx.metric("golden.correctness", result.correctness)
    ctx.log(f"{result.summary()} (dataset {version.ref}; transform {cfg['transform']}; checked "
            f"{len(result.checked_fields)} fields)")
    for note in result.notes:
        ctx.log(note)
    if not result.passed:
        raise GoldenRecordsWrong(
            f"The golden-data prober found {result.injected - result.correct} of {result.injected} golden records "
            f"wrong after this run's ingest, validation, split and features: "
            f"{'; '.join(f.sentence() for f in result.failures[:5])}. A feature transform, the reader or the split "
            "changed what known inputs turn into; fix it before training (expected values: "
            "yarnit/recipes/golden_records.py)."
        )
    return {"report": result.to_dict() | {"dataset": ref}}


def tune(ctx: StepContext, dataset: dict[str, Any], split: dict[str, Any]) -> dict[str, Any]:
    """Judge the configured trainer values against a grid (:mod:`.tuning`) on the last training day(s).

    Fits on the newest ``max_rows`` rows of the earlier training days, scores the last ``validation_days``
    training days; the holdout is never read. Records ``tune.tuned`` and ``tune.gap`` and logs the grid."""
    from .tuning import grid_search, summary  # noqa: PLC0415 - with the step

    cfg, tuning = ctx.config, DEFAULTS["tuning"] | ctx.config["tuning"]
    grid = (tuning.get("grids") or {}).get(cfg["trainer"]) or {}
    train_days = split["train_days"]
    held = int(tuning["validation_days"])
    if len(train_days) <= held:
        report = {"trainer": cfg["trainer"], "searched": list(grid), "points": [], "tuned": False,
                  "reason": "few_days", "note": f"{len(train_days)} training day(s): tuning needs more than validation_days={held}"}
    else:
        cut, most = pd.Timestamp(train_days[-held]).date(), int(tuning["max_rows"])
        if cfg["transform"] in HISTORY_TRANSFORMS:  # the shopper history needs every day
            features, kept = _features(ctx, dataset, split, "train", extra=("day",))
        else:  # only the newest days that hold ``max_rows`` fit rows are read
            holdout = pd.Timestamp(split["holdout_from"]).date()
            per_day = _read(ctx, dataset, ["day"], filters=[("day", "<", cut)])["day"].value_counts().sort_index()
            start = next((d for d, n in zip(per_day.index[::-1], per_day[::-1].cumsum(), strict=True) if n >= most),
                         per_day.index[0] if len(per_day) else cut)
            kept = _read(ctx, dataset, list(dict.fromkeys([*RAW_INPUTS, "position", LABEL, "day"])),
                         filters=[("day", ">=", start), ("day", "<", holdout)])
            features = FRAME_TRANSFORMS[cfg["transform"]](kept)
        fit = (kept["day"] < cut).to_numpy()
        rows, val = np.flatnonzero(fit)[-most:], np.flatnonzero(~fit)[-most:]
        labels = kept[LABEL].to_numpy()
        report = grid_search(cfg["trainer"], cfg["trainer_params"], grid, features.iloc[rows].reset_index(drop=True),
                             labels[rows], features.iloc[val].reset_index(drop=True), labels[val], seed=ctx.seed,
                             tolerance=float(tuning["tolerance"]))
        report |= {"validation_days": [str(d) for d in train_days[-held:]]}
        del features, kept
        release_memory()
    ctx.metric("tune.tuned", report["tuned"])
    if report.get("points"):
        ctx.metric("tune.gap", report["gap"])
    ctx.log(summary(report))
    return {"report": report}


def _production(ctx: StepContext) -> Any:
    try:
        return ModelRegistry(ctx.workspace).resolve(ctx.config["model"], "production")
    except (ModelNotFound, AliasNotFound):
        return None


CHUNK_ROWS = 1 << 17  # rows of the log read and turned into features at a time when training (issue 20)
PART_ROWS = 1 << 18  # rows of a stored row group of the world's log: a Dask training part (issue 20)


def _rows(ctx: StepContext, ref: dict[str, Any]) -> int:
    """Rows of a dataset version (its recorded row count; the file is not read)."""
    return int(Datasets(ctx.workspace).get_by_id(ref["id"]).row_count)


def _batches(ctx: StepContext, ref: dict[str, Any], columns: list[str], *, before: Any,
             rows: int | None = None) -> Iterator[pd.DataFrame]:
    """``columns`` of the rows of a verified dataset version whose day is before ``before``, ``rows`` at a time,
    in stored order; text columns come back dictionary-encoded, as :func:`_read` gives them."""
    return _log_rows(ctx, ref, columns, before=before).batches(rows)


@dataclass(frozen=True)
class _LogRows:
    """How to read ``columns`` of a dataset version's rows before a day. Picklable (a file, no workspace): a
    Dask worker reads its own share of the training rows with it (issue 20)."""

    path: str
    columns: tuple[str, ...]
    wanted: tuple[str, ...]  # stored columns to read, with day
    text: tuple[str, ...]  # read dictionary-encoded
    restrictions: dict[str, Any]
    before: Any

    def batches(self, rows: int | None = None, row_groups: list[int] | None = None) -> Iterator[pd.DataFrame]:
        source = pq.ParquetFile(self.path, read_dictionary=list(self.text))
        for batch in source.iter_batches(batch_size=rows or CHUNK_ROWS, columns=list(self.wanted),
                                         row_groups=row_groups):
            table = pa.Table.from_batches([batch])
            day = table.schema.field("day").type
            table = table.filter(pc.less(table.column("day"), pa.scalar(self.before, day)))
            if not table.num_rows:
                continue
            if self.restrictions:
                yield compliant_table(table, self.restrictions, requested=list(self.columns)).to_pandas()
            else:
                yield table.select(list(self.columns)).to_pandas()


@dataclass(frozen=True)
class _FeaturePart:
    """The features of one row group of the training rows, computed where it is called (on Dask: a worker)."""

    rows: _LogRows
    row_group: int | None  # None: every row group, in order (all the training rows)
    transform: str

    def __call__(self) -> Iterator[pd.DataFrame]:
        transform = FRAME_TRANSFORMS[self.transform]
        for frame in self.rows.batches(row_groups=None if self.row_group is None else [self.row_group]):
            yield narrow(transform(frame))
        release_memory()


def _log_rows(ctx: StepContext, ref: dict[str, Any], columns: list[str], *, before: Any) -> _LogRows:
    path = _path(ctx, ref)
    restrictions = restrictions_of(ctx.workspace, Datasets(ctx.workspace).get_by_id(ref["id"]))
    schema = pq.read_schema(path)
    if restrictions:
        stored = columns_to_read(columns, restrictions, where=str(ref.get("ref", ref["id"]))) or schema.names
        wanted = list(dict.fromkeys([*stored, "day"]))
    else:
        missing = [c for c in columns if c not in schema.names]
        if missing:
            raise BlockingAnomalies(
                f"Dataset {ref.get('ref')} lacks columns {missing}; it must follow the YarnIt impression schema.")
        wanted = list(dict.fromkeys([*columns, "day"]))
    text = [c for c in wanted if pa.types.is_string(schema.field(c).type) or pa.types.is_large_string(
        schema.field(c).type)]
    return _LogRows(str(path), tuple(columns), tuple(wanted), tuple(text), dict(restrictions), before)


def _train_features(ctx: StepContext, dataset: dict[str, Any], split_: dict[str, Any]) -> tuple[FeatureChunks,
                                                                                              np.ndarray]:
    """The training days' features as chunks (read and transformed again on each pass, never whole in memory)
    and their labels. The chunks' ``parts`` are the row groups of the dataset file, for Dask workers to read."""
    cut = pd.Timestamp(split_["holdout_from"]).date()
    columns = list(dict.fromkeys([*RAW_INPUTS, "position", LABEL]))
    name = ctx.config.get("transform", TRANSFORM)
    labels = np.concatenate([frame[LABEL].to_numpy() for frame in _batches(ctx, dataset, [LABEL], before=cut)]
                            or [np.array([], dtype=np.int64)])
    if labels.dtype.kind in "iub" and len(labels) and labels.min() >= 0 and labels.max() <= 1:
        labels = labels.astype(np.int8)  # 0/1: a byte each
    rows = _log_rows(ctx, dataset, columns, before=cut)
    parts = tuple(_FeaturePart(rows, group, name) for group in range(pq.ParquetFile(rows.path).num_row_groups))
    return FeatureChunks(_FeaturePart(rows, None, name), rows=len(labels), parts=parts), labels


def _training_inputs(column: Any, inputs: dict[str, str], seed: int
                     ) -> tuple[dict[str, Any], dict[str, Any], pd.DataFrame, tuple[str, ...]]:
    """From the raw training rows, one column at a time (``column(name)`` gives it): the input policy, the
    serving fallback, a sample of 200 rows (to map importances to inputs) and the columns' types."""
    policy: dict[str, Any] = {}
    sample: dict[str, pd.Series] = {}
    positions = None
    types = []
    for name in dict.fromkeys([LABEL, *inputs, FALLBACK_SLICE]):
        series = column(name)
        if positions is None:  # the rows DataFrame.sample picks: they depend on the row count only
            positions = pd.DataFrame(index=pd.RangeIndex(len(series))).sample(
                n=min(200, len(series)), random_state=seed).index.to_numpy()
        types.append(f"{name}:{series.dtype}")
        if name in inputs:
            policy |= policy_from_training(series.to_frame(), {name: inputs[name]})
            sample[name] = series.iloc[positions].reset_index(drop=True)
        del series
    policy |= policy_from_training(pd.DataFrame(), {}, fixed=SERVING_FIXED)
    fallback = training_base_rates(column(LABEL), column(FALLBACK_SLICE))
    return policy, fallback, pd.DataFrame(sample), tuple(types)


def train(ctx: StepContext, dataset: dict[str, Any], split: dict[str, Any]) -> dict[str, Any]:
    trainer = make_trainer(ctx.config["trainer"], **ctx.config["trainer_params"])
    inputs = RAW_INPUTS | V2_INPUTS if ctx.config["transform"] in HISTORY_TRANSFORMS else RAW_INPUTS
    extra = tuple(dict.fromkeys([*inputs, FALLBACK_SLICE]))
    features: pd.DataFrame | FeatureChunks
    small = _rows(ctx, dataset) <= CHUNK_ROWS and ctx.dask_client is None
    if ctx.config["transform"] in HISTORY_TRANSFORMS or small:
        # the shopper history needs every day at once; a log of one chunk or less is read and transformed once
        # (the chunked path below reads it once per trainer pass and once per signature column); on Dask the
        # workers read the log themselves, whatever its size
        features, kept = _features(ctx, dataset, split, "train", extra=extra)
        labels = kept[LABEL].to_numpy()
        policy, fallback, sample, types = _training_inputs(kept.__getitem__, inputs, ctx.seed)
        del kept
    else:  # the raw rows serve the signature one column at a time; the features come in chunks (issue 20)
        cut = pd.Timestamp(split["holdout_from"]).date()
        policy, fallback, sample, types = _training_inputs(
            lambda name: _read(ctx, dataset, [name], filters=[("day", "<", cut)])[name], inputs, ctx.seed)
        release_memory()
        features, labels = _train_features(ctx, dataset, split)
    init = None
    production = _production(ctx) if ctx.config["warm_start"] else None
    if production is not None and production.params.get("trainer") == trainer.name:
        artifact = ctx.workspace.artifacts.get_bytes(production.artifact_sha256)
        init = TrainedModel(artifact, production.artifact_format, trainer.name, params=production.params)
        ctx.log(f"warm start from {production.ref}")
    model = trainer.fit(features, labels, seed=ctx.seed, init=init, dask_client=ctx.dask_client)
    ctx.count_rows(len(features))
    ctx.metric("training_rows_per_s", model.training.get("rows_per_s"))
    # The input contract (serving/inputs.py) is chosen from the training rows; position is fixed to 1 on every
    # scoring path (online and predict-batch), so items are compared as if each were shown first.
    signature: dict[str, Any] = {"inputs": inputs, "output": "click probability",
                                 "transform": ctx.config["transform"], "input_policy": policy, "fallback": fallback}
    if ctx.config["transform"] in HISTORY_TRANSFORMS:
        # served: the data plane reads the shopper's row of the shopper_history view (recipes/history.py)
        signature["online_features"] = history_features()
    weights = _input_importance(ctx, model, sample, types, inputs)
    if weights:
        signature["feature_importance"] = weights  # drift weighs served columns by it (monitoring/served_drift.py)
    return {"model": TrainedModel(
        artifact=model.artifact, artifact_format=model.artifact_format, trainer=model.trainer,
        params=model.params | {"trainer": model.trainer}, signature=signature,
        training=model.training, probe=split["probe"])}


def _input_importance(ctx: StepContext, model: TrainedModel, sample: pd.DataFrame, types: tuple[str, ...],
                      inputs: dict[str, str]) -> dict[str, float] | None:
    """The trainer's per-feature importances carried back to the request's input columns (sum 1), or None.

    ``sample``: 200 training rows of the inputs; ``types``: the training columns' types (they key a cache)."""
    from yarnit.training.importance import input_sources, to_inputs

    weights = model.training.get("feature_importance")
    if not weights:
        return None
    transform = ctx.config["transform"]
    key = (transform, tuple(inputs), types)
    sources = _SOURCES.get(key)
    if sources is None:
        sample = sample.assign(position=1)
        try:
            sources = input_sources(FRAME_TRANSFORMS[transform], sample, list(inputs), seed=ctx.seed)
        except (KeyError, ValueError, TypeError) as exc:  # a transform that needs more than the inputs: no weights
            ctx.log(f"feature importance not mapped to inputs: {exc}")
            return None
        moved = {name for found in sources.values() for name in found}
        if set(inputs) & set(sample.columns) <= moved:  # every input moved some column: the mapping is the
            _SOURCES[key] = sources  # transform's own, not this sample's, so later retrains here reuse it
    return to_inputs(weights, sources)


#: (transform, inputs, column types) -> which inputs each frame column changes with (see _input_importance)
_SOURCES: dict[tuple[str, tuple[str, ...], tuple[str, ...]], dict[str, list[str]]] = {}


FALLBACK_SLICE = "product_type"  # the serving fallback's prior is the training click rate per product type
MIN_SLICE_ROWS = 100  # a smaller slice takes the overall base rate


def training_base_rates(labels: pd.Series, slices: pd.Series) -> dict[str, Any]:
    """The model's declared serving fallback: its training base rate per slice, and overall as the default.

    Example:
        >>> spec = training_base_rates(pd.Series([1, 0, 0, 0] * 50), pd.Series(["yarn", "yarn", "kit", "kit"] * 50))
        >>> spec["table"], spec["default"]
        ({'kit': 0.0, 'yarn': 0.5}, 0.25)
    """
    # grouped by the values, then by their text (as grouping by ``slices.astype(str)`` did: missing values are
    # left out, values with the same text are one slice), never turning every row into text: that took 65 bytes
    # a row, 1.1 GB of the client's train step at 90 days on Dask (issue 20)
    per = labels.astype(float).groupby(slices, observed=True, sort=False).agg(["sum", "size"])
    per.index = per.index.astype(object).astype(str)
    rates = per.groupby(level=0).sum()
    table = {str(k): float(row["sum"] / row["size"]) for k, row in rates.iterrows() if row["size"] >= MIN_SLICE_ROWS}
    return {"key": str(slices.name), "table": dict(sorted(table.items())), "default": float(labels.mean()),
            "source": "training base rate", "rows": len(labels)}


def _train_on_dask(config: Any) -> None:
    """train runs on Dask only with a trainer that can (refused before the run otherwise)."""
    check_dask_trainer(config["trainer"])


def _score(predictor: Any, features: pd.DataFrame) -> np.ndarray:
    from yarnit.training.encoding import score_frame  # column by column, checked against the native path

    fast = score_frame(predictor, features)
    if fast is not None:
        return fast
    records = features.astype({c: object for c in features.columns if features[c].dtype == "category"})
    return np.asarray(predictor.predict_proba(records.to_dict("records")), dtype=float)


# --- evaluate and gate: yarnit.evaluation ------------------------------------------------------------
@dataclass(frozen=True)
class _History:
    """What evaluate needs of the training days' rows: each product's click rate, the overall rate, the products
    seen and the slices' counts (issue 20: summed a batch at a time; the rows as one frame took 0.4 GB at 30 days)."""

    popularity: pd.Series
    overall_rate: float
    products: set[Any]
    counts: Any  # TrainingCounts (yarnit.evaluation, imported when evaluating)


def _history(batches: Iterable[pd.DataFrame], coverage: list[str]) -> _History:
    from yarnit.evaluation import TrainingCounts

    sums: list[pd.DataFrame] = []
    clicks, labelled = 0, 0
    products: set[Any] = set()

    def summed(batches: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        nonlocal clicks, labelled
        for batch in batches:
            label, product = batch[LABEL], batch["product_id"].astype(object)
            clicks, labelled = clicks + label.sum(), labelled + label.count()
            sums.append(label.groupby(product).agg(["sum", "count"]))
            products.update(pd.unique(product))
            yield batch

    counts = TrainingCounts.of(summed(batches), coverage)
    total = pd.concat(sums).groupby(level=0).sum() if sums else pd.DataFrame({"sum": [], "count": []})
    popularity = (total["sum"] / total["count"])[total["count"] > 0]  # as groupby(...).mean(): NaN ids left out
    return _History(popularity, float(clicks / labelled) if labelled else float("nan"), products, counts)


def _slice_columns(cfg: dict[str, Any]) -> list[str]:
    return list(dict.fromkeys(s.partition("=")[0] for s in [*cfg["slices"], *cfg["fairness_groups"]]))


def _expected_on_probe(predictor: Any, transform: str, probe: list[dict[str, Any]]) -> np.ndarray | None:
    """Training-time predictions for the probe requests (the vectorized transform), for the skew check."""
    if not probe or transform not in FRAME_TRANSFORMS:
        return None
    try:
        return _score(predictor, FRAME_TRANSFORMS[transform](pd.DataFrame(probe)))
    except (KeyError, ValueError):  # a transform that needs more than the request (e.g. shopper history)
        return None


def _golden(ctx: StepContext, dataset: dict[str, Any], cut: Any, columns: list[str], model: TrainedModel,
            models: dict[str, Any], popular: Any, production_predictor: Any = None) -> Any:
    """The model's golden set (built once from a holdout sample, then fixed) with every subject's scores.

    ``production_predictor``: production's model already loaded by the caller (else it is loaded here).
    Returns (distribution, labels, predictions, note), or a sentence saying why it was not evaluated.
    """
    from yarnit.evaluation import GoldenSets, golden_distribution

    transform = model.signature.get("transform", TRANSFORM)
    if transform not in FRAME_TRANSFORMS or not set(model.signature.get("inputs", {})) <= set(RAW_INPUTS):
        return f"no golden-set evaluation: transform {transform!r} needs more than the raw request columns"
    cfg = ctx.config
    wanted = [c for c in dict.fromkeys([*RAW_INPUTS, "position", LABEL, "product_id", *columns]) if c != "session_id"]

    def build() -> pd.DataFrame:
        raw = _read(ctx, dataset, wanted, filters=[("day", ">=", cut)])
        sample = raw.sample(n=min(int(cfg["golden_rows"]), len(raw)), random_state=0).reset_index(drop=True)
        return sample.astype({c: object for c in sample.columns if sample[c].dtype == "category"})

    golden_sets = GoldenSets(ctx.workspace)
    golden = golden_sets.ensure(cfg["model"], build, source=f"golden sample of the holdout of {dataset.get('ref')} "
                                f"from {cut} (seed 0)", parents=[dataset["id"]], run_id=ctx.run_id,
                                retention_class="events")
    frame = golden_sets.read(golden)
    needed = [*RAW_INPUTS, LABEL, "product_id"]
    if any(c not in frame.columns for c in needed):
        return (f"golden set {golden.ref} lacks columns {[c for c in needed if c not in frame.columns]}; it was not "
                "evaluated (delete it to have it rebuilt)")
    predictions = {"candidate": _score(models["candidate"], FRAME_TRANSFORMS[transform](frame)),
                   "popularity": popular(frame["product_id"])}
    production = models.get("production")
    if production is not None and production.signature.get("transform") in FRAME_TRANSFORMS:
        loaded = production_predictor if production_predictor is not None else ModelRegistry(ctx.workspace).load(production)
        predictions["production"] = _score(loaded, FRAME_TRANSFORMS[production.signature["transform"]](frame))
    distribution = golden_distribution(golden.ref, rows=golden.rows, dataset_version_id=golden.dataset_id,
                                       note=golden.note)
    return distribution, frame[LABEL].to_numpy(), predictions, golden.note


def baseline(ctx: StepContext, model: TrainedModel) -> dict[str, Any]:
    """Which other version holds ``production`` now. Never cached, and cheap: it feeds evaluate's cache key,
    so an unchanged pipeline reuses its evaluation until production moves to a different model. When
    production already holds these very bytes (this pipeline promoted them), comparing the candidate with
    itself adds nothing, so it counts as no baseline."""
    from yarnit.core.hashing import sha256_bytes

    production = _production(ctx)
    if production is None or production.artifact_sha256 == sha256_bytes(model.artifact):
        return {"production": {"model": ctx.config["model"], "version": None, "id": None}}
    return {"production": {"model": ctx.config["model"], "version": production.version, "id": production.id}}


def evaluate(ctx: StepContext, model: TrainedModel, dataset: dict[str, Any], split: dict[str, Any],
             truth: dict[str, Any], baseline: dict[str, Any] | None = None) -> dict[str, Any]:
    """Evaluate the candidate with yarnit.evaluation and validity-check it; store the report with lineage.

    Distributions: the time-ordered holdout (primary, with slices, fairness,
    ranking by session and calibration), each holdout day when there are
    several, stress sets (cold-start and new products) and the model's golden
    set. Subjects: the candidate, production (paired differences), the
    popularity baseline and the ground-truth oracle. The serving-runtime
    validity check runs in a separate process meanwhile.
    """
    from yarnit.core.hashing import sha256_bytes
    from yarnit.evaluation import (
        Bootstrap, Candidate, EvaluationStore, ReportBuilder, ValidityBudget, ValidityProbe, check_validity,
        progressive_day, stress, time_ordered_holdout, training_coverage,
    )

    cfg, ws = ctx.config, ctx.workspace
    sha = sha256_bytes(model.artifact)
    transform = model.signature.get("transform", TRANSFORM)
    candidate = Candidate(cfg["model"], sha, model.artifact_format.value, model.signature | {"probe": model.probe})
    budget = ValidityBudget.from_config(cfg["validity"])
    probe = ValidityProbe(ws, candidate, model.probe, budget)  # loads in the serving runtime while we compute
    columns = _slice_columns(cfg)
    available = set(pq.read_schema(_path(ctx, dataset)).names)
    optional = [c for c in ("session_id", "product_age_days") if c in available]  # ranking groups, new products
    extra = tuple(dict.fromkeys(["product_id", "impression_id", *optional, "day", *columns]))
    features, kept = _features(ctx, dataset, split, "holdout", extra, transform=transform)
    predictor = load_predictor(model.artifact, model.artifact_format)
    y = kept[LABEL].to_numpy()
    cut = pd.Timestamp(split["holdout_from"]).date()
    coverage = [c.partition("=")[0] for c in cfg["slices"]]
    history = _history(_batches(ctx, dataset, list(dict.fromkeys(["product_id", LABEL, *columns])), before=cut),
                       coverage)
    popularity, overall_rate = history.popularity, history.overall_rate

    def popular(products: pd.Series) -> np.ndarray:
        return products.astype(object).map(popularity).astype(float).fillna(overall_rate).to_numpy()

    predictions: dict[str, np.ndarray] = {"candidate": _score(predictor, features),
                                          "popularity": popular(kept["product_id"])}
    notes: list[str] = []
    if truth.get("id"):
        truth_frame = _read(ctx, truth, ["impression_id", "p_click"], filters=[("day", ">=", cut)])
        p = kept[["impression_id"]].astype(object).merge(truth_frame, on="impression_id", how="left")["p_click"]
        if not p.isna().any():
            predictions["oracle"] = p.to_numpy(dtype=float)
    registry = ModelRegistry(ws)
    if baseline is None:
        production = _production(ctx)
    else:  # the version the baseline step resolved (and that keys this step's cache)
        production = registry.get(baseline["model"], baseline["version"]) if baseline.get("version") else None
    compared = None
    production_predictor = None  # loaded (read, verified, audited) once: the golden set scores it too
    if production is not None:
        prod_transform = production.signature.get("transform")
        if prod_transform in FRAME_TRANSFORMS:
            prod_features = features if prod_transform == transform else \
                _features(ctx, dataset, split, "holdout", (), transform=prod_transform)[0]
            production_predictor = registry.load(production)
            predictions["production"] = _score(production_predictor, prod_features)
            compared = {"alias": "production", "version": production.version, "id": production.id}
        else:
            notes.append(f"production {production.ref} uses transform {prod_transform!r}, which cannot be "
                         "recomputed here: it was not compared")
    days = split["holdout_days"]
    holdout = time_ordered_holdout(days[0], days[-1], rows=len(y), unit="impressions",
                                   dataset_version_ids=[dataset["id"]])
    boot = Bootstrap(resamples=int(cfg["bootstrap_resamples"]), seed=int(ctx.seed))
    builder = ReportBuilder(cfg["model"], {"artifact_sha256": sha, "format": model.artifact_format.value,
                                           "trainer": model.trainer, "transform": transform},
                            bootstrap=boot, run_id=ctx.run_id, compared_with=compared,
                            dataset_version_ids=[dataset["id"]])
    for note in notes:
        builder.note(note)
    builder.add(holdout, y, predictions, frame=kept, slices=cfg["slices"], fairness=cfg["fairness_groups"],
                fairness_threshold=float(cfg["fairness_threshold"]),
                ranking_group="session_id" if "session_id" in kept.columns else None, k=int(cfg["ranking_k"]),
                calibration=True)
    main_subjects = {k: v for k, v in predictions.items() if k != "oracle"}
    if len(days) > 1:
        day_of = kept["day"].astype(str).to_numpy()
        for day in days:
            mask = day_of == str(day)
            builder.add(progressive_day(str(day), rows=int(mask.sum()), trained_before=str(cut),
                                        dataset_version_ids=[dataset["id"]]),
                        y[mask], {k: v[mask] for k, v in main_subjects.items()})
    seen = kept["product_id"].astype(object).isin(history.products)
    stress_sets = [("cold_start", ~seen.to_numpy(), "cold-start products: holdout impressions of products with no "
                                                    "impression in the training days")]
    if "product_age_days" in kept.columns:
        new = pd.to_numeric(kept["product_age_days"], errors="coerce").to_numpy() < float(cfg["new_product_days"])
        stress_sets.append(("new_products", new, f"new products: holdout impressions of products listed less than "
                                                 f"{cfg['new_product_days']} days ago"))
    for name, mask, text in stress_sets:
        builder.add(stress(name, f"{text} ({int(mask.sum())} impressions)", rows=int(mask.sum()),
                           dataset_version_ids=[dataset["id"]]),
                    y[mask], {k: v[mask] for k, v in main_subjects.items()})
    golden = _golden(ctx, dataset, cut, [*optional, *columns], model,
                     {"candidate": predictor, "production": production}, popular, production_predictor)
    if isinstance(golden, str):
        builder.note(golden)
    else:
        distribution, golden_y, golden_predictions, golden_note = golden
        builder.add(distribution, golden_y, golden_predictions)
        builder.note(golden_note)
    builder.section("coverage", training_coverage(history.counts, kept, coverage, distribution=holdout.name))
    validity = check_validity(ws, candidate, probe=probe, reference_scores=predictions["candidate"],
                              expected=_expected_on_probe(predictor, transform, model.probe))
    builder.section("validity", validity.to_dict())
    builder.section("card", dict(cfg["card"]))
    evaluation = builder.build()
    stored = EvaluationStore(ws).add(evaluation)

    def value(metric: str, subject: str = "candidate") -> float | None:
        return evaluation.value(metric, subject=subject)

    report: dict[str, Any] = {
        "distribution": holdout.description, "auc": value("auc"), "log_loss": value("log_loss"),
        "brier": value("brier"), "mean_prediction": value("mean_prediction"), "ctr": value("positive_rate"),
        "bias": value("bias"), "prediction_std": value("prediction_std"), "auc_popularity": value("auc", "popularity"),
        "n": len(y), "evaluation_id": stored.id, "validity_passed": validity.passed,
        "evaluation": evaluation.to_dict(),
    }
    if "oracle" in predictions:
        report["auc_oracle"] = value("auc", "oracle")
    if compared is not None:
        report["auc_production"] = value("auc", "production")
        report["production_version"] = compared["version"]
    for key in ("auc", "auc_popularity", "auc_oracle", "auc_production"):
        if report.get(key) is not None:
            ctx.metric(f"{key}_holdout", report[key])
    ctx.log(f"evaluation {stored.id}: {len(evaluation.metrics)} values on {len(evaluation.distributions)} "
            f"distributions; validity {'passed' if validity.passed else 'FAILED'}")
    ctx.count_rows(len(y))
    return {"report": report}


def _gates(cfg: dict[str, Any]) -> list[Any]:
    """The standard gates from the scalar config keys, then the configured ``gates`` list."""
    from yarnit.evaluation import Gate, GateConfigError, gates_from_config, standard_gates

    band = cfg["positive_rate_band"]
    gates = standard_gates(metric="auc", min_value=cfg["min_auc"], baseline="popularity",
                           min_lift=float(cfg["min_lift_over_popularity"]),
                           max_regression=float(cfg["max_regression_vs_production"]), positive_rate_band=band)
    gates.append(Gate("golden_label_sanity", "label_rate", distribution="golden", band=(band[0], band[1]),
                      required=False))
    gates += gates_from_config(cfg["gates"])
    names = [g.name for g in gates]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise GateConfigError(f"Gate names {duplicates} are used twice (the standard ctr gates are: "
                              f"{', '.join(names[:6])}); rename the configured ones.")
    return gates


def gate(ctx: StepContext, report: dict[str, Any]) -> dict[str, Any]:
    """Bless or refuse with yarnit.evaluation's gates; every reason is a sentence. The verdict is stored too."""
    from yarnit.evaluation import EvaluationReport, EvaluationStore, judge

    evaluation = EvaluationReport.from_dict(report.get("evaluation") or {})  # no distribution: refused
    verdict = judge(evaluation, _gates(ctx.config))
    if report.get("evaluation_id"):
        EvaluationStore(ctx.workspace).record_verdict(report["evaluation_id"], verdict)
    ctx.metric("blessed", verdict.blessed)
    for reason in verdict.reasons:
        ctx.log(f"gate: {reason}")
    return {"verdict": verdict.to_dict() | {"evaluation_id": report.get("evaluation_id")}}


def register(ctx: StepContext, model: TrainedModel, report: dict[str, Any], verdict: dict[str, Any],
             dataset: dict[str, Any]) -> dict[str, Any]:
    from yarnit.registry import ArtifactFormat

    registry = ModelRegistry(ctx.workspace)
    name = ctx.config["model"]
    version = registered_version(registry, name, model.artifact)
    metrics = {k: v for k, v in report.items() if isinstance(v, int | float | str | type(None))}
    metrics |= {"auc_holdout": report.get("auc"), "blessed": verdict["blessed"], "gate_reasons": verdict["reasons"],
                "training": model.training}
    if version is None:
        version = registry.register(
            name, model.artifact, ArtifactFormat(model.artifact_format), signature=model.signature | {
                "probe": model.probe}, metrics=metrics, params=model.params, dataset_version_ids=[dataset["id"]],
            run_id=ctx.run_id, code_version=RunStore(ctx.workspace).get(ctx.run_id).code_version, seed=ctx.seed, description="Yarn Product Click Prediction Model")
    # production moves only to a model at least as good on this run's holdout, compared with today's production
    comparison = HoldoutComparison("auc", report.get("auc"), report.get("auc_production"),
                                   report.get("production_version"), report.get("distribution") or "the holdout")
    return promote_and_report(ctx, registry, version, verdict, f"blessed by gate: auc {report.get('auc')}",
                              comparison=comparison)


def ctr_pipeline() -> Pipeline:
    """The click model's pipeline with its default configuration."""
    return Pipeline(
        "yarnit-ctr",
        [
            Step("select", select, outputs={"dataset": ValueKind.REF, "truth": ValueKind.REF}, retries=2,
                 reuse_in_reproduction=True),
            Step("reference", reference, inputs={"dataset": "select.dataset"}, outputs={"previous": ValueKind.REF},
                 cacheable=False),
            Step("validate", validate, inputs={"dataset": "select.dataset", "previous": "reference.previous"},
                 outputs={"report": ValueKind.REPORT}),
            Step("split", split, inputs={"dataset": "select.dataset"}, outputs={"split": ValueKind.REPORT}),
            Step("golden", golden, inputs={"split": "split.split"}, outputs={"report": ValueKind.REPORT},
                 cacheable=False),
            Step("tune", tune, inputs={"dataset": "select.dataset", "split": "split.split"},
                 outputs={"report": ValueKind.REPORT}),
            Step("train", train, inputs={"dataset": "select.dataset", "split": "split.split"},
                 outputs={"model": ValueKind.MODEL}, dask=_train_on_dask),
            Step("baseline", baseline, inputs={"model": "train.model"}, outputs={"production": ValueKind.REF},
                 cacheable=False),
            Step("evaluate", evaluate, inputs={"model": "train.model", "dataset": "select.dataset",
                                              "split": "split.split", "truth": "select.truth",
                                              "baseline": "baseline.production"},
                 outputs={"report": ValueKind.REPORT}),
            Step("gate", gate, inputs={"report": "evaluate.report"}, outputs={"verdict": ValueKind.REPORT},
                 cacheable=False),
            Step("register", register, inputs={"model": "train.model", "report": "evaluate.report",
                                              "verdict": "gate.verdict", "dataset": "select.dataset"},
                 outputs={"model_version": ValueKind.REF}, cacheable=False),
        ],
        config=DEFAULTS,
        params=PARAMS,
        description="Yarn Product Click Prediction Model: world → dataset → features → model → gate → registry",
    )


__all__ = ["DEFAULTS", "LABEL", "RAW_INPUTS", "TRANSFORM", "BlockingAnomalies", "ctr_pipeline"]
