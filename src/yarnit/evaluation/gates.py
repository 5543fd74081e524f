"""Quality gates configured as data, and the verdict that blesses a candidate or says why not.

A gate is a small mapping (YAML or JSON), after TFX Evaluator's value and
change thresholds and MLflow's validation thresholds:

.. code-block:: yaml

    - {name: min_auc, kind: absolute, metric: auc, min: 0.6}
    - {name: auc_vs_production, kind: change, metric: auc, against: production, max_regression: 0.01}
    - {name: auc_per_slice, kind: change, metric: auc, slice: "*", max_regression: 0.02, significant: true,
       min_rows: 200, min_positives: 10}
    - {name: beats_popularity, kind: baseline, metric: auc, against: popularity, min_lift: 0.0}
    - {name: label_sanity, kind: label_rate, band: [0.005, 0.5]}
    - {name: slice_coverage, kind: coverage, slice: "*", min_share: 0.01, min_ratio: 0.5}
    - {name: validity, kind: validity}

Kinds:

* ``absolute``: the candidate's value within ``[min, max]``;
* ``change``: not worse than ``against`` (an alias, usually ``production``) by
  more than ``max_regression``, in the metric's direction (for ``bias``,
  closer to 0 is better). With ``significant: true`` a drop only fails when
  the paired interval of the difference lies entirely on the bad side, which
  keeps small slices from flapping;
* ``baseline``: better than a simpler model (``popularity``) by ``min_lift``:
  "a simpler model is not better" (ML Test Score, Model 5);
* ``label_rate``: the evaluation set's positive rate inside ``band`` (book
  ch. 15, case 5: a test set of all negatives made a broken model look fine);
* ``coverage``: every slice that is at least ``min_share`` of the evaluation
  data is at least ``min_ratio`` times as common in the training data (book
  ch. 7: biased data loss is not ignorable);
* ``validity``: every validity check passed (the gate's basics, CH7-R2).

``distribution`` defaults to the report's primary one; ``slice`` is ``""``
(the whole distribution), ``column=value``, ``column=*`` (each value) or
``*`` (every slice). Slices below ``min_rows``/``min_positives`` and slices
where the metric is undefined are skipped and listed, never silently passed.

Example:
    >>> gates = gates_from_config([{"name": "min_auc", "kind": "absolute", "metric": "auc", "min": 0.6}])
    >>> gates[0].kind, gates[0].min
    ('absolute', 0.6)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from statistics import NormalDist
from typing import Any, Literal, get_args

from .errors import GateConfigError, UnknownMetric
from .metrics import METRICS, Direction
from .report import EvaluationReport, MetricValue

GateKind = Literal["absolute", "change", "baseline", "label_rate", "coverage", "validity"]
GATE_KINDS: tuple[str, ...] = get_args(GateKind)
Status = Literal["pass", "fail", "skip"]
_Z95 = NormalDist().inv_cdf(0.975)

HINTS = {
    "absolute": "Improve the model or its data; change the threshold only if the target itself was wrong.",
    "change": "Retrain, or raise max_regression of this gate if the drop is intended.",
    "baseline": "A simpler model is better here (ML Test Score, Model 5): keep serving the baseline until the "
                "model beats it.",
    "label_rate": "The labels look incomplete or corrupted (a click-log outage? book ch. 15, case 5): fix the "
                  "label source and re-evaluate; metrics on this set cannot be trusted.",
    "coverage": "The training data lost a non-random slice (biased data loss, book ch. 7): find the gap upstream, "
                "backfill it and retrain.",
    "validity": "",
}


@dataclass(frozen=True)
class Gate:
    """One gate. Build it with :func:`gates_from_config` from data, or directly."""

    name: str
    kind: GateKind
    metric: str = "auc"
    distribution: str = ""
    slice: str = ""
    direction: Direction | None = None
    min: float | None = None
    max: float | None = None
    max_regression: float = 0.0
    against: str = ""
    min_lift: float = 0.0
    band: tuple[float, float] | None = None
    min_share: float = 0.01
    min_ratio: float = 0.5
    min_rows: int = 0
    min_positives: int = 0
    significant: bool = False
    required: bool = True
    hint: str = ""

    def __post_init__(self) -> None:
        where = f"Gate {self.name!r}"
        if not isinstance(self.name, str) or not self.name.strip():
            raise GateConfigError(f"Every gate needs a name (used in reasons and in the verdict); got {self.name!r}.")
        if self.kind not in GATE_KINDS:
            raise GateConfigError(f"{where} has kind {self.kind!r}; valid kinds: {', '.join(GATE_KINDS)}.")
        if self.kind in ("absolute", "change", "baseline"):
            if self.metric not in METRICS:
                raise GateConfigError(str(UnknownMetric(self.metric, list(METRICS))) + f" (in gate {self.name!r})")
        if self.direction is not None and self.direction not in get_args(Direction):
            raise GateConfigError(f"{where}: direction must be one of {', '.join(get_args(Direction))}, "
                                  f"got {self.direction!r}.")
        for key in ("min", "max", "max_regression", "min_lift", "min_share", "min_ratio"):
            value = getattr(self, key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise GateConfigError(f"{where}: {key} must be a number, got {value!r}.")
        for key in ("min_rows", "min_positives"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise GateConfigError(f"{where}: {key} must be an int >= 0, got {value!r}.")
        if self.kind == "absolute" and self.min is None and self.max is None:
            raise GateConfigError(f"{where} (absolute) needs min, max or both, e.g. min: 0.6 for auc.")
        if self.kind == "change" and self.max_regression < 0:
            raise GateConfigError(f"{where}: max_regression must be >= 0 (the allowed drop), got "
                                  f"{self.max_regression!r}.")
        if self.kind == "label_rate":
            band = self.band
            if (not isinstance(band, Sequence) or len(band) != 2
                    or not all(isinstance(b, int | float) and not isinstance(b, bool) for b in band)
                    or not 0.0 <= band[0] < band[1] <= 1.0):
                raise GateConfigError(f"{where} (label_rate) needs band: [low, high] with 0 <= low < high <= 1, got "
                                      f"{band!r}.")
            object.__setattr__(self, "band", (float(band[0]), float(band[1])))
        if self.kind == "coverage" and not (0.0 < self.min_ratio <= 1.0 and 0.0 <= self.min_share < 1.0):
            raise GateConfigError(f"{where} (coverage): need 0 < min_ratio <= 1 and 0 <= min_share < 1, got "
                                  f"min_ratio={self.min_ratio!r}, min_share={self.min_share!r}.")
        if not self.against:
            object.__setattr__(self, "against", "popularity" if self.kind == "baseline" else "production")

    @property
    def metric_direction(self) -> Direction:
        return self.direction or METRICS[self.metric].direction

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["band"] = list(self.band) if self.band else None
        return out


def gates_from_config(config: Sequence[Mapping[str, Any]] | None) -> list[Gate]:
    """Gates from data (a list of mappings, e.g. parsed YAML); every mistake is named with its gate."""
    if config is None:
        return []
    if isinstance(config, Mapping) or isinstance(config, str) or not isinstance(config, Sequence):
        raise GateConfigError(f"Gates must be a list of mappings, got {type(config).__name__}.")
    known = {f.name for f in fields(Gate)}
    gates: list[Gate] = []
    names: set[str] = set()
    for i, item in enumerate(config):
        if not isinstance(item, Mapping):
            raise GateConfigError(f"Gate #{i + 1} must be a mapping such as {{name: min_auc, kind: absolute, "
                                  f"metric: auc, min: 0.6}}, got {item!r}.")
        unknown = sorted(set(item) - known)
        if unknown:
            raise GateConfigError(f"Gate #{i + 1} ({item.get('name', '?')!r}) has unknown keys {unknown}; known keys: "
                                  f"{', '.join(sorted(known))}.")
        missing = [key for key in ("name", "kind") if key not in item]
        if missing:
            raise GateConfigError(f"Gate #{i + 1} has no {' or '.join(missing)}: every gate needs a name and a kind, "
                                  "e.g. {name: min_auc, kind: absolute, metric: auc, min: 0.6}.")
        values = dict(item)
        if isinstance(values.get("band"), list):
            values["band"] = tuple(values["band"])
        gate = Gate(**values)
        if gate.name in names:
            raise GateConfigError(f"Two gates are named {gate.name!r}; names must be unique.")
        names.add(gate.name)
        gates.append(gate)
    return gates


def standard_gates(*, metric: str = "auc", min_value: float | None = None, baseline: str | None = "popularity",
                   min_lift: float = 0.0, max_regression: float | None = 0.01,
                   positive_rate_band: Sequence[float] | None = None, validity: bool = True) -> list[Gate]:
    """The gates every click model starts with: a floor, beat the baseline, not worse than production, sane labels."""
    gates: list[Gate] = []
    if positive_rate_band is not None:
        gates.append(Gate("label_sanity", "label_rate", band=(float(positive_rate_band[0]),
                                                              float(positive_rate_band[1]))))
    if validity:
        gates.append(Gate("validity", "validity"))
    if min_value is not None:
        gates.append(Gate(f"min_{metric}", "absolute", metric=metric, min=float(min_value)))
    if baseline:
        gates.append(Gate(f"{metric}_beats_{baseline}", "baseline", metric=metric, against=baseline,
                          min_lift=float(min_lift), required=False))
    if max_regression is not None:
        gates.append(Gate(f"{metric}_vs_production", "change", metric=metric, against="production",
                          max_regression=float(max_regression)))
    return gates


# --- the verdict --------------------------------------------------------------------------------
@dataclass(frozen=True)
class GateResult:
    gate: str
    kind: str
    status: Status
    message: str
    distribution: str = ""
    slice: str = ""
    value: float | None = None
    reference: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Verdict:
    """Blessed when no gate failed; every failure is one sentence in :attr:`reasons`."""

    results: tuple[GateResult, ...]

    @property
    def blessed(self) -> bool:
        return not any(r.status == "fail" for r in self.results)

    @property
    def reasons(self) -> list[str]:
        return [r.message for r in self.results if r.status == "fail"]

    @property
    def skipped(self) -> list[str]:
        return [r.message for r in self.results if r.status == "skip"]

    def to_dict(self) -> dict[str, Any]:
        return {"blessed": self.blessed, "reasons": self.reasons, "checks": [r.to_dict() for r in self.results]}


def _fmt(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.4f}"


def _ci(m: MetricValue | None, confidence: str = "95%") -> str:
    if m is None or m.ci is None:
        return ""
    return f", {confidence} CI [{m.ci[0]:.4f}, {m.ci[1]:.4f}]"


class _Judge:
    def __init__(self, report: EvaluationReport) -> None:
        self.report = report
        c = report.candidate
        if c.get("version"):
            self.label = f"{report.model} v{c['version']}"
        else:
            self.label = f"{report.model} candidate {str(c.get('artifact_sha256', ''))[:12]}".rstrip()
        names = [d.name for d in report.distributions]
        self.names = names

    def where(self, distribution: str, slice_: str) -> str:
        d = self.report.distribution(distribution)
        return f"{d.description}" + (f", slice {slice_}" if slice_ else "")

    def targets(self, gate: Gate, metric: str, subject: str = "candidate"
                ) -> tuple[str, list[tuple[MetricValue | None, str, bool]]] | GateResult:
        """(distribution, [(value, slice, expanded)]) for a gate, or a result when it cannot apply."""
        distribution = gate.distribution or self.report.primary
        if distribution not in self.names:
            status: Status = "fail" if gate.required else "skip"
            return GateResult(gate.name, gate.kind, status,
                              f"Gate {gate.name!r} needs distribution {distribution!r}, which the evaluation of "
                              f"{self.label} does not have (it has: {', '.join(self.names)}). Evaluate on it, or fix "
                              "the gate's distribution.", distribution, gate.slice)
        if gate.slice in ("", None):
            return distribution, [(self.report.get(metric, distribution=distribution, subject=subject), "", False)]
        exact = self.report.get(metric, distribution=distribution, subject=subject, slice=gate.slice)
        if exact is not None or not gate.slice.endswith("*"):
            return distribution, [(exact, gate.slice, False)]
        prefix = "" if gate.slice == "*" else gate.slice[:-1]
        found = [m for m in self.report.select(metric=metric, distribution=distribution, subject=subject,
                                               slice_prefix=prefix)
                 if m.slice and not m.slice.endswith("=*")]
        return distribution, [(m, m.slice, True) for m in found]

    def small(self, gate: Gate, m: MetricValue) -> str | None:
        if gate.min_rows and (m.n or 0) < gate.min_rows:
            return f"{m.n or 0} rows < min_rows {gate.min_rows}"
        if gate.min_positives and (m.positives or 0) < gate.min_positives:
            return f"{m.positives or 0} positives < min_positives {gate.min_positives}"
        return None

    def undefined(self, gate: Gate, m: MetricValue | None, metric: str, distribution: str, slice_: str,
                  expanded: bool, what: str = "candidate") -> GateResult:
        reason = m.undefined if m is not None else f"the report has no {metric} for the {what}"
        status: Status = "skip" if expanded or not gate.required else "fail"
        text = (f"Gate {gate.name!r} {'skipped' if status == 'skip' else 'failed'} for {self.label} on "
                f"{self.where(distribution, slice_)}: {metric} is undefined ({reason}).")
        if status == "fail":
            text += " A gate that cannot be checked does not pass; evaluate on data where it is defined."
        return GateResult(gate.name, gate.kind, status, text, distribution, slice_)

    def hint(self, gate: Gate) -> str:
        return " " + (gate.hint or HINTS[gate.kind])

    # -- kinds ----------------------------------------------------------------------------------
    def absolute(self, gate: Gate) -> list[GateResult]:
        found = self.targets(gate, gate.metric)
        if isinstance(found, GateResult):
            return [found]
        distribution, targets = found
        out = []
        for m, slice_, expanded in targets:
            if m is not None and (why := self.small(gate, m)):
                out.append(GateResult(gate.name, gate.kind, "skip", f"Gate {gate.name!r} skipped slice {slice_}: "
                                      f"{why}.", distribution, slice_, m.value))
                continue
            if m is None or m.value is None:
                out.append(self.undefined(gate, m, gate.metric, distribution, slice_, expanded))
                continue
            v = m.value
            problems = []
            if gate.min is not None and v < gate.min:
                problems.append(f"{gate.metric} {v:.4f} < minimum {gate.min:g}")
            if gate.max is not None and v > gate.max:
                problems.append(f"{gate.metric} {v:.4f} > maximum {gate.max:g}")
            if problems:
                out.append(GateResult(gate.name, gate.kind, "fail",
                                      f"Gate {gate.name!r} failed for {self.label} on "
                                      f"{self.where(distribution, slice_)}: "
                                      f"{'; '.join(problems)}{_ci(m)}." + self.hint(gate), distribution, slice_, v))
            else:
                out.append(GateResult(gate.name, gate.kind, "pass", f"{gate.metric} {v:.4f} within bounds",
                                      distribution, slice_, v))
        return out or [GateResult(gate.name, gate.kind, "skip", f"Gate {gate.name!r} matched no slice "
                                  f"{gate.slice!r} in the report.", distribution, gate.slice)]

    def compare(self, gate: Gate) -> list[GateResult]:
        found = self.targets(gate, gate.metric)
        if isinstance(found, GateResult):
            return [found]
        distribution, targets = found
        ref_label = self.report.reference_label(gate.against)
        out: list[GateResult] = []
        pending: list[tuple[MetricValue, MetricValue, str]] = []
        for m, slice_, expanded in targets:
            if m is not None and (why := self.small(gate, m)):
                out.append(GateResult(gate.name, gate.kind, "skip", f"Gate {gate.name!r} skipped slice {slice_}: "
                                      f"{why}.", distribution, slice_, m.value))
                continue
            ref = self.report.get(gate.metric, distribution=distribution, subject=gate.against, slice=slice_)
            if ref is None or ref.value is None:
                why = "there is no " + ref_label + " to compare with" if ref is None else \
                    f"{gate.metric} of {ref_label} is undefined ({ref.undefined})"
                out.append(GateResult(gate.name, gate.kind, "skip", f"Gate {gate.name!r} skipped on "
                                      f"{self.where(distribution, slice_)}: {why}.", distribution, slice_))
                continue
            if m is None or m.value is None:
                out.append(self.undefined(gate, m, gate.metric, distribution, slice_, expanded))
                continue
            pending.append((m, ref, slice_))
        for m, ref, slice_ in pending:
            out.append(self._compare_one(gate, m, ref, distribution, slice_, ref_label, tests=len(pending)))
        return out or [GateResult(gate.name, gate.kind, "skip", f"Gate {gate.name!r} matched no slice "
                                  f"{gate.slice!r} in the report.", distribution, gate.slice)]

    def _compare_one(self, gate: Gate, m: MetricValue, ref: MetricValue, distribution: str, slice_: str,
                     ref_label: str, tests: int = 1) -> GateResult:
        assert m.value is not None and ref.value is not None
        v, r = m.value, ref.value
        direction = gate.metric_direction
        where = self.where(distribution, slice_)
        if gate.kind == "baseline":
            lift = gate.min_lift
            bad = v < r + lift if direction == "higher" else (v > r - lift if direction == "lower"
                                                                else abs(v) > abs(r) - lift)
            if bad:
                op = "does not beat" if direction == "higher" else "is not better than"
                text = (f"Gate {gate.name!r} failed for {self.label} on {where}: {gate.metric} {v:.4f} {op} the "
                        f"{ref_label} baseline {r:.4f} (required lift {lift:g})." + self.hint(gate))
                return GateResult(gate.name, gate.kind, "fail", text, distribution, slice_, v, r)
            return GateResult(gate.name, gate.kind, "pass", f"{gate.metric} {v:.4f} beats {ref_label} {r:.4f}",
                              distribution, slice_, v, r)
        delta_mv = self.report.get(gate.metric, distribution=distribution, subject=f"delta:{gate.against}",
                                   slice=slice_)
        delta = v - r
        allowed = gate.max_regression
        if direction == "higher":
            bad, sign = delta < -allowed, "<"
            threshold = f"{ref_label} {r:.4f} - {allowed:g}"
        elif direction == "lower":
            bad, sign = delta > allowed, ">"
            threshold = f"{ref_label} {r:.4f} + {allowed:g}"
        else:
            bad, sign = abs(v) - abs(r) > allowed, "further from 0 than"
            threshold = f"{ref_label} {r:.4f} by more than {allowed:g}"
        detail = f"difference {delta:+.4f}{_ci(delta_mv)}"
        if bad and gate.significant and direction != "zero":
            ci = delta_mv.ci if delta_mv is not None else None
            if ci is not None:
                # The stored interval is 95%; with m slices tested at once, widen it (Bonferroni) so that
                # checking 25 slices does not give 25 chances of a false alarm.
                se = (ci[1] - ci[0]) / (2 * _Z95)
                z = NormalDist().inv_cdf(1 - 0.025 / max(tests, 1))
                bound = (delta_mv.value if delta_mv is not None and delta_mv.value is not None else delta)
                beyond = bound + z * se < 0 if direction == "higher" else bound - z * se > 0
                if not beyond:
                    return GateResult(gate.name, gate.kind, "pass",
                                      f"{gate.metric} {v:.4f} vs {ref_label} {r:.4f} on {where}: {detail}; within noise"
                                      + (f", Bonferroni over {tests} slices" if tests > 1 else ""),
                                      distribution, slice_, v, r)
                detail += "; beyond noise" + (f", Bonferroni over {tests} slices" if tests > 1 else "")
        if bad:
            text = (f"Gate {gate.name!r} failed for {self.label} on {where}: {gate.metric} {v:.4f} {sign} {threshold} "
                    f"({detail})." + self.hint(gate))
            return GateResult(gate.name, gate.kind, "fail", text, distribution, slice_, v, r)
        return GateResult(gate.name, gate.kind, "pass", f"{gate.metric} {v:.4f} vs {ref_label} {r:.4f} ({detail})",
                          distribution, slice_, v, r)

    def label_rate(self, gate: Gate) -> list[GateResult]:
        found = self.targets(gate, "positive_rate")
        if isinstance(found, GateResult):
            return [found]
        distribution, targets = found
        assert gate.band is not None
        low, high = gate.band
        out = []
        for m, slice_, expanded in targets:
            if m is not None and (why := self.small(gate, m)):
                out.append(GateResult(gate.name, gate.kind, "skip", f"Gate {gate.name!r} skipped slice {slice_}: "
                                      f"{why}.", distribution, slice_, m.value))
                continue
            if m is None or m.value is None:
                out.append(self.undefined(gate, m, "positive_rate", distribution, slice_, expanded))
                continue
            if not low <= m.value <= high:
                text = (f"Gate {gate.name!r} failed: the evaluation set {self.where(distribution, slice_)} has "
                        "positive "
                        f"rate {m.value:.4f} ({m.positives} of {m.n} rows), outside the expected band [{low:g}, "
                        f"{high:g}]." + self.hint(gate))
                out.append(GateResult(gate.name, gate.kind, "fail", text, distribution, slice_, m.value))
            else:
                out.append(GateResult(gate.name, gate.kind, "pass", f"positive rate {m.value:.4f} in band",
                                      distribution, slice_, m.value))
        return out

    def coverage(self, gate: Gate) -> list[GateResult]:
        rows = self.report.sections.get("coverage")
        distribution = gate.distribution or self.report.primary
        if not rows:
            status: Status = "fail" if gate.required else "skip"
            verb = "failed" if status == "fail" else "skipped"
            return [GateResult(gate.name, gate.kind, status, f"Gate {gate.name!r} {verb}"
                               f": the evaluation of {self.label} has no training-coverage data (slice shares of the "
                               "training data), so biased data loss cannot be ruled out.", distribution)]
        prefix = "" if gate.slice in ("", "*") else gate.slice.rstrip("*")
        out = []
        for row in rows:
            name = row.get("slice", "")
            if row.get("distribution", distribution) != distribution or not name.startswith(prefix):
                continue
            if gate.slice and not gate.slice.endswith("*") and name != gate.slice:
                continue
            eval_share, train_share = float(row["eval_share"]), float(row["train_share"])
            if eval_share < gate.min_share:
                continue
            ratio = train_share / eval_share if eval_share > 0 else 1.0
            if ratio < gate.min_ratio:
                text = (f"Gate {gate.name!r} failed for {self.label}: slice {name} is {eval_share:.1%} of "
                        f"{self.where(distribution, '')} but {train_share:.1%} of the training data "
                        f"({row.get('train_rows')} "
                        f"rows; ratio {ratio:.2f} < {gate.min_ratio:g})." + self.hint(gate))
                out.append(GateResult(gate.name, gate.kind, "fail", text, distribution, name, train_share, eval_share))
            else:
                out.append(GateResult(gate.name, gate.kind, "pass", f"slice {name}: training share "
                                      f"{train_share:.1%} vs "
                                      f"evaluation share {eval_share:.1%}", distribution, name, train_share,
                                      eval_share))
        return out or [GateResult(gate.name, gate.kind, "skip", f"Gate {gate.name!r}: no slice at least "
                                  f"{gate.min_share:.0%} of the evaluation data matched {gate.slice!r}.", distribution)]

    def validity(self, gate: Gate) -> list[GateResult]:
        section = self.report.sections.get("validity")
        if not section:
            status: Status = "fail" if gate.required else "skip"
            return [GateResult(gate.name, gate.kind, status,
                               f"Gate {gate.name!r} {'failed' if status == 'fail' else 'skipped'}: {self.label} was "
                               "not validity-checked (load in the serving runtime, memory, latency, golden requests). "
                               "Run the validity check before promoting (yarnit eval run).")]
        failed = [c for c in section.get("checks", []) if c.get("passed") is False]
        if not failed:
            return [GateResult(gate.name, gate.kind, "pass", f"{self.label} passed every validity check")]
        return [GateResult(gate.name, gate.kind, "fail", f"Validity check {c['name']!r} failed: {c['detail']}")
                for c in failed]


def judge(report: EvaluationReport, gates: Sequence[Gate]) -> Verdict:
    """Apply ``gates`` to ``report``. Refuses an empty gate list (it would bless anything)."""
    if not gates:
        raise GateConfigError("No gates are configured, so nothing could block a bad model. Configure at least one "
                              "(e.g. gates_from_config([{'name': 'min_auc', 'kind': 'absolute', 'metric': 'auc', "
                              "'min': 0.6}])).")
    j = _Judge(report)
    results: list[GateResult] = []
    for gate in gates:
        if gate.kind == "absolute":
            results += j.absolute(gate)
        elif gate.kind in ("change", "baseline"):
            results += j.compare(gate)
        elif gate.kind == "label_rate":
            results += j.label_rate(gate)
        elif gate.kind == "coverage":
            results += j.coverage(gate)
        else:
            results += j.validity(gate)
    return Verdict(tuple(results))


__all__ = ["GATE_KINDS", "HINTS", "Gate", "GateKind", "GateResult", "Verdict", "gates_from_config", "judge",
           "standard_gates"]
