"""LightGBM baseline (Table 2, Appendix A: gradient-boosted trees on the same inputs as UrbanMoE).

One LightGBM regressor per task on ``design_matrix`` (every branch's standardised embedding and the
POI vector), plus the raw lat/lon when ``baselines.lightgbm.use_coords`` is set and the dataset has
them. Trained on the task's observed training rows with early stopping on its observed validation
rows (L2 on the standardised targets); test rows are only predicted. Settings come from
``baselines.lightgbm`` (n_estimators, learning_rate, num_leaves, min_child_samples).
"""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np

from urbanmoe.training.baselines.linear import design_matrix, task_rows
from urbanmoe.training.prepare import Prepared

EARLY_STOPPING_ROUNDS = 50  # boosting rounds without validation improvement before stopping


def lightgbm_inputs(prep: Prepared, use_coords: bool) -> np.ndarray:
    """(N, d) LightGBM inputs: ``design_matrix`` and, if asked and present, lat/lon degrees."""
    x = design_matrix(prep)
    if use_coords and prep.ds.coords is not None:
        x = np.concatenate([x, np.asarray(prep.ds.coords, dtype=x.dtype)], axis=1)
    return x


def tree_nodes(model: lgb.LGBMRegressor, n_iter: int) -> int:
    """Nodes (leaves + splits, ``2 * leaves - 1`` per tree) of the first ``n_iter`` trees."""
    trees = model.booster_.dump_model(num_iteration=n_iter)["tree_info"]
    return sum(2 * int(t["num_leaves"]) - 1 for t in trees)


def fit_predict_lightgbm(prep: Prepared, b: dict[str, Any], seed: int
                         ) -> tuple[np.ndarray, int, dict[str, Any]]:
    """Standardised test predictions (n_test, T) of one early-stopped LightGBM per task.

    ``chosen`` maps each task to its best boosting iteration (the trees the prediction uses;
    ``n_estimators`` when the task has no observed validation row). ``n_params`` is the number of
    tree nodes, leaves plus splits, over those trees of all tasks. ``n_jobs=1`` with
    ``deterministic=True`` and ``random_state=seed`` makes the result independent of the
    machine's core count.
    """
    s = b["lightgbm"]
    x = lightgbm_inputs(prep, bool(s["use_coords"]))
    y = prep.data.y.numpy()
    te = prep.split.test
    pred = np.empty((len(te), len(prep.tasks)))
    chosen: dict[str, Any] = {}
    n_params = 0
    for j, task in enumerate(prep.tasks):
        rows_tr, rows_va = task_rows(prep, j)
        model = lgb.LGBMRegressor(
            n_estimators=int(s["n_estimators"]), learning_rate=float(s["learning_rate"]),
            num_leaves=int(s["num_leaves"]), min_child_samples=int(s["min_child_samples"]),
            random_state=seed, deterministic=True, force_row_wise=True, n_jobs=1, verbose=-1)
        fit_kw: dict[str, Any] = {}
        if len(rows_va):
            fit_kw = {"eval_X": (x[rows_va],), "eval_y": (y[rows_va, j],), "eval_metric": "l2",
                      "callbacks": [lgb.early_stopping(EARLY_STOPPING_ROUNDS, verbose=False)]}
        model.fit(x[rows_tr], y[rows_tr, j], **fit_kw)
        best = int(model.best_iteration_ or model.n_estimators_)
        chosen[task] = best
        pred[:, j] = model.predict(x[te], num_iteration=best)
        n_params += tree_nodes(model, best)
    return pred, n_params, chosen
