"""Shopper sessions: who comes, when, on which device, and what they search for or browse.

A session is one page view: a search (a query such as "merino dk blue") or a
category page (browsing, empty query). Sessions are generated in blocks: the
ordinary traffic of a day, plus blocks that a fault adds (a traffic spike, an
app re-issuing queries). Each block has its own random streams, so adding one
never shifts the draws of another.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import vocab as v
from .season import DayEnvironment
from .shoppers import Shoppers

US_PER_HOUR = 3_600_000_000
US_PER_DAY = 24 * US_PER_HOUR
SEARCH_SHARE = {0: 0.6, 1: 0.6, 2: 0.7}  # by device: app users search more
#: Search intents by product type, for knitters and for crocheters.
_KNITTER_TYPES = np.cumsum([0.72, 0.12, 0.06, 0.10])
_CROCHETER_TYPES = np.cumsum([0.72, 0.06, 0.12, 0.10])
_HOUR_CDF = np.cumsum(v.LOCAL_HOUR_TRAFFIC) / v.LOCAL_HOUR_TRAFFIC.sum()
_N_UNIFORMS = 12
_N_GUMBELS = 7 + 7 + 13


@dataclass(frozen=True)
class SessionBlock:
    """A block of sessions as parallel arrays, sorted by start time."""

    source: str  # "" for ordinary traffic, else the name of the fault that added these sessions
    seq_offset: int  # session numbers of this block start here (they make the session ids)
    user: np.ndarray  # shopper index
    t_us: np.ndarray  # start time, microseconds since the Unix epoch (UTC)
    device: np.ndarray  # vocab.DEVICES code
    kind: np.ndarray  # 0 search, 1 browse
    qid: np.ndarray  # query vocabulary id, -1 when browsing
    category: np.ndarray  # product type searched for or browsed
    is_new_user: np.ndarray  # bool: the shopper's first day
    human: bool = True  # False: no person looks at these pages (app re-issued queries)

    def __len__(self) -> int:
        return len(self.user)

    @property
    def seq(self) -> np.ndarray:
        return self.seq_offset + np.arange(len(self), dtype=np.int64)

    @staticmethod
    def sorted_by_time(**arrays: object) -> SessionBlock:
        order = np.argsort(arrays["t_us"], kind="stable")  # type: ignore[call-overload]
        fields = {k: (a[order] if isinstance(a, np.ndarray) else a) for k, a in arrays.items()}
        return SessionBlock(**fields)  # type: ignore[arg-type]


def generate_sessions(
    n: int,
    env: DayEnvironment,
    shoppers: Shoppers,
    day_start_us: int,
    rng: np.random.Generator,
    *,
    new_user_rng: np.random.Generator | None,
    new_user_share: float,
    source: str = "",
    seq_offset: int = 0,
    window_us: tuple[int, int] | None = None,
) -> SessionBlock:
    """Draw ``n`` sessions of ordinary shoppers.

    New shoppers (a ``new_user_share`` of sessions) are created with
    ``new_user_rng``; pass ``new_user_rng=None`` to draw only returning
    shoppers. With ``window_us`` the start times are uniform in that window,
    otherwise they follow the local hour-of-day traffic curve.
    """
    u = rng.random((n, _N_UNIFORMS))
    gumbel = rng.gumbel(size=(n, _N_GUMBELS))
    known = len(shoppers)
    is_new = (u[:, 0] < new_user_share) if new_user_rng is not None else np.zeros(n, dtype=bool)
    user = shoppers.pick_returning(u[:, 1], known)
    if is_new.any():
        assert new_user_rng is not None
        user[is_new] = shoppers.add(int(is_new.sum()), env.index, new_user_rng)

    primary = shoppers.device[user]
    other = (u[:, 3] * len(v.DEVICES)).astype(np.int16)
    device = np.where(u[:, 2] < 0.8, primary, other).astype(np.int16)

    if window_us is None:
        local_hour = np.searchsorted(_HOUR_CDF, u[:, 4] * 0.999999, side="right")
        utc_hour = (local_hour - v.COUNTRY_OFFSET_H[shoppers.country[user]]) % 24
        t_us = day_start_us + (utc_hour * US_PER_HOUR + u[:, 5] * US_PER_HOUR).astype(np.int64)
    else:
        t0, t1 = window_us
        t_us = t0 + (u[:, 5] * (t1 - t0)).astype(np.int64)

    kind, qtype, qid = draw_intents(user, device, shoppers, env, u[:, 6:12], gumbel)
    return SessionBlock.sorted_by_time(
        source=source,
        seq_offset=seq_offset,
        user=user.astype(np.int64),
        t_us=t_us,
        device=device,
        kind=kind,
        qid=qid,
        category=qtype.astype(np.int16),
        is_new_user=is_new,
    )


def draw_intents(user: np.ndarray, device: np.ndarray, shoppers: Shoppers, env: DayEnvironment, u: np.ndarray,
                 gumbel: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What each session is for: (kind 0 search / 1 browse, product type, query id or -1).

    ``u`` holds 6 uniforms and ``gumbel`` 27 Gumbel draws per session: searches
    follow the shopper's (hidden) tastes, the season and the conferences.
    """
    search_share = np.array([SEARCH_SHARE[d] for d in range(len(v.DEVICES))])[device]
    kind = np.where(u[:, 0] < search_share, 0, 1).astype(np.int8)
    cdf = np.where(shoppers.crochet[user][:, None], _CROCHETER_TYPES, _KNITTER_TYPES)
    qtype = (u[:, 1:2] * 0.999999 > cdf).sum(axis=1)

    fiber_taste = shoppers.pref_fiber[user] + env.fiber_trend + 0.5 * env.conference_fiber
    fiber = np.argmax(fiber_taste + gumbel[:, :7], axis=1)
    weight = np.argmax(shoppers.pref_weight[user] + gumbel[:, 7:14], axis=1)
    color = np.argmax(shoppers.pref_color[user] + env.color_trend + gumbel[:, 14:], axis=1)
    none_a, none_w, none_c = v.N_A - 1, v.N_W - 1, v.N_C - 1
    is_yarn, is_tool, is_notion = qtype == 0, (qtype == 1) | (qtype == 2), qtype == 3
    a = np.where(is_yarn & (u[:, 2] < 0.65), fiber, none_a)
    a = np.where(is_notion, (u[:, 5] * len(v.NOTION_KINDS)).astype(int), a)
    w = np.where((is_yarn & (u[:, 3] < 0.45)) | (is_tool & (u[:, 3] < 0.5)), weight, none_w)
    c = np.where((is_yarn & (u[:, 4] < 0.4)) | (is_notion & (u[:, 4] < 0.2)), color, none_c)
    qid = np.where(kind == 0, v.query_id(qtype, a, w, c), -1).astype(np.int64)
    return kind, qtype, qid


def query_type(qid: np.ndarray) -> np.ndarray:
    """The product type a query id asks for."""
    return qid // (v.N_A * v.N_W * v.N_C)


__all__ = ["SessionBlock", "US_PER_DAY", "US_PER_HOUR", "draw_intents", "generate_sessions", "query_type"]
