"""Spatial-lag features: the labels of each region's nearest *training* regions, without leakage.

Not part of the paper (its model has no such input); the spatial-context extension
(``spatial.*`` in the configuration, docs/spatial.md). On real cities neighbouring regions
share their labels (the label rasters are coarser than the regions), so "what do the nearest
labelled regions say" is a strong input. It is transductive: a region's features use the labels
of nearby training regions, and every table where it is on says so (``TRANSDUCTIVE_NOTE``).

Per task j, for every region i (train, validation or test alike):

* the candidates are the training regions whose label of task j is observed, except region i
  itself and, when ``groups`` is given, every region of i's own group ("group-out": under a
  spatial-block split a training region then sees its neighbourhood as a test region does, whose
  own block holds no training region);
* the k nearest candidates (Euclidean distance in km) give the distance-weighted mean of their
  log1p label, weights ``1 / max(d, min_km)``, their k labels in order of distance (so a model
  can weigh near and far neighbours itself, as a tuned kNN picks its k) and the k distances (as
  ``log1p(km)``).

So the features have ``T * (1 + 2k)`` columns: per task ``lag_<task>``, ``nb<m>_<task>`` and
``dist<m>_<task>`` for m = 1..k.
Only ``y_log[train]`` is ever read: validation and test labels cannot change them.
"""

from __future__ import annotations

import numpy as np

from urbanmoe.errors import DataError

TRANSDUCTIVE_NOTE = "transductive: uses labels of nearby training regions"


def lag_columns(tasks: list[str], k: int) -> list[str]:
    """Names of the ``T * (1 + 2k)`` lag feature columns, in order."""
    return [name for task in tasks
            for name in [f"lag_{task}", *(f"nb{m + 1}_{task}" for m in range(k)),
                         *(f"dist{m + 1}_{task}" for m in range(k))]]


def neighbours(xy: np.ndarray, candidates: np.ndarray, groups: np.ndarray | None,
                k: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, k) candidate rows and distances: the k nearest of ``candidates`` to every region,
    never the region itself nor (with ``groups``) a region of its own group."""
    # sklearn loads here, not at import: ~2 s saved in runs that never use it
    from sklearn.neighbors import NearestNeighbors

    n_excluded = 1
    if groups is not None:
        n_excluded = int(np.bincount(groups[candidates]).max())
    n_query = min(len(candidates), k + n_excluded)
    nn = NearestNeighbors(n_neighbors=n_query).fit(xy[candidates])
    dist, pos = nn.kneighbors(xy)  # (N, n_query), sorted by distance (ties: stable order)
    rows = candidates[pos]  # (N, n_query) table rows
    keep = rows != np.arange(len(xy))[:, None]
    if groups is not None:
        keep &= groups[rows] != groups[:, None]
    # the first k kept per row; the stable sort keeps distance order among the kept
    order = np.argsort(~keep, axis=1, kind="stable")[:, :k]
    ok = np.take_along_axis(keep, order, axis=1)
    if not ok.all():
        bad = int(np.flatnonzero(~ok.all(axis=1))[0])
        raise DataError(f"spatial lag: region row {bad} has fewer than {k} training neighbours "
                         "outside its own group; lower spatial.lag_k")
    return np.take_along_axis(rows, order, axis=1), np.take_along_axis(dist, order, axis=1)


def lag_features(xy_km: np.ndarray, y_log: np.ndarray, train: np.ndarray, k: int,
                 groups: np.ndarray | None = None, min_km: float = 0.25) -> np.ndarray:
    """(N, T * (1 + 2k)) spatial-lag features of every region (module docstring).

    ``xy_km`` (N, 2) projected coordinates in km; ``y_log`` (N, T) labels on the log1p scale,
    NaN where missing, of which only the rows ``train`` are read; ``groups`` (N,) block ids for
    group-out, or None (random split: each training region leaves out only itself).
    """
    xy = np.asarray(xy_km, dtype=np.float64)
    train = np.asarray(train, dtype=np.int64)
    y_train = np.full(y_log.shape, np.nan)
    y_train[train] = y_log[train]  # nothing outside the training rows is ever read
    out = []
    for j in range(y_log.shape[1]):
        candidates = train[np.isfinite(y_train[train, j])]
        if len(candidates) < k + 1:
            raise DataError(f"spatial lag: task column {j} has {len(candidates)} observed "
                             f"training labels; spatial.lag_k = {k} needs more")
        rows, dist = neighbours(xy, candidates, groups, k)
        w = 1.0 / np.maximum(dist, min_km)  # (N, k)
        labels = y_train[rows, j]  # (N, k)
        lag = (w * labels).sum(axis=1) / w.sum(axis=1)  # (N,)
        out += [lag[:, None], labels, np.log1p(dist)]
    return np.concatenate(out, axis=1).astype(np.float32)
