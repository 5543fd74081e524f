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

CHECKS = ("slice_volume", "out_of_stock", "null_share")
LABEL_COLUMNS = frozenset({"clicked", "added_to_cart", "purchased"})

CHECK_DEFAULTS: dict[str, Any] = {
    "checks": True,
    "min_lookback_days": 3,
    "slice_columns": ["language", "country"],
    "min_slice_ratio": 0.5,
    "min_slice_rows": 200,
    "max_oos_ratio": 2.0,
    "min_oos_increase": 0.12,
    "max_null_increase": 0.05,
}


def profile(frame: pd.DataFrame, slice_columns: list[str]) -> dict[str, Any]:
    """What the checks compare of one day: rows, slice shares, out-of-stock share, null share per column."""
    rows = len(frame)
    slices = {c: {str(k): float(v) for k, v in frame[c].value_counts(normalize=True, dropna=True).items()}
              for c in slice_columns if c in frame.columns and rows}
    oos = float((~frame["in_stock"].fillna(True).astype(bool)).mean()) if "in_stock" in frame.columns and rows \
        else None
    nulls = {c: float(frame[c].isna().mean()) for c in frame.columns if c not in LABEL_COLUMNS and rows}
    return {"rows": rows, "slices": slices, "oos": oos, "nulls": nulls}


def _no_verdict(check: str) -> dict[str, Any]:
    return {"check": check, "status": "no_verdict", "why": "no lookback day yet: nothing to compare with"}


def judge_slices(today: dict[str, Any], history: list[dict[str, Any]], cfg: dict[str, Any]) -> dict[str, Any]:
    """``slice_volume``: every slice whose share fell below ``min_slice_ratio`` of its lookback median."""
    if not history:
        return _no_verdict("slice_volume")
    failing, judged = [], 0
    for column, shares in _union_slices(today, history).items():
        for value in shares:
            expected = median(h["slices"].get(column, {}).get(value, 0.0) for h in history)
            if expected * today["rows"] < float(cfg["min_slice_rows"]):
                continue  # too small a slice to tell a loss from noise
            judged += 1
            observed = today["slices"].get(column, {}).get(value, 0.0)
            if observed < float(cfg["min_slice_ratio"]) * expected:
                failing.append({"column": column, "value": value, "observed": round(observed, 4),
                                "expected": round(expected, 4),
                                "observed_rows": round(observed * today["rows"]),
                                "expected_rows": round(expected * today["rows"])})
    status = "fail" if failing else "pass"
    return {"check": "slice_volume", "status": status, "judged": judged, "failing": failing,
            "observed": {f"{f['column']}={f['value']}": f["observed"] for f in failing},
            "expected": {f"{f['column']}={f['value']}": f["expected"] for f in failing},
            "why": (f"{len(failing)} slice(s) below {cfg['min_slice_ratio']} x their lookback share: "
                    + ", ".join(f"{f['column']}={f['value']} {f['observed']:.3f} (expected {f['expected']:.3f})"
                                for f in failing[:5])) if failing else f"{judged} slice(s) at their usual share"}


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
    columns = list(cfg["slice_columns"])
    today = profile(frame, columns)
    past = [profile(part, columns) for _, part in sorted(history.items()) if len(part)]
    if len(past) < int(cfg.get("min_lookback_days", 1)):
        past = []  # too short a lookback to know what is usual: no verdict
    results = [judge_slices(today, past, cfg), judge_oos(today["oos"], [p["oos"] for p in past
                                                                         if p["oos"] is not None], cfg),
               judge_nulls(today, past, cfg)]
    window = day_window(day)
    for result in results:
        result["window"] = window
    return {"day": day.isoformat(), "rows": today["rows"], "lookback_days": len(past),
            "failed": [r["check"] for r in results if r["status"] == "fail"],
            "checks": {r["check"]: r for r in results}}


__all__ = ["CHECKS", "CHECK_DEFAULTS", "day_window", "judge_nulls", "judge_oos", "judge_slices", "profile",
           "run_checks"]
