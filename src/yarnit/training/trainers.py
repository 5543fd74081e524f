"""Trainers behind one small protocol: scikit-learn (logistic regression, histogram GBM) and LightGBM.

Each trainer takes a feature frame (text and numeric columns, the output of a
request-time transform), labels and a seed, and returns a
:class:`TrainedModel` whose artifact serving can load without unpickling:

* ``logistic``: the frame is one-hot encoded to a sparse matrix
  (:mod:`.encoding`) and the artifact is a skops
  ``Pipeline(DictVectorizer, LogisticRegression)`` that scores dicts. Warm
  start reuses the previous version's coefficients for features still in the
  vocabulary.
* ``hist_gbm``: HistGradientBoostingClassifier on the dense one-hot matrix.
  This suits data that fits in memory densely; use LightGBM at scale.
* ``lightgbm``: text columns become category codes and the artifact is
  LightGBM's text model, which carries its category lists. Warm start
  continues boosting from the previous booster. With a Dask client, training
  runs distributed: LightGBM's data-parallel trees, one task a worker
  (:func:`.dask_parts.train`).

Every trainer records ``training["feature_importance"]``: one weight per
column of the frame it was given, summing to 1 (:mod:`.importance`).
"""

from __future__ import annotations

import time
from typing import Any, Protocol

import numpy as np
import pandas as pd

from yarnit.core.errors import InvalidInput
from yarnit.registry import ArtifactFormat, dump_lightgbm, dump_sklearn, load_predictor
from yarnit.registry.lightgbm_format import lightgbm_safe, unused_features

from . import dask_parts
from . import importance as imp
from .chunks import FeatureChunks, release_memory
from .encoding import encode_frame, fit_vectorizer, text_codes  # sklearn: imported when training
from .logistic import fit_and_code, fit_coded
from .values import TrainedModel


class Trainer(Protocol):
    name: str
    supports_dask: bool  # fit() trains distributed when given a Dask client

    def fit(self, features: pd.DataFrame, labels: np.ndarray, *, seed: int, init: TrainedModel | None = None,
            dask_client: Any = None) -> TrainedModel: ...


def _check(features: pd.DataFrame | FeatureChunks, labels: np.ndarray) -> np.ndarray:
    y = np.asarray(labels).astype(int)
    if len(features) != len(y):
        raise InvalidInput(f"{len(features)} feature rows but {len(y)} labels; they must match.")
    if len(np.unique(y)) < 2:
        raise InvalidInput(
            f"All {len(y)} training labels are {int(y[0]) if len(y) else 'missing'}; a click model needs both "
            "clicks and non-clicks. Check the label source (a click-processing outage?)."
        )
    return y


def _training_info(rows: int, started: float, **extra: Any) -> dict[str, Any]:
    seconds = time.perf_counter() - started
    return {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds if seconds > 0 else None, **extra}


class LogisticTrainer:
    name = "logistic"
    supports_dask = False

    def __init__(self, *, c: float = 1.0, max_iter: int = 100, tol: float = 1e-4, min_count: int = 1) -> None:
        self.c, self.max_iter, self.tol, self.min_count = c, max_iter, tol, min_count

    def fit(self, features: pd.DataFrame | FeatureChunks, labels: np.ndarray, *, seed: int,
            init: TrainedModel | None = None, dask_client: Any = None) -> TrainedModel:
        started = time.perf_counter()
        pipeline, params, training = self._fit(features, labels, seed=seed, init=init, importance=True)
        return TrainedModel(artifact=dump_sklearn(pipeline), artifact_format=ArtifactFormat.SKOPS, trainer=self.name,
                            params=params, training=_training_info(training.pop("rows"), started, **training))

    def fit_in_memory(self, features: pd.DataFrame | FeatureChunks, labels: np.ndarray, *,
                      seed: int) -> tuple[Any, dict[str, Any]]:
        """(predictor, params) of the model ``fit`` would build, never serialised: what its artifact loads as
        (the same estimator; skops round-trips its arrays exactly). For many throw-away fits (tuning's grid),
        where the save and the audited load cost more than the fit."""
        from yarnit.registry.formats import SklearnPredictor

        pipeline, params, _ = self._fit(features, labels, seed=seed, init=None, importance=False)
        return SklearnPredictor(pipeline), params

    def _fit(self, features: pd.DataFrame | FeatureChunks, labels: np.ndarray, *, seed: int,
             init: TrainedModel | None, importance: bool) -> tuple[Any, dict[str, Any], dict[str, Any]]:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import Pipeline as SkPipeline

        y = _check(features, labels)
        # category codes + numeric columns, not a CSR matrix (training/logistic.py): a third of the memory
        vectorizer, x, columns = fit_and_code(features, min_count=self.min_count)
        release_memory()  # the chunks' scratch memory goes back before the solver's vectors are allocated
        params = {"C": self.c, "max_iter": self.max_iter, "solver": "lbfgs", "random_state": seed, "tol": self.tol}
        model = LogisticRegression(**params)
        warm = False
        start = None
        if init is not None and init.trainer == self.name:
            previous = load_predictor(init.artifact, init.artifact_format).estimator  # type: ignore[attr-defined]
            old = dict(zip(previous.named_steps["vectorize"].feature_names_,
                           previous.named_steps["model"].coef_[0], strict=True))
            start = np.array([*(old.get(n, 0.0) for n in vectorizer.feature_names_),
                              float(previous.named_steps["model"].intercept_[0])])
            model.set_params(warm_start=True)
            warm = True
        classes = np.unique(y)  # the second is the positive class, as LogisticRegression takes it
        coef, intercept, iterations = fit_coded(x, y == classes[1], c=self.c, max_iter=self.max_iter, tol=self.tol,
                                                coef=start)
        # the fitted attributes LogisticRegression.fit sets (binary, lbfgs), so the artifact is the same shape
        model.n_features_in_ = x.n_features
        model.classes_ = classes
        model.n_iter_ = np.array([iterations], dtype=np.int32)
        model.coef_ = coef.reshape(1, -1)
        model.intercept_ = np.array([intercept])
        pipeline = SkPipeline([("vectorize", vectorizer), ("model", model)])
        training: dict[str, Any] = {"rows": len(y), "warm_start": warm, "iterations": iterations}
        if importance:
            training["feature_importance"] = imp.linear_weight(model.coef_[0], x, vectorizer.feature_names_, columns)
        return (pipeline, params | {"min_count": self.min_count, "n_features": len(vectorizer.feature_names_)},
                training)


class HistGbmTrainer:
    name = "hist_gbm"
    supports_dask = False

    def __init__(self, *, max_iter: int = 100, learning_rate: float = 0.1, max_leaf_nodes: int = 31) -> None:
        self.params = {"max_iter": max_iter, "learning_rate": learning_rate, "max_leaf_nodes": max_leaf_nodes}

    def fit(self, features: pd.DataFrame | FeatureChunks, labels: np.ndarray, *, seed: int,
            init: TrainedModel | None = None, dask_client: Any = None) -> TrainedModel:
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.feature_extraction import DictVectorizer
        from sklearn.pipeline import Pipeline as SkPipeline

        started = time.perf_counter()
        y = _check(features, labels)
        if isinstance(features, FeatureChunks):  # dense one-hot: this trainer needs the whole frame anyway
            features = features.frame()
        vectorizer = fit_vectorizer(features)
        dense = DictVectorizer(sparse=False, sort=True)
        dense.feature_names_, dense.vocabulary_ = vectorizer.feature_names_, vectorizer.vocabulary_
        x = encode_frame(vectorizer, features).toarray().astype(np.float32)
        model = HistGradientBoostingClassifier(**self.params, random_state=seed, early_stopping=False)
        model.fit(x, y)
        pipeline = SkPipeline([("vectorize", dense), ("model", model)])
        return TrainedModel(
            artifact=dump_sklearn(pipeline), artifact_format=ArtifactFormat.SKOPS, trainer=self.name,
            params=dict(self.params), training=_training_info(
                len(y), started, warm_start=False,
                feature_importance=imp.hist_gbm_gain(model, dense.feature_names_, list(features.columns))),
        )


class LightgbmTrainer:
    name = "lightgbm"
    supports_dask = True

    def __init__(self, *, num_boost_round: int = 100, learning_rate: float = 0.1, num_leaves: int = 31,
                 min_data_in_leaf: int = 50) -> None:
        self.num_boost_round = num_boost_round
        self.params = {"objective": "binary", "learning_rate": learning_rate, "num_leaves": num_leaves,
                       "min_data_in_leaf": min_data_in_leaf, "verbose": -1, "deterministic": True,
                       "force_row_wise": True, "num_threads": 2}

    def encode(self, features: pd.DataFrame | FeatureChunks, categories: dict[str, list[str]] | None = None
               ) -> tuple[np.ndarray, list[str], dict[str, list[str]]]:
        """Numeric matrix with text columns as category codes (−1 → NaN for unseen values).

        Chunks are walked twice (categories, then values), into a matrix allocated once."""
        matrix, names, categories, _columns = self._encode(features, categories)
        return matrix, names, categories

    def _encode(self, features: pd.DataFrame | FeatureChunks, categories: dict[str, list[str]] | None
                ) -> tuple[np.ndarray, list[str], dict[str, list[str]], list[Any]]:
        parts = _chunks(features)
        columns, rows, categories = self._scan(parts, categories)
        matrix = np.empty((rows, len(columns)), dtype=np.float64)
        row = 0
        for chunk in parts:
            matrix[row:row + len(chunk)] = self._matrix(chunk, columns, categories)
            row += len(chunk)
        return matrix, [lightgbm_safe(str(c)) for c in columns], categories, columns

    @staticmethod
    def _scan(parts: FeatureChunks, categories: dict[str, list[str]] | None
              ) -> tuple[list[Any], int, dict[str, list[str]]]:
        """Columns, rows and (unless given) each text column's sorted categories, in one pass."""
        columns: list[Any] = []
        text_columns: list[Any] = []
        rows = 0
        present: dict[Any, set[str]] = {}
        for chunk in parts:
            if not columns:
                columns = list(chunk.columns)
                text_columns = [c for c in columns if not pd.api.types.is_numeric_dtype(chunk[c])]
            rows += len(chunk)
            if categories is None:
                for c in text_columns:
                    codes, texts = text_codes(chunk[c])
                    present.setdefault(c, set()).update(texts[i] for i in np.unique(codes[codes >= 0]))
        if categories is None:
            categories = {c: sorted(present.get(c, set())) for c in text_columns}
        return columns, rows, categories

    @staticmethod
    def _matrix(chunk: pd.DataFrame, columns: list[Any], categories: dict[str, list[str]]) -> np.ndarray:
        matrix = np.empty((len(chunk), len(columns)), dtype=np.float64)
        for i, column in enumerate(columns):
            if column in categories:
                codes, texts = text_codes(chunk[column])
                position = {t: k for k, t in enumerate(categories[column])}
                lookup = np.array([position.get(t, -1) for t in texts] + [-1], dtype=np.float64)
                mapped = lookup[codes]
                matrix[:, i] = np.where(mapped < 0, np.nan, mapped)
            else:
                matrix[:, i] = chunk[column].to_numpy(dtype=float)
        return matrix

    def fit(self, features: pd.DataFrame | FeatureChunks, labels: np.ndarray, *, seed: int,
            init: TrainedModel | None = None, dask_client: Any = None) -> TrainedModel:
        import lightgbm

        started = time.perf_counter()
        y = _check(features, labels)
        init_booster = None
        categories = None
        if init is not None and init.trainer == self.name:
            init_booster = lightgbm.Booster(model_str=init.artifact.decode())
            categories = dict(zip(init.params.get("categorical_columns", []), init_booster.pandas_categorical or [],
                                  strict=False))
        params = self.params | {"seed": seed}
        if dask_client is not None:  # the workers build their own partitions (training/dask_parts.py)
            parts = _chunks(features)
            columns, rows, categories = dask_parts.scan(dask_client, parts, categories, self._scan)
            if init_booster is not None and list(init.params.get("columns", [])) != [str(c) for c in columns]:
                init_booster = None  # the feature set changed: a cold start is the only honest option
                columns, rows, categories = dask_parts.scan(dask_client, parts, None, self._scan)
            names = [lightgbm_safe(str(c)) for c in columns]
            categorical = [c for c in columns if c in categories]
            cat_index = [columns.index(c) for c in categorical]
            blocks = dask_parts.partitions(dask_client, parts, rows, columns, categories, y, int(params["seed"]),
                                           self._matrix)
            booster = self._fit_dask(dask_client, blocks, names, cat_index, params)
            del blocks  # the workers drop their blocks
        else:
            x, names, categories, columns = self._encode(features, categories)
            if init_booster is not None and list(init.params.get("columns", [])) != [str(c) for c in columns]:
                init_booster = None  # the feature set changed: a cold start is the only honest option
                del x
                x, names, categories, columns = self._encode(features, None)
            categorical = [c for c in columns if c in categories]
            cat_index = [columns.index(c) for c in categorical]
            dataset = lightgbm.Dataset(x, y, feature_name=names, categorical_feature=cat_index, free_raw_data=True)
            del x  # the Dataset holds the only reference: LightGBM frees the matrix once it has binned it
            booster = lightgbm.train(params, dataset, num_boost_round=self.num_boost_round, init_model=init_booster,
                                     keep_training_booster=False)
        # Serving pairs the category lists with the features the model text marks categorical, in order; a
        # categorical column LightGBM dropped (one value only: feature_infos=none) must not take a list.
        unused = unused_features(booster.model_to_string())
        booster.pandas_categorical = [categories[c] for c, i in zip(categorical, cat_index, strict=True)
                                      if i not in unused]
        return TrainedModel(
            artifact=dump_lightgbm(booster), artifact_format=ArtifactFormat.LIGHTGBM_TEXT, trainer=self.name,
            params=params | {"num_boost_round": self.num_boost_round, "categorical_columns": categorical,
                             "columns": [str(c) for c in columns]},
            training=_training_info(len(y), started, warm_start=init_booster is not None,
                                    distributed=dask_client is not None,
                                    feature_importance=imp.lightgbm_gain(booster, columns)),
        )

    def _fit_dask(self, client: Any, blocks: dask_parts.Blocks, names: list[str], cat_index: list[int],
                  params: dict[str, Any]) -> Any:
        """Train on the cluster's workers, each on the blocks it holds (:func:`dask_parts.train`).

        The parameters are those ``DaskLGBMClassifier`` used before (h39-h44): one thread a worker, LightGBM
        choosing row- or column-wise histograms itself; the sklearn defaults it added are LightGBM's own."""
        import lightgbm

        dask_params = {k: v for k, v in params.items() if k not in ("num_threads", "force_row_wise")}
        text = dask_parts.train(client, blocks, dask_params | {"num_threads": 1}, self.num_boost_round, names,
                                cat_index)
        return lightgbm.Booster(model_str=text)


def _chunks(features: pd.DataFrame | FeatureChunks) -> FeatureChunks:
    return features if isinstance(features, FeatureChunks) else FeatureChunks.of(features)


TRAINERS: dict[str, type] = {"logistic": LogisticTrainer, "hist_gbm": HistGbmTrainer, "lightgbm": LightgbmTrainer}


def dask_trainers() -> list[str]:
    """The trainers that train distributed when given a Dask client."""
    return [name for name, cls in TRAINERS.items() if getattr(cls, "supports_dask", False)]


def check_dask_trainer(name: str) -> None:
    """Refuse Dask for a trainer that would ignore it (a cluster doing nothing is a silent lie)."""
    if name in TRAINERS and name not in dask_trainers():
        raise InvalidInput(
            f"Trainer {name!r} cannot use Dask: it would train on one machine while a cluster sits idle. "
            f"Trainers that can use Dask: {', '.join(dask_trainers())} (e.g. --set trainer=lightgbm), "
            "or run without --dask."
        )
    if name not in TRAINERS:
        make_trainer(name)  # raises with the list of valid trainers


def make_trainer(name: str, **params: Any) -> Trainer:
    try:
        cls = TRAINERS[name]
    except KeyError:
        raise InvalidInput(f"Unknown trainer {name!r}; valid trainers: {', '.join(TRAINERS)}.") from None
    try:
        trainer: Trainer = cls(**params)
    except TypeError as exc:
        raise InvalidInput(f"Trainer {name!r} does not accept these parameters: {exc}.") from None
    return trainer


__all__ = ["TRAINERS", "check_dask_trainer", "dask_trainers", "HistGbmTrainer", "LightgbmTrainer", "LogisticTrainer", "Trainer", "make_trainer"]
