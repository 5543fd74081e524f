from __future__ import annotations

import pytest
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from yarnit.registry import dump_sklearn

ROWS = [{"fiber": "merino", "price": 12.0}, {"fiber": "acrylic", "price": 3.0}] * 10
LABELS = [1, 0] * 10


def fitted(c: float = 1.0) -> Pipeline:
    model = Pipeline([("vec", DictVectorizer()), ("lr", LogisticRegression(C=c))])
    model.fit(ROWS, LABELS)
    return model


@pytest.fixture
def rows() -> list[dict[str, object]]:
    return ROWS


@pytest.fixture
def artifact() -> bytes:
    return dump_sklearn(fitted())


@pytest.fixture
def other_artifact() -> bytes:
    return dump_sklearn(fitted(0.01))
