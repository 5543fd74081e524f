"""The input contract over real HTTP: types, ranges and missing values per the version's signature.

A click model trained on ``ctr_features_v1`` rows declares its contract with
``policy_from_training`` (as the yarnit-ctr recipe does). Rows that break it
are answered 422 naming the row, the field and the expected type; values its
policy imputes are scored as the training default and counted; and
``position`` is fixed to 1 on both the online and the batch path.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from testsupport import TOKEN, register_ctr

from yarnit.api import create_app
from yarnit.api.server import BackgroundServer
from yarnit.core import Settings, SimulatedClock
from yarnit.features import ctr_features_v1
from yarnit.recipes.ctr import RAW_INPUTS, SERVING_FIXED
from yarnit.registry import ArtifactFormat, ModelRegistry, dump_sklearn
from yarnit.serving import ServingOptions
from yarnit.serving.batch import predict_batch
from yarnit.serving.inputs import policy_from_training
from yarnit.storage import Workspace, open_workspace

OPTIONS = ServingOptions(log_flush_interval_s=0.01, log_fsync=False, cache_entries=0)


def training_rows(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """Impressions whose clicks depend on price and position; user_price_sensitivity is missing in 2 of them."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "country": rng.choice(["US", "DE"], n), "language": rng.choice(["en", "de"], n),
        "device": rng.choice(["mobile", "desktop"], n), "product_type": rng.choice(["yarn", "kit"], n),
        "fiber": rng.choice(["merino", "acrylic", "silk"], n), "weight_class": rng.choice(["dk", "aran"], n),
        "color": rng.choice(["red", "blue"], n), "brand": rng.choice(["a", "b"], n),
        "is_partner": rng.random(n) < 0.3, "in_stock": rng.random(n) < 0.9,
        "price_usd": rng.uniform(2.0, 60.0, n).round(2), "discount": rng.uniform(0.0, 0.4, n).round(2),
        "user_price_sensitivity": rng.uniform(0.5, 1.5, n), "hour": rng.integers(0, 24, n),
        "day_of_week": rng.integers(0, 7, n), "query": rng.choice(["merino", "red yarn", "aran"], n),
        "position": rng.integers(1, 11, n),
    })
    frame.loc[[5, 17], "user_price_sensitivity"] = None  # rarely missing (0.5 %): imputed when missing
    frame["clicked"] = (rng.random(n) < 0.6 / frame["position"] + 0.2 * (frame["price_usd"] < 10)).astype(int)
    return frame


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for record in frame.astype(object).where(frame.notna(), None).to_dict("records"):
        row = {k: v for k, v in record.items() if v is not None and k != "clicked"}
        out.append({k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()})
    return out


def register_click_model(ws: Workspace) -> pd.DataFrame:
    frame = training_rows()
    model = Pipeline([("vec", DictVectorizer()), ("lr", LogisticRegression(max_iter=1000))])
    model.fit([ctr_features_v1(r) for r in _records(frame)], frame["clicked"].to_numpy())
    signature = {"inputs": RAW_INPUTS, "transform": "ctr_features_v1", "output": "click probability",
                 "input_policy": policy_from_training(frame, RAW_INPUTS, fixed=SERVING_FIXED)}
    registry = ModelRegistry(ws)
    registry.register("ctr", dump_sklearn(model), ArtifactFormat.SKOPS, signature=signature)
    registry.promote("ctr", 1)
    return frame


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, pd.DataFrame, Workspace]]:
    """One server for the module (each test leaves the aliases as it found them)."""
    ws = open_workspace(Settings.for_home(tmp_path_factory.mktemp("contract") / "home", api_token=TOKEN),
                        SimulatedClock(datetime(2026, 1, 5, 9, tzinfo=UTC)))
    register_ctr(ws)  # v1 and v2: two-feature models registered without a contract
    frame = register_click_model(ws)  # v3
    ModelRegistry(ws).promote("ctr", 3)
    app = create_app(ws, refresh_s=0.0, serving=OPTIONS)
    app.state.serving.runtime.preload()
    try:
        with BackgroundServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as http:
            yield http, frame, ws
    finally:
        app.state.serving.close()
        ws.close()


def _imputed(http: httpx.Client, reason: str) -> float:
    prefix = f'yarnit_serving_input_imputations_total{{feature="user_price_sensitivity",model="ctr",reason="{reason}"}}'
    return sum(float(line.split()[-1]) for line in http.get("/metrics").text.splitlines() if line.startswith(prefix))


def _valid(frame: pd.DataFrame, i: int = 0) -> dict[str, Any]:
    row = _records(frame.iloc[[i]])[0]
    row.pop("position")
    return row


@pytest.mark.parametrize(("value", "detail"), [
    ("abc", "expected double (a finite number), got string 'abc'"),
    ("11.99", "expected double (a finite number), got string '11.99'"),
    (True, "expected double (a finite number), got boolean True"),
    (-5, "-5 is outside the range this model accepts [0, "),
    (None, "missing, and this model requires it"),
])
def test_v1_price_of_the_wrong_type_or_range_is_a_422_naming_row_field_and_type(served, value: Any,
                                                                                   detail: str) -> None:
    http, frame, _ws = served
    bad = _valid(frame, 1) | {"price_usd": value}
    response = http.post("/v1/models/ctr:predict", json={"instances": [_valid(frame), bad]})
    assert response.status_code == 422, response.text
    body = response.json()
    assert (body["error"], body["row"], body["field"], body["expected"]) == ("InputRejected", 1, "price_usd",
                                                                             "double")
    assert body["detail"].startswith("Row 1, field 'price_usd': ") and detail in body["detail"]


def test_a_discount_far_outside_training_and_an_empty_instance_are_refused(served) -> None:
    http, frame, _ws = served
    huge = http.post("/v1/models/ctr:predict", json={"instances": [_valid(frame) | {"discount": 1e300}]})
    assert huge.status_code == 422 and huge.json()["field"] == "discount", huge.text
    empty = http.post("/v1/models/ctr:predict", json={"instances": [{}]})
    assert empty.status_code == 422 and empty.json()["row"] == 0, empty.text
    assert "missing, and this model requires it" in empty.json()["detail"]


def test_an_imputed_value_scores_as_the_training_default_and_is_counted(served) -> None:
    http, frame, _ws = served
    default = float(frame["user_price_sensitivity"].median())
    row = _valid(frame)
    before = {reason: _imputed(http, reason) for reason in ("missing", "out_of_range")}
    answers = http.post("/v1/models/ctr:predict", json={"instances": [
        row | {"user_price_sensitivity": default}, row | {"user_price_sensitivity": 50.0},
        {k: v for k, v in row.items() if k != "user_price_sensitivity"}]}).json()["predictions"]
    assert answers[0] == answers[1] == answers[2]
    assert {reason: _imputed(http, reason) - n for reason, n in before.items()} == {"missing": 1.0,
                                                                                     "out_of_range": 1.0}


@pytest.mark.parametrize(("tensor", "fragment"), [
    ({"name": "hour", "datatype": "UINT8", "data": [100000]}, "declared UINT8 but holds 100000"),
    ({"name": "hour", "datatype": "UINT64", "data": [-5]}, "declared UINT64 but holds -5"),
    ({"name": "discount", "datatype": "FP16", "data": [1e300]}, "declared FP16 but holds 1e+300"),
    ({"name": "price_usd", "datatype": "BYTES", "data": ["12.5"]},
     "field 'price_usd': expected double (a finite number), got string '12.5'"),
    ({"name": "fiber", "datatype": "BYTES", "data": ["silk"]}, "'fiber' appears twice"),
])
def test_oip_v2_values_a_tensor_cannot_hold_or_the_signature_refuses_are_a_422(served, tensor: dict[str, Any],
                                                                               fragment: str) -> None:
    http, frame, _ws = served
    row = _valid(frame)
    kinds = {str: "BYTES", bool: "BOOL", int: "INT64", float: "FP64"}
    inputs = [{"name": k, "shape": [1], "datatype": kinds[type(v)], "data": [v]} for k, v in row.items()
              if k != tensor["name"] or tensor["name"] == "fiber"]
    response = http.post("/v2/models/ctr/infer", json={"inputs": [*inputs, tensor | {"shape": [1]}]})
    assert response.status_code == 422, response.text
    assert fragment in response.json()["detail"]


def test_a_version_without_a_declared_contract_keeps_its_types_and_allows_missing(served) -> None:
    http, _frame, ws = served
    ModelRegistry(ws).promote("ctr", 1)  # the two-feature model, registered before contracts existed
    try:
        missing = http.post("/v1/models/ctr:predict", json={"instances": [{"fiber": "merino"}]})
        wrong = http.post("/v1/models/ctr:predict", json={"instances": [{"fiber": "merino", "price": "12"}]})
    finally:
        ModelRegistry(ws).promote("ctr", 3)
    assert missing.status_code == 200 and missing.json()["model_version"] == 1, missing.text
    assert wrong.status_code == 422 and (wrong.json()["field"], wrong.json()["expected"]) == ("price", "double")


def test_batch_and_online_score_the_same_rows_identically(served, tmp_path: Path) -> None:
    """``position`` is logged in the batch file and unknown online: the signature fixes it to 1 on both paths."""
    http, frame, ws = served
    rows = frame.drop(columns=["clicked"]).iloc[:40].reset_index(drop=True)
    pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), tmp_path / "in.parquet")
    predict_batch(ModelRegistry(ws), "ctr", tmp_path / "in.parquet", tmp_path / "out.parquet")
    batch = pq.read_table(tmp_path / "out.parquet").column("prediction").to_pylist()
    records = _records(rows)
    with_position = http.post("/v1/models/ctr:predict", json={"instances": records}).json()["predictions"]
    without = http.post("/v1/models/ctr:predict", json={"instances": [
        {k: v for k, v in r.items() if k != "position"} for r in records]}).json()["predictions"]
    assert batch == with_position == without
    assert len(set(rows["position"])) > 5 and not all(math.isclose(b, batch[0]) for b in batch)


def test_the_contract_is_in_the_registered_signature(served) -> None:
    http, frame, _ws = served
    versions = http.get("/api/models/ctr").json()["versions"]
    policy = next(v for v in versions if v["version"] == 3)["signature"]["input_policy"]
    assert policy["position"] == {"type": "int", "missing": "allow", "out_of_range": "reject", "fixed": 1}
    assert policy["price_usd"]["missing"] == "reject" and policy["price_usd"]["min"] == 0.0
    assert policy["user_price_sensitivity"]["missing"] == "impute"
    assert policy["hour"]["min"] == float(frame["hour"].min()) and re.fullmatch(r"\w+", policy["fiber"]["default"])
