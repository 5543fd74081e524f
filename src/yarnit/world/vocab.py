"""The closed vocabularies of the YarnIt world: countries, fibers, colours, tokens, queries.

Everything categorical in the world is stored as an integer code into one of
these tuples and turned into strings only when a table is built (see
:mod:`yarnit.world.frames`). The order of each tuple is part of the world's
determinism: append, never reorder.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PRODUCT_TYPES = ("yarn", "needles", "hook", "notion")
#: Share of catalog products of each type, and of search intents of each type.
PRODUCT_TYPE_SHARE = (0.70, 0.12, 0.08, 0.10)

FIBERS = ("merino", "wool", "cotton", "acrylic", "alpaca", "silk", "blend", "none")
NO_FIBER = FIBERS.index("none")
#: Price multiplier of each yarn fiber over the yarn reference price.
FIBER_PRICE = (1.4, 1.0, 0.9, 0.6, 1.8, 2.2, 0.9)
#: Population-wide appeal of each fiber (before country and personal taste).
FIBER_BASE_PREF = (0.30, 0.10, 0.0, -0.25, 0.10, -0.10, 0.0)
#: +1: in demand in the northern winter (warm fibers), -1: in summer.
FIBER_WARMTH = (0.5, 1.0, -1.0, 0.0, 1.0, -0.5, 0.0)

WEIGHT_CLASSES = ("lace", "fingering", "sport", "dk", "worsted", "aran", "bulky", "none")
NO_WEIGHT = WEIGHT_CLASSES.index("none")
NEEDLE_MM = ("2.25", "2.75", "3.25", "4.0", "4.5", "5.0", "6.5")

COLORS = (
    "red", "blue", "green", "yellow", "purple", "pink", "grey",
    "black", "white", "brown", "orange", "teal", "natural",
)  # fmt: skip

NOTION_KINDS = ("markers", "bag", "counter", "scissors", "tape")
NOTION_PHRASES = ("stitch markers", "project bag", "row counter", "yarn scissors", "tape measure")

BRANDS = (
    "Fjordull", "Lana Sol", "Maple Loop", "Purl & Pine", "Tejido Vivo", "Highland Hank",
    "Nube", "Sheepish", "Knotwork", "Hilo Rojo", "Stickdag", "Ravelwood",
    "Bobbin Lane", "Wollhaus", "YarnIt Basics",
)  # fmt: skip
#: Brands whose products are listed by partners (looked up in partner datasets).
PARTNER_BRANDS = frozenset({"Lana Sol", "Tejido Vivo", "Hilo Rojo", "Stickdag", "Wollhaus", "Nube"})
BRAND_IS_PARTNER = np.array([b in PARTNER_BRANDS for b in BRANDS])

DEVICES = ("desktop", "mobile", "app")
#: Position-bias exponent: examination probability of position k is k ** -eta.
DEVICE_ETA = (0.4, 0.7, 0.6)
DEVICE_SHARE = (0.45, 0.35, 0.20)

SESSION_KINDS = ("search", "browse")
LABEL_KINDS = ("click", "purchase", "fraud")


@dataclass(frozen=True)
class Country:
    code: str
    language: str
    currency: str
    share: float  # of shoppers
    utc_offset_h: int
    fx_per_usd: float  # reference London end-of-day rate: units of local currency per USD


COUNTRIES = (
    Country("US", "en", "USD", 0.30, -5, 1.0),
    Country("GB", "en", "GBP", 0.12, 0, 0.79),
    Country("CA", "en", "CAD", 0.06, -5, 1.36),
    Country("DE", "de", "EUR", 0.12, 1, 0.92),
    Country("FR", "fr", "EUR", 0.08, 1, 0.92),
    Country("ES", "es", "EUR", 0.10, 1, 0.92),
    Country("MX", "es", "MXN", 0.06, -6, 17.2),
    Country("NO", "no", "NOK", 0.08, 1, 10.6),
    Country("SE", "sv", "SEK", 0.08, 1, 10.4),
)
COUNTRY_CODES = tuple(c.code for c in COUNTRIES)
LANGUAGES = ("en", "de", "fr", "es", "no", "sv")
CURRENCIES = ("USD", "GBP", "CAD", "EUR", "MXN", "NOK", "SEK")
COUNTRY_LANGUAGE = np.array([LANGUAGES.index(c.language) for c in COUNTRIES])
COUNTRY_CURRENCY = np.array([CURRENCIES.index(c.currency) for c in COUNTRIES])
COUNTRY_OFFSET_H = np.array([c.utc_offset_h for c in COUNTRIES])
CURRENCY_FX = np.array([next(c.fx_per_usd for c in COUNTRIES if c.currency == cur) for cur in CURRENCIES])
#: Fiber taste by country (Norway knits wool, Spain and Mexico like cotton).
COUNTRY_FIBER_PREF = {
    "NO": {"wool": 0.6, "alpaca": 0.3, "cotton": -0.3},
    "SE": {"wool": 0.4, "alpaca": 0.2},
    "ES": {"cotton": 0.5, "merino": 0.2, "wool": -0.2},
    "MX": {"cotton": 0.6, "acrylic": 0.3, "alpaca": -0.2},
    "GB": {"wool": 0.3, "blend": 0.2},
    "US": {"acrylic": 0.3, "merino": 0.1},
}

#: Relative traffic by hour of the shopper's local day (evening peak).
LOCAL_HOUR_TRAFFIC = np.array(
    [0.5, 0.3, 0.2, 0.15, 0.15, 0.2, 0.4, 0.7, 0.9, 1.0, 1.0, 1.1,
     1.2, 1.1, 1.0, 1.0, 1.0, 1.1, 1.3, 1.6, 1.8, 1.7, 1.3, 0.9]
)  # fmt: skip
#: Relative traffic by day of week (Monday first); the mean is 1.
WEEKDAY_TRAFFIC = np.array([0.96, 0.94, 0.95, 0.97, 0.93, 1.10, 1.15])


@dataclass(frozen=True)
class Conference:
    """An annual knitting conference: more traffic, more interest in one fiber."""

    name: str
    month: int
    day: int
    n_days: int
    country: str
    fiber: str


CONFERENCES = (
    Conference("Nordic Knitting Days", 1, 22, 3, "NO", "wool"),
    Conference("Madrid Fiber Fest", 3, 12, 3, "ES", "merino"),
    Conference("Stitch Summit", 4, 16, 3, "US", "cotton"),
    Conference("London Yarn Week", 6, 4, 3, "GB", "alpaca"),
    Conference("Sock Summit", 8, 20, 3, "US", "merino"),
    Conference("Wool and Fjord", 10, 8, 3, "NO", "wool"),
    Conference("Holiday Yarn Fair", 11, 19, 3, "DE", "silk"),
)
CONFERENCE_TRAFFIC = 1.25  # traffic multiplier on conference days
CONFERENCE_BOOST = 0.5  # relevance logit added to products of the conference fiber

# --- tokens: products and queries are matched on these words (a bit each) ---
TOKENS = (
    *FIBERS[:NO_FIBER], *WEIGHT_CLASSES[:NO_WEIGHT], *COLORS,
    "yarn", "needles", "hook", *NOTION_KINDS,
)  # fmt: skip
TOKEN_BIT = {t: np.uint64(1) << np.uint64(i) for i, t in enumerate(TOKENS)}
assert len(TOKENS) <= 64


def token_mask(words: list[str]) -> np.uint64:
    """The bitmask of the known tokens among ``words``."""
    mask = np.uint64(0)
    for word in words:
        if word in TOKEN_BIT:
            mask |= TOKEN_BIT[word]
    return mask


# --- the query vocabulary: every (type, a, weight, color) intent, a = fiber or notion kind ---
N_A = 8  # fiber code 0..6 or notion kind 0..4, 7 = unspecified
N_W = len(WEIGHT_CLASSES)  # 7 = unspecified
N_C = len(COLORS) + 1  # 13 = unspecified
N_QUERIES = len(PRODUCT_TYPES) * N_A * N_W * N_C


def query_id(qtype: np.ndarray, a: np.ndarray, w: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Index of an intent in the query vocabulary (vectorized)."""
    return ((qtype * N_A + a) * N_W + w) * N_C + c


def _query_text(qtype: int, a: int, w: int, c: int) -> str:
    color = COLORS[c] if c < len(COLORS) else None
    weight = WEIGHT_CLASSES[w] if w < NO_WEIGHT else None
    if qtype == 0:
        fiber = FIBERS[a] if a < NO_FIBER else None
        words = [x for x in (fiber, weight, color) if x]
        if len(words) <= 1:
            words.append("yarn")
        return " ".join(words)
    if qtype == 1:
        return " ".join(x for x in (weight, "knitting needles") if x)
    if qtype == 2:
        return " ".join(x for x in (weight, "crochet hook") if x)
    phrase = NOTION_PHRASES[a] if a < len(NOTION_KINDS) else "notions"
    return " ".join(x for x in (color, phrase) if x)


def _build_queries() -> tuple[tuple[str, ...], np.ndarray]:
    texts, masks = [], []
    for qtype in range(len(PRODUCT_TYPES)):
        for a in range(N_A):
            for w in range(N_W):
                for c in range(N_C):
                    text = _query_text(qtype, a, w, c)
                    texts.append(text)
                    masks.append(token_mask(text.split()))
    return tuple(texts), np.array(masks, dtype=np.uint64)


#: Text and token mask of every query id; "" is the (empty) query of a browsing session.
QUERY_TEXTS, QUERY_MASKS = _build_queries()
