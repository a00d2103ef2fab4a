"""Ensembles of a model with the tuned kNN on coordinates (spatial-context extension).

Not in the paper. ``spatial.ensemble`` combines a model's predictions with those of the tuned kNN
(``training/baselines/spatial.tuned_knn``), per task, on the standardised log1p scale:

* ``average``: ``w * model + (1 - w) * kNN`` with ``w`` from ``WEIGHT_GRID`` minimising the MSE
  on the observed validation rows (ties: the largest ``w``, i.e. the most model);
* ``stack``: least squares ``a * model + b * kNN + c`` fitted on the observed validation rows.

Both read validation labels only, never test labels. The third kind, ``residual`` (the model
trained on what the out-of-fold tuned kNN misses), changes what the model is trained on and
lives in ``training/fitting.on_knn_residuals``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

WEIGHT_GRID = np.round(np.linspace(1.0, 0.0, 21), 2)  # model weight, most model first


def choose_combination(kind: str, model_val: np.ndarray, knn_val: np.ndarray,
                       y_val: np.ndarray, observed_val: np.ndarray) -> list[dict[str, float]]:
    """Per task, the combination's coefficients fitted on the validation rows.

    ``model_val``, ``knn_val``, ``y_val`` (n_val, T) standardised; ``observed_val`` (n_val, T)
    bool. Returns one dict per task: ``{"model": a, "knn": b, "bias": c}``.
    """
    out = []
    for j in range(y_val.shape[1]):
        obs = observed_val[:, j]
        m, k, y = model_val[obs, j], knn_val[obs, j], y_val[obs, j]
        if not obs.any():  # nothing to choose on: the model alone
            out.append({"model": 1.0, "knn": 0.0, "bias": 0.0})
        elif kind == "average":
            mse = [float(np.mean((w * m + (1 - w) * k - y) ** 2)) for w in WEIGHT_GRID]
            w = float(WEIGHT_GRID[int(np.argmin(mse))])
            out.append({"model": w, "knn": round(1.0 - w, 2), "bias": 0.0})
        elif kind == "stack":
            # sklearn loads here, not at import: ~2 s saved in runs that never use it
            from sklearn.linear_model import LinearRegression

            lr = LinearRegression().fit(np.stack([m, k], axis=1), y)
            out.append({"model": float(lr.coef_[0]), "knn": float(lr.coef_[1]),
                        "bias": float(lr.intercept_)})
        else:
            raise ValueError(f"spatial.ensemble: unknown kind {kind!r}")
    return out


def combine(coefs: list[dict[str, float]], model_pred: np.ndarray,
            knn_pred: np.ndarray) -> np.ndarray:
    """(n, T) combined predictions with ``choose_combination``'s coefficients."""
    a = np.array([c["model"] for c in coefs])
    b = np.array([c["knn"] for c in coefs])
    c0 = np.array([c["bias"] for c in coefs])
    return a * model_pred + b * knn_pred + c0


def describe(kind: str, tasks: list[str], coefs: list[dict[str, float]]) -> str:
    """The table note, e.g. 'ensemble with tuned kNN (average, model weight from validation:
    carbon 0.55, population 0.6)'."""
    if kind == "average":
        parts = [f"{t} {c['model']:g}" for t, c in zip(tasks, coefs, strict=True)]
        return ("ensemble with tuned kNN (average, model weight from validation: "
                + ", ".join(parts) + ")")
    parts = [f"{t} {c['model']:.2f}/{c['knn']:.2f}" for t, c in zip(tasks, coefs, strict=True)]
    return "ensemble with tuned kNN (stack on validation, model/kNN: " + ", ".join(parts) + ")"


def as_chosen(tasks: list[str], coefs: list[dict[str, float]]) -> dict[str, Any]:
    """``chosen_on_validation`` entries of the combination."""
    return {f"ensemble_{t}": c for t, c in zip(tasks, coefs, strict=True)}
