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
    constant = t.min() == t.max()  # exactly: the mean of equal floats may be off by an ulp
    r2 = float("nan") if constant or ss_tot <= 0 else 1.0 - float(np.sum(resid**2)) / ss_tot
    rmse = float(np.sqrt(np.mean(resid**2)))
    return {"r2": r2, "rmse": rmse, "mae": float(np.mean(np.abs(resid)))}


def multitask_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, tasks: list[str]
) -> dict[str, dict[str, float]]:
    """Per-task metrics plus ``avg`` (the unweighted mean over tasks, as in Table 2).

    A metric that is undefined for a task (R² of constant test labels) is NaN and left out of
    that average; ``covered_tasks`` names the tasks an average covers.
    """
    out = {task: regression_metrics(y_true[:, j], y_pred[:, j]) for j, task in enumerate(tasks)}
    out["avg"] = {}
    for m in METRICS:
        values = [out[t][m] for t in tasks if np.isfinite(out[t][m])]
        out["avg"][m] = float(np.mean(values)) if values else float("nan")
    return out


def covered_tasks(metrics: dict[str, dict[str, float]], tasks: list[str],
                  metric: str = "r2") -> list[str]:
    """The tasks whose ``metric`` is defined, i.e. those its ``avg`` covers."""
    return [t for t in tasks if np.isfinite(metrics[t][metric])]


def flatten(metrics: dict[str, dict[str, float]], prefix: str = "") -> dict[str, float]:
    """``{"carbon": {"r2": .8}}`` -> ``{"carbon_r2": .8}`` (the column names of the tables)."""
    return {f"{prefix}{task}_{m}": v for task, ms in metrics.items() for m, v in ms.items()}
