"""The one geographic projection of the project: lat/lon degrees to kilometres.

A local equirectangular projection (x east, y north) is exact enough for the distances that
matter here (regions, spatial blocks, grid cells within one city: tens of kilometres, where its
error is far below a patch). Splits, spatial-lag features, the data report, the region
embeddings (``models/region.py``) and the coordinate baselines all use this one function.
"""

from __future__ import annotations

import math
from typing import TypeVar

import numpy as np

EARTH_RADIUS_KM = 6371.0088
KM_PER_DEGREE = math.pi / 180.0 * EARTH_RADIUS_KM

A = TypeVar("A")  # a numpy array or a torch tensor


def project_km(coords: A, origin: tuple[float, float] | None = None) -> tuple[A, A]:
    """coords (..., 2) lat/lon degrees -> (x_km east, y_km north), each (...).

    Around ``origin`` (lat0, lon0), by default the mean position. Arithmetic only, so it takes
    numpy arrays and torch tensors alike and keeps their dtype and device.
    """
    lat, lon = coords[..., 0], coords[..., 1]  # type: ignore[index]
    lat0, lon0 = origin if origin is not None else (float(lat.mean()), float(lon.mean()))
    x = (lon - lon0) * (KM_PER_DEGREE * math.cos(math.radians(lat0)))
    y = (lat - lat0) * KM_PER_DEGREE
    return x, y


def km_points(coords: np.ndarray, origin: tuple[float, float] | None = None) -> np.ndarray:
    """(N, 2) lat/lon degrees -> (N, 2) x/y km (``project_km`` stacked, for distances)."""
    return np.stack(project_km(np.asarray(coords, dtype=np.float64), origin), axis=1)
