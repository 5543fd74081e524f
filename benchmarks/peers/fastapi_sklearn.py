"""The hand-rolled baseline most users write: FastAPI + pydantic body + scikit-learn predict_proba."""

import os

import skops.io as sio
from fastapi import FastAPI
from pydantic import BaseModel

path = os.environ["BENCH_MODEL_SKOPS"]
model = sio.load(path, trusted=sio.get_untrusted_types(file=path))
app = FastAPI()

Scalar = str | float | int | bool | None


class PredictRequest(BaseModel):
    instances: list[dict[str, Scalar]]


class PredictResponse(BaseModel):
    predictions: list[float]


@app.post("/v1/models/ctr:predict")
def predict(body: PredictRequest) -> PredictResponse:
    rows = [{k: v for k, v in row.items() if v is not None} for row in body.instances]
    return PredictResponse(predictions=model.predict_proba(rows)[:, 1].tolist())
