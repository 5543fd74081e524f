from datetime import date

import numpy as np
import pandas as pd
import pytest
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from yarnit.core import InvalidInput
from yarnit.world import (
    CANDIDATE_COLUMNS,
    IMPRESSION_COLUMNS,
    World,
    WorldConfig,
    popularity_ranker,
    random_ranker,
    with_exploration,
)

from .conftest import DAYS, SESSIONS, assert_day_equal, run

REQUIRED_IMPRESSION_COLUMNS = {
    "impression_id": "str", "event_time": "datetime64[us, UTC]", "day": "object", "session_id": "str",
    "user_id": "str", "product_id": "str", "position": "int64", "query": "str", "country": "str",
    "language": "str", "device": "str", "product_type": "str", "fiber": "str", "weight_class": "str",
    "color": "str", "brand": "str", "is_partner": "bool", "price_usd": "float64", "price_local": "float64",
    "currency": "str", "discount": "float64", "in_stock": "bool", "user_price_sensitivity": "float64",
    "hour": "int64", "day_of_week": "int64", "model_version": "str", "propensity": "float64", "clicked": "int64",
}  # fmt: skip


def test_run_streams_one_partition_per_day_with_every_table(baseline):
    assert [p.day for p in baseline] == [date(2026, 1, 5), date(2026, 1, 6), date(2026, 1, 7)]
    assert [p.index for p in baseline] == [0, 1, 2]
    for partition in baseline:
        assert set(partition.tables()) == {"catalog", "users", "sessions", "impressions", "clicks", "purchases",
                                           "labels", "truth"}
        assert all(len(frame) > 0 for frame in partition.tables().values())
        assert all((frame["day"] == partition.day).all() for frame in partition.tables().values())
        assert partition.faults == ()


def test_impressions_are_a_denormalized_click_log_with_the_documented_columns(baseline):
    imp = baseline[0].impressions
    assert tuple(imp.columns) == IMPRESSION_COLUMNS
    for column, dtype in REQUIRED_IMPRESSION_COLUMNS.items():
        assert str(imp[column].dtype) == dtype, column
    assert imp["impression_id"].is_unique
    assert set(imp["position"]) == set(range(1, 11))
    assert set(imp["product_type"]) == {"yarn", "needles", "hook", "notion"}
    assert (imp["day"] == date(2026, 1, 5)).all()
    assert (imp["event_time"].dt.date == imp["day"]).all()
    assert (imp["hour"] == imp["event_time"].dt.hour).all()
    assert (imp["day_of_week"] == 0).all()  # 2026-01-05 is a Monday
    assert imp["discount"].between(0, 1).all() and (imp["discount"] > 0).any()
    assert (imp["query"] == "").any() and imp["query"].str.contains("merino").any()
    assert (imp["model_version"] == "popularity").all()
    assert (imp["propensity"] > 0).all() and (imp["propensity"] <= 1).all()
    assert set(imp["clicked"]) == {0, 1}
    assert {"ES", "NO"} <= set(imp["country"]) and {"EUR", "NOK", "USD"} <= set(imp["currency"])
    # browsing sessions have an empty query; searches a query made of product words
    sessions = baseline[0].sessions
    assert set(sessions["kind"]) == {"search", "browse"}
    assert (sessions.loc[sessions["kind"] == "browse", "query"] == "").all()


def test_tables_join_on_their_ids(baseline):
    day = baseline[1]
    imp, truth = day.impressions, day.truth
    assert set(truth["impression_id"]) == set(imp["impression_id"])
    assert set(day.clicks["impression_id"]) == set(truth.loc[truth["clicked"] == 1, "impression_id"])
    assert set(day.purchases["impression_id"]) <= set(day.clicks["impression_id"])
    assert set(imp["session_id"]) == set(day.sessions["session_id"])
    assert set(imp["user_id"]) == set(day.users["user_id"])
    assert set(imp["product_id"]) <= set(day.catalog["product_id"])
    kinds = day.labels["kind"].value_counts().to_dict()
    assert kinds["click"] == len(day.clicks) and kinds["purchase"] == len(day.purchases)
    assert (day.labels["arrival_time"] >= day.labels["event_time"]).all()
    fraud = day.labels[day.labels["kind"] == "fraud"]
    assert ((fraud["arrival_time"] - fraud["event_time"]) >= pd.Timedelta(days=2)).all()
    assert (day.purchases["paid_usd"] > 0).all()
    assert ((day.purchases["paid_local"] / day.purchases["fx_rate"] - day.purchases["paid_usd"]).abs() < 0.01).all()


def test_truth_is_a_known_function_and_never_a_feature(baseline):
    truth, imp = baseline[0].truth, baseline[0].impressions
    assert {"p_click", "relevance"} & set(imp.columns) == set()
    assert truth["p_click"].between(0, 1).all()
    assert (truth["p_click"] <= truth["relevance"] + 1e-12).all()  # position bias only lowers it
    assert (truth.loc[truth["position"] == 1, "p_click"] == truth.loc[truth["position"] == 1, "relevance"]).all()


def test_new_products_and_new_shoppers_arrive_every_day(baseline):
    sizes = [len(p.catalog) for p in baseline]
    assert sizes == [1000, 1005, 1010]
    newest = baseline[2].catalog[baseline[2].catalog["listed_date"] == date(2026, 1, 7)]
    assert len(newest) == 5 and (newest["product_age_days"] == 0).all()
    assert all(p.users["is_new"].any() and (~p.users["is_new"]).any() for p in baseline)


def test_same_seed_same_world_and_another_seed_another_world(baseline):
    again = World(WorldConfig(seed=11, sessions_per_day=SESSIONS, n_users=3000)).run(DAYS)
    for a, b in zip(baseline, again, strict=True):
        assert_day_equal(a, b)
    other = next(iter(World(WorldConfig(seed=12, sessions_per_day=SESSIONS, n_users=3000)).run(1)))
    assert not other.impressions["product_id"].equals(baseline[0].impressions["product_id"])


def test_world_responds_to_the_ranker_oracle_beats_popularity_beats_random():
    clicks = {name: sum(int(p.truth["clicked"].sum()) for p in run(ranker=name)) for name in
              ("oracle", "popularity", "random")}
    assert clicks["oracle"] > 1.2 * clicks["popularity"]
    assert clicks["popularity"] > 1.05 * clicks["random"]
    # what shoppers were shown changes, so the next days' training data change too
    assert not run(ranker="oracle")[1].impressions["product_id"].equals(run()[1].impressions["product_id"])


def test_random_ranker_logs_uniform_propensities():
    imp = run(ranker="random")[0].impressions
    assert np.allclose(imp["propensity"], 1 / 30)
    assert (imp["model_version"] == "random").all()


def test_exploration_logs_exact_propensities():
    world = World(WorldConfig(seed=2, sessions_per_day=300, n_users=500),
                  ranker=with_exploration(popularity_ranker, 0.25))
    imp = next(iter(world.run(1))).impressions
    assert (imp["model_version"] == "popularity").all()
    # propensity = 0.75 * [in the item's tie group] / (tie group size) + 0.25 / 30
    greedy_part = ((imp["propensity"] - 0.25 / 30) / 0.75).to_numpy()
    explored_away = np.isclose(greedy_part, 0)
    group_size = 1 / greedy_part[~explored_away]
    assert explored_away.any() and np.isclose(group_size, np.round(group_size)).all()
    assert np.isclose(imp["propensity"], 0.75 + 0.25 / 30).any()  # unique score, shown greedily


def test_slate_propensities_match_the_frequencies_of_the_display_policy():
    from yarnit.world.slates import order_slates

    n = 40_000
    scores = np.tile([3.0, 1.0, 2.0, 2.0, 0.0], (n, 1))  # a tie between candidates 2 and 3
    order, propensity = order_slates(scores, 3, 0.3, np.random.default_rng(0))
    for item in range(5):
        for position in range(3):
            shown = order[:, position] == item
            assert np.allclose(propensity[shown, position], propensity[shown, position][0])
            assert abs(shown.mean() - propensity[shown, position][0]) < 0.01, (item, position)


def test_click_model_is_learnable_and_the_oracle_leaves_room(baseline):
    imp = pd.concat([p.impressions for p in baseline], ignore_index=True)
    truth = pd.concat([p.truth for p in baseline], ignore_index=True)
    assert 0.03 < imp["clicked"].mean() < 0.08
    oracle_auc = roc_auc_score(truth["clicked"], truth["p_click"])
    assert 0.70 < oracle_auc < 0.85
    features = ["country", "device", "product_type", "fiber", "weight_class", "color", "brand", "query",
                "position", "hour", "in_stock", "is_partner"]
    records = imp[features].astype(str).to_dict("records")
    for record, price, sensitivity in zip(records, imp["price_usd"], imp["user_price_sensitivity"], strict=True):
        record["log_price"], record["sensitivity"] = float(np.log(price)), float(sensitivity)
    train = (imp["day"] < baseline[-1].day).to_numpy()
    vectorizer = DictVectorizer()
    x_train = vectorizer.fit_transform([r for r, t in zip(records, train, strict=True) if t])
    x_test = vectorizer.transform([r for r, t in zip(records, train, strict=True) if not t])
    model = LogisticRegression(max_iter=500).fit(x_train, imp.loc[train, "clicked"])
    model_auc = roc_auc_score(imp.loc[~train, "clicked"], model.predict_proba(x_test)[:, 1])
    popularity_auc = roc_auc_score(imp.loc[~train, "clicked"], imp.loc[~train, "score"])
    assert model_auc > 0.65
    assert popularity_auc < model_auc < roc_auc_score(truth.loc[~train, "clicked"], truth.loc[~train, "p_click"])


def test_a_plain_callable_ranker_sees_requests_and_matches_the_batch_path():
    seen = []

    def by_popularity(request):
        seen.append(request)
        return request.candidates["product_clicks_7d"].to_numpy()

    config = WorldConfig(seed=5, sessions_per_day=60, n_users=300)
    plain = next(iter(World(config, ranker=by_popularity).run(1)))
    batch = next(iter(World(config).run(1)))
    assert (plain.impressions["model_version"] == "by_popularity").all()
    pd.testing.assert_frame_equal(plain.truth, batch.truth)
    pd.testing.assert_frame_equal(plain.impressions.drop(columns="model_version"),
                                  batch.impressions.drop(columns="model_version"))
    request = seen[0]
    assert tuple(request.candidates.columns) == CANDIDATE_COLUMNS and len(request.candidates) == 30
    assert set(request.user) == {"user_id", "country", "language", "currency", "price_sensitivity", "is_new"}
    assert {"hour", "day_of_week", "country", "device", "session_id"} <= set(request.context)
    assert request.truth_relevance is not None  # the oracle's: not a column, and never logged


@pytest.mark.parametrize(
    ("ranker", "message"),
    [
        (lambda request: [1.0, 2.0], r"returned 2 scores for 1 requests x 30 candidates"),
        (lambda request: np.full(len(request.candidates), np.nan), r"returned 30 NaN or infinite scores"),
        (42, r"42 is not a ranker"),
    ],
)
def test_broken_rankers_fail_clearly(ranker, message):
    world = World(WorldConfig(sessions_per_day=1, n_users=10), ranker=ranker)
    with pytest.raises(InvalidInput, match=message):
        next(iter(world.run(1)))


def test_exploration_rate_must_be_a_probability():
    with pytest.raises(InvalidInput, match=r"exploration_rate=1.5; it must be a float in \[0, 1\]"):
        with_exploration(random_ranker, 1.5)
