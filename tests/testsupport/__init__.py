"""Helpers shared by tests (importable as ``testsupport``)."""

from __future__ import annotations

from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from yarnit.registry import ArtifactFormat, ModelRegistry, dump_sklearn
from yarnit.storage import Workspace

TOKEN = "test-token-0123456789abcdef"


def register_ctr(ws: Workspace, versions: int = 2) -> None:
    registry = ModelRegistry(ws)
    rows = [{"fiber": "merino", "price": 12.0}, {"fiber": "acrylic", "price": 3.0}] * 10
    for i in range(versions):
        model = Pipeline([("vec", DictVectorizer()), ("lr", LogisticRegression(C=10.0 ** -i))])
        model.fit(rows, [1, 0] * 10)
        registry.register("ctr", dump_sklearn(model), ArtifactFormat.SKOPS,
                          signature={"inputs": {"fiber": "string", "price": "double"}})
    registry.promote("ctr", 1)


