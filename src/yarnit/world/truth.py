"""The ground truth: how likely a shopper is to click, add to cart, buy, and commit fraud.

The true click probability of an impression is a known function::

    p_click = human · examine(position, device) · relevance
    examine(k, device) = k ** -eta[device]         eta: desktop 0.4, mobile 0.7, app 0.6
    relevance = sigmoid(z)
    z =   INTERCEPT[kind]                          search -3.9, browse -4.3
        + 1.2 · match(query, product)              share of the query's tokens in the product name
        - 1.5 · [product type != query type]       (search only)
        + taste(user, product)                     hidden fiber + weight + colour taste (N(0, 0.35) each,
                                                   around the population's and the country's taste)
        + appeal(product)                          hidden product quality, ~N(0, 0.45)
        + trend(day, product)                      seasonal and drifting fiber and colour tastes
        + 0.5 · [a conference celebrates the fiber today]
        - lambda(user) · ln(price_usd · (1 - discount) / reference_price(type))
        + 1.0 · discount                           the sale badge
        - 1.0 · [out of stock]                     the sold-out badge
        + hour_effect(local hour) + 0.1 · [weekend]  hour_effect: -0.2 at 00-05 h, +0.1 at 18-23 h

``human`` is 0 for pages that no person looks at (queries re-issued by an app
update) and 1 otherwise; ``lambda(user)`` is the shopper's price sensitivity,
which is logged as the feature ``user_price_sensitivity``.

After a click::

    p_cart     = [in stock] · sigmoid(-2.2 + 0.5 taste + 0.5 appeal - 0.5 lambda ln(price ratio) + 1.5 discount)
                 · 0.6 if another product clicked in the same session was sold out (a stock-out hurts other sales)
    p_purchase = 0.6 given a cart (the rest is cart abandonment)
    p_fraud    = 0.01 · 3 if a first-day shopper · 1.5 on the app; the fraud label arrives 2-14 days later

The oracle ranker orders candidates by ``relevance``: everything but position.
None of the hidden terms (taste, appeal, trend) is ever a column of the logs.
With these constants the popularity ranker sees a click-through rate of about
5% per impression, and ``p_click`` itself reaches an AUC of about 0.79 on the
impression log: a logistic regression on the logged features gets about 0.75,
the popularity score about 0.66, so models have room to improve.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import vocab as v
from .catalog import REFERENCE_PRICE_USD, Catalog
from .retrieval import match_fraction
from .season import DayEnvironment
from .sessions import query_type
from .shoppers import Shoppers

INTERCEPT = np.array([-3.9, -4.3])  # search, browse
MATCH_WEIGHT = 1.2
TYPE_MISMATCH = -1.5
CONFERENCE_WEIGHT = 0.5
DISCOUNT_WEIGHT = 1.0
SOLD_OUT_WEIGHT = -1.0
WEEKEND_WEIGHT = 0.1
HOUR_EFFECT = np.array([-0.2] * 6 + [0.0] * 12 + [0.1] * 6)
ETA = np.asarray(v.DEVICE_ETA)
PURCHASE_GIVEN_CART = 0.6
SOLD_OUT_FRUSTRATION = 0.6
FRAUD_BASE = 0.01


@dataclass(frozen=True)
class Rows:
    """(session, product) pairs to score, with what the truth needs to know about each."""

    user: np.ndarray
    product: np.ndarray
    qid: np.ndarray  # -1 when browsing
    kind: np.ndarray  # 0 search, 1 browse
    local_hour: np.ndarray
    weekend: np.ndarray  # bool
    in_stock: np.ndarray  # bool: the true stock at the time of the impression


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def taste(rows: Rows, catalog: Catalog, shoppers: Shoppers) -> np.ndarray:
    """The user's hidden taste for the product's fiber, weight and colour."""
    fiber, weight = catalog.fiber[rows.product], catalog.weight[rows.product]
    has_fiber, has_weight = fiber != v.NO_FIBER, weight != v.NO_WEIGHT
    out = np.where(has_fiber, shoppers.pref_fiber[rows.user, np.where(has_fiber, fiber, 0)], 0.0)
    out += np.where(has_weight, shoppers.pref_weight[rows.user, np.where(has_weight, weight, 0)], 0.0)
    out += shoppers.pref_color[rows.user, catalog.color[rows.product]]
    return out


def price_ratio_log(rows: Rows, catalog: Catalog) -> np.ndarray:
    p = rows.product
    return np.log(catalog.price_usd[p] * (1.0 - catalog.discount[p]) / REFERENCE_PRICE_USD[catalog.ptype[p]])


def relevance_logit(rows: Rows, catalog: Catalog, shoppers: Shoppers, env: DayEnvironment) -> np.ndarray:
    """z of the module docstring: the true attractiveness of a product to a shopper, without position."""
    p = rows.product
    fiber = catalog.fiber[p]
    yarn = fiber != v.NO_FIBER
    safe_fiber = np.where(yarn, fiber, 0)
    search = rows.kind == 0
    z = INTERCEPT[rows.kind]
    z = z + np.where(search, MATCH_WEIGHT * match_fraction(rows.qid, catalog.tokens[p]), 0.0)
    z += np.where(search & (query_type(np.maximum(rows.qid, 0)) != catalog.ptype[p]), TYPE_MISMATCH, 0.0)
    z += taste(rows, catalog, shoppers) + catalog.appeal[p]
    z += np.where(yarn, env.fiber_trend[safe_fiber] + CONFERENCE_WEIGHT * env.conference_fiber[safe_fiber], 0.0)
    z += env.color_trend[catalog.color[p]]
    z -= shoppers.price_sensitivity[rows.user] * price_ratio_log(rows, catalog)
    z += DISCOUNT_WEIGHT * catalog.discount[p]
    z += np.where(rows.in_stock, 0.0, SOLD_OUT_WEIGHT)
    z += HOUR_EFFECT[rows.local_hour] + WEEKEND_WEIGHT * rows.weekend
    return z


def relevance(rows: Rows, catalog: Catalog, shoppers: Shoppers, env: DayEnvironment) -> np.ndarray:
    """The true click probability at a position examined for sure (what the oracle ranks by)."""
    return _sigmoid(relevance_logit(rows, catalog, shoppers, env))


def examine(position: np.ndarray, device: np.ndarray) -> np.ndarray:
    """Probability that the shopper looks at ``position`` (1-based): the position bias."""
    return np.power(position.astype(float), -ETA[device])


def cart_probability(rows: Rows, catalog: Catalog, shoppers: Shoppers) -> np.ndarray:
    """Probability of adding a clicked product to the cart, before stock-out frustration."""
    p = rows.product
    z = (-2.2 + 0.5 * taste(rows, catalog, shoppers) + 0.5 * catalog.appeal[p]
         - 0.5 * shoppers.price_sensitivity[rows.user] * price_ratio_log(rows, catalog) + 1.5 * catalog.discount[p])
    return np.where(rows.in_stock, _sigmoid(z), 0.0)


def fraud_probability(is_new_user: np.ndarray, device: np.ndarray) -> np.ndarray:
    app = device == v.DEVICES.index("app")
    return FRAUD_BASE * np.where(is_new_user, 3.0, 1.0) * np.where(app, 1.5, 1.0)


__all__ = [
    "Rows",
    "cart_probability",
    "examine",
    "fraud_probability",
    "relevance",
    "relevance_logit",
    "taste",
]
