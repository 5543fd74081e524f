"""From scores to slates: the order shown, ties broken at random, exploration, and exact propensities.

The world's display policy for one session: with probability
``exploration_rate`` show the candidates in a uniformly random order;
otherwise sort by score, breaking ties uniformly at random. The first
``slate_size`` are shown. The logged propensity of the item at position k is
the probability that this policy puts that item at position k::

    propensity = (1 - rate) * [k lies in the item's tie group] / (tie group size) + rate / n_candidates

so it is 1.0 for an item with a unique score when the ranker does not explore.
"""

from __future__ import annotations

import numpy as np


def order_slates(scores: np.ndarray, slate_size: int, exploration_rate: float,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Return (candidate index shown at each position, propensity), both (sessions, slate_size)."""
    n_sessions, n_candidates = scores.shape
    u = rng.random((n_sessions, 2 * n_candidates + 1))
    tiebreak, shuffle, explore = u[:, :n_candidates], u[:, n_candidates:-1], u[:, -1] < exploration_rate

    greedy = np.lexsort((tiebreak, -scores), axis=-1)
    ranked = np.take_along_axis(scores, greedy, axis=1)
    # tie groups along each sorted row: id, first position and size of the group at each position
    new_group = np.ones_like(ranked, dtype=bool)
    new_group[:, 1:] = ranked[:, 1:] != ranked[:, :-1]
    group = np.cumsum(new_group, axis=1) - 1
    flat = group + (np.arange(n_sessions) * n_candidates)[:, None]
    size = np.bincount(flat.ravel(), minlength=n_sessions * n_candidates).reshape(n_sessions, n_candidates)
    first = np.zeros_like(size)
    positions = np.broadcast_to(np.arange(n_candidates), ranked.shape)
    first.reshape(-1)[flat[new_group]] = positions[new_group]

    random_order = np.argsort(shuffle, axis=1)
    order = np.where(explore[:, None], random_order, greedy)[:, :slate_size]

    rank_of = np.empty_like(greedy)
    np.put_along_axis(rank_of, greedy, positions, axis=1)
    item_rank = np.take_along_axis(rank_of, order, axis=1)
    item_group = np.take_along_axis(group, item_rank, axis=1)
    group_first = np.take_along_axis(first, item_group, axis=1)
    group_size = np.take_along_axis(size, item_group, axis=1)
    k = np.arange(slate_size)[None, :]
    in_group = (group_first <= k) & (k < group_first + group_size)
    propensity = (1.0 - exploration_rate) * in_group / group_size + exploration_rate / n_candidates
    return order, propensity


__all__ = ["order_slates"]
