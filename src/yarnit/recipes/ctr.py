"""The Yarn Product Click Prediction Model: a logistic regression over request-time features.

Trained on the impression log with a time-ordered holdout (the last day is
never seen in training, so no future leaks into the past). ``position`` is a
training feature and is fixed to 1 at serving, which removes position bias
from the scores.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline

from yarnit.core.errors import InvalidInput
from yarnit.features import apply_transform

TRANSFORM = "ctr_features_v1"
LABEL = "clicked"
RAW_INPUTS = {
    "country": "string", "language": "string", "device": "string", "product_type": "string", "fiber": "string",
    "weight_class": "string", "color": "string", "brand": "string", "is_partner": "bool", "in_stock": "bool",
    "price_usd": "double", "discount": "double", "user_price_sensitivity": "double", "hour": "int",
    "day_of_week": "int", "query": "string",
}


@dataclass(frozen=True)
class CtrTrainingResult:
    estimator: Pipeline
    metrics: dict[str, Any]
    params: dict[str, Any]
    signature: dict[str, Any]


def time_split(frame: pd.DataFrame, holdout_days: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split by day: the last ``holdout_days`` days are the holdout."""
    days = sorted(frame["day"].unique())
    if len(days) <= holdout_days:
        raise InvalidInput(
            f"A time-ordered holdout needs more than {holdout_days} day(s) of data; got {len(days)}. "
            "Generate more days (e.g. --days 3)."
        )
    cut = days[-holdout_days]
    return frame[frame["day"] < cut], frame[frame["day"] >= cut]


def train_ctr(frame: pd.DataFrame, *, seed: int = 0, c: float = 1.0) -> CtrTrainingResult:
    """Fit the click model on all days but the last; report AUC on the last day."""
    missing = [c for c in (*RAW_INPUTS, "position", "day", LABEL) if c not in frame.columns]
    if missing:
        raise InvalidInput(f"The click log lacks columns {missing}; it must come from the YarnIt impression log.")
    train, holdout = time_split(frame)
    if train[LABEL].nunique() < 2:
        raise InvalidInput(
            f"The training days hold only one label value ({train[LABEL].iloc[0]!r}); a click model needs "
            "both clicks and non-clicks. Check the click log (a click-processing outage?)."
        )
    columns = [*RAW_INPUTS, "position"]
    x_train = apply_transform(TRANSFORM, train[columns].to_dict("records"))
    x_hold = apply_transform(TRANSFORM, holdout[columns].to_dict("records"))
    params = {"C": c, "max_iter": 1000, "solver": "lbfgs", "random_state": seed}
    estimator = Pipeline([("vectorize", DictVectorizer(sparse=True, sort=True)),
                          ("model", LogisticRegression(**params))])
    estimator.fit(x_train, train[LABEL].to_numpy())
    scores = estimator.predict_proba(x_hold)[:, 1]
    y_hold = holdout[LABEL].to_numpy()
    metrics: dict[str, Any] = {
        "auc_holdout": float(roc_auc_score(y_hold, scores)) if len(np.unique(y_hold)) == 2 else None,
        "n_train": len(train),
        "n_holdout": len(holdout),
        "ctr_holdout": float(y_hold.mean()),
        "mean_prediction_holdout": float(scores.mean()),
        "holdout_distribution": f"time-ordered holdout: day {holdout['day'].min()}",
    }
    signature = {"inputs": RAW_INPUTS, "output": "click probability", "transform": TRANSFORM}
    return CtrTrainingResult(estimator, metrics, params, signature)


__all__ = ["LABEL", "RAW_INPUTS", "TRANSFORM", "CtrTrainingResult", "time_split", "train_ctr"]
