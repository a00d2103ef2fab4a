"""Closed-form baselines of Table 2 / Appendix A on UrbanMoE's inputs: mean predictor and ridge.

Both see the same standardised features as UrbanMoE (every branch's e and the POI vector p) and
the same standardised log1p targets; ridge picks its alpha per task on the validation split.
``design_matrix`` and ``task_rows`` are shared with the other closed-form baselines
(``spatial.py``, ``boosting.py``). Every ``fit_predict_*`` follows the registry's closed-form
contract: ``(prep, b, seed) -> (pred_std (n_test, T), n_params, chosen)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from urbanmoe.errors import DataError
from urbanmoe.training.prepare import Prepared

RIDGE_ALPHAS = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)


def design_matrix(prep: Prepared) -> np.ndarray:
    """(N, d) inputs: each branch's embedding and the POI vector, as UrbanMoE sees them (and the
    spatial lag when ``spatial.lag`` is on)."""
    keys = [*prep.branch_dims, *(["poi"] if "poi" in prep.data.inputs else []),
            *(["lag"] if prep.n_lag else [])]
    return np.concatenate([prep.data.inputs[k].numpy() for k in keys], axis=1)


def task_rows(prep: Prepared, j: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation rows (table indices) whose label of task ``j`` is observed."""
    observed = prep.data.observed[:, j].numpy()
    tr, va = prep.split.train, prep.split.val
    rows_tr = tr[observed[tr]]
    if len(rows_tr) == 0:
        raise DataError(f"{prep.ds.name}: task {prep.tasks[j]!r} has no observed training label")
    return rows_tr, va[observed[va]]


def fit_predict_mean(prep: Prepared, b: dict[str, Any], seed: int
                     ) -> tuple[np.ndarray, int, dict[str, Any]]:
    """Each task's training mean for every test row (0 on the standardised scale); T parameters.

    ``b`` and ``seed`` are unused (the registry's common signature).
    """
    y = prep.data.y.numpy()
    means = np.array([y[task_rows(prep, j)[0], j].mean() for j in range(len(prep.tasks))])
    return np.broadcast_to(means, (len(prep.split.test), len(means))).copy(), len(means), {}


def fit_predict_ridge(prep: Prepared, b: dict[str, Any], seed: int
                      ) -> tuple[np.ndarray, int, dict[str, Any]]:
    """Ridge per task on ``design_matrix``; alpha from ``RIDGE_ALPHAS`` by validation MSE.

    ``chosen`` maps each task to its alpha; ``n_params`` counts weights and bias of every task.
    Ridge is exact, so ``b`` and ``seed`` are unused. A task without observed validation rows
    keeps the first alpha that ties (the smallest).
    """
    # sklearn loads here, not at import: ~2 s saved in runs that never use it
    from sklearn.linear_model import Ridge

    x = design_matrix(prep)
    y = prep.data.y.numpy()
    te = prep.split.test
    pred = np.empty((len(te), len(prep.tasks)))
    alphas: dict[str, Any] = {}
    for j, task in enumerate(prep.tasks):
        rows_tr, rows_va = task_rows(prep, j)
        best: tuple[float, float, Ridge] | None = None
        for alpha in RIDGE_ALPHAS:
            model = Ridge(alpha=alpha).fit(x[rows_tr], y[rows_tr, j])
            resid = model.predict(x[rows_va]) - y[rows_va, j]
            mse = float(np.mean(resid**2)) if len(rows_va) else 0.0
            if best is None or mse < best[0]:
                best = (mse, alpha, model)
        assert best is not None
        alphas[task] = best[1]
        pred[:, j] = best[2].predict(x[te])
    return pred, len(prep.tasks) * (x.shape[1] + 1), alphas
