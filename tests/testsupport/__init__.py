"""Helpers shared by tests (importable as ``testsupport``)."""

from __future__ import annotations

from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from yarnit.registry import ArtifactFormat, ModelRegistry, dump_sklearn
from yarnit.storage import Workspace

TOKEN = "test-token-0123456789abcdef"


def register_ctr(ws: Workspace, versions: int = 2, *, blessed: bool = True) -> None:
    """ctr v1 (production) … vN; with ``blessed``, each has a blessed evaluation, so operators may promote it."""
    from .blessing import record_verdict

    registry = ModelRegistry(ws)
    rows = [{"fiber": "merino", "price": 12.0}, {"fiber": "acrylic", "price": 3.0}] * 10
    for i in range(versions):
        model = Pipeline([("vec", DictVectorizer()), ("lr", LogisticRegression(C=10.0 ** -i))])
        model.fit(rows, [1, 0] * 10)
        version = registry.register("ctr", dump_sklearn(model), ArtifactFormat.SKOPS,
                                    signature={"inputs": {"fiber": "string", "price": "double"}})
        if blessed:
            record_verdict(ws, "ctr", version.version)
    registry.promote("ctr", 1)




def transform_mismatches(frame, record_fn, frame_fn) -> list[tuple]:  # type: ignore[no-untyped-def]
    """Where a transform's vectorized (training) and per-record (serving) forms disagree (target 15).

    Returns ``(row, feature, frame value, record value)`` for every difference
    (floats compared to 1e-9); also asserts both forms produce the same columns in the same order.
    """
    import math

    vectorized = frame_fn(frame).to_dict("records")
    bad = []
    for i, record in enumerate(frame.to_dict("records")):
        expected, got = record_fn(record), vectorized[i]
        assert list(got) == list(expected)
        for key, value in expected.items():
            same = math.isclose(got[key], value, abs_tol=1e-9) if isinstance(value, float) else got[key] == value
            if not same:
                bad.append((i, key, got[key], value))
    return bad


# --- restricted columns (access, issue 16 item 13) ---
SHOPPERS_SCHEMA = """\
dataset: shoppers
subject: user_id
columns:
  user_id: {type: string, nullable: false}
  email: {type: string, pii: keep}
  age: {type: int64, restricted: {bucket: [18, 25, 35, 50, 65], as: age_band}}
  country: {type: string, restricted: {map: {DE: EU, FR: EU, US: NA}, as: region}}
  income: {type: float64, restricted: true}
  clicked: {type: bool}
  event_time: {type: timestamp_utc}
"""


def ingest_shoppers(ws: Workspace):  # type: ignore[no-untyped-def]
    """A dataset version with restricted columns (age → age_band, country → region, income: raw only)."""
    import pandas as pd

    from yarnit.data import Datasets, DatasetSchema

    frame = pd.DataFrame({
        "user_id": ["u1", "u2", "u3", "u4"], "email": ["a@x.io", "b@x.io", "c@x.io", "d@x.io"],
        "age": [17, 30, 44, 70], "country": ["DE", "US", "JP", "FR"], "income": [1.0, 2.0, 3.0, 4.0],
        "clicked": [True, False, True, False],
        "event_time": pd.to_datetime(["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04"], utc=True),
    })
    return Datasets(ws).ingest_frame("shoppers", frame, source="test", schema=DatasetSchema.from_yaml(SHOPPERS_SCHEMA))
