"""Regression metrics of Section 3.3: R², RMSE and MAE per task and their average.

Computed on the log1p scale as the paper reports them, and on the original scale as well; rows
whose label is missing for a task are left out of that task's metrics.
"""

from __future__ import annotations

import numpy as np

METRICS = ("r2", "rmse", "mae")


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """R², RMSE and MAE of one task over its observed (non-NaN) rows."""
    keep = np.isfinite(y_true)
    t, p = y_true[keep], y_pred[keep]
    if len(t) == 0:
        return {m: float("nan") for m in METRICS}
    resid = t - p
    ss_tot = float(np.sum((t - t.mean()) ** 2))
    r2 = 1.0 - float(np.sum(resid**2)) / ss_tot if ss_tot > 0 else float("nan")
    rmse = float(np.sqrt(np.mean(resid**2)))
    return {"r2": r2, "rmse": rmse, "mae": float(np.mean(np.abs(resid)))}


def multitask_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, tasks: list[str]
) -> dict[str, dict[str, float]]:
    """Per-task metrics plus ``avg`` (the unweighted mean over tasks, as in Table 2)."""
    out = {task: regression_metrics(y_true[:, j], y_pred[:, j]) for j, task in enumerate(tasks)}
    out["avg"] = {m: float(np.nanmean([out[t][m] for t in tasks])) for m in METRICS}
    return out


def flatten(metrics: dict[str, dict[str, float]], prefix: str = "") -> dict[str, float]:
    """``{"carbon": {"r2": .8}}`` -> ``{"carbon_r2": .8}`` (the column names of the tables)."""
    return {f"{prefix}{task}_{m}": v for task, ms in metrics.items() for m, v in ms.items()}
