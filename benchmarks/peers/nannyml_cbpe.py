"""NannyML's CBPE on a Parquet log (run in benchmarks/.venvs/nannyml): fit on the reference, estimate per chunk.

Usage: python nannyml_cbpe.py REFERENCE.parquet ANALYSIS.parquet CHUNK_SIZE  -> JSON on stdout
(estimated and realized ROC AUC and accuracy per chunk, and the time of fit + estimate).
"""

from __future__ import annotations

import json
import sys
import time
import warnings

import nannyml as nml
import pandas as pd
from sklearn.metrics import accuracy_score, roc_auc_score

warnings.filterwarnings("ignore")
reference = pd.read_parquet(sys.argv[1])
analysis = pd.read_parquet(sys.argv[2])
chunk_size = int(sys.argv[3])
features = analysis.drop(columns=["y_true"])
start = time.perf_counter()
estimator = nml.CBPE(y_pred_proba="y_pred_proba", y_pred="y_pred", y_true="y_true", metrics=["roc_auc", "accuracy"],
                     chunk_size=chunk_size, problem_type="classification_binary")
estimator.fit(reference)
results = estimator.estimate(features)
frame = results.filter(period="analysis").to_df()
elapsed = time.perf_counter() - start
auc = frame[("roc_auc", "value")].tolist()
acc = frame[("accuracy", "value")].tolist()
realized_auc, realized_acc = [], []
for i in range(len(auc)):
    part = analysis.iloc[i * chunk_size:(i + 1) * chunk_size]
    realized_auc.append(roc_auc_score(part["y_true"], part["y_pred_proba"]))
    realized_acc.append(accuracy_score(part["y_true"], part["y_pred"]))
print(json.dumps({"seconds": elapsed, "estimated_auc": auc, "estimated_accuracy": acc, "realized_auc": realized_auc,
                  "realized_accuracy": realized_acc, "nannyml": nml.__version__, "pandas": pd.__version__}))
