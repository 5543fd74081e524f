"""The input contract of a model version: declared at training, enforced on every path that scores.

A version's signature declares, per input feature (``signature["input_policy"]``,
see :class:`~yarnit.registry.InputSignature`), its type, the range its
training data covered, and what to do with a value that is missing or out of
that range: ``reject`` it (a 422 naming the row, the field and the expected
type), ``impute`` the training default (counted, by model, feature and
reason, in ``yarnit_serving_input_imputations_total``), or, for a missing
value the model was trained with, ``allow`` it. A ``fixed`` feature
(``position``) is set to its constant whatever the row holds. The online
data plane and ``predict-batch`` both call :func:`conform`, so one row gets
one answer on both paths.

Why check at all: the request-time transforms are forgiving on purpose
(training data has holes), so before this a price of ``"11.99"``, ``true`` or
``-5`` silently became "no price" and scored 0.74 instead of 0.076, and an
empty instance was scored as an average shopper. Types are never coerced: a
string where a number goes is the client's bug, and guessing hides it.

:func:`policy_from_training` chooses the policy from the training rows, so a
recipe gets a contract without writing one:

* a feature never missing in training rejects a missing value (the model never
  saw one); one missing in under 1 % of rows imputes its default; one missing
  more often allows it (missing is a value the model learned, e.g. no query);
* numbers get a range: up to ten training spans beyond what training saw,
  and never below 0 when training never was (a negative price is not a
  price). Not the training range itself: three days of training data hold
  two days of the week, and the third must still be served (a value between
  the two is drift, for monitoring to see, not a client error);
* out of range: rejected for a feature training always had, imputed for one it
  sometimes lacked (the model copes with not knowing it);
* the default is the median (numbers) or the most frequent value.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from yarnit.core.errors import InvalidInput
from yarnit.registry import FeaturePolicy, InputSignature

RARELY_MISSING = 0.01  # missing in fewer training rows than this: imputed, else allowed
SPANS = 10.0  # how far past the training values (in training spans) a number is still accepted


class InputRejected(InvalidInput):
    """A row breaks the version's input contract: names the row, the field and what was expected (422)."""

    def __init__(self, row: int, field: str, expected: str, message: str) -> None:
        super().__init__(message)
        self.row, self.field, self.expected = row, field, expected


_HINTS = {"string": "a string", "double": "a finite number", "int": "a whole number", "bool": "true or false"}
_SEND = {"string": "a JSON string (OIP v2: a BYTES tensor)", "double": "a JSON number (OIP v2: an FP32/FP64 tensor)",
         "int": "a JSON integer (OIP v2: an INT* tensor, or FP64 holding whole numbers)",
         "bool": "true or false (OIP v2: a BOOL tensor)"}


def _is_string(value: Any) -> bool:
    return type(value) is str


def _is_double(value: Any) -> bool:
    kind = type(value)
    return kind is int or (kind is float and math.isfinite(value))


def _is_int(value: Any) -> bool:
    kind = type(value)
    return kind is int or (kind is float and value.is_integer())


def _is_bool(value: Any) -> bool:
    return type(value) is bool


_CHECKS: dict[str, Callable[[Any], bool]] = {"string": _is_string, "double": _is_double, "int": _is_int,
                                             "bool": _is_bool}


def _json_type(value: Any) -> str:
    return {bool: "boolean", str: "string", int: "number", float: "number"}.get(type(value), type(value).__name__)


class Contract:
    """One version's :class:`InputSignature`, compiled for the request path (one tuple per feature)."""

    __slots__ = ("checks", "fixed", "signature")

    def __init__(self, signature: InputSignature) -> None:
        self.signature = signature
        self.fixed = tuple((p.name, p.fixed) for p in signature.features.values() if p.fixed is not None)
        self.checks = tuple((p.name, _CHECKS[p.type], p) for p in signature.features.values() if p.fixed is None)

    @classmethod
    def of(cls, signature: Mapping[str, Any]) -> Contract:
        return cls(InputSignature.of(signature))


Counts = dict[tuple[str, str], int]  # (feature, reason) -> values imputed


def conform(contract: Contract, rows: Sequence[dict[str, Any]], imputed: Counts | None = None,
            first_row: int = 0) -> list[dict[str, Any]]:
    """``rows`` as the version scores them: checked, imputed and fixed per ``contract``.

    Raises :class:`InputRejected` for the first value that the contract
    rejects. A row is copied only when a value changes. ``imputed`` gathers
    the imputations by (feature, reason); ``first_row`` numbers the rows in
    messages (a batch file's offset).
    """
    checks, fixed = contract.checks, contract.fixed
    out: list[dict[str, Any]] = []
    for index, row in enumerate(rows):
        changed: dict[str, Any] | None = None
        for name, check, policy in checks:
            value = row.get(name)
            reason = None
            if value is None:
                if policy.missing == "allow":
                    continue
                if policy.missing == "reject":
                    raise _missing(first_row + index, policy)
                reason = "missing"
            elif not check(value):
                raise _wrong_type(first_row + index, policy, value)
            elif policy.type in ("double", "int") and (
                    (policy.min is not None and value < policy.min) or (policy.max is not None and value > policy.max)):
                if policy.out_of_range == "reject":
                    raise _out_of_range(first_row + index, policy, value)
                reason = "out_of_range"
            if reason is not None:
                if changed is None:
                    changed = dict(row)
                changed[name] = policy.default
                if imputed is not None:
                    imputed[(name, reason)] = imputed.get((name, reason), 0) + 1
        for name, value in fixed:
            if row.get(name) != value:
                if changed is None:
                    changed = dict(row)
                changed[name] = value
        out.append(row if changed is None else changed)
    return out


def _missing(row: int, policy: FeaturePolicy) -> InputRejected:
    return InputRejected(row, policy.name, policy.type,
                         f"Row {row}, field {policy.name!r}: missing, and this model requires it (it was never "
                         f"missing in its training data). Send {policy.name} as {_SEND[policy.type]}"
                         f"{_range_text(policy)}.")


def _wrong_type(row: int, policy: FeaturePolicy, value: Any) -> InputRejected:
    shown = repr(value)[:40]
    return InputRejected(row, policy.name, policy.type,
                         f"Row {row}, field {policy.name!r}: expected {policy.type} ({_HINTS[policy.type]}), got "
                         f"{_json_type(value)} {shown}. Send it as {_SEND[policy.type]}; values are never "
                         "converted.")


def _out_of_range(row: int, policy: FeaturePolicy, value: Any) -> InputRejected:
    return InputRejected(row, policy.name, policy.type,
                         f"Row {row}, field {policy.name!r}: {value!r} is outside the range this model accepts "
                         f"[{policy.min:g}, {policy.max:g}] (from its training data). Check the value; a model "
                         "trained on data that covers it must be registered to score it.")


def _range_text(policy: FeaturePolicy) -> str:
    if policy.min is None or policy.max is None:
        return ""
    return f" in [{policy.min:g}, {policy.max:g}]"


class InputGuard:
    """The serving side: one compiled contract per loaded version, and the imputation counts per model."""

    def __init__(self) -> None:
        self._contracts: dict[str, Contract] = {}
        self._lock = threading.Lock()
        self.imputed_total: dict[tuple[str, str, str], int] = {}  # (model, feature, reason) -> values

    def contract(self, version_id: str, signature: Mapping[str, Any]) -> Contract:
        found = self._contracts.get(version_id)
        if found is None:
            found = Contract.of(signature)
            with self._lock:
                if len(self._contracts) > 256:  # versions come and go; a rebuild is cheap
                    self._contracts.clear()
                self._contracts[version_id] = found
        return found

    def conform(self, model: str, version_id: str, signature: Mapping[str, Any],
                instances: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``instances`` for the version ``version_id`` (see :func:`conform`); imputations are counted."""
        contract = self.contract(version_id, signature)
        if not contract.checks and not contract.fixed:
            return instances
        imputed: Counts = {}
        rows = conform(contract, instances, imputed)
        if imputed:
            with self._lock:
                for (feature, reason), n in imputed.items():
                    key = (model, feature, reason)
                    self.imputed_total[key] = self.imputed_total.get(key, 0) + n
        return rows


# -- at training: the policy from the training rows ----------------------------------------------------------
def policy_from_training(frame: Any, types: Mapping[str, str], *,
                         fixed: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """``signature["input_policy"]`` for features ``types`` (name → type) chosen from ``frame``'s rows.

    ``frame`` is a pandas DataFrame of the raw training rows; a feature it
    lacks gets its type only (missing allowed). ``fixed`` adds constants
    (e.g. ``{"position": 1}``). The rules are in the module docstring.
    """
    import pandas as pd

    out: dict[str, dict[str, Any]] = {}
    rows = len(frame)
    for name, kind in types.items():
        kind = FeaturePolicy.from_dict(name, {"type": kind}).type  # "float" → "double", …
        if name not in frame.columns or rows == 0:
            out[name] = FeaturePolicy(name, kind).to_dict()
            continue
        column = frame[name]
        present = column.dropna()
        missing_share = 1.0 - len(present) / rows
        missing = "reject" if missing_share == 0.0 else "impute" if missing_share < RARELY_MISSING else "allow"
        out_of_range = "reject" if missing_share == 0.0 else "impute"
        low = high = default = None
        if len(present) and kind in ("double", "int"):
            values = pd.to_numeric(present, errors="coerce").dropna().astype(float)
            values = values[values.map(math.isfinite)]
            if len(values):
                lo, hi = float(values.min()), float(values.max())
                span = (hi - lo) or abs(hi) or 1.0
                low, high = (0.0 if lo >= 0.0 else lo - SPANS * span), hi + SPANS * span
                median = float(values.median())
                default = int(round(median)) if kind == "int" else median
        elif len(present):
            mode = present.mode()
            if len(mode):
                value = mode.iloc[0]
                default = bool(value) if kind == "bool" else str(value)
        if default is None:  # nothing to impute with: refuse instead
            missing = "allow" if missing != "reject" else "reject"
            out_of_range = "reject"
        out[name] = FeaturePolicy(name, kind, low, high, default, missing, out_of_range).to_dict()
    for name, value in (fixed or {}).items():
        kind = "int" if isinstance(value, int) and not isinstance(value, bool) else \
            "double" if isinstance(value, float) else "bool" if isinstance(value, bool) else "string"
        out[name] = FeaturePolicy(name, kind, fixed=value).to_dict()
    return out


__all__ = ["Contract", "InputGuard", "InputRejected", "conform", "policy_from_training"]
