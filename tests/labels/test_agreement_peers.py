"""Agreement statistics equal the peers' (sklearn, statsmodels, krippendorff) within 1e-9."""

from __future__ import annotations

import krippendorff
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa

from yarnit.core.errors import InvalidInput
from yarnit.labels import (
    MISSING,
    cohen_kappa,
    count_table,
    dawid_skene,
    fleiss_kappa,
    krippendorff_alpha,
    majority_vote,
)
from yarnit.world import RaterPool


def _noisy(seed: int, n_items: int, n_raters: int, k: int, accuracy: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n_items)
    return np.where(rng.random((n_items, n_raters)) < accuracy, truth[:, None], rng.integers(0, k, (n_items, n_raters)))


@pytest.mark.parametrize("seed", range(8))
def test_cohen_kappa_equals_sklearn(seed: int) -> None:
    answers = _noisy(seed, 60 + 17 * seed, 2, 2 + seed % 4, 0.3 + 0.08 * seed)
    assert abs(cohen_kappa(answers[:, 0], answers[:, 1]) - cohen_kappa_score(answers[:, 0], answers[:, 1])) < 1e-9


def test_cohen_kappa_skips_items_one_rater_left_out_and_handles_unseen_classes() -> None:
    a = np.array([0, 1, 2, 3, MISSING, 1, 1, 0, 3])
    b = np.array([0, 1, 1, MISSING, 2, 1, 0, 0, 2])
    both = (a != MISSING) & (b != MISSING)
    assert abs(cohen_kappa(a, b) - cohen_kappa_score(a[both], b[both])) < 1e-9
    with pytest.raises(InvalidInput, match="share none"):
        cohen_kappa([0, MISSING], [MISSING, 1])


@pytest.mark.parametrize("seed", range(8))
def test_fleiss_kappa_equals_statsmodels(seed: int) -> None:
    answers = _noisy(100 + seed, 50 + 13 * seed, 2 + seed % 5, 2 + seed % 5, 0.2 + 0.1 * seed)
    table = count_table(answers, int(answers.max()) + 1)
    assert abs(fleiss_kappa(table) - sm_fleiss_kappa(table, method="fleiss")) < 1e-9


def test_fleiss_kappa_refuses_uneven_overlap_and_points_to_alpha() -> None:
    with pytest.raises(InvalidInput, match="krippendorff_alpha"):
        fleiss_kappa(np.array([[2, 1], [1, 1]]))


@pytest.mark.parametrize("seed", range(8))
def test_krippendorff_alpha_equals_the_krippendorff_package_with_missing_answers(seed: int) -> None:
    answers = _noisy(200 + seed, 40 + 11 * seed, 3 + seed % 4, 2 + seed % 6, 0.3 + 0.08 * seed).astype(float)
    rng = np.random.default_rng(seed)
    answers[rng.random(answers.shape) < 0.1 + 0.05 * seed] = np.nan  # uneven overlap, some singletons
    reliability = answers.T
    expected = krippendorff.alpha(reliability_data=reliability, level_of_measurement="nominal")
    assert abs(krippendorff_alpha(reliability) - expected) < 1e-9


def test_krippendorff_alpha_on_awkward_data() -> None:
    # sparse class codes, one unit answered once (not pairable), perfect agreement elsewhere but one
    data = np.array([[7, 7, 42, np.nan, 3], [7, 7, 42, 3, np.nan], [7, 3, np.nan, np.nan, np.nan]])
    assert abs(krippendorff_alpha(data) - krippendorff.alpha(reliability_data=data,
                                                             level_of_measurement="nominal")) < 1e-9
    assert np.isnan(krippendorff_alpha(np.array([[1, 1], [1, 1]])))  # no variation: undefined


def test_majority_vote_weights_break_ties_and_empty_items_stay_unlabelled() -> None:
    answers = np.array([[0, 1, MISSING], [MISSING, MISSING, MISSING], [2, 2, 1]])
    label, confidence = majority_vote(answers, 3)
    assert label.tolist() == [0, MISSING, 2] and confidence.tolist() == [0.5, 0.0, pytest.approx(2 / 3)]
    label, _ = majority_vote(answers, 3, weights=[0.1, 1.0, 1.0])
    assert label[0] == 1


def test_dawid_skene_beats_majority_on_the_simulated_pool() -> None:
    wins = []
    for seed in range(3):
        rng = np.random.default_rng(seed)
        truth = rng.integers(0, 4, 400)
        pool = RaterPool.default(4, seed=seed)
        raters = [p.rater_id for p in pool.profiles]
        answers = np.full((400, len(raters)), MISSING)
        for i in range(400):
            for j in range(3):
                r = (3 * i + j) % len(raters)
                answers[i, r] = pool.answer(raters[r], f"item-{i}", int(truth[i]))
        majority = (majority_vote(answers, 4)[0] == truth).mean()
        ds = (dawid_skene(answers, 4)[0].argmax(axis=1) == truth).mean()
        wins.append(ds - majority)
    assert min(wins) > 0.03, wins
