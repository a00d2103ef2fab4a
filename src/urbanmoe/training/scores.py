"""One task's scores of predictions against labels: R², RMSE and MAE (Section 3.3).

The one computation behind the choices made on validation (``training/auto.py`` picks a
candidate by its R²) and the metrics a run reports (``evaluation/metrics.py``), so that a
candidate is chosen by exactly the R² the tables show. Rows whose label is missing (NaN) are
left out.
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
