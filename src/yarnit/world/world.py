"""World: the YarnIt store, simulated day by day, with a ranker in the loop and faults on a schedule."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import numpy as np

from .catalog import Catalog
from .config import WorldConfig
from .logs import build_tables
from .partition import DayPartition
from .rankers import exploration_rate_of, model_version_of, popularity_ranker
from .retrieval import Retriever
from .season import Season
from .served import ServedRows
from .sessions import US_PER_DAY, draw_intents, generate_sessions
from .shoppers import Shoppers
from .simulation import DayContext, ImpressionLog, Injection, show_and_respond, stream

POPULARITY_DAYS = 7
CLICKS_PER_SESSION = 0.6  # prior for the popularity feature before the first day
_BUILD = -1  # the "day" of the streams that build the world before day 0


@dataclass
class _State:
    """What carries over from one simulated day to the next."""

    catalog: Catalog
    shoppers: Shoppers
    season: Season
    clicks: np.ndarray  # logged clicks per product, one row per day of the last week
    injections: list[Injection]
    start_us: int


class World:
    """A deterministic YarnIt world: same config (and ranker) → same data, day by day.

    The ranker orders what shoppers see, so it shapes the clicks, the purchases
    and the popularity feature of the following days (the feedback loop). It
    defaults to :data:`~yarnit.world.popularity_ranker`.

    Example:
        >>> from yarnit.world import World, WorldConfig, Fault
        >>> world = World(WorldConfig(seed=1, sessions_per_day=50, n_users=200,
        ...                           faults=(Fault("model_collapse", day=1),)))
        >>> [(p.day.isoformat(), len(p.sessions), [f.name for f in p.faults]) for p in world.run(2)]
        [('2026-01-05', 48, []), ('2026-01-06', 47, ['model_collapse'])]
    """

    def __init__(self, config: WorldConfig | None = None, ranker: object | None = None) -> None:
        self.config = config if config is not None else WorldConfig()
        self.ranker = ranker if ranker is not None else popularity_ranker

    @property
    def model_version(self) -> str:
        return model_version_of(self.ranker)

    def run(self, days: int) -> Iterator[DayPartition]:
        """Simulate ``days`` days from the start date, yielding one partition per day.

        Each call starts from the same initial state, so two runs are identical.
        Memory stays bounded by one day's tables plus the world's state.
        """
        self.config.check_horizon(days)
        exploration_rate_of(self.ranker)  # fail before the first day, not during it
        state = self._build()
        for index in range(days):
            yield self._day(state, index)

    def _build(self) -> _State:
        """The world on the eve of day 0: catalog, shoppers with a search history, warm popularity."""
        config, seed = self.config, self.config.seed
        catalog = Catalog(config.sessions_per_day, config.n_products)
        catalog.add_products(config.n_products,
                             -stream(seed, _BUILD, "catalog/age").integers(1, 721, config.n_products),
                             stream(seed, _BUILD, "catalog/products"))
        promotions = stream(seed, _BUILD, "catalog/promotions")
        for _ in range(10):  # reach the usual share of products on promotion
            catalog.run_promotions(promotions)
        shoppers = Shoppers()
        shoppers.add(config.n_users, -stream(seed, _BUILD, "users/age").integers(1, 721, config.n_users),
                     stream(seed, _BUILD, "users/shoppers"))
        season = Season()
        self._search_history(shoppers, season, stream(seed, _BUILD, "users/history"))
        start_us = int(config.start.timestamp()) * 1_000_000
        injections = [
            Injection(fault, slot, start_us + fault.day * US_PER_DAY + int(round(fault.hour * 3_600_000_000)),
                      start_us + fault.day * US_PER_DAY + int(round((fault.hour + fault.hours) * 3_600_000_000)))
            for slot, fault in enumerate(config.faults)
        ]
        clicks = self._prior_clicks(catalog, stream(seed, _BUILD, "popularity"))
        return _State(catalog, shoppers, season, clicks, injections, start_us)

    def _day(self, state: _State, index: int) -> DayPartition:
        """Simulate day ``index``, then run the night's jobs that change the world's state."""
        config, seed, catalog, shoppers = self.config, self.config.seed, state.catalog, state.shoppers
        when = (config.start + timedelta(days=index)).date()
        t0 = state.start_us + index * US_PER_DAY
        state.season.advance(stream(seed, index, "season"))
        env = state.season.day(index, when)
        if index > 0:
            catalog.add_products(config.new_products_per_day, index, stream(seed, index, "catalog/products"))
            catalog.restock(stream(seed, index, "catalog/restock"))
            catalog.run_promotions(stream(seed, index, "catalog/promotions"))
        if state.clicks.shape[1] < len(catalog):
            state.clicks = np.pad(state.clicks, ((0, 0), (0, len(catalog) - state.clicks.shape[1])))
        for inj in state.injections:
            inj.overlaps_day = inj.start_us < t0 + US_PER_DAY and inj.end_us > t0
        active = [inj for inj in state.injections if inj.overlaps_day]
        ctx = DayContext(
            seed=seed, index=index, when=when, t0_us=t0, catalog=catalog, shoppers=shoppers, env=env,
            popularity=state.clicks.sum(axis=0), injections=active,
            base_sessions=int(round(config.sessions_per_day * env.traffic_factor)),
            n_candidates=config.n_candidates, slate_size=config.slate_size,
        )
        for inj in active:
            inj.kind.prepare_day(inj, ctx)
            ctx.renames.update(inj.kind.renames(inj, ctx))

        everything = np.arange(len(catalog))
        served = ServedRows(ctx, product=everything, t_us=np.full(len(catalog), t0, dtype=np.int64))
        retriever = Retriever(catalog.ptype, catalog.tokens, served.values("product_clicks_7d"),
                              config.n_candidates, stream(seed, index, "retrieval/pages"))
        blocks = [generate_sessions(
            ctx.base_sessions, env, shoppers, t0, stream(seed, index, "sessions"),
            new_user_rng=stream(seed, index, "users/new"), new_user_share=config.new_user_share,
        )]
        for inj in active:
            extra = inj.kind.extra_sessions(inj, ctx)
            if extra is not None and len(extra):
                blocks.append(extra)
        exploration = exploration_rate_of(self.ranker)
        log = ImpressionLog.concat(
            [show_and_respond(ctx, block, retriever, self.ranker, exploration) for block in blocks], ctx.close_us
        )
        for inj in active:
            inj.kind.log(inj, ctx, log)
        tables = build_tables(ctx, log, self.model_version)
        annotate = getattr(self.ranker, "annotate_impressions", None)
        if annotate is not None:  # e.g. HttpRanker: the request id and instance index that scored each impression
            tables["impressions"] = annotate(tables["impressions"])

        # the night: stock leaves with true purchases, the popularity job counts logged clicks,
        # shoppers remember their last search
        catalog.sell(log.product[log.purchased_true], log.quantity[log.purchased_true])
        state.clicks[index % POPULARITY_DAYS] = np.bincount(log.product[log.clicked_logged],
                                                            minlength=state.clicks.shape[1])
        first = (log.position == 1) & log.human
        shoppers.record_sessions(log.user[first], log.qid[first], log.device[first])
        return DayPartition(index=index, day=when, faults=tuple(inj.fault for inj in active), **tables)

    def _search_history(self, shoppers: Shoppers, season: Season, rng: np.random.Generator) -> None:
        """Give the shoppers known on day 0 the last search they made before it."""
        user = np.arange(len(shoppers))
        env = season.day(-1, (self.config.start - timedelta(days=1)).date())
        kind, _, qid = draw_intents(user, shoppers.device[user], shoppers, env, rng.random((len(user), 6)),
                                    rng.gumbel(size=(len(user), 27)))
        shoppers.record_sessions(user[kind == 0], qid[kind == 0], shoppers.device[user[kind == 0]])
        shoppers.n_sessions[:] = 0

    def _prior_clicks(self, catalog: Catalog, rng: np.random.Generator) -> np.ndarray:
        """Seven days of click counts before day 0, so the popularity feature starts warm."""
        weight = np.exp(catalog.appeal)
        per_day = CLICKS_PER_SESSION * self.config.sessions_per_day * weight / weight.sum()
        return rng.poisson(np.broadcast_to(per_day, (POPULARITY_DAYS, len(catalog)))).astype(np.int64)


__all__ = ["World"]
