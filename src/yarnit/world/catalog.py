"""The YarnIt catalog: yarns and equipment, listed by YarnIt or by partners, with stock and promotions.

The catalog is world state: it grows every day (new products: cold start),
its stock falls with true purchases and is restocked after a supplier lead
time, and the pricing team starts and ends promotions, preferring overstocked
products. Every attribute is a numpy array indexed by product number; strings
are codes into :mod:`yarnit.world.vocab`.

Hidden from every table except the ground truth: ``appeal``, the product's
latent quality (a term of the true click probability).
"""

from __future__ import annotations

import numpy as np

from . import vocab as v

REFERENCE_PRICE_USD = np.array([9.0, 12.0, 7.0, 6.0])  # yarn, needles, hook, notion
_YARN_FIBER_SHARE = np.array([0.2, 0.2, 0.15, 0.15, 0.1, 0.05, 0.15])
_YARN_WEIGHT_SHARE = np.array([0.05, 0.2, 0.1, 0.2, 0.25, 0.1, 0.1])
_BRAND_PREMIUM = 0.85 + 0.04 * (np.arange(len(v.BRANDS)) % 8)
_DISCOUNTS = np.array([0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5])
#: Mean units sold per session, used to size stock levels to the traffic.
UNITS_PER_SESSION = 0.15
RESTOCK_BELOW = 0.3  # of the target level
RESTOCK_PROBABILITY = 0.4  # per day: supplier lead time of ~2.5 days
APPEAL_SD = 0.45  # spread of the hidden product quality (logit)


class Catalog:
    """All products ever listed, as parallel arrays (append-only)."""

    def __init__(self, sessions_per_day: int, n_products_day0: int) -> None:
        self.sessions_per_day = sessions_per_day
        self._daily_units = UNITS_PER_SESSION * sessions_per_day / max(n_products_day0, 1)
        empty_i = np.zeros(0, dtype=np.int16)
        self.ptype = empty_i
        self.fiber = empty_i
        self.kind = empty_i
        self.weight = empty_i
        self.color = empty_i
        self.brand = empty_i
        self.is_partner = np.zeros(0, dtype=bool)
        self.price_usd = np.zeros(0)
        self.appeal = np.zeros(0)
        self.stock = np.zeros(0, dtype=np.int64)
        self.stock_target = np.zeros(0, dtype=np.int64)
        self.listed_day = np.zeros(0, dtype=np.int32)
        self.discount = np.zeros(0)
        self.tokens = np.zeros(0, dtype=np.uint64)
        self.names = np.zeros(0, dtype=object)
        self.ids = np.zeros(0, dtype=object)

    def __len__(self) -> int:
        return len(self.ptype)

    def add_products(self, n: int, listed_day: np.ndarray | int, rng: np.random.Generator) -> None:
        """List ``n`` new products (a fixed number of draws per product, so streams stay aligned)."""
        u = rng.random((n, 9))
        ptype = np.searchsorted(np.cumsum(v.PRODUCT_TYPE_SHARE), u[:, 0] * 0.999999, side="right")
        is_yarn, is_notion = ptype == 0, ptype == 3
        fiber = np.where(is_yarn, np.searchsorted(np.cumsum(_YARN_FIBER_SHARE), u[:, 1] * 0.999999, side="right"),
                         v.NO_FIBER)
        yarn_weight = np.searchsorted(np.cumsum(_YARN_WEIGHT_SHARE), u[:, 2] * 0.999999, side="right")
        any_weight = (u[:, 2] * v.NO_WEIGHT).astype(int)
        weight = np.where(is_yarn, yarn_weight, np.where(is_notion, v.NO_WEIGHT, any_weight))
        kind = np.where(is_notion, (u[:, 3] * len(v.NOTION_KINDS)).astype(int), -1)
        color = (u[:, 4] * len(v.COLORS)).astype(int)
        brand = (u[:, 5] * len(v.BRANDS)).astype(int)
        noise = rng.normal(size=(n, 3))
        fiber_price = np.where(is_yarn, np.asarray(v.FIBER_PRICE + (1.0,))[fiber], 1.0)
        bulk = np.where(is_yarn, 0.9 + 0.05 * weight, 1.0)
        raw = REFERENCE_PRICE_USD[ptype] * fiber_price * bulk * _BRAND_PREMIUM[brand] * np.exp(0.25 * noise[:, 0])
        price = np.maximum(np.round(raw) - 0.01, 0.99)
        appeal = APPEAL_SD * noise[:, 1]
        demand = self._daily_units * np.exp(appeal - APPEAL_SD**2 / 2)  # mean 1: E[exp(appeal)] = exp(sd**2 / 2)
        target = np.maximum(5, np.round(demand * 21 * np.exp(0.3 * noise[:, 2]))).astype(np.int64)
        stock = np.round(target * (0.3 + 0.7 * u[:, 6])).astype(np.int64)
        listed = np.broadcast_to(np.asarray(listed_day, dtype=np.int32), (n,))

        start = len(self)
        names, tokens, ids = [], [], []
        for i in range(n):  # once per new product: a handful a day
            name = _product_name(int(ptype[i]), int(fiber[i]), int(kind[i]), int(weight[i]), int(color[i]),
                                 int(brand[i]), start + i)
            names.append(name)
            tokens.append(v.token_mask(name.lower().split()))
            ids.append(f"p{start + i:06d}")
        self.ptype = np.concatenate([self.ptype, ptype.astype(np.int16)])
        self.fiber = np.concatenate([self.fiber, fiber.astype(np.int16)])
        self.kind = np.concatenate([self.kind, kind.astype(np.int16)])
        self.weight = np.concatenate([self.weight, weight.astype(np.int16)])
        self.color = np.concatenate([self.color, color.astype(np.int16)])
        self.brand = np.concatenate([self.brand, brand.astype(np.int16)])
        self.is_partner = np.concatenate([self.is_partner, v.BRAND_IS_PARTNER[brand]])
        self.price_usd = np.concatenate([self.price_usd, price])
        self.appeal = np.concatenate([self.appeal, appeal])
        self.stock = np.concatenate([self.stock, stock])
        self.stock_target = np.concatenate([self.stock_target, target])
        self.listed_day = np.concatenate([self.listed_day, listed])
        self.discount = np.concatenate([self.discount, np.zeros(n)])
        self.tokens = np.concatenate([self.tokens, np.array(tokens, dtype=np.uint64)])
        self.names = np.concatenate([self.names, np.array(names, dtype=object)])
        self.ids = np.concatenate([self.ids, np.array(ids, dtype=object)])

    def restock(self, rng: np.random.Generator) -> None:
        """Suppliers deliver to low-stock products after a random lead time."""
        u = rng.random(len(self))
        due = (self.stock < RESTOCK_BELOW * self.stock_target) & (u < RESTOCK_PROBABILITY)
        self.stock[due] = self.stock_target[due]

    def run_promotions(self, rng: np.random.Generator) -> None:
        """The pricing team starts promotions (overstocked products first) and ends old ones."""
        u = rng.random((len(self), 2))
        on = self.discount > 0
        overstocked = self.stock > 0.8 * self.stock_target
        start = ~on & (u[:, 0] < np.where(overstocked, 0.03, 0.01))
        end = on & (u[:, 0] < 0.2)
        self.discount[end] = 0.0
        self.discount[start] = _DISCOUNTS[(u[start, 1] * len(_DISCOUNTS)).astype(int)]

    def sell(self, product: np.ndarray, quantity: np.ndarray) -> None:
        """Take true purchases out of stock (stock never goes below zero)."""
        sold = np.bincount(product, weights=quantity, minlength=len(self)).astype(np.int64)
        self.stock = np.maximum(self.stock - sold, 0)


def _product_name(ptype: int, fiber: int, kind: int, weight: int, color: int, brand: int, number: int) -> str:
    b, c = v.BRANDS[brand], v.COLORS[color]
    if ptype == 0:
        return f"{b} {v.FIBERS[fiber]} {v.WEIGHT_CLASSES[weight]} yarn {c}"
    if ptype == 1:
        return f"{b} {v.WEIGHT_CLASSES[weight]} knitting needles {v.NEEDLE_MM[weight]} mm {c}"
    if ptype == 2:
        return f"{b} {v.WEIGHT_CLASSES[weight]} crochet hook {v.NEEDLE_MM[weight]} mm {c}"
    return f"{b} {c} {v.NOTION_PHRASES[kind]} no. {number % 97}"


__all__ = ["Catalog", "REFERENCE_PRICE_USD"]
