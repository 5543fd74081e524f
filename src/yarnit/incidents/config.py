"""The workspace's incident settings and mitigation policies: ``$YARNIT_HOME/incidents.yaml``.

Example (every key optional; this is the default when the file is absent)::

    grouping_window: 1h        # an alert on a model/service with an incident active (or resolved) this recently joins it
    resolve_after: 1h          # all alerts clear this long -> resolved by incident:auto (0m: only people resolve)
    lookback: 7d               # how far before the outage start triage looks for changes
    severity: {page: SEV2, ticket: SEV3, no_data: SEV4, page_budget_exhausted: SEV1}
    fault_files: []            # world faults.json files to list in triage (relative to YARNIT_HOME)
    open_for: [page, ticket, no_data]   # alert kinds that open an incident (the others only join an active one)
    postmortem_budget_share: 0.2        # an incident spending more of an SLO's budget requires a postmortem
    policies:
      - name: burning-canary
        when: {alias: canary, alert: [page]}
        action: abort_canary
        auto: true
      - name: collapsed-predictions
        when: {sli: [prediction_quality], alert: [page]}
        action: fall_back
        auto: true
      - name: labels-incomplete
        when: {sli: [label_completeness], alert: [page, ticket]}
        action: stop_training
        auto: true
      - name: bad-data
        when: {sli: [data_validation], alert: [ticket, page]}
        action: remove_bad_data
        auto: true
      - name: inputs-incomplete
        when: {sli: [input_completeness], alert: [page]}
        action: fall_back
        auto: true

A policy matches an alert when every key of ``when`` matches: ``sli``,
``alert`` (page, ticket, no_data) and ``service`` are lists of exact values;
``slo`` and ``model`` are shell-style patterns (``ctr-*``); ``alias`` is the
SLO's ``alias`` parameter (an SLO of the canary's traffic). ``action`` is a
name resolved at run time in :mod:`yarnit.continuous.actions` (``abort_canary``,
``roll_back``, ``fall_back``, ``stop_training``, …): a burning canary's traffic is taken away (canary share 0,
the canary alias back to production's version); ``roll_back`` would move production, which is not what burns. ``auto: false`` only puts the suggestion
on the timeline; a person runs it with ``yarnit incidents mitigate``.
``remove_bad_data`` takes its dataset and window ``[start, end)`` from the
alert's evidence (``dataset``, ``window``: the loop's data checks set them).
``revert_on_resolve`` (default true for ``fall_back`` and ``stop_training``,
the actions with a reversal) runs the reversal (``restore_model``,
``resume_training``) once the incident resolves. A file
with a mistake is refused naming the field, as the SLO file is.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from yarnit.core.errors import ConfigError
from yarnit.monitoring.slo import parse_duration

from .models import SEVERITIES

CONFIG_FILENAME = "incidents.yaml"
ACTION_NAMES = ("abort_canary", "roll_back", "fall_back", "stop_training", "roll_through", "remove_bad_data")
#: The action that undoes each reversible mitigation (run when its incident resolves, ``revert_on_resolve``).
REVERSALS = {"fall_back": "restore_model", "stop_training": "resume_training"}
_POLICY_KEYS = ("name", "when", "action", "auto", "max_attempts", "revert_on_resolve")
_FILE_KEYS = ("grouping_window", "resolve_after", "lookback", "severity", "fault_files", "policies", "open_for",
              "postmortem_budget_share")
ALERT_KINDS = ("page", "ticket", "no_data")
_WHEN_KEYS = ("sli", "alert", "service", "slo", "model", "alias")


@dataclass(frozen=True)
class MitigationPolicy:
    """When an alert matches ``when``, run (``auto``) or suggest the action ``action`` on its model."""

    name: str
    action: str
    when: Mapping[str, Any]
    auto: bool = True
    max_attempts: int = 2
    revert_on_resolve: bool | None = None  # None: true for the actions with a reversal (REVERSALS)

    @property
    def reversal(self) -> str | None:
        """The action run when the incident resolves (``fall_back`` → ``restore_model``, …), or None."""
        revert = self.action in REVERSALS if self.revert_on_resolve is None else self.revert_on_resolve
        return REVERSALS.get(self.action) if revert else None

    def matches(self, alert: Mapping[str, Any], slo_params: Mapping[str, Any]) -> bool:
        for key, want in self.when.items():
            if key == "alias":
                if slo_params.get("alias") != want:
                    return False
            elif key in ("slo", "model"):
                value = alert.get("slo" if key == "slo" else "model")
                if value is None or not fnmatch.fnmatchcase(str(value), str(want)):
                    return False
            elif alert.get(key) not in want:
                return False
        return True


DEFAULT_POLICIES = (
    MitigationPolicy("burning-canary", "abort_canary", {"alias": "canary", "alert": ("page",)}),
    MitigationPolicy("collapsed-predictions", "fall_back", {"sli": ("prediction_quality",), "alert": ("page",)}),
    # page and ticket only: "no data" (nothing served yet, or the monitor just started) is not missing labels, and
    # freezing training on it would stop a new workspace's first models
    MitigationPolicy("labels-incomplete", "stop_training",
                     {"sli": ("label_completeness",), "alert": ("page", "ticket")}),
    # the loop's data checks (yarnit.continuous.data_checks): the alert's evidence names the dataset and window
    MitigationPolicy("bad-data", "remove_bad_data", {"sli": ("data_validation",), "alert": ("ticket", "page")}),
    MitigationPolicy("inputs-incomplete", "fall_back", {"sli": ("input_completeness",), "alert": ("page",)}),
)


@dataclass(frozen=True)
class IncidentConfig:
    grouping_window_s: int = 3600
    resolve_after_s: int = 3600
    lookback_s: int = 7 * 86400
    severity: Mapping[str, str] = field(default_factory=lambda: {
        "page": "SEV2", "ticket": "SEV3", "no_data": "SEV4", "page_budget_exhausted": "SEV1"})
    fault_files: tuple[str, ...] = ()
    policies: tuple[MitigationPolicy, ...] = DEFAULT_POLICIES
    open_for: tuple[str, ...] = ALERT_KINDS
    postmortem_budget_share: float = 0.2  # RELIABILITY.md §2: > 20 % of the budget -> mandatory postmortem


def config_path(home: str | Path) -> Path:
    return Path(home) / CONFIG_FILENAME


def load_config(home: str | Path) -> IncidentConfig:
    """The workspace's incident settings (the defaults when it has no ``incidents.yaml``)."""
    path = config_path(home)
    if not path.is_file():
        return IncidentConfig()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path.name} is not readable YAML ({type(exc).__name__}); fix it or remove it to use "
                          "the defaults.") from None
    return parse_config(data or {}, source=path.name)


def _duration(value: Any, where: str) -> int:
    if value in (0, "0", "0m"):
        return 0
    return parse_duration(value, where)


def parse_config(data: Any, *, source: str = "incidents.yaml") -> IncidentConfig:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source} must be a mapping with keys {', '.join(_FILE_KEYS)}.")
    unknown = sorted(str(k) for k in data if k not in _FILE_KEYS)
    if unknown:
        raise ConfigError(f"{source} has unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(_FILE_KEYS)}.")
    default = IncidentConfig()
    severity = dict(default.severity)
    raw_severity = data.get("severity", {})
    if not isinstance(raw_severity, Mapping):
        raise ConfigError(f"{source}: severity must map page/ticket/no_data/page_budget_exhausted to SEV1..SEV4.")
    for key, value in raw_severity.items():
        if key not in severity or str(value).upper() not in SEVERITIES:
            raise ConfigError(f"{source}: severity.{key} = {value!r}; keys: {', '.join(severity)}; values: "
                              f"{', '.join(SEVERITIES)}.")
        severity[str(key)] = str(value).upper()
    files = data.get("fault_files", [])
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise ConfigError(f"{source}: fault_files must be a list of paths (relative to YARNIT_HOME).")
    policies = default.policies
    if "policies" in data:
        raw = data["policies"]
        if not isinstance(raw, list):
            raise ConfigError(f"{source}: policies must be a list of {{name, when, action, auto}}.")
        policies = tuple(_policy(item, f"{source}: policies[{i}]") for i, item in enumerate(raw))
        names = [p.name for p in policies]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ConfigError(f"{source}: policy name(s) {', '.join(dup)} used twice; names must be unique.")
    open_for = data.get("open_for", list(ALERT_KINDS))
    if not isinstance(open_for, list) or not all(k in ALERT_KINDS for k in open_for):
        raise ConfigError(f"{source}: open_for must be a list of alert kinds among {', '.join(ALERT_KINDS)}; got "
                          f"{str(open_for)[:80]}.")
    share = data.get("postmortem_budget_share", 0.2)
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share <= 1:
        raise ConfigError(f"{source}: postmortem_budget_share must be a number in (0, 1], e.g. 0.2 for 20 %.")
    return IncidentConfig(
        open_for=tuple(open_for), postmortem_budget_share=float(share),
        grouping_window_s=_duration(data.get("grouping_window", "1h"), f"{source}: grouping_window"),
        resolve_after_s=_duration(data.get("resolve_after", "1h"), f"{source}: resolve_after"),
        lookback_s=_duration(data.get("lookback", "7d"), f"{source}: lookback"),
        severity=severity, fault_files=tuple(files), policies=policies)


def _policy(item: Any, where: str) -> MitigationPolicy:
    if not isinstance(item, Mapping):
        raise ConfigError(f"{where} must be a mapping with name, when, action and auto.")
    unknown = sorted(str(k) for k in item if k not in _POLICY_KEYS)
    if unknown:
        raise ConfigError(f"{where} has unknown key(s) {', '.join(unknown)}; valid: {', '.join(_POLICY_KEYS)}.")
    name, action = item.get("name"), item.get("action")
    if not isinstance(name, str) or not name.strip() or len(name) > 63:
        raise ConfigError(f"{where}.name must be a short non-empty name.")
    if not isinstance(action, str) or not action.isidentifier():
        raise ConfigError(f"{where}.action must be an action name such as {', '.join(ACTION_NAMES)}; got {action!r}.")
    when = item.get("when", {})
    if not isinstance(when, Mapping) or not when:
        raise ConfigError(f"{where}.when must be a non-empty mapping of {', '.join(_WHEN_KEYS)}.")
    parsed: dict[str, Any] = {}
    for key, value in when.items():
        if key not in _WHEN_KEYS:
            raise ConfigError(f"{where}.when has unknown key {key!r}; valid: {', '.join(_WHEN_KEYS)}.")
        if key in ("sli", "alert", "service"):
            values = value if isinstance(value, list) else [value]
            if not values or not all(isinstance(v, str) for v in values):
                raise ConfigError(f"{where}.when.{key} must be a value or a list of values.")
            parsed[key] = tuple(values)
        else:
            if not isinstance(value, str):
                raise ConfigError(f"{where}.when.{key} must be a string.")
            parsed[key] = value
    auto = item.get("auto", True)
    if not isinstance(auto, bool):
        raise ConfigError(f"{where}.auto must be true or false.")
    attempts = item.get("max_attempts", 2)
    if isinstance(attempts, bool) or not isinstance(attempts, int) or not 1 <= attempts <= 10:
        raise ConfigError(f"{where}.max_attempts must be a whole number from 1 to 10.")
    revert = item.get("revert_on_resolve")
    if revert is not None and not isinstance(revert, bool):
        raise ConfigError(f"{where}.revert_on_resolve must be true or false.")
    if revert and action not in REVERSALS:
        raise ConfigError(f"{where}.revert_on_resolve: {action} has no reversal; only "
                          f"{', '.join(f'{a} ({r})' for a, r in REVERSALS.items())} are undone when an incident "
                          "resolves.")
    return MitigationPolicy(name=name.strip(), action=action, when=parsed, auto=auto, max_attempts=attempts,
                            revert_on_resolve=revert)


__all__ = ["ACTION_NAMES", "CONFIG_FILENAME", "DEFAULT_POLICIES", "REVERSALS", "IncidentConfig", "MitigationPolicy",
           "config_path", "load_config", "parse_config"]
