"""The click pipeline in bounded memory (issue 20): the streamed dataset, the chunked features and the matrices
built from them are exactly what the whole-frame path gave; the frames the steps hand on are narrow."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from yarnit.data import Datasets
from yarnit.features.request_time_frame import ctr_features_v1_frame
from yarnit.recipes import ctr
from yarnit.recipes.ctr import LABEL, RAW_INPUTS, ctr_pipeline
from yarnit.storage import Workspace
from yarnit.training import PipelineRunner, StepContext
from yarnit.training.chunks import FeatureChunks, narrow
from yarnit.training.encoding import encode_frame, fit_and_encode, fit_vectorizer
from yarnit.training.trainers import make_trainer

CONFIG = {"days": 4, "sessions_per_day": 300, "faults": ["upstream_change@2,change=rename,column=brand"]}
BINARY = ("is_partner", "in_stock", "has_query", "query_match_fiber", "query_match_weight", "query_match_color",
          "query_match_type")


@pytest.fixture
def selected(sqlite_ws: Workspace) -> tuple[StepContext, dict[str, Any], dict[str, Any]]:
    """A small world through select and split, and a step context to call the train helpers with."""
    result = PipelineRunner(sqlite_ws).run(ctr_pipeline().subset({"split"}), config=CONFIG)
    config = ctr_pipeline().config | CONFIG
    ctx = StepContext(sqlite_ws, result.id, "yarnit-ctr", "train", config, 0)
    return ctx, result.value("select", "dataset"), result.value("split", "split")


def _whole_log(ws: Workspace) -> Any:
    """CONFIG's world log concatenated in memory and ingested at once (the old select)."""
    from yarnit.world import World, WorldConfig, parse_fault

    base = WorldConfig(seed=0, sessions_per_day=CONFIG["sessions_per_day"])
    world = World(WorldConfig(seed=0, sessions_per_day=base.sessions_per_day,
                              faults=tuple(parse_fault(f, start=base.start) for f in CONFIG["faults"])))
    log = pd.concat([p.impressions for p in world.run(CONFIG["days"])], ignore_index=True)
    assert log.columns[-1] == "material" and log["material"].isna().any()  # the renamed column appeared part-way
    whole = Datasets(ws).ingest_frame("whole-log", log, source="test", pii_columns=["user_id"], subject="user_id")
    assert whole.row_count == len(log)
    return whole


def test_the_streamed_dataset_is_byte_for_byte_the_concatenated_log(sqlite_ws: Workspace) -> None:
    """select writes the world one day at a time; a column renamed part-way (an upstream change on day 2) still
    gets one type and the order pandas gave the concatenated log, so the version's content is the same."""
    result = PipelineRunner(sqlite_ws).run(ctr_pipeline().subset({"select"}), config=CONFIG)
    streamed = Datasets(sqlite_ws).get_by_id(result.value("select", "dataset")["id"])
    assert streamed.schema["material"] == streamed.schema["brand"]
    whole = _whole_log(sqlite_ws)
    assert streamed.row_count == whole.row_count
    assert streamed.content_sha256 == whole.content_sha256


def test_the_log_is_stored_in_row_groups_of_part_rows_that_are_the_dask_parts(
        sqlite_ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 20: select stores the log in row groups of PART_ROWS (a Dask worker's part of the training rows),
    all full but the last, with the rows and the statistics of one 1M-row group; train's parts are those row
    groups, each at most PART_ROWS rows."""
    import pyarrow.parquet as pq

    one_group = PipelineRunner(sqlite_ws).run(ctr_pipeline().subset({"select"}), config=CONFIG)
    default = Datasets(sqlite_ws).get_by_id(one_group.value("select", "dataset")["id"])
    monkeypatch.setattr(ctr, "PART_ROWS", 1000)
    result = PipelineRunner(sqlite_ws).run(ctr_pipeline().subset({"split"}), config=CONFIG, force=True)
    dataset = result.value("select", "dataset")
    streamed = Datasets(sqlite_ws).get_by_id(dataset["id"])
    stored = pq.ParquetFile(sqlite_ws.artifacts.verify(streamed.artifact_sha256))
    sizes = [stored.metadata.row_group(g).num_rows for g in range(stored.num_row_groups)]
    assert len(sizes) == -(-streamed.row_count // 1000) > 5 and set(sizes[:-1]) == {1000}, sizes
    assert stored.read().equals(pq.read_table(sqlite_ws.artifacts.verify(default.artifact_sha256)))
    assert streamed.statistics == default.statistics  # still profiled a 1M-row chunk at a time
    ctx = StepContext(sqlite_ws, result.id, "yarnit-ctr", "train", ctr_pipeline().config | CONFIG, 0)
    chunks, labels = ctr._train_features(ctx, dataset, result.value("split", "split"))
    rows = [sum(len(frame) for frame in part()) for part in chunks.parts]
    assert len(rows) == len(sizes) and max(rows) <= 1000 and sum(rows) == len(labels) == len(chunks)


def test_chunked_features_equal_the_whole_frame_transform(selected: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx, dataset, split = selected
    monkeypatch.setattr(ctr, "CHUNK_ROWS", 1000)  # several chunks, some across a day boundary
    chunks, labels = ctr._train_features(ctx, dataset, split)
    parts = list(chunks)
    assert len(parts) > 3 and sum(len(p) for p in parts) == len(chunks) == len(labels)
    cut = pd.Timestamp(split["holdout_from"]).date()
    raw = ctr._read(ctx, dataset, [*RAW_INPUTS, "position", LABEL], filters=[("day", "<", cut)])
    whole = ctr_features_v1_frame(raw)
    glued = chunks.frame()
    assert list(glued.columns) == list(whole.columns)
    for column in whole.columns:
        expected, got = whole[column], glued[column]
        if isinstance(expected.dtype, pd.CategoricalDtype):
            assert got.astype(object).tolist() == expected.astype(object).tolist(), column
        else:
            assert np.array_equal(got.to_numpy(dtype=np.float64), expected.to_numpy(), equal_nan=True), column
    assert np.array_equal(labels, raw[LABEL].to_numpy())
    # the matrices the trainers build from the chunks are the whole frame's, entry for entry
    vectorizer = fit_vectorizer(whole)
    fitted, matrix, columns = fit_and_encode(chunks)
    assert fitted.feature_names_ == vectorizer.feature_names_ and columns == list(whole.columns)
    reference = encode_frame(vectorizer, whole)
    for name in ("data", "indices", "indptr"):
        assert np.array_equal(getattr(matrix, name), getattr(reference, name)), name
    lightgbm = make_trainer("lightgbm")
    dense, names, categories = lightgbm.encode(chunks)
    dense_whole, names_whole, categories_whole = lightgbm.encode(whole)
    assert names == names_whole and categories == categories_whole
    assert np.array_equal(dense, dense_whole, equal_nan=True)


def test_the_chunks_the_train_step_hands_the_trainer_are_narrow(selected: Any) -> None:
    ctx, dataset, split = selected
    chunks, labels = ctr._train_features(ctx, dataset, split)
    first = next(iter(chunks))
    # features only: no raw column, no label, no identifier
    assert list(first.columns) == list(ctr_features_v1_frame(pd.DataFrame({c: [] for c in RAW_INPUTS})).columns)
    assert LABEL not in first.columns and "user_id" not in first.columns
    for column in first.columns:
        dtype = first[column].dtype
        if column in BINARY:
            assert dtype == np.float32, column  # 0/1 flags: float32 holds them exactly
        elif isinstance(dtype, pd.CategoricalDtype):
            assert first[column].cat.codes.dtype == np.int8, column  # a few dozen values each
        else:
            assert dtype == np.float64, column  # prices and sensitivities keep every digit
    assert labels.dtype.itemsize <= 8 and len(labels) == len(chunks)


def test_narrowing_never_changes_a_value() -> None:
    frame = pd.DataFrame({"flag": [0.0, 1.0, 1.0], "price": [0.1, 2.5, 3.0], "n": [1, 2, 3],
                          "text": pd.Categorical(["a", "b", "a"])})
    out = narrow(frame)
    assert out["flag"].dtype == np.float32 and out["price"].dtype == np.float64  # 0.1 is not exact in float32
    assert out["n"].dtype == frame["n"].dtype and isinstance(out["text"].dtype, pd.CategoricalDtype)
    assert out.astype({"flag": np.float64}).equals(frame)


def test_a_logistic_model_from_chunks_is_the_one_from_the_whole_frame(selected: Any,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    ctx, dataset, split = selected
    monkeypatch.setattr(ctr, "CHUNK_ROWS", 1500)
    chunks, labels = ctr._train_features(ctx, dataset, split)
    whole = make_trainer("logistic").fit(chunks.frame(), labels, seed=0)
    chunked = make_trainer("logistic").fit(chunks, labels, seed=0)
    assert chunked.artifact == whole.artifact
    assert chunked.training["feature_importance"] == pytest.approx(whole.training["feature_importance"], abs=1e-12)
    assert FeatureChunks.of(chunks.frame()).rows == len(labels)


def test_release_memory_collects_cycles_only_in_a_big_process(monkeypatch) -> None:
    """Regression: every call ran a full ``gc.collect()``, which walks every object the process holds. In the
    operate demo (server, monitor and loop in one process) the five calls of a small daily ctr run made its
    training 5x slower and the 30-day demo 100 CPU-seconds slower; the peak they protect only matters for big
    training sets."""
    import gc

    from yarnit.training import chunks

    rss = chunks.resident_bytes()
    assert rss is not None and rss > 0  # Linux: /proc/self/statm
    full: list[int] = []

    def seen(phase: str, info: dict) -> None:
        if phase == "start" and info["generation"] == 2:
            full.append(1)

    gc.callbacks.append(seen)
    try:
        monkeypatch.setattr(chunks, "GC_ABOVE_RSS_BYTES", rss * 4)  # a small process: no full collection
        chunks.release_memory()
        assert full == []
        monkeypatch.setattr(chunks, "GC_ABOVE_RSS_BYTES", 1)  # a big one: cycles are collected first
        chunks.release_memory()
        assert full == [1]
    finally:
        gc.callbacks.remove(seen)


def test_a_small_log_is_read_once_for_training_and_gives_the_chunked_paths_model(
        selected: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression (issue 18): the chunked train step read a daily run's small log once per signature column and
    once per trainer pass (the operate demo's train steps cost 1.7x their CPU). A log of one chunk or less is
    read and transformed once; the model and signature are the chunked path's."""
    ctx, dataset, split = selected
    paths: list[Any] = []
    real_path = ctr._path
    monkeypatch.setattr(ctr, "_path", lambda c, ref: paths.append(ref["id"]) or real_path(c, ref))
    once = ctr.train(ctx, dataset, split)["model"]
    assert len(paths) == 1  # one read of the log
    monkeypatch.setattr(ctr, "CHUNK_ROWS", 1000)  # the chunked path, several chunks
    chunked = ctr.train(ctx, dataset, split)["model"]
    assert len(paths) > 3
    assert once.artifact == chunked.artifact
    assert once.signature == chunked.signature and once.params == chunked.params


@pytest.mark.parametrize("previous", [False, True])
def test_validate_cuts_a_small_log_in_memory_with_the_streamed_report(
        sqlite_ws: Workspace, monkeypatch: pytest.MonkeyPatch, previous: bool) -> None:
    """Regression (issue 18): validate streamed a daily run's small log day by day, reading it three times, and
    profiled each day of the reference again. A log of at most WHOLE_LOG_ROWS rows is read once and cut in memory,
    and a reference this process validated before takes its days' profiles from memory; the report is the one
    the streamed, uncached path gives."""
    config = CONFIG | {"faults": [*CONFIG["faults"], "biased_loss@1,country=DE,events=all"]}
    result = PipelineRunner(sqlite_ws).run(ctr_pipeline().subset({"select"}), config=config)
    ctx = StepContext(sqlite_ws, result.id, "yarnit-ctr", "validate", ctr_pipeline().config | config, 0)
    dataset = result.value("select", "dataset")

    def report() -> str:
        try:
            return repr(ctr.validate(ctx, dataset, dataset if previous else None))
        except ctr.BlockingAnomalies as exc:
            return str(exc)

    monkeypatch.setattr(ctr, "_DAY_PROFILES", {})
    monkeypatch.setattr(ctr, "_PROFILES_BY_ROWS", {})
    reads: list[Any] = []
    real = ctr.pq.read_table
    monkeypatch.setattr(ctr.pq, "read_table", lambda *a, **k: reads.append(k.get("columns")) or real(*a, **k))
    monkeypatch.setattr(ctr.pq.ParquetFile, "iter_batches", lambda *a, **k: pytest.fail("streamed a small log"))
    small = report()
    assert reads[0] is None and reads.count(None) == 1  # the log once; the reference's days from memory
    monkeypatch.undo()
    monkeypatch.setattr(ctr, "WHOLE_LOG_ROWS", 0)
    monkeypatch.setattr(ctr, "_DAY_PROFILES", {})
    monkeypatch.setattr(ctr, "_PROFILES_BY_ROWS", {})
    monkeypatch.setattr(ctr, "_remember_days", lambda *_a: None)
    assert "country" in small and report() == small


def test_a_day_is_profiled_once_for_every_window_that_holds_the_same_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression (issue 18): validate profiled every day of each daily window, though consecutive windows hold the
    same rows for all days but the newest. A day's profile is kept by its rows' content: the same rows (even cut
    from another table) are not profiled again; a changed value, type or set of slices is, and gives what a
    fresh ``profile`` gives."""
    import pyarrow as pa

    from yarnit.data import statistics

    calls: list[int] = []
    real = statistics.profile
    monkeypatch.setattr(statistics, "profile", lambda table, **k: calls.append(table.num_rows) or real(table, **k))
    monkeypatch.setattr(ctr, "_PROFILES_BY_ROWS", {})
    rng = np.random.default_rng(0)
    window = pa.table({"day": pa.array([1, 1, 1, 2, 2, 2]), "device": ["web", "app", "web", "app", "app", "web"],
                       "price_usd": rng.random(6)})
    day_one = window.slice(0, 3)
    first = ctr._day_profile(day_one, ["device"])
    again = ctr._day_profile(pa.concat_tables([window, window]).slice(0, 3), ["device"])  # same rows, other table
    assert again is first and calls == [3]
    changed = day_one.set_column(2, "price_usd", pa.array([0.5, 0.25, 0.125]))
    retyped = day_one.set_column(0, "day", day_one.column("day").cast(pa.int32()))
    for table, slices in ((changed, ["device"]), (retyped, ["device"]), (day_one, [])):
        got = ctr._day_profile(table, slices)
        assert got is not first and got == real(table, slices=slices)
    assert len(calls) == 4


def _base_rates_by_text(labels: pd.Series, slices: pd.Series) -> dict[str, Any]:
    """The serving fallback's definition: the label's mean per slice value as text (``slices.astype(str)``)."""
    rates = labels.astype(float).groupby(slices.astype(str)).agg(["mean", "size"])
    table = {str(k): float(row["mean"]) for k, row in rates.iterrows() if row["size"] >= ctr.MIN_SLICE_ROWS}
    return {"key": str(slices.name), "table": dict(sorted(table.items())), "default": float(labels.mean()),
            "source": "training base rate", "rows": len(labels)}


def test_training_base_rates_group_by_the_values_text_without_turning_every_row_into_text() -> None:
    """Issue 20: on Dask the client's train step reads the fallback slice of every training row; grouping by
    ``astype(str)`` built a text array of the rows (65 bytes a row: 1.1 GB at 90 days). The rates are the same:
    missing values left out, values with the same text (1 and "1") one slice, rare slices dropped."""
    import tracemalloc

    rng = np.random.default_rng(0)
    n = 50_000
    labels = pd.Series(rng.integers(0, 2, n))
    columns = [
        pd.Series(pd.Categorical(rng.choice(["yarn", "kit", None, "rare"], n, p=[0.5, 0.3, 0.198, 0.002])),
                  name="product_type"),
        pd.Series(rng.choice(np.array(["a", None, 1, "1", 2.5], dtype=object), n), name="mixed"),
        pd.Series(rng.random(n) < 0.3, name="flag"),
        pd.Series(np.where(rng.random(n) < 0.1, np.nan, rng.integers(0, 3, n).astype(float)), name="number"),
    ]
    for column in columns:
        assert ctr.training_base_rates(labels, column) == _base_rates_by_text(labels, column), column.name
    rows = 1_000_000
    big = pd.Series(pd.Categorical(rng.choice(["yarn_weight", "kit", "needles"], rows)), name="product_type")
    clicks = pd.Series(rng.integers(0, 2, rows))
    tracemalloc.start()
    try:
        ctr.training_base_rates(clicks, big)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak / rows < 45, peak / rows  # measured 28 bytes a row (the float labels, the group codes); text: 72


def test_evaluate_sums_the_training_days_a_batch_at_a_time_to_what_the_whole_frame_gave(selected: Any) -> None:
    """Issue 20: evaluate read every training row's product, label and slice columns as one frame (0.4 GB of
    the client at 30 days). It now sums batches: the products' click rates, the overall rate, the products
    seen and the slices' coverage are what the whole frame gave."""
    from yarnit.evaluation import training_coverage

    ctx, dataset, split = selected
    cut = pd.Timestamp(split["holdout_from"]).date()
    columns = ctr._slice_columns(ctx.config)
    coverage = [c.partition("=")[0] for c in ctx.config["slices"]]
    whole = ctr._read(ctx, dataset, ["product_id", LABEL, *columns], filters=[("day", "<", cut)])
    summed = ctr._history(ctr._batches(ctx, dataset, ["product_id", LABEL, *columns], before=cut, rows=700),
                          coverage)
    expected = whole.groupby("product_id", observed=True)[LABEL].mean()
    assert len(whole) > 2000 and summed.counts.rows == len(whole)
    assert summed.popularity.sort_index().equals(expected.set_axis(expected.index.astype(object)).sort_index())
    assert summed.overall_rate == float(whole[LABEL].mean())
    assert summed.products == set(whole["product_id"].astype(object))
    evaluation = whole.tail(500)
    assert training_coverage(summed.counts, evaluation, coverage, distribution="d") == \
        training_coverage(whole, evaluation, coverage, distribution="d")
