"""The YarnIt world: a deterministic simulator of the store, its shoppers, its feedback loops and its failures.

It produces the data, the traffic and the failures that yarnit must handle,
and records the ground truth (true click probabilities, exact fault windows)
beside them so that models and detectors can be scored. The platform never
imports it outside ``recipes``, the demo and tests.

Example:
    >>> from yarnit.world import World, WorldConfig, oracle_ranker
    >>> day = next(iter(World(WorldConfig(sessions_per_day=30, n_users=100)).run(1)))
    >>> sorted(day.tables())
    ['catalog', 'clicks', 'impressions', 'labels', 'purchases', 'sessions', 'truth', 'users']
"""

from .config import WorldConfig
from .faults import Fault, describe_faults, parse_fault
from .intents import INTENTS, labeling_queries, product_categories, query_intent
from .partition import DayPartition
from .rankers import (
    RankBatch,
    Ranker,
    RankRequest,
    oracle_ranker,
    popularity_ranker,
    random_ranker,
    with_exploration,
)
from .raters import RaterPool, RaterProfile
from .scenarios import FAULTS, FaultKind
from .served import CANDIDATE_COLUMNS, IMPRESSION_COLUMNS
from .traffic import HttpRanker, TrafficRequest, request_labels, serve_traffic
from .world import World
from .writer import read_table, write_world

__all__ = [
    "CANDIDATE_COLUMNS",
    "FAULTS",
    "IMPRESSION_COLUMNS",
    "INTENTS",
    "DayPartition",
    "Fault",
    "FaultKind",
    "HttpRanker",
    "RankBatch",
    "RankRequest",
    "Ranker",
    "RaterPool",
    "RaterProfile",
    "TrafficRequest",
    "World",
    "WorldConfig",
    "describe_faults",
    "labeling_queries",
    "oracle_ranker",
    "parse_fault",
    "popularity_ranker",
    "product_categories",
    "query_intent",
    "random_ranker",
    "read_table",
    "request_labels",
    "serve_traffic",
    "with_exploration",
    "write_world",
]
