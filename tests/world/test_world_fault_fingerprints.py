"""Each fault leaves its fingerprint, and nothing else changes versus the same seed without it.

All runs: 3 days, the fault on day 1 (2026-01-06), compared with the baseline run of the
same seed. Days before the fault are always identical. Faults that do not change what
shoppers do or what the popularity job counts leave the following days identical too;
the others change the following days only through the feedback loop (documented per test).
"""

import numpy as np
import pandas as pd
import pytest

from yarnit.world import FAULTS

from .conftest import assert_day_equal, run, without

DAY1_START = pd.Timestamp("2026-01-06", tz="UTC")
DAY1_END = pd.Timestamp("2026-01-07", tz="UTC")
PARTNER_COLUMNS = ["fiber", "weight_class", "color", "brand"]


def _session_number(ids: pd.Series) -> pd.Series:
    return ids.str.slice(10, 18).astype(int)


def test_discount_format_drops_discounted_purchases_and_nothing_else(baseline):
    hit = run(("discount_format@1",))
    for day in (0, 2):
        assert_day_equal(hit[day], baseline[day])
    base, faulty = baseline[1], hit[1]
    assert_day_equal(faulty, base, ("catalog", "users", "sessions", "clicks", "truth"))
    lost = (base.purchases["discount"] > 0) & (base.purchases["event_time"] < DAY1_END)
    assert lost.sum() >= 3
    pd.testing.assert_frame_equal(faulty.purchases, without(base.purchases, lost))
    lost_ids = set(base.purchases.loc[lost, "purchase_id"])
    pd.testing.assert_frame_equal(faulty.labels, without(base.labels, base.labels["purchase_id"].isin(lost_ids)))
    changed = base.impressions["impression_id"].isin(base.purchases.loc[lost, "impression_id"])
    assert (faulty.impressions.loc[changed, "purchased"] == 0).all()
    pd.testing.assert_frame_equal(faulty.impressions.drop(columns="purchased"),
                                  base.impressions.drop(columns="purchased"))
    pd.testing.assert_series_equal(faulty.impressions.loc[~changed, "purchased"],
                                   base.impressions.loc[~changed, "purchased"])


def test_partner_lookup_empties_partner_attributes_and_nothing_else(baseline):
    hit = run(("partner_lookup@1",))
    for day in (0, 2):
        assert_day_equal(hit[day], baseline[day])
    base, faulty = baseline[1], hit[1]
    assert_day_equal(faulty, base, ("users", "sessions", "clicks", "purchases", "labels", "truth"))
    for table in ("impressions", "catalog"):
        b, f = getattr(base, table), getattr(faulty, table)
        partner = b["is_partner"].to_numpy()
        assert partner.any() and (~partner).any()
        assert f.loc[partner, PARTNER_COLUMNS].isna().all().all()
        assert f.loc[~partner, PARTNER_COLUMNS].notna().all().all()
        pd.testing.assert_frame_equal(f.loc[~partner], b.loc[~partner])
        pd.testing.assert_frame_equal(f.drop(columns=PARTNER_COLUMNS), b.drop(columns=PARTNER_COLUMNS))


def test_partner_lookup_failure_rate_fails_that_share_of_lookups():
    imp = run(("partner_lookup@1,failure_rate=0.3",))[1].impressions
    failed = imp.loc[imp["is_partner"], "fiber"].isna().mean()
    assert 0.25 < failed < 0.35


def test_stale_feature_freezes_at_the_first_day_while_the_world_moves_on(baseline):
    hit = run(("stale_features@1:48,feature=discount",))
    assert_day_equal(hit[0], baseline[0])
    for day in (1, 2):
        assert_day_equal(hit[day], baseline[day], ("users", "sessions", "clicks", "purchases", "labels", "truth"))
        pd.testing.assert_frame_equal(hit[day].impressions.drop(columns="discount"),
                                      baseline[day].impressions.drop(columns="discount"))
    frozen = baseline[1].catalog.set_index("product_id")["discount"]
    imp2 = hit[2].impressions
    known = imp2["product_id"].isin(frozen.index)
    np.testing.assert_array_equal(imp2.loc[known, "discount"], frozen.loc[imp2.loc[known, "product_id"]].to_numpy())
    live = baseline[2].impressions["discount"]
    assert (live[known] != imp2.loc[known, "discount"]).any()  # the promotions did change on day 2
    pd.testing.assert_series_equal(hit[2].catalog["discount"].iloc[: len(frozen)],
                                   baseline[1].catalog["discount"], check_names=False)


def test_stale_popularity_freezes_the_popularity_ranker(baseline):
    hit = run(("stale_features@1:48",))  # feature=product_clicks_7d by default
    assert_day_equal(hit[1], baseline[1])  # on its first day the snapshot is still fresh
    frozen = baseline[1].catalog.set_index("product_id")["product_clicks_7d"]
    imp2 = hit[2].impressions
    known = imp2["product_id"].isin(frozen.index)
    expected = frozen.loc[imp2.loc[known, "product_id"]].to_numpy()
    np.testing.assert_array_equal(imp2.loc[known, "product_clicks_7d"], expected)
    np.testing.assert_array_equal(imp2.loc[known, "score"], expected.astype(float))
    assert not hit[2].truth["p_click"].equals(baseline[2].truth["p_click"])  # the ranker saw stale values


def test_biased_loss_of_a_country_removes_exactly_its_events(baseline):
    hit = run(("biased_loss@1,country=ES,events=all",))
    assert_day_equal(hit[0], baseline[0])
    base, faulty = baseline[1], hit[1]
    assert_day_equal(faulty, base, ("catalog", "users", "truth"))
    spanish_sessions = set(base.sessions.loc[base.sessions["country"] == "ES", "session_id"])
    assert spanish_sessions
    for table in ("sessions", "impressions", "clicks", "purchases"):
        b = getattr(base, table)
        lost = b["session_id"].isin(spanish_sessions)
        pd.testing.assert_frame_equal(getattr(faulty, table), without(b, lost), obj=table)
    lost_impressions = set(base.impressions.loc[base.impressions["country"] == "ES", "impression_id"])
    pd.testing.assert_frame_equal(faulty.labels, without(base.labels, base.labels["impression_id"]
                                                         .isin(lost_impressions)))
    assert set(base.truth["impression_id"]) - set(faulty.impressions["impression_id"]) == lost_impressions
    # feedback: the popularity job counted fewer clicks, so day 2 differs
    assert hit[2].catalog["product_clicks_7d"].sum() < baseline[2].catalog["product_clicks_7d"].sum()


def test_biased_loss_default_is_the_spanish_payments_outage(baseline):
    hit = run(("biased_loss@1",))  # language=es, events=purchases
    base, faulty = baseline[1], hit[1]
    assert_day_equal(faulty, base, ("catalog", "users", "sessions", "clicks", "truth"))
    lost = (base.purchases["language"] == "es") & (base.purchases["event_time"] < DAY1_END)
    assert lost.sum() > 0
    pd.testing.assert_frame_equal(faulty.purchases, without(base.purchases, lost))
    assert (faulty.purchases["language"] != "es").all()
    pd.testing.assert_frame_equal(faulty.impressions.drop(columns="purchased"),
                                  base.impressions.drop(columns="purchased"))
    assert_day_equal(hit[2], baseline[2])  # purchases do not feed the popularity job


def test_click_log_outage_delays_clicks_so_the_window_looks_all_negative(baseline):
    hit = run(("click_log_outage@1",))
    assert_day_equal(hit[0], baseline[0])
    base, faulty = baseline[1], hit[1]
    assert_day_equal(faulty, base, ("catalog", "users", "sessions", "purchases", "truth"))
    in_window = base.clicks["event_time"] < DAY1_END
    assert in_window.sum() > 100
    late = faulty.clicks.loc[in_window, "arrival_time"]
    assert (late >= DAY1_END + pd.Timedelta(hours=48)).all() and (late < DAY1_END + pd.Timedelta(hours=54)).all()
    pd.testing.assert_frame_equal(faulty.clicks.drop(columns="arrival_time"), base.clicks.drop(columns="arrival_time"))
    pd.testing.assert_frame_equal(faulty.clicks.loc[~in_window], base.clicks.loc[~in_window])
    stuck = base.impressions["impression_id"].isin(base.clicks.loc[in_window, "impression_id"])
    assert (faulty.impressions.loc[stuck, "clicked"] == 0).all()
    assert (base.impressions.loc[stuck, "clicked"] == 1).all()
    pd.testing.assert_frame_equal(faulty.impressions.drop(columns="clicked"), base.impressions.drop(columns="clicked"))
    assert faulty.truth["clicked"].sum() == base.truth["clicked"].sum()  # the truth keeps the clicks
    click_labels = faulty.labels["kind"] == "click"
    pd.testing.assert_frame_equal(faulty.labels[~click_labels], base.labels[~click_labels])
    # feedback: the popularity job missed the day's clicks
    assert hit[2].catalog["product_clicks_7d"].sum() < baseline[2].catalog["product_clicks_7d"].sum()


def test_upstream_prices_in_cents(baseline):
    hit = run(("upstream_change@1",))
    for day in (0, 2):
        assert_day_equal(hit[day], baseline[day])
    base, faulty = baseline[1], hit[1]
    assert_day_equal(faulty, base, ("users", "sessions", "clicks", "purchases", "labels", "truth"))
    for column in ("price_usd", "price_local"):
        np.testing.assert_allclose(faulty.impressions[column], base.impressions[column] * 100)
    np.testing.assert_allclose(faulty.catalog["price_usd"], base.catalog["price_usd"] * 100)
    columns = ["price_usd", "price_local"]
    pd.testing.assert_frame_equal(faulty.impressions.drop(columns=columns), base.impressions.drop(columns=columns))


def test_upstream_column_rename(baseline):
    hit = run(("upstream_change@1,change=rename,column=fiber,new_name=material",))
    for day in (0, 2):
        assert_day_equal(hit[day], baseline[day])
    base, faulty = baseline[1], hit[1]
    assert "fiber" not in faulty.impressions.columns and "fiber" not in faulty.catalog.columns
    pd.testing.assert_frame_equal(faulty.impressions, base.impressions.rename(columns={"fiber": "material"}))
    pd.testing.assert_frame_equal(faulty.catalog, base.catalog.rename(columns={"fiber": "material"}))
    assert_day_equal(faulty, base, ("users", "sessions", "clicks", "purchases", "labels", "truth"))


def test_traffic_spike_adds_sessions_in_the_window_and_leaves_ordinary_ones_alone(baseline):
    hit = run(("traffic_spike@1:6",))  # factor 10, 00:00-06:00
    assert_day_equal(hit[0], baseline[0])
    base, faulty = baseline[1], hit[1]
    ordinary = _session_number(faulty.sessions["session_id"]) < 10_000_000
    extra = faulty.sessions[~ordinary]
    assert len(extra) == round(9 * len(base.sessions) * 6 / 24)
    assert extra["event_time"].between(DAY1_START, DAY1_START + pd.Timedelta(hours=6), inclusive="left").all()
    pd.testing.assert_frame_equal(faulty.sessions[ordinary].reset_index(drop=True), base.sessions)
    truth_ordinary = _session_number(faulty.truth["session_id"]) < 10_000_000
    pd.testing.assert_frame_equal(faulty.truth[truth_ordinary.to_numpy()].reset_index(drop=True), base.truth)
    pd.testing.assert_frame_equal(faulty.catalog, base.catalog)
    assert (faulty.truth.loc[~truth_ordinary, "source"] == "traffic_spike").all()
    assert faulty.truth.loc[~truth_ordinary, "clicked"].sum() > 0  # real shoppers, who click and buy


def test_app_requery_floods_the_logs_with_clickless_app_searches(baseline):
    hit = run(("app_requery@1",))
    for day in (0, 2):
        assert_day_equal(hit[day], baseline[day])
    base, faulty = baseline[1], hit[1]
    assert_day_equal(faulty, base, ("catalog", "users", "clicks", "purchases", "labels"))
    reissued = _session_number(faulty.sessions["session_id"]) >= 10_000_000
    assert reissued.sum() > 0.1 * len(base.sessions)
    extra = faulty.sessions[reissued]
    assert (extra["device"] == "app").all() and (extra["kind"] == "search").all() and (extra["query"] != "").all()
    extra_impressions = faulty.impressions[faulty.impressions["session_id"].isin(extra["session_id"])]
    assert len(extra_impressions) == 10 * len(extra) and extra_impressions["clicked"].sum() == 0
    truth = faulty.truth[faulty.truth["source"] == "app_requery"]
    assert len(truth) == len(extra_impressions) and (truth["p_click"] == 0).all()
    pd.testing.assert_frame_equal(faulty.sessions[~reissued].reset_index(drop=True), base.sessions)
    assert faulty.impressions["clicked"].mean() < 0.8 * base.impressions["clicked"].mean()  # CTR looks halved


def test_stockout_of_top_products_while_the_ranker_keeps_showing_them(baseline):
    hit = run(("stockout@1,top_n=5",))
    assert_day_equal(hit[0], baseline[0])
    base, faulty = baseline[1], hit[1]
    top = base.catalog.sort_values("product_clicks_7d", ascending=False, kind="stable")["product_id"].head(5)
    assert set(faulty.catalog.loc[~faulty.catalog["in_stock"], "product_id"]) >= set(top)
    shown = faulty.impressions["product_id"].isin(top)
    assert shown.sum() > 100  # popularity keeps showing them
    assert not faulty.impressions.loc[shown, "in_stock"].any()
    assert not faulty.purchases["product_id"].isin(top).any()
    assert base.purchases["product_id"].isin(top).any()
    assert faulty.truth.loc[shown.to_numpy(), "p_click"].sum() < base.truth.loc[shown.to_numpy(), "p_click"].sum()
    untouched = ~base.impressions["session_id"].isin(base.impressions.loc[shown, "session_id"]).to_numpy()
    pd.testing.assert_frame_equal(faulty.truth[untouched], base.truth[untouched])
    pd.testing.assert_frame_equal(faulty.sessions, base.sessions)
    assert hit[2].catalog.set_index("product_id").loc[top, "in_stock"].all()  # suppliers deliver after the window


def test_model_collapse_zeroes_scores_and_scrambles_the_slates(baseline):
    hit = run(("model_collapse@1",))
    assert_day_equal(hit[0], baseline[0])
    base, faulty = baseline[1], hit[1]
    assert (faulty.impressions["score"] == 0).all() and base.impressions["score"].std() > 0
    assert_day_equal(faulty, base, ("catalog", "users", "sessions"))
    assert faulty.truth["p_click"].sum() < 0.95 * base.truth["p_click"].sum()
    constant = run(("model_collapse@1,mode=constant,value=0.25",))[1]
    assert (constant.impressions["score"] == 0.25).all()


def test_faults_combine_and_each_shows_up():
    specs = tuple(f"{name}@1" for name in FAULTS if name not in ("upstream_change", "stale_features"))
    specs += ("upstream_change@2,change=rename", "stale_features@0:72,feature=in_stock")
    days = run(specs)
    assert [f.name for f in days[1].faults] == [s.split("@")[0] for s in specs if "@1" in s or "@0" in s]
    imp = days[1].impressions
    assert imp.loc[imp["is_partner"], "fiber"].isna().all()
    assert (imp["score"] == 0).all()
    assert (days[1].truth["source"] == "app_requery").any() and (days[1].truth["source"] == "traffic_spike").any()
    assert "material" in days[2].impressions.columns


@pytest.mark.parametrize("name", list(FAULTS))
def test_every_fault_runs_with_its_defaults(name):
    days = run((f"{name}@1",), sessions=100)
    assert [f.name for f in days[1].faults] == [name] and days[0].faults == () and days[2].faults == ()
