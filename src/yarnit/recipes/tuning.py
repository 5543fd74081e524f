"""Hyperparameter tuning of a recipe's trainer: a small grid judged on a validation day (ML Test Score model.3).

The ML Test Score's model.3 asks that "all hyperparameters have been tuned". A pipeline earns it only when
each run checks that the values it trains with are (near) the best of a search, on data the evaluation never
sees. :func:`grid_search` fits the configured trainer once per grid point on the earlier training days and
scores each fit on a later *training* day (never the holdout: the holdout stays the evaluation's, unbiased),
with the trainer's own fit and the serving scorer, so a grid point is exactly what ``train`` would build.

What it decides: whether the configured values are **tuned**, i.e. the best grid point, or not worse than it
by more than ``tolerance`` log loss, or by no more than two standard errors of the paired per-row
difference (indistinguishable on this day). It never changes what ``train`` fits: a run with untuned values
records that it is untuned and names the better value, and readiness shows 0 with the command to apply it.
Cost: one fit per grid point on at most ``max_rows`` rows (the 3-day demo's world: about 1 CPU-s in all).

Example:
    >>> rng = np.random.default_rng(0)
    >>> x = pd.DataFrame({"a": rng.choice(["u", "v"], 4000), "b": rng.normal(size=4000)})
    >>> y = (rng.random(4000) < np.where(x["a"] == "u", 0.3, 0.1)).astype(int)
    >>> found = grid_search("logistic", {}, {"c": [0.01, 1.0]}, x[:3000], y[:3000], x[3000:], y[3000:], seed=0)
    >>> found["searched"], found["configured"]["trainer_params"], found["tuned"]
    (['c'], {'c': 1.0}, True)
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from yarnit.core.errors import InvalidInput
from yarnit.evaluation.metrics import log_loss, roc_auc
from yarnit.registry import load_predictor
from yarnit.training.trainers import TRAINERS, make_trainer

#: the grid searched per trainer by default (trainer keyword -> values); the configured value is always added
DEFAULT_GRIDS: dict[str, dict[str, list[Any]]] = {"logistic": {"c": [0.01, 0.1, 1.0]}}
EPS = 1e-7  # log loss clips as yarnit.evaluation.metrics does


def configured_values(trainer: str, trainer_params: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """The value of each searched keyword ``train`` will use: the run's ``trainer_params``, else the default."""
    if trainer not in TRAINERS:
        raise InvalidInput(f"Unknown trainer {trainer!r}; valid trainers: {', '.join(TRAINERS)}.")
    signature = inspect.signature(TRAINERS[trainer].__init__)
    out = {}
    for name in names:
        if name in trainer_params:
            out[name] = trainer_params[name]
        elif name in signature.parameters and signature.parameters[name].default is not inspect.Parameter.empty:
            out[name] = signature.parameters[name].default
        else:
            raise InvalidInput(f"Tuning grid names {name!r}, which trainer {trainer!r} does not take; its "
                               f"parameters: {', '.join(p for p in signature.parameters if p != 'self')}.")
    return out


def _points(grid: Mapping[str, Sequence[Any]], configured: Mapping[str, Any]) -> list[dict[str, Any]]:
    points: list[dict[str, Any]] = [{}]
    for name, values in grid.items():
        values = list(dict.fromkeys([*values, configured[name]]))
        points = [p | {name: v} for p in points for v in sorted(values)]
    return points


def grid_search(trainer: str, trainer_params: Mapping[str, Any], grid: Mapping[str, Sequence[Any]],
                fit_x: pd.DataFrame, fit_y: np.ndarray, val_x: pd.DataFrame, val_y: np.ndarray, *, seed: int,
                tolerance: float = 0.0005) -> dict[str, Any]:
    """Fit ``trainer`` at every grid point (the configured values included) and judge the configured values.

    Returns a JSON-ready report: ``searched`` (keywords), ``points`` (each point's ``trainer_params``, the
    ``params`` the trainer recorded, validation ``log_loss`` and ``auc``), ``best``, ``configured``, ``gap``
    (configured minus best log loss), ``gap_se`` (its paired standard error) and ``tuned``.
    """
    if not grid:
        return {"trainer": trainer, "searched": [], "points": [], "tuned": False, "reason": "no_grid",
                "note": f"no tuning grid for trainer {trainer!r}"}
    if len(fit_y) == 0 or len(val_y) == 0 or len(np.unique(val_y)) < 2 or len(np.unique(fit_y)) < 2:
        return {"trainer": trainer, "searched": list(grid), "points": [], "tuned": False, "reason": "little_data",
                "note": f"too little data to tune: {len(fit_y)} fit rows, {len(val_y)} validation rows (both "
                        "labels needed in each)"}
    configured = configured_values(trainer, trainer_params, list(grid))
    y = np.asarray(val_y, dtype=float)
    points, terms = [], []
    for values in _points(grid, configured):
        fitter = make_trainer(trainer, **{**trainer_params, **values})
        if hasattr(fitter, "fit_in_memory"):  # the same model, without a save and an audited load per point
            predictor, params = fitter.fit_in_memory(fit_x, fit_y, seed=seed)
        else:
            model = fitter.fit(fit_x, fit_y, seed=seed)
            predictor, params = load_predictor(model.artifact, model.artifact_format), model.params
        p = np.clip(np.asarray(_predict(predictor, val_x), dtype=float), EPS, 1 - EPS)
        terms.append(-(y * np.log(p) + (1 - y) * np.log(1 - p)))
        points.append({"trainer_params": values, "params": {k: v for k, v in params.items()
                                                             if isinstance(v, int | float | str) and k != "random_state"},
                       "log_loss": log_loss(y, p), "auc": roc_auc(y, p)})
    best = min(range(len(points)), key=lambda i: (points[i]["log_loss"], i))
    mine = next(i for i, pt in enumerate(points) if pt["trainer_params"] == configured)
    diff = terms[mine] - terms[best]
    gap = float(diff.mean())
    se = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0
    return {"trainer": trainer, "searched": list(grid), "points": points, "best": points[best],
            "configured": points[mine], "gap": gap, "gap_se": se, "tolerance": tolerance,
            "tuned": bool(mine == best or gap <= tolerance or gap <= 2 * se),
            "fit_rows": len(fit_y), "validation_rows": len(val_y)}


def _predict(predictor: Any, features: pd.DataFrame) -> np.ndarray:
    from .ctr import _score  # the serving scorer evaluate uses (ctr imports this module inside its step)

    return _score(predictor, features)


def summary(report: Mapping[str, Any]) -> str:
    """One sentence: what was searched, the best point and whether the configured values are tuned."""
    if not report.get("points"):
        return f"not tuned: {report.get('note', 'no grid point was fitted')}"
    best, mine = report["best"], report["configured"]
    grid = ", ".join(f"{k} in {sorted({p['trainer_params'][k] for p in report['points']})}" for k in report["searched"])
    verdict = "tuned" if report["tuned"] else "NOT tuned"
    return (f"{verdict}: {report['trainer']} {grid} on {report['fit_rows']} fit / {report['validation_rows']} "
            f"validation rows; best {best['trainer_params']} log loss {best['log_loss']:.5f}, configured "
            f"{mine['trainer_params']} {mine['log_loss']:.5f} (gap {report['gap']:.5f}, se {report['gap_se']:.5f})")


__all__ = ["DEFAULT_GRIDS", "configured_values", "grid_search", "summary"]
