"""SLOs declared in YAML: what counts as a good event, the objective, the window and the alerts.

A file holds one service's SLOs, in the shape Sloth uses (``service``,
``slos[]`` with ``name``/``objective``/``description``) with OpenSLO's words
where they fit (``target`` as a ratio instead of ``objective`` in percent,
``timeWindow``-like ``window``):

.. code-block:: yaml

    service: yarnit-serving
    slos:
      - name: ctr-availability
        sli: serving_availability        # one of SLI_KINDS
        model: ctr                       # whose error budget this is (the promotion gate reads it)
        objective: 99.9                  # percent; or target: 0.999
        window: 30d                      # rolling; the error budget's period
        prometheus:                      # counters for `yarnit slo rules` (errors or good, and total)
          errors: 'yarnit_serving_requests_total{model="ctr",served_by!="model"}'
          total: 'yarnit_serving_requests_total{model="ctr"}'
        alerting:                        # all optional; the workbook's defaults shown
          min_events: 100
          page:   [{long: 1h, short: 5m, burn_rate: 14.4}, {long: 6h, short: 30m, burn_rate: 6}]
          ticket: [{long: 3d, short: 6h, burn_rate: 1}]
        runbook: https://runbooks.example/ctr-availability   # optional: a URL or text every alert carries
    alerts:                              # optional: where `yarnit monitor run` sends alerts (default: log, file)
      sinks:
        - {type: log}
        - {type: file, path: alerts.jsonl}               # a file name under $YARNIT_HOME/monitoring/
        - {type: webhook, url: 'http://127.0.0.1:9000/hook', timeout_s: 2, retries: 2}
        - {type: alertmanager, url: 'http://127.0.0.1:9093'}

Every SLI reduces to *events*, each good or bad: a request answered by the
model (availability), a request under ``threshold_ms`` (latency), a one-minute
probe that found the data young enough (freshness: OpenSLO's "timeslices"), a
pipeline run that succeeded. So one evaluator (:mod:`.burn`) and one rule
generator (:mod:`.rules`) serve them all.

Objectives are kept as exact fractions (``99.9`` is 999/1000, not the float
0.99899999…): the workbook's alert is a strict ``>``, and "exactly 14.4x never
pages" only holds if nothing rounds.

Example:
    >>> spec = parse_slo_file({"service": "shop", "slos": [
    ...     {"name": "avail", "sli": "serving_availability", "objective": 99.9, "window": "30d"}]})
    >>> slo = spec.slos[0]
    >>> str(slo.error_budget), slo.window_s, [a.burn_rate for a in slo.alerts]
    ('1/1000', 2592000, [Fraction(72, 5), Fraction(6, 1), Fraction(1, 1)])
"""

from __future__ import annotations

import functools
import re
import reprlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

from yarnit.core.errors import ConfigError

Severity = Literal["page", "ticket"]
SEVERITIES: tuple[Severity, ...] = ("page", "ticket")
BUCKET_S = 60  # every window is a whole number of these; the evaluator's time-series bucket


@dataclass(frozen=True)
class SLIKind:
    """One kind of indicator: what an event is, what makes it good, which parameters it needs."""

    name: str
    event: str
    good: str
    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()


SLI_KINDS: dict[str, SLIKind] = {k.name: k for k in (
    SLIKind("serving_availability", "a prediction request", "answered by the model: not a fallback, not a 5xx",
            optional=("alias",)),
    SLIKind("serving_latency", "a prediction request", "answered in at most threshold_ms milliseconds",
            required=("threshold_ms",), optional=("alias",)),
    SLIKind("data_freshness", "a one-minute probe of a feature view or the newest training data",
            "the newest data is at most max_age old", required=("max_age",), optional=("feature_view", "dataset")),
    SLIKind("model_freshness", "a one-minute probe of the production version",
            "the production version is at most max_age old", required=("max_age",)),
    SLIKind("prediction_quality", "a one-minute probe of online predictions with labels",
            "calibration (mean prediction / observed rate) inside calibration_band and online CTR at least "
            "ctr_ratio_min times the baseline's", optional=("calibration_band", "ctr_ratio_min", "baseline")),
    SLIKind("label_completeness", "a prediction whose label is due", "the label arrived within label_delay",
            optional=("label_delay",)),
    SLIKind("pipeline_success", "a pipeline run", "the run succeeded", optional=("pipeline",)),
    SLIKind("golden_correctness", "a golden record injected into a pipeline run (yarnit.recipes.golden_records)",
            "it came out of the run's ingest, validation, split and features exactly as expected",
            optional=("pipeline",)),
    SLIKind("input_completeness", "a served row (one instance of an answered request, its inputs logged)",
            "it holds a value in every input column seen (or in each of params.columns): none is null or "
            "missing", optional=("columns",)),
)}


@dataclass(frozen=True)
class AlertWindow:
    """One multi-window pair: fire when both windows burn faster than ``burn_rate`` (strict ``>``)."""

    severity: Severity
    long_s: int
    short_s: int
    burn_rate: Fraction


@dataclass(frozen=True)
class PrometheusSource:
    """Counter selectors for the rule generator: all events, and either the bad or the good ones.

    ``good`` fits latency SLIs, whose good events are a histogram bucket
    (``…_bucket{le="0.1"}``) and whose bad ones have no counter of their own.
    """

    total: str
    errors: str | None = None
    good: str | None = None


@dataclass(frozen=True)
class SLO:
    """One service level objective over a rolling window, with its burn-rate alerts."""

    service: str
    name: str
    sli: str
    objective: Fraction  # a ratio in (0, 1): 999/1000 for 99.9 %
    window_s: int
    alerts: tuple[AlertWindow, ...]
    min_events: int = 100
    no_data_window_s: int = 3600
    model: str | None = None
    description: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    prometheus: PrometheusSource | None = None
    alert_name: str = ""
    runbook: str = ""  # a URL or a line of text an alert carries: what to do when it fires

    @property
    def error_budget(self) -> Fraction:
        """The share of events allowed to be bad: 1 - objective."""
        return 1 - self.objective

    @property
    def id(self) -> str:
        """``<service>-<slo>``, as Sloth's ``sloth_id``."""
        return f"{self.service}-{self.name}"

    def windows_s(self) -> list[int]:
        """Every window the alerts read, shortest first (the no-data window included)."""
        return sorted({w for a in self.alerts for w in (a.long_s, a.short_s)} | {self.no_data_window_s})


SINK_TYPES: dict[str, tuple[str, ...]] = {  # sink type -> its keys besides type and name
    "log": (),
    "file": ("path",),
    "webhook": ("url", "timeout_s", "retries"),
    "alertmanager": ("url", "timeout_s", "retries"),
}
_SINK_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}\.jsonl$")


@dataclass(frozen=True)
class SinkSpec:
    """One alert sink from the SLO file's ``alerts.sinks`` (sending is :mod:`.alerts`' job).

    ``path`` (file sinks) is a file name kept under the workspace's monitoring
    directory, never a path elsewhere; ``url`` (webhook, alertmanager) is http
    or https; ``timeout_s`` bounds each attempt and ``retries`` the attempts
    after the first.
    """

    type: str
    name: str
    path: str | None = None
    url: str | None = None
    timeout_s: float = 2.0
    retries: int = 2


@dataclass(frozen=True)
class SLOFile:
    """A parsed SLO file: one service and its SLOs (names unique)."""

    service: str
    slos: tuple[SLO, ...]
    sinks: tuple[SinkSpec, ...] = ()  # where the monitor sends alerts (file key ``alerts.sinks``)

    def get(self, name: str) -> SLO:
        for slo in self.slos:
            if slo.name == name:
                return slo
        raise ConfigError(f"No SLO named {name!r}; this file declares: {', '.join(s.name for s in self.slos)}.")


DEFAULT_ALERTS: dict[str, list[dict[str, Any]]] = {  # SRE Workbook ch. 5, table 5-8
    "page": [{"long": "1h", "short": "5m", "burn_rate": 14.4}, {"long": "6h", "short": "30m", "burn_rate": 6}],
    "ticket": [{"long": "3d", "short": "6h", "burn_rate": 1}],
}
_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^([1-9][0-9]{0,6})([mhdw])$")
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_FILE_KEYS = ("service", "slos", "apiVersion", "kind", "labels", "alerts")
_SLO_KEYS = ("name", "sli", "objective", "target", "window", "model", "description", "params", "prometheus",
             "alerting", "labels", "runbook")
_ALERTING_KEYS = ("name", "min_events", "no_data_window", "page", "ticket")
_PAIR_KEYS = ("long", "short", "burn_rate")


def parse_duration(value: Any, where: str) -> int:
    """Seconds in a duration such as ``5m``, ``6h``, ``30d`` or ``4w`` (whole minutes: the bucket is 1 m)."""
    text = value.strip() if isinstance(value, str) else None  # a bare number has no unit: never a duration
    match = _DURATION.match(text) if text else None
    if not match:
        raise ConfigError(f"{where} must be a duration like 5m, 1h, 3d or 4w (a positive whole number and one of "
                          f"the units m, h, d, w), got {_short(value)}.")
    return int(match.group(1)) * _UNITS[match.group(2)]


def format_duration(seconds: int) -> str:
    """The shortest of ``30d``, ``6h``, ``5m`` naming ``seconds`` (Prometheus range syntax)."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def load_slo_file(path: str | Path) -> SLOFile:
    """Read and validate an SLO file (YAML or JSON); every mistake names the field and the valid choices."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Cannot read SLO file {p.name!r}: {getattr(exc, 'strerror', None) or exc}. Give a YAML "
                          "file with `service:` and `slos:`.") from None
    return _parsed(text, p.name)


@functools.lru_cache(maxsize=16)
def _parsed(text: str, name: str) -> SLOFile:
    """The SLO file of ``text`` (cached: the monitor, the release gate and intake read the same file each pass;
    an SLOFile is immutable, and a changed file is new text)."""
    import yaml

    try:
        data = yaml.load(text, Loader=_safe_loader())  # the C build of yaml's *safe* loader
    except yaml.YAMLError as exc:
        raise ConfigError(f"SLO file {name!r} is not valid YAML: {' '.join(str(exc).split())}") from None
    except ValueError as exc:  # yaml builds ints with int(): one of more than 4300 digits is refused by Python
        raise ConfigError(f"SLO file {name!r} holds a number yarnit cannot read ({exc}); write numbers as a "
                          "percent (objective: 99.9) or a ratio (target: 0.999).") from None
    return parse_slo_file(data, source=name)


def _safe_loader() -> Any:
    """yaml's safe loader, in C when libyaml is there (the same documents, several times faster)."""
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_slo_file(data: Any, *, source: str = "SLO file") -> SLOFile:
    """Validate parsed YAML/JSON into an :class:`SLOFile`."""
    _mapping(data, source, _FILE_KEYS)
    service = _name(data.get("service"), f"{source}: service")
    items = data.get("slos")
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{source}: slos must be a non-empty list of SLOs, each with name, sli, objective and "
                          f"window; got {_short(items)}.")
    slos: list[SLO] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        slo = _parse_slo(item, service, f"{source}: slos[{i}]")
        if slo.name in seen:
            raise ConfigError(f"{source}: slos[{i}].name {slo.name!r} is used twice; SLO names must be unique "
                              "within a file (they name the rules and alerts).")
        seen.add(slo.name)
        slos.append(slo)
    return SLOFile(service=service, slos=tuple(slos), sinks=parse_sinks(data.get("alerts"), f"{source}: alerts"))


def parse_sinks(raw: Any, where: str = "alerts") -> tuple[SinkSpec, ...]:
    """The ``alerts: {sinks: [...]}`` section: each sink checked, names unique (default: the type, numbered)."""
    if raw is None:
        return ()
    _mapping(raw, where, ("sinks",))
    items = raw.get("sinks", [])
    if not isinstance(items, list):
        raise ConfigError(f"{where}.sinks must be a list of sinks, each with a type from: {', '.join(SINK_TYPES)}; "
                          f"got {_short(items)}.")
    sinks: list[SinkSpec] = []
    for i, item in enumerate(items):
        sink = parse_sink(item, f"{where}.sinks[{i}]", default_name=None)
        name = sink.name
        if any(s.name == name for s in sinks):
            if isinstance(item, Mapping) and "name" in item:
                raise ConfigError(f"{where}.sinks[{i}].name {name!r} is used twice; sink names must be unique.")
            name = f"{sink.type}-{i + 1}"
        sinks.append(replace(sink, name=name))
    return tuple(sinks)


def parse_sink(item: Any, where: str, *, default_name: str | None = None) -> SinkSpec:
    """One sink mapping (``type`` plus that type's keys), every mistake naming the field."""
    if not isinstance(item, Mapping):
        raise ConfigError(f"{where} must be a mapping with a type from: {', '.join(SINK_TYPES)}; got {_short(item)}.")
    kind = item.get("type")
    if not isinstance(kind, str) or kind not in SINK_TYPES:
        raise ConfigError(f"{where}.type is {_short(kind)}, not a known sink; valid choices: "
                          f"{', '.join(SINK_TYPES)}.")
    _mapping(item, where, ("type", "name") + SINK_TYPES[kind])
    name = item.get("name", default_name or kind)
    name = _name(name, f"{where}.name")
    path = url = None
    if kind == "file":
        path = item.get("path", "alerts.jsonl")
        if not isinstance(path, str) or not _SINK_FILE.match(path):
            raise ConfigError(f"{where}.path must be a file name ending in .jsonl (letters, digits, '.', '_', '-'; "
                              f"no directories: it is written under the workspace's monitoring directory), got "
                              f"{_short(path)}.")
    if kind in ("webhook", "alertmanager"):
        url = item.get("url")
        if not isinstance(url, str) or not re.match(r"^https?://[^\s/?#]+[^\s]*$", url) or len(url) > 2000:
            raise ConfigError(f"{where}.url must be an http:// or https:// URL (e.g. http://127.0.0.1:9093), got "
                              f"{_short(url)}.")
    timeout_s = item.get("timeout_s", 2.0)
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or not 0 < timeout_s <= 60:
        raise ConfigError(f"{where}.timeout_s must be a number of seconds in (0, 60] (each attempt's bound), got "
                          f"{_short(timeout_s)}.")
    retries = item.get("retries", 2)
    if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 10:
        raise ConfigError(f"{where}.retries must be a whole number from 0 to 10 (attempts after the first), got "
                          f"{_short(retries)}.")
    return SinkSpec(type=kind, name=name, path=path, url=url, timeout_s=float(timeout_s), retries=retries)


def _parse_slo(item: Any, service: str, where: str) -> SLO:
    _mapping(item, where, _SLO_KEYS)
    name = _name(item.get("name"), f"{where}.name")
    where = f"{where} ({name})"
    sli = item.get("sli")
    if not isinstance(sli, str) or sli not in SLI_KINDS:  # a list is unhashable: no dict lookup
        raise ConfigError(f"{where}.sli is {_short(sli)}, not a known SLI; valid choices: "
                          f"{', '.join(SLI_KINDS)}.")
    objective = _objective(item, where)
    window_s = parse_duration(item.get("window", "30d"), f"{where}.window")
    params = _params(item.get("params") or {}, SLI_KINDS[sli], f"{where}.params")
    alerting = item.get("alerting") or {}
    _mapping(alerting, f"{where}.alerting", _ALERTING_KEYS)
    alerts: list[AlertWindow] = []
    for severity in SEVERITIES:
        pairs = alerting.get(severity, DEFAULT_ALERTS[severity])
        if not isinstance(pairs, list):
            raise ConfigError(f"{where}.alerting.{severity} must be a list of {{long, short, burn_rate}} (or [] for "
                              f"none), got {_short(pairs)}.")
        for j, pair in enumerate(pairs):
            alerts.append(_pair(pair, severity, window_s, f"{where}.alerting.{severity}[{j}]"))
    min_events = alerting.get("min_events", 100)
    if not isinstance(min_events, int) or isinstance(min_events, bool) or min_events < 0:
        raise ConfigError(f"{where}.alerting.min_events must be a whole number >= 0 (events the long window needs "
                          f"before an alert may fire), got {_short(min_events)}.")
    no_data_s = parse_duration(alerting.get("no_data_window", "1h"), f"{where}.alerting.no_data_window")
    if no_data_s > window_s:
        raise ConfigError(f"{where}.alerting.no_data_window ({format_duration(no_data_s)}) is longer than the SLO "
                          f"window ({format_duration(window_s)}); it must fit inside it.")
    alert_name = alerting.get("name") or "".join(p.capitalize() for p in re.split(r"[-_]", name)) + "ErrorBudgetBurn"
    if not isinstance(alert_name, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", alert_name):
        raise ConfigError(f"{where}.alerting.name must be an alert name of letters, digits and _, got "
                          f"{_short(alert_name)}.")
    model = item.get("model")
    if model is not None:
        model = _name(model, f"{where}.model")
    description = item.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(f"{where}.description must be text, got {_short(description)}.")
    runbook = item.get("runbook", "")
    if not isinstance(runbook, str) or len(runbook) > 2000:
        raise ConfigError(f"{where}.runbook must be a URL or text (at most 2000 characters) saying what to do when "
                          f"the alert fires, got {_short(runbook)}.")
    return SLO(service=service, name=name, sli=sli, objective=objective, window_s=window_s, alerts=tuple(alerts),
               min_events=min_events, no_data_window_s=no_data_s, model=model, description=description,
               params=params, prometheus=_prometheus(item.get("prometheus"), f"{where}.prometheus"),
               alert_name=alert_name, runbook=runbook.strip())


def _objective(item: Mapping[str, Any], where: str) -> Fraction:
    if ("objective" in item) == ("target" in item):
        raise ConfigError(f"{where} needs exactly one of objective (percent, e.g. 99.9) or target (a ratio, e.g. "
                          "0.999).")
    key = "objective" if "objective" in item else "target"
    raw = item[key]
    scale = 100 if key == "objective" else 1
    number = _fraction(raw)
    if number is None:
        raise ConfigError(f"{where}.{key} must be a number, got {_short(raw)}.")
    value = number / scale
    if not 0 < value < 1:
        valid = "0 < objective < 100 (percent)" if key == "objective" else "0 < target < 1"
        raise ConfigError(f"{where}.{key} is {_short(raw)}; it must satisfy {valid}: an objective of 100 % leaves no "
                          "error budget, so no burn rate or alert can be computed.")
    return value


def _pair(pair: Any, severity: Severity, window_s: int, where: str) -> AlertWindow:
    _mapping(pair, where, _PAIR_KEYS)
    missing = [k for k in _PAIR_KEYS if k not in pair]
    if missing:
        raise ConfigError(f"{where} has no {', '.join(missing)}; each alert pair needs long, short and burn_rate, "
                          "e.g. {long: 1h, short: 5m, burn_rate: 14.4}.")
    long_s = parse_duration(pair["long"], f"{where}.long")
    short_s = parse_duration(pair["short"], f"{where}.short")
    if short_s >= long_s:
        raise ConfigError(f"{where}: the short window ({pair['short']}) must be shorter than the long window "
                          f"({pair['long']}); the workbook uses 1/12 of it.")
    if long_s > window_s:
        raise ConfigError(f"{where}.long ({pair['long']}) is longer than the SLO window "
                          f"({format_duration(window_s)}); alert windows must fit inside it.")
    raw = pair["burn_rate"]
    burn = _fraction(raw)
    if burn is None or burn <= 0:
        raise ConfigError(f"{where}.burn_rate must be a positive number (14.4 pages on 2 % of a 30-day budget in "
                          f"an hour), got {_short(raw)}.")
    return AlertWindow(severity=severity, long_s=long_s, short_s=short_s, burn_rate=burn)


def _params(raw: Any, kind: SLIKind, where: str) -> dict[str, Any]:
    _mapping(raw, where, kind.required + kind.optional)
    missing = [k for k in kind.required if k not in raw]
    if missing:
        raise ConfigError(f"{where} needs {', '.join(missing)} for sli {kind.name} (good event: {kind.good}).")
    params = dict(raw)
    for key in ("max_age", "label_delay"):
        if key in params:
            parse_duration(params[key], f"{where}.{key}")
    if "threshold_ms" in params:
        value = params["threshold_ms"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ConfigError(f"{where}.threshold_ms must be a positive number of milliseconds, got {_short(value)}.")
    if "columns" in params:
        value = params["columns"]
        if not (isinstance(value, list) and value and all(isinstance(c, str) and c.strip() for c in value)):
            raise ConfigError(f"{where}.columns must be a non-empty list of the input column names every row "
                              f"must hold (e.g. [fiber, brand]); leave it out to count every input column. Got "
                              f"{_short(value)}.")
        params["columns"] = [c.strip() for c in value]
    return params


def _prometheus(raw: Any, where: str) -> PrometheusSource | None:
    if raw is None:
        return None
    _mapping(raw, where, ("errors", "good", "total"))
    if ("errors" in raw) == ("good" in raw) or "total" not in raw:
        raise ConfigError(f"{where} needs total and exactly one of errors or good (counter selectors), got keys "
                          f"{', '.join(sorted(raw)) or '(none)'}.")
    for key in raw:
        value = raw[key]
        if not isinstance(value, str) or not value.strip() or "\n" in value:
            raise ConfigError(f"{where}.{key} must be one counter selector, e.g. "
                              f"'yarnit_serving_requests_total{{model=\"ctr\"}}', got {_short(value)}.")
    return PrometheusSource(total=raw["total"].strip(), errors=(raw.get("errors") or "").strip() or None,
                            good=(raw.get("good") or "").strip() or None)


def _mapping(value: Any, where: str, keys: Sequence[str]) -> None:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a mapping with keys from: {', '.join(keys) or '(none)'}; got "
                          f"{_short(value)}.")
    unknown = sorted(str(k) for k in value if k not in keys)
    if unknown:
        raise ConfigError(f"{where} has unknown key(s) {', '.join(unknown)}; valid keys: "
                          f"{', '.join(keys) or '(none)'}.")


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise ConfigError(f"{where} must be a name of lower-case letters, digits, '-' and '_' starting with a "
                          f"letter (at most 63 characters), got {_short(value)}.")
    return value


# How much of a bad value an error message shows. reprlib stops at these sizes instead of writing the whole
# value out first: a dozen lines of YAML aliases (each list naming the previous one ten times) stand for 10^9
# strings, and a plain repr() of them ran for minutes and took gigabytes before the message was cut to 80.
class _Repr(reprlib.Repr):
    def repr_int(self, x: int, level: int) -> str:  # repr() of an int past 4300 digits raises ValueError
        return super().repr_int(x, level) if x.bit_length() < 4096 else f"<an integer of {x.bit_length()} bits>"


_REPR = _Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple, _REPR.maxdict, _REPR.maxset = 3, 6, 6, 6, 6
_REPR.maxstring, _REPR.maxother, _REPR.maxlong = 60, 60, 40


def _short(value: Any) -> str:
    text = _REPR.repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# A number written as text: at most 40 digits and a 3-digit exponent. Fraction("1e-99999999") builds the
# integer 10^99999999 and ran for minutes; a float's own repr always fits (1e-323 to 1.8e308).
_NUMBER = re.compile(r"^\s*[+-]?(?:[0-9]{1,40}(?:\.[0-9]{0,40})?|\.[0-9]{1,40})(?:[eE][+-]?[0-9]{1,3})?\s*$")


def _fraction(raw: Any) -> Fraction | None:
    """``raw`` (a YAML number, or a number written as text) as an exact fraction; None if it is not one."""
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        return None
    if isinstance(raw, int):
        return Fraction(raw)
    text = str(raw)  # str(): 99.9 stays 999/1000, not the binary float's 2^-k expansion
    if not _NUMBER.match(text):
        return None  # nan, inf, "99.9 %", or a number too long to be meant
    try:
        return Fraction(text)
    except (ValueError, ZeroDivisionError):
        return None


__all__ = ["AlertWindow", "BUCKET_S", "DEFAULT_ALERTS", "PrometheusSource", "SEVERITIES", "SINK_TYPES", "SLIKind",
           "SLI_KINDS", "SLO", "SLOFile", "Severity", "SinkSpec", "format_duration", "load_slo_file", "parse_duration",
           "parse_sink", "parse_sinks", "parse_slo_file"]
