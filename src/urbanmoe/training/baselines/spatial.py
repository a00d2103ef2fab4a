"""kNN on coordinates (Table 2, Appendix A's spatial reference point): spatial label smoothing.

Two rows: ``knn`` with the fixed ``k = baselines.knn_k`` and uniform weights, and ``knn_tuned``
(the spatial baseline done well, spatial context extension) whose k (from
``baselines.knn_k_grid``) and weighting (uniform or inverse distance) are chosen per task on the
validation split.

Each test region gets the plain average of the labels of its ``k = baselines.knn_k`` nearest
training regions (uniform weights), per task over the training rows where that task is observed;
distances are Euclidean in km on a local equirectangular projection (``data.geo.project_km``). It
sees the coordinates only, no image, text or POI input: it measures how much of a target is
explained by where a region lies. Under a random split the training neighbours of a test region
are often adjacent to it, so its score shows how much labels leak between neighbours; under a
spatial block split that leak shrinks.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from urbanmoe.data.geo import project_km
from urbanmoe.errors import DataError
from urbanmoe.features.spatial_lag import neighbours
from urbanmoe.training.baselines.linear import task_rows
from urbanmoe.training.prepare import Prepared


def coords_km(prep: Prepared) -> np.ndarray:
    """(N, 2) region centres in km (east, north) around the median lat/lon of all regions.

    Coordinates are inputs, not labels, so centring on every region leaks nothing.
    """
    if prep.ds.coords is None:
        raise DataError(f"kNN on coordinates needs lat/lon; dataset {prep.ds.name} has none")
    ll = torch.as_tensor(np.asarray(prep.ds.coords, dtype=np.float64))  # (N, 2) lat, lon
    lat0, lon0 = (float(v) for v in ll.median(dim=0).values)
    x, y = project_km(ll, (lat0, lon0))
    return torch.stack([x, y], dim=1).numpy()


def fit_predict_knn(prep: Prepared, b: dict[str, Any], seed: int
                    ) -> tuple[np.ndarray, int, dict[str, Any]]:
    """Standardised test predictions (n_test, T) of kNN regression on coordinates, per task.

    ``n_params`` counts the stored values the predictor consults (it learns nothing): per task,
    each observed training row's two coordinates and its label, ``3 * n_train_observed``.
    ``chosen`` is ``{"k": k}``; a task with fewer than k observed training rows uses all of them
    and says so as ``chosen["k_<task>"]``. ``seed`` is unused: the result is exact (ties between
    equidistant neighbours are broken by scikit-learn's fixed order).
    """
    k = int(b["knn_k"])
    xy = coords_km(prep)
    y = prep.data.y.numpy()
    te = prep.split.test
    pred = np.empty((len(te), len(prep.tasks)))
    chosen: dict[str, Any] = {"k": k}
    n_params = 0
    for j, task in enumerate(prep.tasks):
        rows_tr, _ = task_rows(prep, j)
        k_task = min(k, len(rows_tr))
        if k_task != k:
            chosen[f"k_{task}"] = k_task
        pred[:, j] = _knn(xy, y[:, j], rows_tr, k_task, "uniform", te)
        n_params += 3 * len(rows_tr)
    return pred, n_params, chosen


WEIGHTINGS = ("uniform", "distance")


def _knn(xy: np.ndarray, y: np.ndarray, rows_tr: np.ndarray, k: int, weights: str,
         query: np.ndarray) -> np.ndarray:
    """kNN regression of ``y[rows_tr]`` at the ``query`` rows."""
    # sklearn loads here, not at import: ~2 s saved in runs that never use it
    from sklearn.neighbors import KNeighborsRegressor

    model = KNeighborsRegressor(n_neighbors=min(k, len(rows_tr)), weights=weights)
    return model.fit(xy[rows_tr], y[rows_tr]).predict(xy[query])


def knn_choices(prep: Prepared, b: dict[str, Any]) -> list[tuple[int, str]]:
    """Per task, the (k, weighting) of the tuned kNN: every k of ``b["knn_k_grid"]`` with
    uniform and inverse-distance weights is fitted on the observed training rows and scored by
    MSE on the observed validation rows; the best wins (ties: the first in grid order)."""
    xy = coords_km(prep)
    y = prep.data.y.numpy()
    va = prep.split.val
    observed_va = prep.data.observed.numpy()[va]
    out = []
    for j in range(len(prep.tasks)):
        rows_tr, _ = task_rows(prep, j)
        best: tuple[float, int, str] | None = None
        for k in b["knn_k_grid"]:
            for weights in WEIGHTINGS:
                pred_va = _knn(xy, y[:, j], rows_tr, int(k), weights, va)
                resid = (pred_va - y[va, j])[observed_va[:, j]]
                mse = float(np.mean(resid**2)) if len(resid) else 0.0
                if best is None or mse < best[0]:
                    best = (mse, min(int(k), len(rows_tr)), weights)
        assert best is not None
        out.append(best[1:])
    return out


def tuned_knn(prep: Prepared, b: dict[str, Any]
              ) -> tuple[np.ndarray, np.ndarray, dict[str, Any], int]:
    """Validation and test predictions (standardised) of the tuned kNN (``knn_choices``).

    Returns ``(val_pred, test_pred, chosen, n_params)`` with ``chosen[task] = "k=<k>, <weights>"``.
    """
    xy = coords_km(prep)
    y = prep.data.y.numpy()
    va, te = prep.split.val, prep.split.test
    val_pred = np.empty((len(va), len(prep.tasks)))
    test_pred = np.empty((len(te), len(prep.tasks)))
    chosen: dict[str, Any] = {}
    n_params = 0
    for j, (task, (k, weights)) in enumerate(zip(prep.tasks, knn_choices(prep, b), strict=True)):
        rows_tr, _ = task_rows(prep, j)
        val_pred[:, j] = _knn(xy, y[:, j], rows_tr, k, weights, va)
        test_pred[:, j] = _knn(xy, y[:, j], rows_tr, k, weights, te)
        chosen[task] = f"k={k}, {weights}"
        n_params += 3 * len(rows_tr)
    return val_pred, test_pred, chosen, n_params


def knn_everywhere(prep: Prepared, j: int, k: int, weights: str,
                   groups: np.ndarray | None) -> np.ndarray:
    """(N,) standardised kNN prediction of task ``j`` at every region from the observed training
    regions, never from the region itself nor (``groups``) its own group: out-of-fold for the
    training rows (``features/spatial_lag.neighbours``), the plain kNN for the others."""
    rows_tr, _ = task_rows(prep, j)
    k = min(k, len(rows_tr) - 1)
    rows, dist = neighbours(coords_km(prep), rows_tr, groups, k)
    w = np.ones_like(dist) if weights == "uniform" else 1.0 / np.maximum(dist, 1e-9)
    y = prep.data.y.numpy()[:, j]
    return (w * y[rows]).sum(axis=1) / w.sum(axis=1)


def fit_predict_knn_tuned(prep: Prepared, b: dict[str, Any], seed: int
                          ) -> tuple[np.ndarray, int, dict[str, Any]]:
    """The registry's closed-form entry of ``knn_tuned`` (``tuned_knn``'s test predictions).

    ``seed`` is unused: the fit is exact."""
    _, test_pred, chosen, n_params = tuned_knn(prep, b)
    return test_pred, n_params, chosen
