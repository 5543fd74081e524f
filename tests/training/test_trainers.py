"""Trainers: safe artifacts that load in the serving runtime, warm start, Dask (a real LocalCluster)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from yarnit.core import InvalidInput
from yarnit.registry import ArtifactFormat, load_predictor
from yarnit.training.trainers import make_trainer


def data(n: int = 3000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"fiber": rng.choice(["merino", "acrylic", "silk", "wool"], n),
                          "price": rng.gamma(2.0, 5.0, n), "position": rng.choice(["1", "2", "3", "4"], n)})
    logit = -2 + 1.5 * (frame["fiber"] == "merino") - 0.05 * frame["price"] - 0.3 * frame["position"].astype(int)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int).to_numpy()
    return frame, y


@pytest.mark.parametrize(("name", "fmt"), [("logistic", ArtifactFormat.SKOPS), ("hist_gbm", ArtifactFormat.SKOPS),
                                           ("lightgbm", ArtifactFormat.LIGHTGBM_TEXT)])
def test_trained_models_load_from_bytes_and_rank_well(name: str, fmt: ArtifactFormat) -> None:
    frame, y = data()
    model = make_trainer(name).fit(frame, y, seed=0)
    assert model.artifact_format is fmt and model.training["rows"] == len(y) and model.training["rows_per_s"] > 0
    scores = load_predictor(model.artifact, fmt).predict_proba(frame.to_dict("records"))
    assert roc_auc_score(y, scores) > 0.65
    unseen = load_predictor(model.artifact, fmt).predict_proba([{"fiber": "bamboo", "price": 5.0}])
    assert 0.0 < unseen[0] < 1.0


@pytest.mark.parametrize("name", ["logistic", "lightgbm"])
def test_training_is_deterministic(name: str) -> None:
    frame, y = data()
    assert make_trainer(name).fit(frame, y, seed=1).artifact == make_trainer(name).fit(frame, y, seed=1).artifact


def test_lightgbm_warm_start_adds_trees_to_the_previous_booster() -> None:
    frame, y = data()
    first = make_trainer("lightgbm", num_boost_round=20).fit(frame, y, seed=0)
    more, y2 = data(seed=1)
    warm = make_trainer("lightgbm", num_boost_round=20).fit(more, y2, seed=0, init=first)
    assert warm.training["warm_start"] is True
    assert load_predictor(warm.artifact, warm.artifact_format).booster.num_trees() == 40  # type: ignore[attr-defined]


def test_logistic_warm_start_converges_in_fewer_iterations() -> None:
    frame, y = data()
    first = make_trainer("logistic").fit(frame, y, seed=0)
    more, y2 = data(seed=1)
    cold = make_trainer("logistic").fit(more, y2, seed=0)
    warm = make_trainer("logistic").fit(more, y2, seed=0, init=first)
    assert warm.training["warm_start"] is True and cold.training["warm_start"] is False
    assert warm.training["iterations"] < cold.training["iterations"]


def test_bad_trainer_names_and_single_class_labels_are_clear() -> None:
    with pytest.raises(InvalidInput, match="Unknown trainer 'xgb'; valid trainers: logistic, hist_gbm, lightgbm"):
        make_trainer("xgb")
    frame, _ = data(100)
    with pytest.raises(InvalidInput, match="All 100 training labels are 0.*click-processing outage"):
        make_trainer("logistic").fit(frame, np.zeros(100), seed=0)


@pytest.mark.slow
def test_lightgbm_trains_on_a_real_dask_local_cluster_with_two_workers() -> None:
    from distributed import Client, LocalCluster

    frame, y = data(4000)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      host="127.0.0.1") as cluster, Client(cluster) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        model = make_trainer("lightgbm", num_boost_round=30).fit(frame, y, seed=0, dask_client=client)
    assert model.training["distributed"] is True
    scores = load_predictor(model.artifact, model.artifact_format).predict_proba(frame.to_dict("records"))
    assert roc_auc_score(y, scores) > 0.65
