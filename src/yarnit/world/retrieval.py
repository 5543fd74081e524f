"""Candidate retrieval: the broad list of products that the ranker then orders.

Search: the products whose names share the most tokens with the query, then
the right product type, then the popular ones (YarnIt's own popularity
feature, so a stale feature pipeline reaches retrieval too). Browsing: a
category page, a popularity-weighted random sample of the category. Retrieval
is deterministic given the day's catalog; the candidate lists of a query do not
depend on which other queries were asked.
"""

from __future__ import annotations

import numpy as np

from . import vocab as v
from .sessions import SessionBlock, query_type

BROWSE_PAGES = 64  # distinct category pages per product type per day
_MAX_CELLS = 4_000_000  # query x product cells scored at once


class Retriever:
    """Candidate lists for one day's catalog."""

    def __init__(self, ptype: np.ndarray, tokens: np.ndarray, popularity: np.ndarray, n_candidates: int,
                 rng: np.random.Generator) -> None:
        self.n_candidates = n_candidates
        self._ptype = ptype
        self._tokens = tokens
        self._prior = 0.05 * np.log1p(np.maximum(popularity, 0))
        self._by_query: dict[int, np.ndarray] = {}
        # Category pages: Gumbel top-k = sampling without replacement, weighted by popularity;
        # a category smaller than a page is filled up with other products.
        pages = []
        for category in range(len(v.PRODUCT_TYPES)):
            keys = self._prior * 10 + rng.gumbel(size=(BROWSE_PAGES, len(ptype)))
            keys += 100.0 * (ptype == category)
            pages.append(_top_k(keys, n_candidates))
        self._pages = np.stack(pages)

    def candidates(self, block: SessionBlock, page_rng: np.random.Generator) -> np.ndarray:
        """Product indices, shape (sessions, n_candidates), best retrieval match first."""
        out = np.empty((len(block), self.n_candidates), dtype=np.int64)
        page = (page_rng.random(len(block)) * BROWSE_PAGES).astype(int)
        browse = block.kind == 1
        out[browse] = self._pages[block.category[browse], page[browse]]
        search = ~browse
        if search.any():
            qids, inverse = np.unique(block.qid[search], return_inverse=True)
            missing = [int(q) for q in qids if int(q) not in self._by_query]
            if missing:
                lists = self._search(np.array(missing, dtype=np.int64))
                self._by_query.update(zip(missing, lists, strict=True))
            table = np.stack([self._by_query[int(q)] for q in qids])
            out[search] = table[inverse.ravel()]
        return out

    def _search(self, qids: np.ndarray) -> np.ndarray:
        step = max(1, _MAX_CELLS // max(len(self._ptype), 1))  # bound memory on large catalogs
        return np.concatenate([self._search_chunk(qids[i : i + step]) for i in range(0, len(qids), step)])

    def _search_chunk(self, qids: np.ndarray) -> np.ndarray:
        qmask = v.QUERY_MASKS[qids]
        n_tokens = np.maximum(np.bitwise_count(qmask), 1).astype(float)
        shared = np.bitwise_count(qmask[:, None] & self._tokens[None, :]).astype(float)
        match = shared / n_tokens[:, None]
        same_type = query_type(qids)[:, None] == self._ptype[None, :]
        product = np.arange(len(self._ptype), dtype=np.int64)
        tie = ((qids[:, None] * 2654435761 + product[None, :] * 40503) % 10007) / 1e7  # deterministic jitter
        keys = 10.0 * match + 2.0 * same_type + self._prior[None, :] + tie
        return _top_k(keys, self.n_candidates)


def _top_k(keys: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the ``k`` largest keys of each row, largest first."""
    top = np.argpartition(-keys, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(keys, top, axis=1), axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1)


def match_fraction(qid: np.ndarray, product_tokens: np.ndarray) -> np.ndarray:
    """Share of a query's tokens found in the product name (0 for browsing, qid -1)."""
    qmask = v.QUERY_MASKS[np.maximum(qid, 0)]
    n_tokens = np.maximum(np.bitwise_count(qmask), 1)
    shared = np.bitwise_count(qmask & product_tokens)
    return np.where(qid >= 0, shared / n_tokens, 0.0)


__all__ = ["BROWSE_PAGES", "Retriever", "match_fraction"]
