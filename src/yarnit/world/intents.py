"""What YarnIt's search queries mean: the true intent of each query, for the label tasks of ch. 4.

The world's sessions search with queries from the closed vocabulary of :mod:`yarnit.world.vocab`
(``"merino dk blue"``, ``"knitting needles"``); each vocabulary query has a true intent derived from the
attributes it names:

* ``specific_product``: a yarn with two or more of fiber, weight, colour named; a needle or hook with its
  weight; a notion with its colour;
* ``broad_category``: anything less specific (``"merino yarn"``, ``"stitch markers"``, ``"yarn"``).

Shoppers also type queries the ranking simulation never models, since they do not lead to a product list
the rankers see: a brand (``"Fjordull merino"``) and a how-to question (``"how to cast on dk yarn"``).
:func:`labeling_queries` draws a pool of both kinds, with the typing slips real queries have, from its own
random stream (``seed`` and a fixed salt), so adding it changed no draw of the existing world: every
table the world writes is the same as before.

Products have a true category too: their product type (:func:`product_categories`).

Example:
    >>> pool = labeling_queries(seed=7, n=6)
    >>> list(pool.columns)
    ['query_id', 'query', 'intent']
    >>> set(pool["intent"]) <= set(INTENTS)
    True
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import vocab as v
from .catalog import Catalog

INTENTS = ("specific_product", "broad_category", "brand", "how_to")
SPECIFIC, BROAD, BRAND, HOW_TO = range(4)
#: Share of each kind of query in a labeling pool: vocabulary queries, brand queries, how-to questions.
POOL_SHARE = (0.62, 0.2, 0.18)
_SALT = 0x1AB5  # the labeling pool's own stream: never shared with the world's draws
TYPO_RATE = 0.12  # share of queries with one slip (a dropped or doubled letter)

_HOW_TO_TASKS = (
    "cast on", "bind off", "knit cables", "read a chart", "block a sweater", "weave in ends", "knit socks",
    "crochet a granny square", "fix a dropped stitch", "knit in the round", "join yarn", "do colorwork",
    "pick up stitches", "knit a hat", "crochet amigurumi", "wind a ball",
)  # fmt: skip
_HOW_TO_FORMS = ("how to {t}", "how do i {t}", "how to {t} with {x}", "{t} tutorial", "{t} for beginners",
                 "best way to {t}", "{t} video", "what {x} to {t}")
_BRAND_FORMS = ("{b}", "{b} {x}", "{b} yarn", "{b} {x} yarn", "{x} by {b}", "{b} sale")


def query_intent(qid: np.ndarray | int) -> np.ndarray:
    """The true intent (index into :data:`INTENTS`) of vocabulary query ids (vectorized)."""
    q = np.asarray(qid, dtype=np.int64)
    c = q % v.N_C
    w = (q // v.N_C) % v.N_W
    a = (q // (v.N_C * v.N_W)) % v.N_A
    qtype = q // (v.N_A * v.N_W * v.N_C)
    named = (a < v.N_A - 1).astype(int) + (w < v.N_W - 1) + (c < v.N_C - 1)
    specific = np.where(qtype == 0, named >= 2,
                        np.where(qtype == 3, (a < len(v.NOTION_KINDS)) & (c < v.N_C - 1), w < v.N_W - 1))
    return np.where(specific, SPECIFIC, BROAD)


def _slip(text: str, rng: np.random.Generator) -> str:
    words = text.split()
    i = int(rng.integers(len(words)))
    word = words[i]
    if len(word) > 3:
        j = int(rng.integers(1, len(word) - 1))
        words[i] = word[:j] + word[j + 1:] if rng.random() < 0.5 else word[:j] + word[j] + word[j:]
    return " ".join(words)


def labeling_queries(seed: int, n: int) -> pd.DataFrame:
    """``n`` distinct search queries with their true intent: ``query_id``, ``query``, ``intent`` (a name).

    Deterministic in ``seed``; the query ids (``q…``) are stable for a (seed, n).
    """
    rng = np.random.default_rng([seed, _SALT])
    texts: list[str] = []
    intents: list[int] = []
    seen: set[str] = set()
    type_cdf = np.cumsum(v.PRODUCT_TYPE_SHARE)
    attrs = [x for x in (*v.FIBERS[:v.NO_FIBER], *v.WEIGHT_CLASSES[:v.NO_WEIGHT], *v.COLORS, "needles", "hook")]
    attempts = 0
    while len(texts) < n:
        attempts += 1
        if attempts > 50 * n + 1000:
            raise ValueError(f"Cannot draw {n} distinct labeling queries; ask for fewer.")
        kind = int(np.searchsorted(np.cumsum(POOL_SHARE), rng.random() * 0.999999, side="right"))
        if kind == 0:
            qtype = int(np.searchsorted(type_cdf, rng.random() * 0.999999, side="right"))
            u = rng.random(4)  # which attributes are named: the shares sessions.draw_intents uses
            a = int(rng.integers(v.NO_FIBER)) if qtype == 0 and u[0] < 0.65 else v.N_A - 1
            a = int(rng.integers(len(v.NOTION_KINDS))) if qtype == 3 else a
            w = int(rng.integers(v.NO_WEIGHT)) if (qtype == 0 and u[1] < 0.45) or (qtype in (1, 2) and u[1] < 0.5) \
                else v.N_W - 1
            c = int(rng.integers(len(v.COLORS))) if (qtype == 0 and u[2] < 0.4) or (qtype == 3 and u[2] < 0.2) \
                else v.N_C - 1
            qid = int(v.query_id(np.int64(qtype), np.int64(a), np.int64(w), np.int64(c)))
            text, intent = v.QUERY_TEXTS[qid], int(query_intent(qid))
        elif kind == 1:
            form = _BRAND_FORMS[int(rng.integers(len(_BRAND_FORMS)))]
            text = form.format(b=v.BRANDS[int(rng.integers(len(v.BRANDS)))].lower(),
                               x=attrs[int(rng.integers(len(attrs)))])
            intent = BRAND
        else:
            form = _HOW_TO_FORMS[int(rng.integers(len(_HOW_TO_FORMS)))]
            text = form.format(t=_HOW_TO_TASKS[int(rng.integers(len(_HOW_TO_TASKS)))],
                               x=attrs[int(rng.integers(len(attrs)))])
            intent = HOW_TO
        if rng.random() < TYPO_RATE:
            text = _slip(text, rng)
        if text in seen:
            continue
        seen.add(text)
        texts.append(text)
        intents.append(intent)
    return pd.DataFrame({"query_id": [f"q{i:05d}" for i in range(n)], "query": texts,
                         "intent": [INTENTS[i] for i in intents]})


def product_categories(seed: int, n: int) -> pd.DataFrame:
    """``n`` catalog products with their true category: ``product_id``, ``name``, ``category``."""
    catalog = Catalog(sessions_per_day=1000, n_products_day0=n)
    catalog.add_products(n, 0, np.random.default_rng([seed, _SALT, 1]))
    return pd.DataFrame({"product_id": catalog.ids.astype(str), "name": catalog.names.astype(str),
                         "category": [v.PRODUCT_TYPES[t] for t in catalog.ptype]})


__all__ = ["INTENTS", "labeling_queries", "product_categories", "query_intent"]
