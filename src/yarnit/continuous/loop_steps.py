"""The loop's own pipelines: one day's data in (label join, quarantine, label completeness), and a training window.

``yarnit-loop-day`` (one run per day and label check) reads one day of a
written world (:func:`yarnit.world.writer.read_table`), as the loop would read
a day of a real click log once it has closed:

* **golden**: the golden-data prober (:mod:`yarnit.recipes.golden_records`):
  known impressions and labels through this run's label join and quarantine,
  each checked against the value worked out by hand; a wrong one fails the
  run before the day's data is touched.

* **collect**: the day's impressions, with ``clicked`` recomputed by the
  **label join**: an impression is clicked when a click label for it had
  *arrived* by ``as_of`` (the loop's now). Late clicks (ch. 15 case 5) are
  not there yet and come in on a later check.
* **quarantine**: bad rows are set aside before training (ch. 10: "bad data is
  filtered before training"), each with its reason, in their own dataset
  version (``<dataset>-quarantine``), and the clean rows become
  ``<dataset>-daily``. Three rules, each bounded to what it can recognise:

  - ``duplicate``: a repeated ``impression_id`` (a duplicate flood, CH7-R10:
    an attacker or a replaying pipeline); the first copy is kept;
  - ``spam``: every impression of a shopper with more than ``spam_factor``
    times the median shopper's impressions that day (and at least
    ``spam_min_rows``): a bot or a scraper;
  - ``query_flood``: on a device whose search sessions are more than
    ``flood_factor`` times its median over the ``lookback_days`` (ch. 15 case
    2: an app update re-issues the last query), the click-less search
    sessions in excess of the usual volume (:func:`_query_flood`). On an
    ordinary day nothing is quarantined by this rule.

* **labels**: label completeness. The day's joined click rate on its clean
  rows is compared with a reference rate (the median of the days already
  complete, given by the loop); below ``min_label_ratio`` of it the labels
  are incomplete and the loop holds every training window that contains the
  day. No reference yet: the lower end of ``positive_rate_band``.

``yarnit-loop-window`` assembles the clean rows of the window's days into one
version of ``<dataset>`` (its parents are the daily versions: lineage), which
the ctr pipeline then trains on (``source=dataset``).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections import OrderedDict
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd

from yarnit.core.errors import InvalidInput, YarnitError
from yarnit.data import Datasets
from yarnit.training import Pipeline, Step, StepContext, ValueKind

from .data_checks import CHECK_DEFAULTS, judge_day, profile, profile_args, run_checks
from .lookback import Lookback

LOG_CLOSE_H = 6.0  # the world closes a day's impression log at 06:00 the next day (world/scenarios.py)

DAY_DEFAULTS: dict[str, Any] = {
    "world": "",
    "day": "",
    "as_of": "",
    "dataset": "yarnit-impressions",
    "lookback_days": 7,
    "spam_factor": 20.0,
    "spam_min_rows": 200,
    "flood_factor": 3.0,
    "flood_min_sessions": 50,
    "min_label_ratio": 0.5,
    "reference_rate": None,
    "positive_rate_band": [0.005, 0.5],
    **CHECK_DEFAULTS,
}


def world_days(world: str) -> list[date]:
    """The days a written world holds (its ``impressions`` partitions)."""
    from pathlib import Path

    root = Path(world) / "impressions"
    if not root.is_dir():
        raise InvalidInput(f"{world!r} is not a written world (no impressions/ directory). "
                           "Write one with: yarnit world generate --out DIR --days N")
    return sorted(date.fromisoformat(p.name.split("=", 1)[1]) for p in root.glob("day=*"))


def closes_at(day: date, log_close_h: float = LOG_CLOSE_H) -> datetime:
    """When ``day``'s impression log has closed and may be read."""
    from datetime import timezone

    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc) + timedelta(days=1, hours=log_close_h)


def label_join(impressions: pd.DataFrame, labels: pd.DataFrame, as_of: datetime) -> pd.DataFrame:
    """``clicked`` = a click label for the impression had arrived by ``as_of`` (late clicks are not there yet)."""
    if labels.empty:
        return impressions.assign(clicked=impressions["clicked"] * 0)
    clicks = labels[(labels["kind"] == "click") & (labels["arrival_time"] <= pd.Timestamp(as_of))]
    joined = impressions["impression_id"].isin(set(clicks["impression_id"]))
    return impressions.assign(clicked=joined.astype(impressions["clicked"].dtype))


def quarantine_reasons(frame: pd.DataFrame, history: pd.DataFrame | Lookback, cfg: dict[str, Any]) -> pd.Series:
    """Why each row is quarantined (``""``: clean). ``history``: user_id, query, session_id, device, day of the
    lookback days, as a frame or as a :class:`~.lookback.Lookback` (its per-day summaries are kept)."""
    reason = pd.Series("", index=frame.index, dtype=object)
    duplicate = frame["impression_id"].duplicated(keep="first").to_numpy()
    reason[duplicate] = "duplicate"
    per_user = frame.loc[~duplicate].groupby("user_id", observed=True).size()
    if len(per_user):
        limit = max(float(cfg["spam_min_rows"]), float(cfg["spam_factor"]) * float(per_user.median()))
        spammers = set(per_user[per_user > limit].index)
        reason[(reason == "") & frame["user_id"].isin(spammers)] = "spam"
    flood = _query_flood(frame[reason == ""], history, cfg)
    reason[flood[flood].index] = "query_flood"
    return reason


HISTORY_COLUMNS = ["user_id", "query", "session_id", "device", "day"]


def _searches(part: pd.DataFrame) -> pd.DataFrame:
    return part[part["query"].notna() & (part["query"].astype(str) != "")]


def _usual_sessions(history: pd.DataFrame) -> pd.Series:
    """Each device's median number of search sessions a day over ``history``'s days."""
    return (_searches(history).groupby(["day", "device"], observed=True)["session_id"].nunique()
            .groupby(level="device", observed=True).median())


def _lookback_history(history: pd.DataFrame | Lookback) -> tuple[pd.Series, Callable[[], set[Any]]] | None:
    """(usual search sessions per device, the earlier (user, query) pairs, computed when asked), or None without
    lookback rows. From a :class:`Lookback` of uniform days, both come from per-day summaries kept per process:
    the same numbers as from the days' concatenation (the median over days of per-day counts)."""
    if isinstance(history, Lookback):
        if history.empty:
            return None
        if not history.uniform or not set(HISTORY_COLUMNS) <= set(history.frame_columns):
            history = history.frame(HISTORY_COLUMNS)  # as before (a missing column fails the same way)
        else:
            def sessions(part: pd.DataFrame) -> pd.Series:
                return _searches(part).groupby("device", observed=True)["session_id"].nunique()

            per_day = [(d, c) for d, c in history.per_day("search_sessions", sessions) if len(c)]
            if not per_day:
                usual = pd.Series(dtype=float)
            else:
                counts = pd.concat([c for _d, c in per_day], keys=[d for d, _c in per_day], names=["day", "device"])
                usual = counts.groupby(level="device", observed=True).median()
            lookback = history

            def earlier_from_days() -> set[Any]:
                pairs: set[Any] = set()
                for _d, day_pairs in lookback.per_day("user_queries", lambda part: set(
                        zip(part["user_id"], part["query"], strict=True))):
                    pairs |= day_pairs
                return pairs

            return usual, earlier_from_days
    if history.empty:
        return None
    frame = history
    return _usual_sessions(frame), lambda: set(zip(frame["user_id"], frame["query"], strict=True))


def _query_flood(frame: pd.DataFrame, history: pd.DataFrame | Lookback, cfg: dict[str, Any]) -> pd.Series:
    """Rows of the click-less search sessions in excess of each device's usual volume, on a flooded device.

    A device is flooded when its search sessions exceed ``flood_factor`` times the median of the lookback days
    (and by at least ``flood_min_sessions``). Of its click-less sessions, as many as the excess are set aside:
    those repeating a query the same shopper issued before first, then in the order of a hash of the session
    id (deterministic). The clicked sessions and the usual volume stay, so the day keeps its slice volume and
    about its usual click rate; with no lookback days there is no baseline, and nothing is called a flood.
    """
    none = pd.Series(False, index=frame.index)
    if frame.empty or "query" not in frame.columns:
        return none
    lookback = _lookback_history(history)
    if lookback is None:
        return none
    usual, earlier_pairs = lookback
    sessions = (_searches(frame).groupby("session_id", observed=True)
                .agg(device=("device", "first"), user_id=("user_id", "first"), query=("query", "first"),
                     clicks=("clicked", "sum")))
    earlier: set[Any] | None = None  # only a flooded device needs the shoppers' earlier queries
    flooded: list[Any] = []
    for device, group in sessions.groupby("device", observed=True):
        expected = float(usual.get(device, 0.0))
        excess = len(group) - round(expected)
        if len(group) <= float(cfg["flood_factor"]) * expected or excess < int(cfg["flood_min_sessions"]):
            continue
        if earlier is None:
            earlier = earlier_pairs()
        clickless = group[group["clicks"] == 0]
        fresh = [(u, q) not in earlier for u, q in zip(clickless["user_id"], clickless["query"], strict=True)]
        order = clickless.assign(
            _fresh=fresh,
            _hash=pd.util.hash_pandas_object(clickless.index.to_series().astype(str), index=False).to_numpy(),
        ).sort_values(["_fresh", "_hash"])
        flooded += list(order.index[:excess])
    return frame["session_id"].isin(set(flooded))


# --- steps -------------------------------------------------------------------
def collect(ctx: StepContext) -> dict[str, Any]:
    cfg = ctx.config
    day = date.fromisoformat(cfg["day"])
    as_of = datetime.fromisoformat(cfg["as_of"])
    # a closed day's log is read once per process (it is joined again every tick its labels are late)
    impressions = Lookback(cfg["world"], [day]).frame()
    if impressions.empty:
        raise InvalidInput(f"The world {cfg['world']!r} has no impressions for {day}.")
    joined = label_join(impressions, Lookback(cfg["world"], [day], table="labels").frame(), as_of)
    ctx.log(f"{day}: {len(joined)} impressions, {int(joined['clicked'].sum())} clicks arrived by {as_of.isoformat()}")
    ctx.count_rows(len(joined))
    return {"table": joined}


def golden(ctx: StepContext) -> dict[str, Any]:
    """The golden-data prober of the day (:mod:`yarnit.recipes.golden_records`): the six golden records as
    this day's impressions, with their labels, through :func:`label_join` and :func:`quarantine_reasons` at
    this run's ``as_of`` and thresholds; each must be kept once with the ``clicked`` worked out by hand (a
    late click not yet joined, a purchase that is no click), and only golden-6's second copy quarantined.

    Never cached; nothing is written (the records never meet the day's data, its versions or a deletion
    receipt). Records ``golden.*`` run metrics and fails the run, naming the record and the field, when one
    comes out wrong."""
    from yarnit.recipes.golden_records import GoldenRecordsWrong, check_day, golden_day

    cfg = ctx.config
    as_of = datetime.fromisoformat(cfg["as_of"])
    impressions, labels_, expected = golden_day(date.fromisoformat(cfg["day"]), as_of)
    joined = label_join(impressions, labels_, as_of)
    result = check_day(joined, quarantine_reasons(joined, pd.DataFrame(), cfg), expected)
    ctx.metric("golden.injected", result.injected)
    ctx.metric("golden.correct", result.correct)
    ctx.metric("golden.correctness", result.correctness)
    ctx.log(f"{result.summary()} (label join as of {as_of.isoformat()}, quarantine)")
    if not result.passed:
        raise GoldenRecordsWrong(
            f"The golden-data prober found {result.injected - result.correct} of {result.injected} golden records "
            f"wrong after the label join and quarantine: {'; '.join(f.sentence() for f in result.failures[:5])}. "
            "Fix the join or the quarantine rules before this day is used (expected values: "
            "yarnit/recipes/golden_records.py)."
        )
    return {"report": result.to_dict()}


#: (workspace, what determines a day's quarantine) -> the versions it gave, in this process (see _rejoined).
_QUARANTINED: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()


def _rejoin_key(ctx: StepContext, table: pd.DataFrame, lookback: Lookback) -> tuple[Any, ...] | None:
    """Everything the day's clean and quarantined rows depend on: the day's log file, the impressions and the
    clicks joined to them (exactly: their bytes), the lookback files and the rules. None if the log is gone."""
    cfg = ctx.config
    day = Lookback(cfg["world"], [date.fromisoformat(cfg["day"])])
    if not day.keys or "impression_id" not in table.columns or "clicked" not in table.columns:
        return None
    ids = hashlib.sha256(_id_text(table["impression_id"]).encode("utf-8")).hexdigest()
    clicked = hashlib.sha256(table["clicked"].to_numpy().tobytes()).hexdigest()
    rules = json.dumps({k: v for k, v in cfg.items() if k not in ("as_of", "reference_rate")}, sort_keys=True,
                       default=str)
    return (ctx.workspace.settings.db_url, str(ctx.workspace.settings.home), day.keys, lookback.keys,
            tuple(map(str, table.columns)), tuple(map(str, table.dtypes)), len(table), ids, clicked, rules)


def _id_text(ids: pd.Series) -> str:
    """The ids as one text, each as ``str`` gives it, NUL-separated. ``tolist()`` first: it hands out the values
    iterating the Series gives (``str`` of each is the same text), and for the day's Arrow-backed string column it
    is about eight times faster than iterating it (5 ms a day run of 5,000 rows)."""
    return "\x00".join(map(str, ids.tolist()))


def _rejoined(datasets: Datasets, key: tuple[Any, ...] | None) -> dict[str, Any] | None:
    """The versions an identical earlier join of this day gave, if they are still active.

    A day whose clicks are late is joined again every tick; until a click arrives the clean rows are the same
    bytes, and ingesting them returned the existing version after writing and profiling them again (50 of 63
    day runs of a 10-day demo month). This returns that version without the work; a version since deleted or
    quarantined is ingested again, as before."""
    hit = _QUARANTINED.get(key) if key is not None else None
    if hit is None:
        return None
    try:
        versions = [datasets.get_by_id(hit["clean"])] + ([datasets.get_by_id(hit["held"])] if hit["held"] else [])
    except YarnitError:
        return None
    if not all(v.active for v in versions):
        return None
    _QUARANTINED.move_to_end(key)
    return hit | {"versions": versions}


def quarantine(ctx: StepContext, table: pd.DataFrame) -> dict[str, Any]:
    cfg = ctx.config
    day = date.fromisoformat(cfg["day"])
    lookback = Lookback(cfg["world"], _lookback_days(cfg))
    datasets = Datasets(ctx.workspace)
    key = _rejoin_key(ctx, table, lookback)
    again = _rejoined(datasets, key)
    if again is not None:
        clean, *held_version = again["versions"]
        counts, n_bad = again["counts"], again["bad"]
        same: dict[str, Any] = {"id": None}
        if held_version:
            same = {"id": held_version[0].id, "ref": held_version[0].ref}
            ctx.log(f"quarantined {n_bad} of {len(table)} rows: {counts} → {held_version[0].ref}")
        ctx.log(f"the same rows as an earlier join of {day}: {clean.ref} (not ingested again)")
        ctx.count_rows(len(table))
        ctx.metric("quarantined", counts)
        return {"clean": {"id": clean.id, "ref": clean.ref, "version": clean.version, "rows": len(table) - n_bad},
                "quarantine": same | {"rows": n_bad, "reasons": counts}}
    reasons = quarantine_reasons(table, lookback, cfg)
    bad = reasons != ""
    source = f"world {cfg['world']} day {day} (label join as of {cfg['as_of']})"
    clean = datasets.ingest_frame(f"{cfg['dataset']}-daily", table[~bad].reset_index(drop=True), source=source,
                                  run_id=ctx.run_id, retention_class="events", pii_columns=["user_id"],
                                  subject="user_id")
    counts = {str(k): int(v) for k, v in reasons[bad].value_counts().items()}
    held: dict[str, Any] = {"id": None}
    if bad.any():
        rows = table[bad].assign(quarantine_reason=reasons[bad].to_numpy()).reset_index(drop=True)
        version = datasets.ingest_frame(f"{cfg['dataset']}-quarantine", rows, source=f"quarantined rows of {source}",
                                        run_id=ctx.run_id, retention_class="events", pii_columns=["user_id"],
                                        subject="user_id")
        held = {"id": version.id, "ref": version.ref}
        ctx.log(f"quarantined {int(bad.sum())} of {len(table)} rows: {counts} → {version.ref}")
    ctx.count_rows(len(table))
    ctx.metric("quarantined", counts)
    if key is not None:
        _QUARANTINED[key] = {"clean": clean.id, "held": held["id"], "counts": counts, "bad": int(bad.sum())}
        while len(_QUARANTINED) > 256:
            _QUARANTINED.popitem(last=False)
    return {"clean": {"id": clean.id, "ref": clean.ref, "version": clean.version, "rows": int((~bad).sum())},
            "quarantine": held | {"rows": int(bad.sum()), "reasons": counts}}


def labels(ctx: StepContext, clean: dict[str, Any]) -> dict[str, Any]:
    """Label completeness of the day's clean rows against the reference rate."""
    cfg = ctx.config
    datasets = Datasets(ctx.workspace)
    frame = datasets.read_table(datasets.get_by_id(clean["id"])).select(["clicked"]).to_pandas()
    rate = float(frame["clicked"].mean()) if len(frame) else 0.0
    reference = cfg.get("reference_rate")
    floor = float(cfg["positive_rate_band"][0])
    needed = max(floor, float(cfg["min_label_ratio"]) * float(reference)) if reference else floor
    complete = rate >= needed
    against = f"{cfg['min_label_ratio']} x the reference rate {reference:.4f}" if reference else \
        f"the lowest plausible rate {floor}"
    note = (f"click rate {rate:.4f} on {len(frame)} clean rows as of {cfg['as_of']}: labels "
            f"{'complete' if complete else 'INCOMPLETE'} (needs ≥ {needed:.4f}: {against})")
    ctx.log(note)
    ctx.metric("label_rate", rate)
    return {"report": {"rate": rate, "needed": needed, "complete": complete, "rows": len(frame), "note": note}}


def _lookback_days(cfg: dict[str, Any]) -> list[date]:
    day = date.fromisoformat(cfg["day"])
    return [day - timedelta(days=k) for k in range(int(cfg["lookback_days"]), 0, -1)]


def day_checks(frame: pd.DataFrame, lookback: Lookback, day: date, cfg: dict[str, Any]) -> dict[str, Any]:
    """:func:`.data_checks.run_checks` of ``frame`` against the ``lookback`` days, each day's profile kept per
    process (a day is re-checked every tick while its labels are late; the days before it do not change)."""
    if lookback.uniform:
        columns, top_n = profile_args(cfg)
        past = [p for _d, p in lookback.per_day(("profile", tuple(columns), top_n),
                                                lambda part: profile(part, columns, top_n) if len(part) else None)
                if p is not None]
        return judge_day(frame, past, day, cfg)
    whole = lookback.frame()  # days of different columns: profiled as parts of their concatenation, as before
    history = {str(k): part for k, part in whole.groupby("day")} if not whole.empty else {}
    return run_checks(frame, history, day, cfg)


#: (workspace, clean version, lookback files, rules) -> the day's checks report, in this process (see checks).
_CHECKED: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()


def checks(ctx: StepContext, clean: dict[str, Any]) -> dict[str, Any]:
    """The day's data checks (:mod:`.data_checks`) of its clean rows against the lookback days of the world."""
    cfg = ctx.config
    day = date.fromisoformat(cfg["day"])
    if not cfg.get("checks", True):
        return {"report": {"day": day.isoformat(), "skipped": "checks=false", "failed": [], "checks": {}}}
    datasets = Datasets(ctx.workspace)
    version = datasets.get_by_id(clean["id"])
    lookback = Lookback(cfg["world"], _lookback_days(cfg))
    # the same clean version (a day joined again before a late click arrived) against the same lookback files and
    # rules gives the same report: kept per process, as the quarantine keeps its versions
    key = (ctx.workspace.settings.db_url, str(ctx.workspace.settings.home), version.id, lookback.keys,
           json.dumps({k: v for k, v in cfg.items() if k not in ("as_of", "reference_rate")}, sort_keys=True,
                      default=str))
    report = _CHECKED.get(key) if version.active else None
    if report is None:
        report = day_checks(datasets.read(version), lookback, day, cfg)
        _CHECKED[key] = report
        while len(_CHECKED) > 256:
            _CHECKED.popitem(last=False)
    else:
        _CHECKED.move_to_end(key)
        report = copy.deepcopy(report)
    for result in report["checks"].values():
        ctx.log(f"check {result['check']}: {result['status']}: {result['why']}")
    ctx.metric("checks_failed", len(report["failed"]))
    return {"report": report}


def _removed(frame: pd.DataFrame, windows: list[Any]) -> pd.Series:
    """Rows inside any removed window ``[time_column, start, end]`` (``remove_bad_data``)."""
    inside = pd.Series(False, index=frame.index)
    for column, start, end in windows:
        if column in frame.columns:
            times = pd.to_datetime(frame[column], utc=True)
            inside |= (times >= pd.Timestamp(start)) & (times < pd.Timestamp(end))
    return inside


def assemble(ctx: StepContext) -> dict[str, Any]:
    """One version of ``dataset`` from the clean daily versions of the window (parents: those versions).

    Rows inside a ``removed`` window (``[time_column, start, end]``, from ``remove_bad_data``) are left out.
    """
    cfg = ctx.config
    datasets = Datasets(ctx.workspace)
    parts, ids = [], []
    for version_id in cfg["daily"]:
        version = datasets.get_by_id(version_id)
        parts.append(datasets.read(version))
        ids.append(version.id)
    frame = pd.concat(parts, ignore_index=True)
    windows = cfg.get("removed") or []
    if windows:
        out = _removed(frame, windows)
        if out.any():
            ctx.log(f"left out {int(out.sum())} rows inside removed window(s) {windows}")
        ctx.metric("removed_rows", int(out.sum()))
        frame = frame[~out].reset_index(drop=True)
    version = datasets.ingest_frame(cfg["dataset"], frame, source=f"training window {cfg['window']} of the loop",
                                    parents=ids, run_id=ctx.run_id, retention_class="events",
                                    pii_columns=["user_id"], subject="user_id")
    ctx.count_rows(len(frame))
    return {"window": {"id": version.id, "ref": version.ref, "version": version.version, "rows": len(frame)}}


def day_pipeline() -> Pipeline:
    """One day in: golden records → label join → quarantine → label completeness, data checks
    (``yarnit-loop-day``)."""
    return Pipeline("yarnit-loop-day", [
        Step("golden", golden, outputs={"report": ValueKind.REPORT}, cacheable=False),
        Step("collect", collect, outputs={"table": ValueKind.TABLE}, retries=2),
        Step("quarantine", quarantine, inputs={"table": "collect.table"},
             outputs={"clean": ValueKind.REF, "quarantine": ValueKind.REF}),
        Step("labels", labels, inputs={"clean": "quarantine.clean"}, outputs={"report": ValueKind.REPORT},
             cacheable=False),
        Step("checks", checks, inputs={"clean": "quarantine.clean"}, outputs={"report": ValueKind.REPORT}),
    ], config=DAY_DEFAULTS, description="The loop's day: label join, quarantine of bad rows, label completeness, "
                                        "data checks")


def window_pipeline() -> Pipeline:
    """The training window's dataset version from clean daily versions (``yarnit-loop-window``)."""
    return Pipeline("yarnit-loop-window", [
        Step("assemble", assemble, outputs={"window": ValueKind.REF}),
    ], config={"dataset": "yarnit-impressions", "daily": [], "window": "", "removed": []},
        description="The loop's training window: clean daily versions → one dataset version")


__all__ = ["DAY_DEFAULTS", "LOG_CLOSE_H", "closes_at", "day_checks", "day_pipeline", "label_join", "quarantine_reasons",
           "window_pipeline", "world_days"]
