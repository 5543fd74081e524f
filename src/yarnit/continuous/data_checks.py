"""Daily data checks of the loop's day: slice volume, shown out-of-stock share, null shares, against the lookback.

Each check compares the day's clean impressions with the ``lookback_days``
days before it (read from the written world, as the quarantine's flood rule
reads them): the median of those days' values is what is *expected*. A check
answers ``pass``, ``fail`` (with observed and expected numbers) or
``no_verdict`` (fewer than ``min_lookback_days`` lookback days: neither a
pass nor a fail, and recorded so). Three checks, each bounded to what it can recognise:

* ``slice_volume``: the share of rows of each value of ``slice_columns``
  (``language``, ``country``). A slice whose share fell below
  ``min_slice_ratio`` of its lookback median fails (a silent loss of one
  language's or country's events). A slice expected to have fewer than
  ``min_slice_rows`` rows today is not judged: small slices are noise.
* ``out_of_stock``: the share of shown impressions of products not in stock.
  It fails above ``max_oos_ratio`` times the lookback median *and* above the
  median plus ``min_oos_increase`` (stock drifts slowly in an ordinary world;
  a sold-out bestseller list jumps).
* ``popular_out_of_stock``: the share of the impressions of the day's
  ``popular_top_n`` most popular products (by ``product_clicks_7d``) that were
  out of stock, over the day and over each half of it. It fails above
  ``popular_oos_ratio`` times the lookback median *and* above the median plus
  ``popular_oos_increase``: the bestsellers selling out together (ch. 11
  story 3), which the shown share above misses when the ranker already
  demotes what is out of stock (the harm is then the sales that cannot happen).
* ``null_share``: the share of nulls of every column but the labels; it fails
  above the lookback median plus ``max_null_increase``.

>>> profile(pd.DataFrame({"language": ["en", "en", "es", None], "in_stock": [True, False, True, True]}),
...         ["language"])["oos"]
0.25
>>> judge_oos(0.25, [0.04, 0.05, 0.03], {"max_oos_ratio": 2.0, "min_oos_increase": 0.12})["status"]
'fail'
>>> judge_oos(0.25, [], {"max_oos_ratio": 2.0, "min_oos_increase": 0.12})["status"]
'no_verdict'
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from statistics import median
from typing import Any

import pandas as pd

CHECKS = ("slice_volume", "out_of_stock", "popular_out_of_stock", "null_share")
LABEL_COLUMNS = frozenset({"clicked", "added_to_cart", "purchased"})

CHECK_DEFAULTS: dict[str, Any] = {
    "checks": True,
    "min_lookback_days": 3,
    "slice_columns": ["language", "country"],
    "min_slice_ratio": 0.5,
    "min_half_ratio": 0.25,  # each half of the day (00-12, 12-24 UTC): a slice below this share of its usual
    "min_slice_rows": 200,
    "max_oos_ratio": 2.0,
    "popular_top_n": 20,
    "popular_oos_ratio": 2.0,
    "popular_oos_increase": 0.4,  # clean worlds reach 0.25-0.45 on single days as bestsellers sell out and restock
    "min_oos_increase": 0.12,
    "max_null_increase": 0.05,
}


def profile(frame: pd.DataFrame, slice_columns: list[str], top_n: int = 20) -> dict[str, Any]:
    """What the checks compare of one day: rows, slice shares, out-of-stock share, null share per column."""
    rows = len(frame)
    slices = {c: {str(k): float(v) for k, v in frame[c].value_counts(normalize=True, dropna=True).items()}
              for c in slice_columns if c in frame.columns and rows}
    oos = float((~frame["in_stock"].fillna(True).astype(bool)).mean()) if "in_stock" in frame.columns and rows \
        else None
    nulls = {c: float(frame[c].isna().mean()) for c in frame.columns if c not in LABEL_COLUMNS and rows}
    return {"rows": rows, "slices": slices, "oos": oos, "nulls": nulls, "halves": _halves(frame, slice_columns),
            "popular_oos": popular_oos(frame, top_n)}


def popular_oos(frame: pd.DataFrame, top_n: int = 20) -> dict[str, float]:
    """Out-of-stock share of the impressions of the ``top_n`` most popular products, for the day and each half.

    >>> f = pd.DataFrame({"product_id": ["a", "a", "b", "c"], "product_clicks_7d": [9, 9, 5, 1],
    ...                   "in_stock": [False, False, True, False],
    ...                   "event_time": pd.to_datetime(["2026-01-05T13:00Z"] * 4)})
    >>> popular_oos(f, top_n=2)
    {'day': 0.6667, '12:00-24:00': 0.6667}
    """
    if not len(frame) or not {"product_id", "product_clicks_7d", "in_stock"} <= set(frame.columns):
        return {}
    top = frame.groupby("product_id")["product_clicks_7d"].max().nlargest(top_n).index
    part = frame[frame["product_id"].isin(top)]
    out = _oos_share(part, "day")
    if "event_time" in part.columns:
        afternoon = pd.to_datetime(part["event_time"], utc=True).dt.hour.to_numpy() >= 12
        out |= _oos_share(part[~afternoon], HALVES[0]) | _oos_share(part[afternoon], HALVES[1])
    return out


def _oos_share(part: pd.DataFrame, name: str) -> dict[str, float]:
    return {name: round(float((~part["in_stock"].fillna(True).astype(bool)).mean()), 4)} if len(part) else {}


def judge_popular_oos(today: dict[str, Any], history: list[dict[str, Any]], cfg: dict[str, Any]) -> dict[str, Any]:
    """``popular_out_of_stock``: the bestsellers' out-of-stock share, per part of the day, against the lookback."""
    if not history:
        return _no_verdict("popular_out_of_stock")
    failing = []
    for part, observed in today.get("popular_oos", {}).items():
        past = [h["popular_oos"][part] for h in history if part in h.get("popular_oos", {})]
        if not past:
            continue
        expected = float(median(past))
        limit = max(float(cfg["popular_oos_ratio"]) * expected, expected + float(cfg["popular_oos_increase"]))
        if observed > limit:
            failing.append({"part": part, "observed": observed, "expected": round(expected, 4),
                            "limit": round(limit, 4)})
    return {"check": "popular_out_of_stock", "status": "fail" if failing else "pass", "failing": failing,
            "observed": {f["part"]: f["observed"] for f in failing},
            "expected": {f["part"]: f["expected"] for f in failing},
            "why": ("the most popular products are out of stock: " + ", ".join(
                f"{f['observed']:.3f} of their impressions ({f['part']}; usual {f['expected']:.3f})"
                for f in failing)) if failing else "popular products in stock as usual"}


HALVES = ("00:00-12:00", "12:00-24:00")
DAY_FLOOR_FACTOR = 2.5  # the whole day's slices are judged from 2.5 x min_slice_rows expected rows


def _halves(frame: pd.DataFrame, slice_columns: list[str]) -> dict[str, dict[str, Any]]:
    """Rows and slice shares of each half of the day (UTC): a loss that began at noon is a whole loss of the
    afternoon, though only half of the day's."""
    if "event_time" not in frame.columns or not len(frame):
        return {}
    afternoon = pd.to_datetime(frame["event_time"], utc=True).dt.hour.to_numpy() >= 12
    out = {}
    for name, part in ((HALVES[0], frame[~afternoon]), (HALVES[1], frame[afternoon])):
        out[name] = {"rows": len(part), "slices": {
            c: {str(k): float(v) for k, v in part[c].value_counts(normalize=True, dropna=True).items()}
            for c in slice_columns if c in part.columns and len(part)}}
    return out


def _no_verdict(check: str) -> dict[str, Any]:
    return {"check": check, "status": "no_verdict", "why": "no lookback day yet: nothing to compare with"}


def judge_slices(today: dict[str, Any], history: list[dict[str, Any]], cfg: dict[str, Any]) -> dict[str, Any]:
    """``slice_volume``: every slice whose share fell below ``min_slice_ratio`` of its lookback median, over the
    whole day and over each half of it (``part``); a half judged only if the slice is big enough there too."""
    if not history:
        return _no_verdict("slice_volume")
    failing, judged = [], 0
    parts = [("day", today, history)] + [
        (half, today["halves"][half], [h["halves"][half] for h in history if half in h.get("halves", {})])
        for half in HALVES if half in today.get("halves", {})]
    for part, now, past in parts:
        if not past:
            continue
        for column, shares in _union_slices(now, past).items():
            for value in shares:
                expected = median(h["slices"].get(column, {}).get(value, 0.0) for h in past)
                # rows come ten to a page and pages cluster by shopper: a slice judged at 0.5 x needs more rows
                # than one judged at a near-total loss (a half at 0.25 x) to tell a loss from a quiet day
                floor = float(cfg["min_slice_rows"]) * (DAY_FLOOR_FACTOR if part == "day" else 1.0)
                if expected * now["rows"] < floor:
                    continue  # too small a slice to tell a loss from noise
                judged += 1
                observed = now["slices"].get(column, {}).get(value, 0.0)
                # half a day is noisier (a small shop's slices swing): a half fails only on a near-total loss
                ratio = float(cfg["min_slice_ratio"] if part == "day" else cfg.get("min_half_ratio", 0.25))
                if observed < ratio * expected:
                    failing.append({"column": column, "value": value, "part": part, "observed": round(observed, 4),
                                    "expected": round(expected, 4),
                                    "observed_rows": round(observed * now["rows"]),
                                    "expected_rows": round(expected * now["rows"])})
    status = "fail" if failing else "pass"
    return {"check": "slice_volume", "status": status, "judged": judged, "failing": failing,
            "observed": {_slice_key(f): f["observed"] for f in failing},
            "expected": {_slice_key(f): f["expected"] for f in failing},
            "why": (f"{len(failing)} slice(s) below their usual share ({cfg['min_slice_ratio']} x over the day, "
                    f"{cfg.get('min_half_ratio', 0.25)} x over a half): "
                    + ", ".join(f"{f['column']}={f['value']} {f['observed']:.3f} (expected {f['expected']:.3f}, "
                                f"{f['part']})" for f in failing[:5])) if failing else
            f"{judged} slice(s) at their usual share"}


def _slice_key(failure: dict[str, Any]) -> str:
    """``language=es`` for the whole day, ``language=es (12:00-24:00)`` for a half."""
    key = f"{failure['column']}={failure['value']}"
    return key if failure["part"] == "day" else f"{key} ({failure['part']})"


def _union_slices(today: dict[str, Any], history: list[dict[str, Any]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for day in [today, *history]:
        for column, shares in day["slices"].items():
            out.setdefault(column, set()).update(shares)
    return out


def judge_oos(observed: float | None, history: list[float], cfg: dict[str, Any]) -> dict[str, Any]:
    """``out_of_stock``: the shown out-of-stock share against ``max_oos_ratio`` x and ``+min_oos_increase``."""
    if observed is None or not history:
        return _no_verdict("out_of_stock")
    expected = float(median(history))
    limit = max(float(cfg["max_oos_ratio"]) * expected, expected + float(cfg["min_oos_increase"]))
    fail = observed > limit
    return {"check": "out_of_stock", "status": "fail" if fail else "pass", "observed": round(observed, 4),
            "expected": round(expected, 4), "limit": round(limit, 4),
            "why": f"shown out-of-stock share {observed:.3f} {'above' if fail else 'within'} the limit {limit:.3f} "
                   f"(lookback median {expected:.3f})"}


def judge_nulls(today: dict[str, Any], history: list[dict[str, Any]], cfg: dict[str, Any]) -> dict[str, Any]:
    """``null_share``: every column whose null share rose more than ``max_null_increase`` over the lookback."""
    if not history:
        return _no_verdict("null_share")
    failing = []
    for column, observed in sorted(today["nulls"].items()):
        expected = float(median(h["nulls"].get(column, 0.0) for h in history))
        if observed > expected + float(cfg["max_null_increase"]):
            failing.append({"column": column, "observed": round(observed, 4), "expected": round(expected, 4)})
    return {"check": "null_share", "status": "fail" if failing else "pass", "failing": failing,
            "observed": {f["column"]: f["observed"] for f in failing},
            "expected": {f["column"]: f["expected"] for f in failing},
            "why": ("null share up in " + ", ".join(f"{f['column']} {f['observed']:.3f} (expected {f['expected']:.3f})"
                                                   for f in failing[:5])) if failing else "null shares as usual"}


def day_window(day: date) -> dict[str, str]:
    """The window ``[start, end)`` of one day's data (what ``remove_bad_data`` takes)."""
    start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    return {"time_column": "event_time", "start": start.isoformat(), "end": (start + timedelta(days=1)).isoformat()}


def run_checks(frame: pd.DataFrame, history: dict[str, pd.DataFrame], day: date,
               cfg: dict[str, Any]) -> dict[str, Any]:
    """Every check of one day's clean ``frame`` against the lookback days' frames (``history``, by day)."""
    columns, top_n = profile_args(cfg)
    past = [profile(part, columns, top_n) for _, part in sorted(history.items()) if len(part)]
    return judge_day(frame, past, day, cfg)


def profile_args(cfg: dict[str, Any]) -> tuple[list[str], int]:
    """The arguments of :func:`profile` the checks use: (slice columns, popular top n)."""
    return list(cfg["slice_columns"]), int(cfg.get("popular_top_n", 20))


def judge_day(frame: pd.DataFrame, past: list[dict[str, Any]], day: date, cfg: dict[str, Any]) -> dict[str, Any]:
    """Every check of one day's clean ``frame`` against the :func:`profile` of each non-empty lookback day
    (``past``, oldest first; the loop keeps them per process: :mod:`.lookback`)."""
    columns, top_n = profile_args(cfg)
    today = profile(frame, columns, top_n)
    if len(past) < int(cfg.get("min_lookback_days", 1)):
        past = []  # too short a lookback to know what is usual: no verdict
    results = [judge_slices(today, past, cfg), judge_oos(today["oos"], [p["oos"] for p in past
                                                                         if p["oos"] is not None], cfg),
               judge_popular_oos(today, past, cfg), judge_nulls(today, past, cfg)]
    window = day_window(day)
    noon = (datetime.fromisoformat(window["start"]) + timedelta(hours=12)).isoformat()
    for result in results:
        result["window"] = window
        halves = {f["part"] for f in result.get("failing", []) if f.get("part", "day") != "day"}
        if halves == {HALVES[1]}:  # only the afternoon went bad: that half is the bad data (remove_bad_data)
            result["window"] = {**window, "start": noon}
        elif halves == {HALVES[0]}:
            result["window"] = {**window, "end": noon}
    return {"day": day.isoformat(), "rows": today["rows"], "lookback_days": len(past),
            "failed": [r["check"] for r in results if r["status"] == "fail"],
            "checks": {r["check"]: r for r in results}}


__all__ = ["CHECKS", "CHECK_DEFAULTS", "day_window", "judge_day", "judge_nulls", "judge_oos", "judge_popular_oos",
           "judge_slices", "popular_oos", "profile", "profile_args", "run_checks"]
