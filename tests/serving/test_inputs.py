"""The input contract: chosen from training rows, read back from a signature, applied to rows."""

from __future__ import annotations

import pandas as pd
import pytest

from yarnit.registry import FeaturePolicy, InputSignature
from yarnit.serving.inputs import Contract, InputRejected, conform, policy_from_training

TYPES = {"price": "double", "hour": "int", "query": "string", "coupon": "double", "partner": "bool"}


def _frame() -> pd.DataFrame:
    n = 200
    return pd.DataFrame({
        "price": [2.0 + (i % 50) for i in range(n)],  # always there, 2..51
        "hour": [i % 24 for i in range(n)],
        "query": [None if i % 3 else f"q{i % 4}" for i in range(n)],  # mostly missing: browsing
        "coupon": [None if i == 7 else 0.1 * (i % 5) for i in range(n)],  # missing once in 200
        "partner": [i % 4 == 0 for i in range(n)],
    })


def test_policy_from_training_follows_what_training_saw() -> None:
    policy = policy_from_training(_frame(), TYPES, fixed={"position": 1})
    assert policy["price"] == {"type": "double", "missing": "reject", "out_of_range": "reject", "min": 0.0,
                               "max": 51.0 + 10 * 49.0, "default": 26.5}  # ten training spans past the values
    assert policy["hour"] == {"type": "int", "missing": "reject", "out_of_range": "reject", "min": 0.0,
                              "max": 23.0 + 10 * 23.0, "default": 11}
    assert policy["query"]["missing"] == "allow"
    assert (policy["coupon"]["missing"], policy["coupon"]["out_of_range"]) == ("impute", "impute")
    assert policy["partner"] == {"type": "bool", "missing": "reject", "out_of_range": "reject", "default": False}
    assert policy["position"] == {"type": "int", "missing": "allow", "out_of_range": "reject", "fixed": 1}


def test_conform_rejects_imputes_and_fixes_as_declared() -> None:
    contract = Contract.of({"input_policy": policy_from_training(_frame(), TYPES, fixed={"position": 1})})
    imputed: dict[tuple[str, str], int] = {}
    row = {"price": 10.0, "hour": 9.0, "partner": True, "position": 7}
    rows = conform(contract, [row, row | {"coupon": 50.0}], imputed)
    assert rows[0] == rows[1] == row | {"position": 1, "coupon": 0.2}  # coupon: missing, then out of range
    assert imputed == {("coupon", "missing"): 1, ("coupon", "out_of_range"): 1}
    assert row["position"] == 7  # the caller's rows are never changed in place
    for bad, field in (({"price": "10"}, "price"), ({"hour": 9.5}, "hour"), ({"partner": 1}, "partner"),
                       ({"price": -1.0}, "price"), ({"hour": 254}, "hour")):
        with pytest.raises(InputRejected) as caught:
            conform(contract, [row, row | bad], first_row=100)
        assert (caught.value.row, caught.value.field) == (101, field)
    with pytest.raises(InputRejected, match="Row 0, field 'price': missing"):
        conform(contract, [{k: v for k, v in row.items() if k != "price"}])


def test_a_signature_registered_without_a_contract_reads_as_its_types() -> None:
    legacy = InputSignature.of({"inputs": {"fiber": "string", "price": "float", "odd": "tensor"}})
    assert not legacy.declared and list(legacy.features) == ["fiber", "price"]
    assert legacy.features["price"] == FeaturePolicy("price", "double")
    assert conform(Contract(legacy), [{}]) == [{}]  # missing stays allowed, as it was served before
    with pytest.raises(ValueError, match="imputes but declares no training default"):
        FeaturePolicy("x", "double", missing="impute")
