"""One simulated day, vectorized: show ranked slates to sessions and draw what shoppers do.

The flow for each block of sessions (ordinary traffic, or sessions a fault adds):

1. retrieval gives each session ``n_candidates`` products;
2. the ranker scores them, in batches (the closed loop), and faults may corrupt the scores;
3. :func:`~yarnit.world.slates.order_slates` turns scores into the slate shown;
4. the ground truth (:mod:`yarnit.world.truth`) gives each impression its click
   probability, and fixed-shape uniform draws decide clicks, carts, purchases,
   fraud and delays.

Every random draw comes from a stream keyed by (seed, day, purpose), and every
per-row draw has a fixed shape, so that a fault changes the draws of nothing
it does not touch.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np

from . import truth
from . import vocab as v
from .catalog import Catalog
from .faults import Fault
from .rankers import RankBatch, score_batch
from .retrieval import Retriever
from .scenarios import FaultKind
from .season import DayEnvironment
from .served import ServedRows
from .sessions import US_PER_DAY, US_PER_HOUR, SessionBlock
from .shoppers import Shoppers
from .slates import order_slates

US_PER_S = 1_000_000
LOG_CLOSE_US = 6 * US_PER_HOUR  # the day's impression log is closed at 06:00 the next day
RANK_CHUNK = 4096  # sessions per ranker call
BLOCK_SEQ_STRIDE = 10_000_000  # session numbers of fault blocks start at (slot + 1) x this
_M1, _M2, _M3 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB), np.uint64(0x9E3779B97F4A7C15)


def purpose_key(purpose: str) -> int:
    """A stable 63-bit integer for a purpose name (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.sha256(purpose.encode()).digest()[:8], "big") >> 1


def stream(seed: int, day: int, purpose: str) -> np.random.Generator:
    """The random stream for one purpose on one day (day -1: building the world before day 0)."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, day + 1, purpose_key(purpose)])))


def _mix(x: np.ndarray) -> np.ndarray:
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


@dataclass
class Injection:
    """A fault of the config while the world runs: its window in microseconds and its state."""

    fault: Fault
    slot: int  # index in config.faults
    start_us: int
    end_us: int
    state: dict[str, Any] = field(default_factory=dict)
    overlaps_day: bool = False

    @property
    def kind(self) -> FaultKind:
        return self.fault.kind

    @property
    def params(self) -> Any:
        return self.fault.params

    @property
    def seq_offset(self) -> int:
        return (self.slot + 1) * BLOCK_SEQ_STRIDE

    def in_window(self, t_us: np.ndarray) -> np.ndarray:
        return (t_us >= self.start_us) & (t_us < self.end_us)

    def clip_to_day(self, ctx: DayContext) -> tuple[int, int]:
        return max(self.start_us, ctx.t0_us), min(self.end_us, ctx.t1_us)


class DayContext:
    """Everything a day's simulation and the fault hooks read."""

    def __init__(self, *, seed: int, index: int, when: date, t0_us: int, catalog: Catalog, shoppers: Shoppers,
                 env: DayEnvironment, popularity: np.ndarray, injections: list[Injection], base_sessions: int,
                 n_candidates: int, slate_size: int) -> None:
        self.seed = seed
        self.index = index
        self.date = when
        self.t0_us = t0_us
        self.t1_us = t0_us + US_PER_DAY
        self.close_us = self.t1_us + LOG_CLOSE_US
        self.catalog = catalog
        self.shoppers = shoppers
        self.env = env
        self.popularity = popularity
        self.injections = injections
        self.base_sessions = base_sessions
        self.n_candidates = n_candidates
        self.slate_size = slate_size
        self._sold_out: list[tuple[np.ndarray, int, int]] = []
        self.renames: dict[str, str] = {}

    def rng(self, purpose: str) -> np.random.Generator:
        return stream(self.seed, self.index, purpose)

    def cell_uniform(self, purpose: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """A uniform in [0, 1) per (a, b) pair, the same whoever asks (a counter-based hash)."""
        key = np.uint64(purpose_key(f"{self.seed}/{self.index}/{purpose}"))
        with np.errstate(over="ignore"):
            x = _mix(np.asarray(a).astype(np.uint64) * _M3 + key)
            x = _mix(x ^ (np.asarray(b).astype(np.uint64) * _M1))
        return (x >> np.uint64(11)).astype(np.float64) * (1.0 / 2**53)

    def force_out_of_stock(self, products: np.ndarray, start_us: int, end_us: int) -> None:
        self._sold_out.append((products, start_us, end_us))

    def in_stock(self, product: np.ndarray, t_us: np.ndarray) -> np.ndarray:
        """The true stock status of ``product`` at ``t_us`` (stock counts change at day end)."""
        available = self.catalog.stock[product] > 0
        for products, start, end in self._sold_out:
            available &= ~(np.isin(product, products) & (t_us >= start) & (t_us < end))
        return available


@dataclass
class ImpressionLog:
    """All impressions of a day, as parallel arrays, before and after the log faults.

    Log faults only clear ``row_logged`` / ``purchase_logged`` or move
    ``click_arrival_us``; the truth columns are never touched.
    """

    source: np.ndarray  # block source code per row (index into ``sources``)
    sources: list[str]
    seq: np.ndarray
    position: np.ndarray
    user: np.ndarray
    product: np.ndarray
    t_us: np.ndarray
    device: np.ndarray
    qid: np.ndarray
    kind: np.ndarray
    category: np.ndarray
    human: np.ndarray
    country: np.ndarray
    language: np.ndarray
    score: np.ndarray
    propensity: np.ndarray
    relevance: np.ndarray
    p_click: np.ndarray
    clicked_true: np.ndarray
    carted_true: np.ndarray
    purchased_true: np.ndarray
    fraud_true: np.ndarray
    quantity: np.ndarray
    discount: np.ndarray  # true discount at the time of the impression
    click_us: np.ndarray
    click_arrival_us: np.ndarray
    purchase_us: np.ndarray
    purchase_arrival_us: np.ndarray
    fraud_arrival_us: np.ndarray
    row_logged: np.ndarray
    purchase_logged: np.ndarray

    def __len__(self) -> int:
        return len(self.seq)

    close_us: int = 0  # when the day's impression log closes (06:00 the next day)

    @property
    def clicked_logged(self) -> np.ndarray:
        """Clicks as the impression log has them when it closes."""
        return self.clicked_true & self.row_logged & (self.click_arrival_us <= self.close_us)

    @staticmethod
    def concat(parts: list[ImpressionLog], close_us: int) -> ImpressionLog:
        """Join the blocks' logs, sorted by time, session and position (one field at a time, to save memory)."""
        sources: list[str] = []
        for part in parts:
            sources.extend(s for s in part.sources if s not in sources)
        order = np.lexsort(tuple(np.concatenate([getattr(p, name) for p in parts])
                                 for name in ("position", "seq", "t_us")))
        merged = {}
        for name in ImpressionLog.__dataclass_fields__:
            if name in ("sources", "close_us"):
                continue
            if name == "source":
                column = np.concatenate([np.asarray([sources.index(s) for s in p.sources], dtype=np.int16)[p.source]
                                         for p in parts])
            else:
                column = np.concatenate([getattr(p, name) for p in parts])
            merged[name] = column[order]
            del column
        return ImpressionLog(sources=sources, close_us=close_us, **merged)


def truth_rows(ctx: DayContext, block: SessionBlock, session: np.ndarray, product: np.ndarray) -> truth.Rows:
    t_us = block.t_us[session]
    user = block.user[session]
    utc_hour = (t_us // US_PER_HOUR) % 24
    local_hour = (utc_hour + v.COUNTRY_OFFSET_H[ctx.shoppers.country[user]]) % 24
    return truth.Rows(
        user=user,
        product=product,
        qid=block.qid[session],
        kind=block.kind[session].astype(np.int64),
        local_hour=local_hour.astype(np.int64),
        weekend=np.full(len(session), ctx.date.weekday() >= 5),
        in_stock=ctx.in_stock(product, t_us),
    )


def rank(ctx: DayContext, block: SessionBlock, candidates: np.ndarray, ranker: object) -> np.ndarray:
    """The ranker's scores (sessions x candidates), asked in batches, after score-corrupting faults."""
    n_sessions, n_candidates = candidates.shape
    scores = np.empty((n_sessions, n_candidates))
    for a in range(0, n_sessions, RANK_CHUNK):
        b = min(a + RANK_CHUNK, n_sessions)
        session = np.repeat(np.arange(a, b), n_candidates)
        product = candidates[a:b].ravel()
        rows = ServedRows(ctx, product=product, t_us=block.t_us[session], seq=block.seq[session],
                          user=block.user[session], device=block.device[session], qid=block.qid[session])

        def relevance(session: np.ndarray = session, product: np.ndarray = product) -> np.ndarray:
            return truth.relevance(truth_rows(ctx, block, session, product), ctx.catalog, ctx.shoppers, ctx.env)

        batch = RankBatch(rows, b - a, n_candidates, renames=ctx.renames, relevance=relevance)
        scores[a:b] = score_batch(ranker, batch)
    for inj in ctx.injections:
        scores = inj.kind.scores(inj, ctx, scores, block.t_us)
    return scores


def show_and_respond(ctx: DayContext, block: SessionBlock, retriever: Retriever, ranker: object,
                     exploration_rate: float) -> ImpressionLog:
    """Rank, show and draw the shoppers' responses for one block of sessions."""
    label = f"block{block.seq_offset}"
    candidates = retriever.candidates(block, ctx.rng(f"{label}/pages"))
    scores = rank(ctx, block, candidates, ranker)
    order, propensity = order_slates(scores, ctx.slate_size, exploration_rate, ctx.rng(f"{label}/order"))
    n_sessions, k = order.shape
    session = np.repeat(np.arange(n_sessions), k)
    product = np.take_along_axis(candidates, order, axis=1).ravel()
    position = np.tile(np.arange(1, k + 1), n_sessions)
    rows = truth_rows(ctx, block, session, product)
    relevance = truth.relevance(rows, ctx.catalog, ctx.shoppers, ctx.env)
    device = block.device[session]
    p_click = truth.examine(position, device) * relevance * (1.0 if block.human else 0.0)

    u = ctx.rng(f"{label}/outcomes").random((len(session), 9))
    clicked = u[:, 0] < p_click
    sold_out_click = np.bincount(session, weights=clicked & ~rows.in_stock, minlength=n_sessions) > 0
    p_cart = truth.cart_probability(rows, ctx.catalog, ctx.shoppers)
    p_cart = p_cart * np.where(sold_out_click[session], truth.SOLD_OUT_FRUSTRATION, 1.0)
    carted = clicked & (u[:, 1] < p_cart)
    purchased = carted & (u[:, 2] < truth.PURCHASE_GIVEN_CART)
    is_yarn = ctx.catalog.ptype[product] == 0
    quantity = np.where(is_yarn, 1 + np.floor(-1.5 * np.log1p(-u[:, 3])), 1).astype(np.int64)
    fraud = purchased & (u[:, 4] < truth.fraud_probability(block.is_new_user[session], device))

    t_us = block.t_us[session]
    click_us = t_us + ((2 + 4 * position - 30 * np.log1p(-u[:, 5])) * US_PER_S).astype(np.int64)
    click_arrival = click_us + (-90 * np.log1p(-u[:, 6]) * US_PER_S).astype(np.int64)
    purchase_us = click_us + ((60 + 1200 * u[:, 7]) * US_PER_S).astype(np.int64)
    fraud_arrival = purchase_us + ((2 + 12 * u[:, 8]) * US_PER_DAY).astype(np.int64)
    user = block.user[session]
    log = ImpressionLog(
        source=np.zeros(len(session), dtype=np.int16),
        sources=[block.source],
        seq=block.seq[session],
        position=position,
        user=user,
        product=product,
        t_us=t_us,
        device=device,
        qid=block.qid[session],
        kind=block.kind[session],
        category=block.category[session],
        human=np.full(len(session), block.human),
        country=ctx.shoppers.country[user],
        language=ctx.shoppers.language[user],
        score=np.take_along_axis(scores, order, axis=1).ravel(),
        propensity=propensity.ravel(),
        relevance=relevance,
        p_click=p_click,
        clicked_true=clicked,
        carted_true=carted,
        purchased_true=purchased,
        fraud_true=fraud,
        quantity=quantity,
        discount=ctx.catalog.discount[product],
        click_us=click_us,
        click_arrival_us=click_arrival,
        purchase_us=purchase_us,
        purchase_arrival_us=purchase_us + 30 * US_PER_S,
        fraud_arrival_us=fraud_arrival,
        row_logged=np.ones(len(session), dtype=bool),
        purchase_logged=purchased.copy(),
    )
    return log


__all__ = ["DayContext", "ImpressionLog", "Injection", "show_and_respond", "stream"]
