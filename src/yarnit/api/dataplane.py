"""Data plane: the v1 protocol and the Open Inference Protocol v2 (predict only)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from yarnit.core.errors import InvalidInput
from yarnit.serving import MAX_INSTANCES, ModelRuntime

router = APIRouter(tags=["data plane"])

Scalar = str | float | int | bool | None
ModelName = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_.-]{0,62}$", description="Model name")]


class V1PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    instances: list[dict[str, Scalar]] = Field(min_length=1, max_length=MAX_INSTANCES)


class V1PredictResponse(BaseModel):
    predictions: list[float]
    model_name: str
    model_version: int
    served_by: str


class V2Tensor(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    shape: list[int] = Field(min_length=1, max_length=2)
    datatype: str
    data: list[Scalar]


class V2InferRequest(BaseModel):
    id: str | None = None
    inputs: list[V2Tensor] = Field(min_length=1, max_length=1024)


class V2OutputTensor(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[float]


class V2InferResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[V2OutputTensor]
    parameters: dict[str, Any] = {}


def _runtime(request: Request) -> ModelRuntime:
    runtime: ModelRuntime = request.app.state.runtime
    return runtime


def _count(request: Request, model: str, version: int, served_by: str, n: int) -> None:
    request.app.state.metrics.predictions.labels(model, str(version), served_by).inc(n)
    request.app.state.metrics.model_version.labels(model, "production").set(version)


@router.post("/v1/models/{name}:predict", response_model=V1PredictResponse)
def v1_predict(name: ModelName, body: V1PredictRequest, request: Request) -> V1PredictResponse:
    """Score ``instances`` (a list of feature dicts) with the production version of ``name``."""
    prediction = _runtime(request).predict(name, body.instances)
    _count(request, name, prediction.model_version, prediction.served_by, len(prediction.values))
    return V1PredictResponse(
        predictions=prediction.values,
        model_name=prediction.model_name,
        model_version=prediction.model_version,
        served_by=prediction.served_by,
    )


def _columns_to_instances(inputs: list[V2Tensor]) -> list[dict[str, Scalar]]:
    rows = inputs[0].shape[0]
    for tensor in inputs:
        if tensor.shape[0] != rows or len(tensor.data) != rows or (len(tensor.shape) == 2 and tensor.shape[1] != 1):
            raise InvalidInput(
                f"Input {tensor.name!r} has shape {tensor.shape} and {len(tensor.data)} values; every input must "
                f"be one column of shape [{rows}] or [{rows}, 1] with that many values."
            )
        if rows > MAX_INSTANCES:
            raise InvalidInput(f"{rows} rows in one request; at most {MAX_INSTANCES}. Split the batch.")
    return [{t.name: t.data[i] for t in inputs} for i in range(rows)]


@router.post("/v2/models/{name}/infer", response_model=V2InferResponse)
def v2_infer(name: ModelName, body: V2InferRequest, request: Request) -> V2InferResponse:
    """Open Inference Protocol v2: each input tensor is one feature column."""
    instances = _columns_to_instances(body.inputs)
    prediction = _runtime(request).predict(name, instances)
    _count(request, name, prediction.model_version, prediction.served_by, len(prediction.values))
    return V2InferResponse(
        model_name=name,
        model_version=str(prediction.model_version),
        id=body.id,
        outputs=[V2OutputTensor(name="probability", shape=[len(prediction.values)], datatype="FP64",
                                data=prediction.values)],
        parameters={"served_by": prediction.served_by},
    )


@router.get("/v2/models/{name}")
def v2_model_metadata(name: ModelName, request: Request) -> dict[str, Any]:
    loaded = _runtime(request).current(name)
    signature = loaded.version.signature
    return {
        "name": name,
        "versions": [str(loaded.version.version)],
        "platform": loaded.version.artifact_format.value,
        "inputs": [{"name": f, "datatype": "BYTES" if t == "string" else "FP64", "shape": [-1]}
                   for f, t in signature.get("inputs", {}).items()],
        "outputs": [{"name": "probability", "datatype": "FP64", "shape": [-1]}],
    }


@router.get("/v2/models/{name}/ready")
def v2_model_ready(name: ModelName, request: Request) -> dict[str, Any]:
    loaded = _runtime(request).current(name)
    return {"name": name, "ready": True, "version": str(loaded.version.version)}


__all__ = ["router"]
