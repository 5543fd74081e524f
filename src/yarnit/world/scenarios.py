"""The ten failure scenarios the world can inject, each from the book, each with its fingerprint.

A scenario is a :class:`FaultKind`: a name, a book reference, typed parameters
with ranges, and hooks that the day simulation calls while the fault's window
is open. Hooks touch one thing each (the served features, the stock, the
traffic, the ranker's scores or the logs), and draw their randomness from
their own streams, so a fault changes only what it is meant to change and
faults combine freely.

===================  =======  ==============================================
name                 where    fingerprint in the data
===================  =======  ==============================================
discount_format      logs     discounted purchases missing from purchases/labels
partner_lookup       serving  partner products' fiber/weight/colour/brand null
stale_features       serving  one feature frozen at its value on the first day
biased_loss          logs     one country's or language's events missing
click_log_outage     logs     clicks arrive days late: clicked = 0 in the window
upstream_change      serving  prices in cents (x100), or a column renamed
traffic_spike        traffic  x factor sessions in the window
app_requery          traffic  extra app searches with no clicks at all
stockout             world    top products sold out, yet still shown
model_collapse       ranker   every score 0 (or one constant)
===================  =======  ==============================================
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from yarnit.core.errors import InvalidInput

from . import vocab as v
from .served import IMPRESSION_COLUMNS, ServedRows
from .sessions import US_PER_HOUR, SessionBlock, generate_sessions

if TYPE_CHECKING:
    from .simulation import DayContext, ImpressionLog, Injection

ParamValue = int | float | str


@dataclass(frozen=True)
class Param:
    """A typed fault parameter: int/float in a range, or one of some choices (type from ``default``)."""

    name: str
    default: ParamValue
    help: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    choices: tuple[str, ...] | None = None

    def describe(self) -> str:
        if self.choices is None and isinstance(self.default, str):
            return f"{self.name}: text (default {self.default!r}) - {self.help}"
        if self.choices is not None:
            shown = ", ".join(c for c in self.choices if c) or "-"
            unset = " or empty" if "" in self.choices else ""
            return f"{self.name}: one of {shown}{unset} (default {self.default!r}) - {self.help}"
        kind = type(self.default).__name__
        bracket = "(" if self.low_open else "["
        return f"{self.name}: {kind} in {bracket}{self.low:g}, {self.high:g}] (default {self.default}) - {self.help}"

    def coerce(self, fault: str, value: Any) -> ParamValue:
        """Convert a CLI string or Python value to this parameter's type and check its range."""
        if self.choices is None and isinstance(self.default, str):
            return str(value)
        if self.choices is not None:
            text = str(value)
            if text not in self.choices:
                raise InvalidInput(f"Fault {fault!r}: {self.name}={value!r} is not valid. Use {self.describe()}.")
            return text
        kind = type(self.default)
        try:
            if isinstance(value, bool):
                raise ValueError
            number = kind(value) if not isinstance(value, str) else kind(float(value) if kind is float else value)
            if kind is int and isinstance(value, float) and value != int(value):
                raise ValueError
        except (TypeError, ValueError):
            raise InvalidInput(
                f"Fault {fault!r}: {self.name}={value!r} is not {'an' if kind is int else 'a'} {kind.__name__}. "
                f"Use {self.describe()}."
            ) from None
        assert self.low is not None and self.high is not None
        below = number <= self.low if self.low_open else number < self.low
        if below or number > self.high or number != number:
            raise InvalidInput(f"Fault {fault!r}: {self.name}={value!r} is out of range. Use {self.describe()}.")
        return number


class FaultKind:
    """A named failure scenario. Subclasses set the class attributes and override hooks."""

    name: ClassVar[str]
    book: ClassVar[str]
    summary: ClassVar[str]
    params: ClassVar[tuple[Param, ...]] = ()
    served_columns: ClassVar[frozenset[str]] = frozenset()

    def resolve(self, params: dict[str, ParamValue]) -> dict[str, ParamValue]:
        """Check parameters together and fill in derived defaults (after each was coerced)."""
        return params

    def describe(self) -> str:
        lines = [f"{self.name}: {self.summary} ({self.book})"]
        lines += [f"    {p.describe()}" for p in self.params]
        return "\n".join(lines)

    # -- hooks: each is called only on days the fault's window overlaps --
    def prepare_day(self, inj: Injection, ctx: DayContext) -> None:
        """Change the world's state at the start of a day (stock, snapshots)."""

    def extra_sessions(self, inj: Injection, ctx: DayContext) -> SessionBlock | None:
        """Sessions this fault adds to the day."""
        return None

    def serve(self, inj: Injection, ctx: DayContext, name: str, values: np.ndarray, rows: ServedRows) -> np.ndarray:
        """Rewrite a served feature (one of ``served_columns``) for rows inside the window."""
        return values

    def scores(self, inj: Injection, ctx: DayContext, scores: np.ndarray, t_us: np.ndarray) -> np.ndarray:
        """Rewrite the ranker's scores (sessions x candidates) of sessions starting inside the window."""
        return scores

    def log(self, inj: Injection, ctx: DayContext, log: ImpressionLog) -> None:
        """Lose or delay events between the world and the logs."""

    def renames(self, inj: Injection, ctx: DayContext) -> dict[str, str]:
        """Columns renamed in the day's tables (the whole day)."""
        return {}


class DiscountFormat(FaultKind):
    """A discount format change silently drops discounted purchases from the logs.

    Book: ch. 7, "Models will be retrained"/data sensitivity: after a change of
    the discount field's format, every discounted purchase fails to parse and is
    dropped, so the model learns that discounted items never sell.
    Fingerprint: no purchase with ``discount > min_discount`` in the window in
    ``purchases``, ``labels`` (purchase and fraud) or ``impressions.purchased``;
    clicks and the truth table are unchanged.
    """

    name = "discount_format"
    book = "ch. 7"
    summary = "discounted purchases are silently dropped from the logs"
    params = (Param("min_discount", 0.0, "purchases with a larger discount are dropped", 0.0, 0.99),)

    def log(self, inj: Injection, ctx: DayContext, log: ImpressionLog) -> None:
        dropped = (log.discount > inj.params["min_discount"]) & inj.in_window(log.purchase_us)
        log.purchase_logged &= ~dropped


class PartnerLookup(FaultKind):
    """Partner-data lookups fail or time out, leaving partner product attributes empty.

    Book: ch. 11, "Story 2: Suddenly Useless Partners"; ch. 7 (partner lookups
    that overload look like a CPU shortfall).
    Fingerprint: ``fiber``, ``weight_class``, ``color`` and ``brand`` are null
    for a ``failure_rate`` share of partner-listed rows in the window, in
    ``impressions``, in the ranker's candidates and (for lookups at midnight) in
    ``catalog``. Shoppers still see the full product page: clicks only change
    through what the ranker does with the missing features.
    """

    name = "partner_lookup"
    book = "ch. 11 story 2, ch. 7"
    summary = "partner product attributes come back empty"
    params = (Param("failure_rate", 1.0, "share of partner lookups that fail", 0.0, 1.0, low_open=True),)
    served_columns = frozenset({"fiber", "weight_class", "color", "brand"})

    def serve(self, inj: Injection, ctx: DayContext, name: str, values: np.ndarray, rows: ServedRows) -> np.ndarray:
        failed = ctx.catalog.is_partner[rows.product] & inj.in_window(rows.t_us)
        failed &= ctx.cell_uniform(f"fault{inj.slot}/lookup", rows.seq, rows.product) < inj.params["failure_rate"]
        return np.where(failed, -1, values)


class StaleFeatures(FaultKind):
    """A feature pipeline goes stale: a feature's values stop updating.

    Book: ch. 7 and ch. 9 (data freshness; "training and serving skew"); ch. 11
    story 1 (a stale input behind "Searching but Not Finding").
    Fingerprint: in the window the served and logged ``feature`` equals its
    value at midnight of the fault's first day (products listed later keep
    their own first value); the truth uses the live values. When the feature
    is ``product_clicks_7d`` the popularity ranker and retrieval freeze too.
    """

    name = "stale_features"
    book = "ch. 7, ch. 9, ch. 11 story 1"
    summary = "a feature stops updating"
    params = (Param("feature", "product_clicks_7d", "the feature that goes stale",
                    choices=("product_clicks_7d", "in_stock", "discount")),)
    served_columns = frozenset({"product_clicks_7d", "in_stock", "discount"})

    def prepare_day(self, inj: Injection, ctx: DayContext) -> None:
        if "snapshot" not in inj.state:
            feature = inj.params["feature"]
            live = {"product_clicks_7d": ctx.popularity, "in_stock": ctx.catalog.stock > 0,
                    "discount": ctx.catalog.discount}[str(feature)]
            inj.state["snapshot"] = live.copy()

    def serve(self, inj: Injection, ctx: DayContext, name: str, values: np.ndarray, rows: ServedRows) -> np.ndarray:
        if name != inj.params["feature"]:
            return values
        snapshot: np.ndarray = inj.state["snapshot"]
        known = rows.product < len(snapshot)
        frozen = snapshot[np.where(known, rows.product, 0)]
        return np.where(known & inj.in_window(rows.t_us), frozen, values)


class BiasedLoss(FaultKind):
    """Biased data loss: the events of one country or one site language vanish.

    Book: ch. 2 (the Spanish-language payments outage: fewer Spanish checkouts,
    the model learns Spanish queries do not convert); ch. 7 (random versus
    biased data loss).
    Fingerprint: with ``events=all`` the sessions, impressions, clicks,
    purchases and labels of matching shoppers in the window are missing (the
    truth table keeps them); with ``events=purchases`` only their purchases
    (and purchase/fraud labels, ``impressions.purchased``) are missing.
    """

    name = "biased_loss"
    book = "ch. 2, ch. 7"
    summary = "one country's or language's events vanish"
    params = (
        Param("country", "", "the country whose events vanish", choices=("", *v.COUNTRY_CODES)),
        Param("language", "", "the site language whose events vanish (default es)", choices=("", *v.LANGUAGES)),
        Param("events", "purchases", "what vanishes", choices=("purchases", "all")),
    )

    def resolve(self, params: dict[str, ParamValue]) -> dict[str, ParamValue]:
        if params["country"] and params["language"]:
            raise InvalidInput(
                f"Fault 'biased_loss': give country or language, not both (got country={params['country']!r}, "
                f"language={params['language']!r}). Example: biased_loss@3,language=es"
            )
        if not params["country"] and not params["language"]:
            params["language"] = "es"
        return params

    def _matches(self, inj: Injection, country: np.ndarray, language: np.ndarray) -> np.ndarray:
        if inj.params["country"]:
            return country == v.COUNTRY_CODES.index(str(inj.params["country"]))
        return language == v.LANGUAGES.index(str(inj.params["language"]))

    def log(self, inj: Injection, ctx: DayContext, log: ImpressionLog) -> None:
        matches = self._matches(inj, log.country, log.language)
        if inj.params["events"] == "all":
            log.row_logged &= ~(matches & inj.in_window(log.t_us))
        else:
            log.purchase_logged &= ~(matches & inj.in_window(log.purchase_us))


class ClickLogOutage(FaultKind):
    """Click-log processing breaks: clicks arrive days late, recent impressions look all-negative.

    Book: ch. 15 case 5 ("databases versus reality": click processing broke on
    Wednesday, clean clicks arrived on Monday; the model trained on all-negative
    labels and validation passed).
    Fingerprint: clicks made in the window are held back and replayed
    ``replay_after_hours`` after the window ends (spread over 6 hours), in
    ``clicks.arrival_time`` and ``labels.arrival_time``. With the default 48 h
    they miss the close of their day's impression log (06:00 the next day), so
    ``impressions.clicked`` is 0 for every impression clicked in the window; the
    truth keeps the clicks. The popularity feature, counted from the logged
    clicks, drops on the following days (the feedback loop).
    """

    name = "click_log_outage"
    book = "ch. 15 case 5"
    summary = "clicks are held back and arrive days late"
    params = (Param("replay_after_hours", 48.0, "the backlog is replayed this long after the window ends",
                    0.0, 720.0),)

    def log(self, inj: Injection, ctx: DayContext, log: ImpressionLog) -> None:
        stuck = log.clicked_true & inj.in_window(log.click_us)
        drain = ctx.cell_uniform(f"fault{inj.slot}/replay", log.seq, log.position)
        replay = inj.end_us + int(float(inj.params["replay_after_hours"]) * US_PER_HOUR)
        late = replay + (drain * 6 * US_PER_HOUR).astype(np.int64)
        log.click_arrival_us = np.where(stuck, late, log.click_arrival_us)


_RENAMEABLE = ("fiber", "weight_class", "color", "brand", "product_type", "price_usd", "discount")
_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


class UpstreamChange(FaultKind):
    """An upstream "better is different" change: prices switch to cents, or a column is renamed.

    Book: ch. 3 ("better is not better, better is different": an upstream fix
    such as Fahrenheit to Celsius is a distribution shift for the model).
    Fingerprint: ``change=price_cents``: ``price_usd`` and ``price_local`` are
    x100 in the window (catalog, candidates, impressions; purchases keep the
    amounts charged). ``change=rename``: on every day the window overlaps,
    ``column`` is called ``new_name`` in catalog, candidates and impressions.
    """

    name = "upstream_change"
    book = "ch. 3"
    summary = "prices switch to cents, or a column is renamed"
    params = (
        Param("change", "price_cents", "what changes upstream", choices=("price_cents", "rename")),
        Param("column", "fiber", "the column renamed (change=rename)", choices=_RENAMEABLE),
        Param("new_name", "material", "its new name (change=rename)"),
    )
    served_columns = frozenset({"price_usd", "price_local"})

    def resolve(self, params: dict[str, ParamValue]) -> dict[str, ParamValue]:
        new_name = str(params["new_name"])
        if not _IDENTIFIER.match(new_name):
            raise InvalidInput(
                f"Fault 'upstream_change': new_name={new_name!r} is not a column name; use lowercase letters, "
                "digits and '_', starting with a letter (e.g. new_name=material)."
            )
        if new_name in IMPRESSION_COLUMNS:
            raise InvalidInput(
                f"Fault 'upstream_change': new_name={new_name!r} already names a column of the impressions; "
                "choose a new name (e.g. new_name=material)."
            )
        return params

    def serve(self, inj: Injection, ctx: DayContext, name: str, values: np.ndarray, rows: ServedRows) -> np.ndarray:
        if inj.params["change"] != "price_cents":
            return values
        return np.where(inj.in_window(rows.t_us), np.round(values * 100.0, 2), values)

    def renames(self, inj: Injection, ctx: DayContext) -> dict[str, str]:
        if inj.params["change"] != "rename":
            return {}
        return {str(inj.params["column"]): str(inj.params["new_name"])}


class TrafficSpike(FaultKind):
    """A traffic spike: ``factor`` times the usual sessions (a knitting conference, a viral post).

    Book: ch. 7 and the YarnIt scenario (knitting conferences cause demand
    spikes; the day before a large conference); ch. 8 (load and autoscaling).
    Fingerprint: the window holds (factor - 1) x its ordinary sessions more,
    from returning shoppers, with session numbers from 10,000,000 x (slot+1);
    the ordinary sessions are unchanged. Their purchases deplete stock, which
    the following days feel.
    """

    name = "traffic_spike"
    book = "ch. 7, ch. 8"
    summary = "x factor traffic"
    params = (Param("factor", 10.0, "traffic multiplier in the window", 1.0, 50.0, low_open=True),)

    def extra_sessions(self, inj: Injection, ctx: DayContext) -> SessionBlock | None:
        start, end = inj.clip_to_day(ctx)
        ordinary = ctx.base_sessions * (end - start) / (24 * US_PER_HOUR)
        n = int(round((float(inj.params["factor"]) - 1.0) * ordinary))
        if n <= 0:
            return None
        return generate_sessions(
            n, ctx.env, ctx.shoppers, ctx.t0_us, ctx.rng(f"fault{inj.slot}/sessions"), new_user_rng=None,
            new_user_share=0.0, source=self.name, seq_offset=inj.seq_offset, window_us=(start, end),
        )


class AppRequery(FaultKind):
    """An app update re-issues each user's last query, flooding the logs with click-less searches.

    Book: ch. 15 case 2 (an app update re-issued the last query on install;
    each rollback and re-push repeated it; the continuous model learned that
    CTR had halved).
    Fingerprint: on each day of the window, a ``share`` of app shoppers who
    have searched before re-issue their last query once: extra ``search``
    sessions on device ``app`` whose impressions are never clicked (truth
    ``p_click`` = 0, ``fault`` = app_requery).
    """

    name = "app_requery"
    book = "ch. 15 case 2"
    summary = "an app update re-issues queries: searches without clicks"
    params = (Param("share", 0.8, "share of app shoppers with a past search that re-issue it", 0.0, 1.0,
                    low_open=True),)

    def extra_sessions(self, inj: Injection, ctx: DayContext) -> SessionBlock | None:
        shoppers = ctx.shoppers
        rng = ctx.rng(f"fault{inj.slot}/sessions")
        eligible = np.flatnonzero((shoppers.last_query >= 0) & (shoppers.last_device == v.DEVICES.index("app")))
        u = rng.random((len(eligible), 2))
        chosen = u[:, 0] < float(inj.params["share"])
        user = eligible[chosen]
        if len(user) == 0:
            return None
        start, end = inj.clip_to_day(ctx)
        qid = shoppers.last_query[user]
        return SessionBlock.sorted_by_time(
            source=self.name,
            seq_offset=inj.seq_offset,
            user=user.astype(np.int64),
            t_us=start + (u[chosen, 1] * (end - start)).astype(np.int64),
            device=np.full(len(user), v.DEVICES.index("app"), dtype=np.int16),
            kind=np.zeros(len(user), dtype=np.int8),
            qid=qid,
            category=(qid // (v.N_A * v.N_W * v.N_C)).astype(np.int16),
            is_new_user=np.zeros(len(user), dtype=bool),
            human=False,
        )


class Stockout(FaultKind):
    """Popular products go out of stock while the ranker keeps showing them.

    Book: ch. 11 "Story 3: Recommend You Find New Suppliers"; ch. 12-14 (a
    stock-out of one product loses sales of others).
    Fingerprint: the ``top_n`` products by ``product_clicks_7d`` at the start
    of the window have ``in_stock`` false in the window and no purchases;
    shoppers click them less, and sessions that clicked one buy less of the
    rest. Stock returns to its previous level after the window.
    """

    name = "stockout"
    book = "ch. 11 story 3"
    summary = "the most popular products sell out"
    params = (Param("top_n", 20, "how many of the most popular products sell out", 1, 1000),)

    def prepare_day(self, inj: Injection, ctx: DayContext) -> None:
        if "products" not in inj.state:
            order = np.argsort(-ctx.popularity, kind="stable")
            inj.state["products"] = np.sort(order[: int(inj.params["top_n"])])
        ctx.force_out_of_stock(inj.state["products"], inj.start_us, inj.end_us)


class ModelCollapse(FaultKind):
    """The model returns all-zero or collapsed (constant) predictions.

    Book: ch. 3 (YarnIt click model, common serving failures: every prediction
    zero; every prediction bad or collapsed; guard with output-range and
    output-variance monitoring).
    Fingerprint: ``impressions.score`` is 0 (``mode=zero``) or ``value``
    (``mode=constant``) for sessions in the window; the order among candidates
    becomes a random tie-break, so shoppers see worse slates and click less.
    """

    name = "model_collapse"
    book = "ch. 3"
    summary = "the ranker's predictions collapse to a constant"
    params = (
        Param("mode", "zero", "all zero, or one constant value", choices=("zero", "constant")),
        Param("value", 0.5, "the constant (mode=constant)", -1e9, 1e9),
    )

    def scores(self, inj: Injection, ctx: DayContext, scores: np.ndarray, t_us: np.ndarray) -> np.ndarray:
        constant = 0.0 if inj.params["mode"] == "zero" else float(inj.params["value"])
        return np.where(inj.in_window(t_us)[:, None], constant, scores)


#: Every fault scenario by name, in the order of the issue.
FAULTS: MappingProxyType[str, FaultKind] = MappingProxyType({
    kind.name: kind
    for kind in (
        DiscountFormat(), PartnerLookup(), StaleFeatures(), BiasedLoss(), ClickLogOutage(),
        UpstreamChange(), TrafficSpike(), AppRequery(), Stockout(), ModelCollapse(),
    )
})  # fmt: skip

__all__ = ["FAULTS", "FaultKind", "Param"]
