"""The golden-data prober of the click model's pipeline: known records through every run, checked at the end.

Every ``yarnit-ctr`` run (``yarnit pipeline run yarnit-ctr`` and the
continuous loop's training runs, which are ``yarnit-ctr`` runs too) carries
:data:`GOLDEN_RECORDS`, six synthetic impressions, through the same code its
own data goes through, with the run's own configuration:

1. **ingest**: :meth:`yarnit.data.Datasets.ingest_frame` records them as a
   version of ``<dataset>-golden`` (content-addressed: an unchanged window
   reuses the version);
2. **validation**: the curated impression schema
   (:mod:`.impressions_schema`, with the run's ``validation`` overrides): a
   valid golden record that validation rejects is a defect too;
3. **split**: each record is dated into the run's own train or holdout days,
   so the day filter must put it on the right side;
4. **features**: the run's reader and transform (``ctr._features``, the very
   function ``train`` and ``evaluate`` call) turn them into feature rows.

At the end each record must come out **exactly once, on its side of the split,
with its label, and with every feature equal to the value computed by hand**
from the definition in :mod:`yarnit.features.request_time` (:data:`EXPECTED`;
floats within 1e-9, the skew target's tolerance; text exactly). One wrong
field makes the record wrong; the result names the record and the field.

Why a separate dataset version rather than rows mixed into the run's data: the
golden records then *cannot* reach training, the served or monitored data, the
run's statistics or a deletion receipt (their subject column is ``user_id``:
a deletion request searches them like any version, finds no real person, and
its receipt never lists them as unchecked), and
the training data stays byte-identical to what the world or the loop produced
(reproduction and caching are untouched). The cost is what this does not see:
a defect that only shows when a golden row shares one call with real rows (a
transform that mixes rows) is not caught here. The hand-computed values are
``ctr_features_v1``'s; ``ctr_features_v2``/``v3`` keep every v1 column and
add history features, which are listed in the result's notes as not compared.

The run records ``golden.injected``, ``golden.correct`` and
``golden.correctness`` as run metrics (``yarnit runs show``), and a run with a
wrong golden record fails at the ``golden`` step, before training, with the
record and field named. The ``golden_correctness`` SLI
(:mod:`yarnit.monitoring.probes`) counts every injected record of every run as
one event, good when it came out correct, so the SLO machinery pages on it.

Example:
    >>> split = {"train_days": ["2026-01-01", "2026-01-02"], "holdout_days": ["2026-01-03"]}
    >>> frame = golden_frame(split)
    >>> list(frame["impression_id"][:2]), sorted(set(frame["day"].astype(str)))
    (['golden-1', 'golden-2'], ['2026-01-01', '2026-01-02', '2026-01-03'])
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pandas as pd

from yarnit.core.errors import YarnitError

GOLDEN_PREFIX = "golden-"  # every golden impression, session, shopper and product id starts with it
FLOAT_TOLERANCE = 1e-9  # RELIABILITY.md target 15's tolerance for the same feature computed two ways

#: The synthetic impressions: realistic enough to pass the curated schema, chosen to sit on the definition's
#: edges (price-bucket boundaries 0.99, 5.0, 10.0 and 500; a query with a comma and capitals; an upper-case
#: weight class; midnight and 23:00; position 100). ``part`` says which side of the run's split it is dated in.
GOLDEN_RECORDS: tuple[dict[str, Any], ...] = (
    {"id": 1, "part": "train", "country": "US", "language": "en", "device": "desktop", "product_type": "yarn",
     "fiber": "wool", "weight_class": "worsted", "color": "red", "brand": "Golden Probe", "is_partner": True,
     "in_stock": True, "price_usd": 12.5, "discount": 0.1, "user_price_sensitivity": 2.0, "hour": 13,
     "day_of_week": 2, "query": "red wool yarn", "position": 3, "clicked": 1},
    {"id": 2, "part": "train", "country": "DE", "language": "de", "device": "mobile", "product_type": "needles",
     "fiber": "bamboo", "weight_class": "fine", "color": "natural", "brand": "Golden Probe", "is_partner": False,
     "in_stock": False, "price_usd": 4.99, "discount": 0.0, "user_price_sensitivity": 0.5, "hour": 0,
     "day_of_week": 6, "query": "", "position": 1, "clicked": 0},
    {"id": 3, "part": "train", "country": "GB", "language": "en", "device": "app", "product_type": "hook",
     "fiber": "steel", "weight_class": "lace", "color": "silver", "brand": "Golden Probe", "is_partner": False,
     "in_stock": True, "price_usd": 0.99, "discount": 0.9, "user_price_sensitivity": 10.0, "hour": 23,
     "day_of_week": 5, "query": "Steel HOOK, lace", "position": 100, "clicked": 0},
    {"id": 4, "part": "train", "country": "FR", "language": "fr", "device": "desktop", "product_type": "notion",
     "fiber": "cotton", "weight_class": "dk", "color": "blue", "brand": "Golden Probe", "is_partner": True,
     "in_stock": False, "price_usd": 500.0, "discount": 0.25, "user_price_sensitivity": 1.25, "hour": 4,
     "day_of_week": 0, "query": "bleu coton", "position": 7, "clicked": 1},
    {"id": 5, "part": "holdout", "country": "MX", "language": "es", "device": "mobile", "product_type": "yarn",
     "fiber": "acrylic", "weight_class": "bulky", "color": "green", "brand": "Golden Probe", "is_partner": False,
     "in_stock": True, "price_usd": 5.0, "discount": 0.05, "user_price_sensitivity": 3.0, "hour": 8,
     "day_of_week": 3, "query": "yarn", "position": 2, "clicked": 0},
    {"id": 6, "part": "holdout", "country": "SE", "language": "sv", "device": "app", "product_type": "yarn",
     "fiber": "alpaca", "weight_class": "DK", "color": "grey", "brand": "Golden Probe", "is_partner": True,
     "in_stock": True, "price_usd": 10.0, "discount": 0.0, "user_price_sensitivity": 0.0, "hour": 19,
     "day_of_week": 4, "query": "dk alpaca", "position": 12, "clicked": 1},
)

#: ``ctr_features_v1`` of each golden record, worked out by hand from the definition (request_time.py):
#: price_bucket = 0 under $1, 1 under $5, else 1 + price // 5; log_price_usd = log1p(price); hour_block =
#: hour // 4; query matches compare the lower-cased value with the query's lower-cased, comma-split tokens;
#: sensitivity_x_bucket = user_price_sensitivity * price_bucket. Not computed by calling the transform.
EXPECTED: dict[int, dict[str, Any]] = {
    1: {"country": "US", "language": "en", "device": "desktop", "product_type": "yarn", "fiber": "wool",
        "weight_class": "worsted", "color": "red", "brand": "Golden Probe", "discount": 0.1,
        "user_price_sensitivity": 2.0, "price_bucket": "3", "log_price_usd": math.log1p(12.5), "is_partner": 1.0,
        "in_stock": 1.0, "hour_block": "3", "day_of_week": "2", "has_query": 1.0, "query_match_fiber": 1.0,
        "query_match_weight": 0.0, "query_match_color": 1.0, "query_match_type": 1.0, "position": "3",
        "country_x_fiber": "US|wool", "sensitivity_x_bucket": 6.0},
    2: {"country": "DE", "language": "de", "device": "mobile", "product_type": "needles", "fiber": "bamboo",
        "weight_class": "fine", "color": "natural", "brand": "Golden Probe", "discount": 0.0,
        "user_price_sensitivity": 0.5, "price_bucket": "1", "log_price_usd": math.log1p(4.99), "is_partner": 0.0,
        "in_stock": 0.0, "hour_block": "0", "day_of_week": "6", "has_query": 0.0, "query_match_fiber": 0.0,
        "query_match_weight": 0.0, "query_match_color": 0.0, "query_match_type": 0.0, "position": "1",
        "country_x_fiber": "DE|bamboo", "sensitivity_x_bucket": 0.5},
    3: {"country": "GB", "language": "en", "device": "app", "product_type": "hook", "fiber": "steel",
        "weight_class": "lace", "color": "silver", "brand": "Golden Probe", "discount": 0.9,
        "user_price_sensitivity": 10.0, "price_bucket": "0", "log_price_usd": math.log1p(0.99), "is_partner": 0.0,
        "in_stock": 1.0, "hour_block": "5", "day_of_week": "5", "has_query": 1.0, "query_match_fiber": 1.0,
        "query_match_weight": 1.0, "query_match_color": 0.0, "query_match_type": 1.0, "position": "100",
        "country_x_fiber": "GB|steel", "sensitivity_x_bucket": 0.0},
    4: {"country": "FR", "language": "fr", "device": "desktop", "product_type": "notion", "fiber": "cotton",
        "weight_class": "dk", "color": "blue", "brand": "Golden Probe", "discount": 0.25,
        "user_price_sensitivity": 1.25, "price_bucket": "101", "log_price_usd": math.log1p(500.0), "is_partner": 1.0,
        "in_stock": 0.0, "hour_block": "1", "day_of_week": "0", "has_query": 1.0, "query_match_fiber": 0.0,
        "query_match_weight": 0.0, "query_match_color": 0.0, "query_match_type": 0.0, "position": "7",
        "country_x_fiber": "FR|cotton", "sensitivity_x_bucket": 126.25},
    5: {"country": "MX", "language": "es", "device": "mobile", "product_type": "yarn", "fiber": "acrylic",
        "weight_class": "bulky", "color": "green", "brand": "Golden Probe", "discount": 0.05,
        "user_price_sensitivity": 3.0, "price_bucket": "2", "log_price_usd": math.log1p(5.0), "is_partner": 0.0,
        "in_stock": 1.0, "hour_block": "2", "day_of_week": "3", "has_query": 1.0, "query_match_fiber": 0.0,
        "query_match_weight": 0.0, "query_match_color": 0.0, "query_match_type": 1.0, "position": "2",
        "country_x_fiber": "MX|acrylic", "sensitivity_x_bucket": 6.0},
    6: {"country": "SE", "language": "sv", "device": "app", "product_type": "yarn", "fiber": "alpaca",
        "weight_class": "DK", "color": "grey", "brand": "Golden Probe", "discount": 0.0,
        "user_price_sensitivity": 0.0, "price_bucket": "3", "log_price_usd": math.log1p(10.0), "is_partner": 1.0,
        "in_stock": 1.0, "hour_block": "4", "day_of_week": "4", "has_query": 1.0, "query_match_fiber": 1.0,
        "query_match_weight": 1.0, "query_match_color": 0.0, "query_match_type": 0.0, "position": "12",
        "country_x_fiber": "SE|alpaca", "sensitivity_x_bucket": 0.0},
}

_CURRENCY = {"US": "USD", "DE": "EUR", "GB": "GBP", "FR": "EUR", "MX": "MXN", "SE": "SEK"}


def golden_id(number: int) -> str:
    """The impression id of golden record ``number`` (every golden id starts with :data:`GOLDEN_PREFIX`)."""
    return f"{GOLDEN_PREFIX}{number}"


def golden_frame(split: Mapping[str, Any]) -> pd.DataFrame:
    """The golden records as impression-log rows, dated into ``split``'s train and holdout days.

    Train records go to the first and the last train day alternately, holdout records to the holdout days,
    so the run's day filter decides their side exactly as it does for real rows.
    """
    days = {"train": [date.fromisoformat(str(d)) for d in split["train_days"]],
            "holdout": [date.fromisoformat(str(d)) for d in split["holdout_days"]]}
    rows, seen = [], {"train": 0, "holdout": 0}
    for record in GOLDEN_RECORDS:
        part = record["part"]
        choices = [days[part][0], days[part][-1]]
        day = choices[seen[part] % 2]
        seen[part] += 1
        at = datetime(day.year, day.month, day.day, int(record["hour"]), tzinfo=timezone.utc) + timedelta(minutes=7)
        raw = {k: v for k, v in record.items() if k not in ("id", "part")}
        rows.append(raw | {
            "impression_id": golden_id(record["id"]), "event_time": at, "day": day,
            "session_id": f"{GOLDEN_PREFIX}session-{record['id']}", "user_id": f"{GOLDEN_PREFIX}shopper",
            "product_id": f"{GOLDEN_PREFIX}product-{record['id']}", "product_name": f"Golden probe item {record['id']}",
            "price_local": float(record["price_usd"]), "currency": _CURRENCY[record["country"]],
            "product_clicks_7d": 0, "product_age_days": 365,
        })
    frame = pd.DataFrame(rows)
    return frame.astype({"position": "int64", "hour": "int64", "day_of_week": "int64", "clicked": "int64",
                         "product_clicks_7d": "int64", "product_age_days": "int64"})


@dataclass(frozen=True)
class GoldenFailure:
    """One way a golden record came out wrong: which record, which field, what was expected, what came out."""

    record: str
    field: str
    expected: Any
    got: Any

    def sentence(self) -> str:
        return f"{self.record}.{self.field}: expected {self.expected!r}, got {self.got!r}"


@dataclass(frozen=True)
class GoldenCheck:
    """The prober's result for one run: ``correct`` of ``injected`` records came out exactly as expected."""

    injected: int
    correct: int
    failures: tuple[GoldenFailure, ...] = ()
    checked_fields: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def correctness(self) -> float:
        return self.correct / self.injected if self.injected else 0.0

    @property
    def passed(self) -> bool:
        return self.injected > 0 and self.correct == self.injected

    def summary(self) -> str:
        head = f"golden records: {self.correct}/{self.injected} correct"
        if self.passed:
            return head
        shown = "; ".join(f.sentence() for f in self.failures[:5])
        more = f" (and {len(self.failures) - 5} more)" if len(self.failures) > 5 else ""
        return f"{head}; wrong: {shown}{more}"

    def to_dict(self) -> dict[str, Any]:
        return {"injected": self.injected, "correct": self.correct, "correctness": self.correctness,
                "passed": self.passed, "checked_fields": list(self.checked_fields), "notes": list(self.notes),
                "failures": [{"record": f.record, "field": f.field, "expected": _plain(f.expected),
                              "got": _plain(f.got)} for f in self.failures]}


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value if isinstance(value, str | int | float | bool | type(None)) else str(value)


def _same(expected: Any, got: Any) -> bool:
    if isinstance(expected, str):
        return isinstance(got, str) and got == expected
    try:
        value = float(got)
    except (TypeError, ValueError):
        return False
    return math.isfinite(value) and abs(value - float(expected)) <= FLOAT_TOLERANCE


def check_golden(parts: Mapping[str, tuple[pd.DataFrame, pd.DataFrame]], *, label: str,
                 rejected: Sequence[str] = (), expected: Mapping[int, Mapping[str, Any]] | None = None) -> GoldenCheck:
    """Compare what came out of the run's path with what must come out.

    ``parts`` maps ``"train"`` and ``"holdout"`` to ``(features, kept)`` as the run's feature step returned them
    for the golden data (``kept`` holds ``impression_id`` and the label, row-aligned with ``features``).
    ``rejected`` are validation's blocking findings on the golden data: valid records that validation
    rejects would never reach training, so then none counts as correct.
    """
    expected = EXPECTED if expected is None else expected
    failures: list[GoldenFailure] = []
    correct = 0
    outputs = {part: (features.reset_index(drop=True), kept.reset_index(drop=True))
               for part, (features, kept) in parts.items()}
    shared = sorted(set.intersection(*(set(f.columns) for f, _ in outputs.values()))) if outputs else []
    fields = [name for name in next(iter(expected.values())) if name in shared] if expected else []
    declared = list(next(iter(expected.values()))) if expected else []
    notes = []
    if len(fields) < len(declared):
        notes.append(f"expected but not produced by this transform (a failure): "
                     f"{sorted(set(declared) - set(fields))}")
    if set(shared) - set(declared):
        notes.append(f"produced without a hand-computed value, not compared: {sorted(set(shared) - set(declared))}")
    golden_ids = {golden_id(r["id"]) for r in GOLDEN_RECORDS}
    for part, (_features, kept) in outputs.items():
        strangers = sorted(set(kept["impression_id"].astype(str)) - golden_ids)
        for stranger in strangers[:5]:  # a row that is no golden record came out of the golden data
            failures.append(GoldenFailure(stranger, "impression_id", "no such row", f"a row in {part}"))
    for record in GOLDEN_RECORDS:
        name = golden_id(record["id"])
        wrong: list[GoldenFailure] = []
        if rejected:
            wrong.append(GoldenFailure(name, "validation", "valid", "; ".join(rejected)[:300]))
        where = {part: kept.index[kept["impression_id"].astype(str) == name].tolist()
                 for part, (_f, kept) in outputs.items()}
        mine = where.get(record["part"], [])
        elsewhere = [p for p, rows in where.items() if rows and p != record["part"]]
        if elsewhere:
            wrong.append(GoldenFailure(name, "split", record["part"], ", ".join(elsewhere)))
        if len(mine) != 1:
            wrong.append(GoldenFailure(name, "rows", 1, len(mine)))  # 0: dropped; 2 or more: duplicated
        else:
            features, kept = outputs[record["part"]]
            row = mine[0]
            got_label = kept.at[row, label]
            if not _same(float(record[label]), got_label):
                wrong.append(GoldenFailure(name, label, record[label], _plain(got_label)))
            for column in declared:
                if column not in fields:
                    wrong.append(GoldenFailure(name, column, expected[record["id"]][column], "no such feature"))
                    continue
                got = features.at[row, column]
                want = expected[record["id"]][column]
                if not _same(want, got if isinstance(want, str) and isinstance(got, str) else _plain(got)):
                    wrong.append(GoldenFailure(name, column, want, _plain(got)))
        if wrong:
            failures += wrong
        else:
            correct += 1
    return GoldenCheck(injected=len(GOLDEN_RECORDS), correct=correct, failures=tuple(failures),
                       checked_fields=(label, *fields), notes=tuple(notes))


def run_golden_probe(frame_features: Callable[[str], tuple[pd.DataFrame, pd.DataFrame]], *, label: str,
                     rejected: Sequence[str] = ()) -> GoldenCheck:
    """Run the check on both sides of the split with ``frame_features(part)`` (the run's own feature path)."""
    return check_golden({part: frame_features(part) for part in ("train", "holdout")}, label=label,
                        rejected=rejected)


# --- the loop's day: label join and quarantine ----------------------------------------------------------
LATE_CLICK = 4  # golden-4 was clicked, but its click arrives after the loop's as_of: not joined yet
NOT_A_CLICK = 2  # golden-2 has a purchase label and no click: it must stay unclicked
DUPLICATED = 6  # golden-6 comes twice: the second copy must be quarantined as a duplicate, the first kept


def golden_day(day: date, as_of: datetime) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """The golden records as one day of the loop's input: impressions (``clicked`` unknown, 0), their labels
    (clicks 10 minutes after the impression, one click arriving an hour after ``as_of``, one purchase and no
    click), with golden-6 sent twice; and the ``clicked`` each must have after the label join."""
    impressions = _golden_impressions(day).copy()
    labels, expected = [], {}
    for record in GOLDEN_RECORDS:
        name = golden_id(record["id"])
        at = datetime(day.year, day.month, day.day, int(record["hour"]), 17, tzinfo=timezone.utc)
        if record["id"] == NOT_A_CLICK:
            labels.append({"impression_id": name, "kind": "purchase", "arrival_time": at})
        elif record["clicked"]:
            late = record["id"] == LATE_CLICK
            labels.append({"impression_id": name, "kind": "click",
                           "arrival_time": as_of + timedelta(hours=1) if late else at})
        expected[name] = 0 if record["id"] in (LATE_CLICK, NOT_A_CLICK) else int(record["clicked"])
    frame = pd.DataFrame(labels)
    frame["arrival_time"] = pd.to_datetime(frame["arrival_time"], utc=True)
    return impressions, frame, expected


@functools.lru_cache(maxsize=8)
def _golden_impressions(day: date) -> pd.DataFrame:
    """The golden records as ``day``'s impressions, golden-6 twice (the same for every join of the day: kept, as
    the loop joins a day with late clicks again every tick; callers get a copy)."""
    split = {"train_days": [day.isoformat()], "holdout_days": [day.isoformat()]}
    impressions = golden_frame(split)
    return pd.concat([impressions, impressions[impressions["impression_id"] == golden_id(DUPLICATED)]],
                     ignore_index=True).assign(clicked=0)


def check_day(joined: pd.DataFrame, reasons: pd.Series, expected: Mapping[str, int], *,
              label: str = "clicked") -> GoldenCheck:
    """Each golden record kept exactly once with the ``clicked`` the label join must give, and only the
    duplicate copy quarantined (``reasons``: the quarantine's reason per row of ``joined``, ``""`` = kept)."""
    failures: list[GoldenFailure] = []
    correct = 0
    # plain lists: a handful of rows, looked up once per record (pandas' per-lookup overhead was most of the
    # prober's cost, and it runs in every day run of the loop)
    ids = [str(i) for i in joined["impression_id"]]
    values = list(joined[label])
    why = [str(r) for r in reasons]
    for name, want in expected.items():
        wrong: list[GoldenFailure] = []
        rows = [v for i, v, r in zip(ids, values, why, strict=True) if i == name and r == ""]
        if len(rows) != 1:
            wrong.append(GoldenFailure(name, "rows", 1, len(rows)))
        elif int(rows[0]) != want:
            wrong.append(GoldenFailure(name, label, want, _plain(rows[0])))
        quarantined = sorted(r for i, r in zip(ids, why, strict=True) if i == name and r != "")
        if quarantined != (["duplicate"] if name == golden_id(DUPLICATED) else []):
            wrong.append(GoldenFailure(name, "quarantine", ["duplicate"] if name == golden_id(DUPLICATED) else [],
                                       quarantined))
        if wrong:
            failures += wrong
        else:
            correct += 1
    return GoldenCheck(injected=len(expected), correct=correct, failures=tuple(failures),
                       checked_fields=("rows", label, "quarantine"))


class GoldenRecordsWrong(YarnitError):
    """Golden records did not come out of the run exactly as expected (set as the step's error)."""


__all__ = ["EXPECTED", "FLOAT_TOLERANCE", "GOLDEN_PREFIX", "GOLDEN_RECORDS", "GoldenCheck", "GoldenFailure",
           "GoldenRecordsWrong", "check_day", "check_golden", "golden_day", "golden_frame", "golden_id",
           "run_golden_probe"]
