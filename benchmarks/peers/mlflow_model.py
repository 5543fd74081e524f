"""Fit the same click model for MLflow (a DataFrame pipeline: one-hot + logistic regression) and save it."""

import sys

import mlflow.sklearn
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

train, out, categorical, numeric = sys.argv[1], sys.argv[2], sys.argv[3].split(","), sys.argv[4].split(",")
frame = pd.read_parquet(train)
pipe = Pipeline([
    ("columns", ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), categorical),
                                   ("num", "passthrough", numeric)])),
    ("model", LogisticRegression(max_iter=1000)),
])
pipe.fit(frame[categorical + numeric], frame["clicked"])
mlflow.sklearn.save_model(pipe, out, pyfunc_predict_fn="predict_proba",
                          input_example=frame[categorical + numeric].head(2))
