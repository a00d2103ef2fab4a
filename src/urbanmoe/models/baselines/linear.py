"""Closed-form baselines on exactly UrbanMoE's inputs: the mean predictor and ridge regression.

Both see the same standardised features as UrbanMoE (every branch's e and the POI vector p) and
the same standardised log1p targets; ridge picks its alpha per task on the validation split.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import Ridge

from urbanmoe.training.prepare import Prepared

RIDGE_ALPHAS = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)
CLOSED_FORM = ("mean", "ridge")


def design_matrix(prep: Prepared) -> np.ndarray:
    """(N, d) inputs: each branch's embedding and the POI vector, as UrbanMoE sees them."""
    keys = [*prep.branch_dims, *(["poi"] if "poi" in prep.data.inputs else [])]
    return np.concatenate([prep.data.inputs[k].numpy() for k in keys], axis=1)


def fit_predict(prep: Prepared, name: str) -> tuple[np.ndarray, int, dict[str, float]]:
    """Standardised test predictions (n_test, T), parameter count, and chosen alphas."""
    y = prep.data.y.numpy()
    observed = prep.data.observed.numpy()
    tr, va, te = prep.split.train, prep.split.val, prep.split.test
    n_test, n_tasks = len(te), y.shape[1]
    if name == "mean":  # standardised on the training rows: the training mean is 0
        means = np.array([y[tr][observed[tr, j], j].mean() for j in range(n_tasks)])
        return np.broadcast_to(means, (n_test, n_tasks)).copy(), n_tasks, {}
    if name != "ridge":
        raise ValueError(f"model.name: unknown closed-form baseline {name!r}")
    x = design_matrix(prep)
    pred = np.empty((n_test, n_tasks))
    alphas: dict[str, float] = {}
    for j, task in enumerate(prep.tasks):
        rows_tr, rows_va = tr[observed[tr, j]], va[observed[va, j]]
        best: tuple[float, float, Ridge] | None = None
        for alpha in RIDGE_ALPHAS:
            model = Ridge(alpha=alpha).fit(x[rows_tr], y[rows_tr, j])
            mse = float(np.mean((model.predict(x[rows_va]) - y[rows_va, j]) ** 2))
            if best is None or mse < best[0]:
                best = (mse, alpha, model)
        assert best is not None
        alphas[task] = best[1]
        pred[:, j] = best[2].predict(x[te])
    return pred, n_tasks * (x.shape[1] + 1), alphas
