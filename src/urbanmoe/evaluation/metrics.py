"""Regression metrics of Section 3.3: R², RMSE and MAE per task and their average.

Computed on the log1p scale as the paper reports them, and on the original scale as well; rows
whose label is missing for a task are left out of that task's metrics. One task's metrics
(``regression_metrics``) are those a model is chosen by on validation (``training/scores.py``).
"""

from __future__ import annotations

import numpy as np

from urbanmoe.training.scores import METRICS, regression_metrics

__all__ = ["METRICS", "covered_tasks", "flatten", "multitask_metrics", "regression_metrics"]


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
