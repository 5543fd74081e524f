"""The day's tables, as YarnIt's logs record them (after the log faults) and as the truth knows them.

Columns:

* ``impressions``: see :data:`yarnit.world.served.IMPRESSION_COLUMNS`; one row per product
  shown. Features are the values served to the ranker at that moment: ``price_usd`` (list
  price), ``price_local`` (in the shopper's ``currency`` at the day's London close),
  ``discount`` (0..1), ``in_stock``, ``product_clicks_7d`` (YarnIt's popularity feature: logged
  clicks of the last 7 days), ``product_age_days`` (0 on the day it is listed),
  ``user_price_sensitivity``, ``user_is_new``, ``hour`` (UTC) and ``day_of_week`` (0 = Monday).
  ``model_version`` and ``score`` are what the ranker answered; ``propensity`` the probability
  that the display policy put this item at this position. Labels as logged: ``clicked`` (the
  click had arrived when the day's log closed at 06:00 the next day), ``added_to_cart``,
  ``purchased``.
* ``clicks``: impression_id, session_id, user_id, product_id, position, event_time,
  arrival_time, day, model_version (partitioned by the impression's day).
* ``purchases``: purchase_id, impression_id, session_id, user_id, product_id, event_time, day,
  quantity, currency, fx_rate (local units per USD, that day's London close), price_local
  (unit list price), discount, paid_local, paid_usd, is_partner, country, language, device.
* ``labels``: impression_id, purchase_id, kind (click | purchase | fraud), value, event_time,
  arrival_time, day. Fraud labels arrive 2-14 days after the purchase.
* ``sessions``: session_id, user_id, event_time, day, kind (search | browse), query, category,
  country, language, device, n_impressions, model_version.
* ``users``: user_id, day, first_seen, is_new, country, language, currency, device, price_sensitivity,
  n_sessions (today).
* ``catalog``: see :data:`yarnit.world.served.CATALOG_COLUMNS` (as served at midnight).
* ``truth``: impression_id, day, session_id, user_id, product_id, position, event_time, p_click,
  relevance, clicked, added_to_cart, purchased, fraud, source (the fault that added the
  session, "" for ordinary traffic): every impression, including those the logs lost.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import frames
from . import vocab as v
from .served import CATALOG_COLUMNS, IMPRESSION_COLUMNS, ServedRows
from .simulation import DayContext, ImpressionLog

_POSITION_SUFFIX = tuple(f"-{k:02d}" for k in range(1, 101))
_IDS = ("impression_id", "session_id", "user_id", "product_id")


def _const(n: int, text: str) -> pd.Series:
    return frames.strings(np.zeros(n, dtype=np.int64), [text])


def _subset(series: pd.Series, mask: np.ndarray) -> pd.Series:
    return series if mask.all() else series[mask].reset_index(drop=True)


def build_tables(ctx: DayContext, log: ImpressionLog, model_version: str) -> dict[str, pd.DataFrame]:
    """All eight tables of the day (``catalog`` … ``truth``)."""
    stamp = f"{ctx.date:%Y%m%d}-"
    everything = ServedRows(ctx, product=log.product, t_us=log.t_us, seq=log.seq, user=log.user,
                            device=log.device, qid=log.qid)
    ids = {
        "impression_id": frames.numbered(f"i{stamp}", log.seq, 8,
                                         suffix=frames.strings(log.position - 1, _POSITION_SUFFIX)),
        "session_id": everything.series("session_id"),
        "user_id": everything.series("user_id"),
        "product_id": everything.series("product_id"),
    }
    return {
        "catalog": catalog_table(ctx),
        "users": users_table(ctx, log),
        "sessions": sessions_table(ctx, log, model_version),
        "impressions": impressions_table(ctx, log, ids, model_version),
        "clicks": clicks_table(ctx, log, ids, model_version),
        "purchases": purchases_table(ctx, log, ids),
        "labels": labels_table(ctx, log, ids),
        "truth": truth_table(ctx, log, ids),
    }


def impressions_table(ctx: DayContext, log: ImpressionLog, ids: dict[str, pd.Series],
                      model_version: str) -> pd.DataFrame:
    keep = log.row_logged
    rows = ServedRows(ctx, product=log.product[keep], t_us=log.t_us[keep], seq=log.seq[keep], user=log.user[keep],
                      device=log.device[keep], qid=log.qid[keep])
    n = int(keep.sum())
    logged = {
        "position": log.position[keep].astype(np.int64),
        "model_version": _const(n, model_version),
        "score": log.score[keep],
        "propensity": log.propensity[keep],
        "clicked": log.clicked_logged[keep].astype(np.int64),
        "added_to_cart": log.carted_true[keep].astype(np.int64),
        "purchased": (log.purchase_logged[keep]).astype(np.int64),
    }
    columns: dict[str, object] = {}
    for name in IMPRESSION_COLUMNS:
        if name in _IDS:
            columns[name] = _subset(ids[name], keep)
        elif name in logged:
            columns[name] = logged[name]
        else:
            columns[name] = rows.series(name)
    return frames.frame(columns).rename(columns=ctx.renames)


def clicks_table(ctx: DayContext, log: ImpressionLog, ids: dict[str, pd.Series], model_version: str) -> pd.DataFrame:
    mask = log.row_logged & log.clicked_true
    n = int(mask.sum())
    return frames.frame({
        "impression_id": _subset(ids["impression_id"], mask),
        "session_id": _subset(ids["session_id"], mask),
        "user_id": _subset(ids["user_id"], mask),
        "product_id": _subset(ids["product_id"], mask),
        "position": log.position[mask].astype(np.int64),
        "event_time": frames.timestamps(log.click_us[mask]),
        "arrival_time": frames.timestamps(log.click_arrival_us[mask]),
        "day": frames.dates(n, ctx.date),
        "model_version": _const(n, model_version),
    })


def purchases_table(ctx: DayContext, log: ImpressionLog, ids: dict[str, pd.Series]) -> pd.DataFrame:
    mask = log.row_logged & log.purchase_logged
    n = int(mask.sum())
    product, user = log.product[mask], log.user[mask]
    currency = v.COUNTRY_CURRENCY[ctx.shoppers.country[user]]
    fx = ctx.env.fx_per_usd[currency]
    price_local = np.round(ctx.catalog.price_usd[product] * fx, 2)
    discount, quantity = log.discount[mask], log.quantity[mask]
    paid_local = np.round(price_local * (1.0 - discount) * quantity, 2)
    impression_id = _subset(ids["impression_id"], mask)
    return frames.frame({
        "purchase_id": ("o" + impression_id.str.slice(1)) if n else impression_id,
        "impression_id": impression_id,
        "session_id": _subset(ids["session_id"], mask),
        "user_id": _subset(ids["user_id"], mask),
        "product_id": _subset(ids["product_id"], mask),
        "event_time": frames.timestamps(log.purchase_us[mask]),
        "day": frames.dates(n, ctx.date),
        "quantity": quantity,
        "currency": frames.strings(currency, v.CURRENCIES),
        "fx_rate": fx,
        "price_local": price_local,
        "discount": discount,
        "paid_local": paid_local,
        "paid_usd": np.round(paid_local / fx, 2),
        "is_partner": ctx.catalog.is_partner[product],
        "country": frames.strings(log.country[mask], v.COUNTRY_CODES),
        "language": frames.strings(log.language[mask], v.LANGUAGES),
        "device": frames.strings(log.device[mask], v.DEVICES),
    })


def labels_table(ctx: DayContext, log: ImpressionLog, ids: dict[str, pd.Series]) -> pd.DataFrame:
    clicked = np.flatnonzero(log.row_logged & log.clicked_true)
    bought = np.flatnonzero(log.row_logged & log.purchase_logged)
    fraud = np.flatnonzero(log.row_logged & log.purchase_logged & log.fraud_true)
    row = np.concatenate([clicked, bought, fraud])
    kind = np.concatenate([np.full(len(clicked), 0), np.full(len(bought), 1), np.full(len(fraud), 2)])
    order = np.lexsort((kind, row))
    row, kind = row[order], kind[order]
    event = np.where(kind == 0, log.click_us[row], log.purchase_us[row])
    arrival = np.select([kind == 0, kind == 1], [log.click_arrival_us[row], log.purchase_arrival_us[row]],
                        log.fraud_arrival_us[row])
    impression_id = ids["impression_id"].iloc[row].reset_index(drop=True)
    purchase_id = ("o" + impression_id.str.slice(1)).where(kind > 0) if len(row) else impression_id
    return frames.frame({
        "impression_id": impression_id,
        "purchase_id": purchase_id,
        "kind": frames.strings(kind, v.LABEL_KINDS),
        "value": np.ones(len(row), dtype=np.int64),
        "event_time": frames.timestamps(event),
        "arrival_time": frames.timestamps(arrival),
        "day": frames.dates(len(row), ctx.date),
    })


def sessions_table(ctx: DayContext, log: ImpressionLog, model_version: str) -> pd.DataFrame:
    first = np.flatnonzero((log.position == 1) & log.row_logged)
    rows = ServedRows(ctx, product=log.product[first], t_us=log.t_us[first], seq=log.seq[first],
                      user=log.user[first], device=log.device[first], qid=log.qid[first])
    n = len(first)
    return frames.frame({
        "session_id": rows.series("session_id"),
        "user_id": rows.series("user_id"),
        "event_time": rows.series("event_time"),
        "day": frames.dates(n, ctx.date),
        "kind": frames.strings(log.kind[first], v.SESSION_KINDS),
        "query": rows.series("query"),
        "category": frames.strings(log.category[first], v.PRODUCT_TYPES),
        "country": rows.series("country"),
        "language": rows.series("language"),
        "device": rows.series("device"),
        "n_impressions": np.full(n, ctx.slate_size, dtype=np.int64),
        "model_version": _const(n, model_version),
    })


def users_table(ctx: DayContext, log: ImpressionLog) -> pd.DataFrame:
    shoppers = ctx.shoppers
    sessions = log.user[(log.position == 1) & log.human]
    user, count = np.unique(sessions, return_counts=True)
    start = np.datetime64(ctx.date) - np.timedelta64(ctx.index, "D")
    return frames.frame({
        "user_id": frames.numbered("u", user, 7),
        "day": frames.dates(len(user), ctx.date),
        "first_seen": pd.Series((start + shoppers.created_day[user].astype("timedelta64[D]")).astype(object)),
        "is_new": shoppers.created_day[user] == ctx.index,
        "country": frames.strings(shoppers.country[user], v.COUNTRY_CODES),
        "language": frames.strings(shoppers.language[user], v.LANGUAGES),
        "currency": frames.strings(v.COUNTRY_CURRENCY[shoppers.country[user]], v.CURRENCIES),
        "device": frames.strings(shoppers.device[user], v.DEVICES),
        "price_sensitivity": shoppers.price_sensitivity[user],
        "n_sessions": count.astype(np.int64),
    })


def catalog_table(ctx: DayContext) -> pd.DataFrame:
    n = len(ctx.catalog)
    rows = ServedRows(ctx, product=np.arange(n), t_us=np.full(n, ctx.t0_us, dtype=np.int64))
    return rows.frame(CATALOG_COLUMNS, ctx.renames)


def truth_table(ctx: DayContext, log: ImpressionLog, ids: dict[str, pd.Series]) -> pd.DataFrame:
    return frames.frame({
        "impression_id": ids["impression_id"],
        "day": frames.dates(len(log), ctx.date),
        "session_id": ids["session_id"],
        "user_id": ids["user_id"],
        "product_id": ids["product_id"],
        "position": log.position.astype(np.int64),
        "event_time": frames.timestamps(log.t_us),
        "p_click": log.p_click,
        "relevance": log.relevance,
        "clicked": log.clicked_true.astype(np.int64),
        "added_to_cart": log.carted_true.astype(np.int64),
        "purchased": log.purchased_true.astype(np.int64),
        "fraud": log.fraud_true.astype(np.int64),
        "source": frames.strings(log.source, log.sources),
    })


__all__ = ["build_tables"]
