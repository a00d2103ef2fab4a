"""The ``location`` modality: a multi-scale encoding of where each region is (not in the paper).

UrbanMoE's only sense of place in the paper is the region embedding r of Eq. 1 (here a smooth
grid of ``model.region_cell_km`` cells, 8 km), far coarser than the few hundred metres over which
real labels vary. Location encoders give a network that sense (Space2Vec, Mai et al., ICLR 2020;
random Fourier features, Tancik et al., NeurIPS 2020); ``features.location`` configures one:

* the position is projected to kilometres around the city's centre (``data/geo.py``);
* ``scales`` wavelengths ``lambda_s`` run geometrically from ``min_km`` to ``max_km``. By
  default (null) both follow the city: the shortest is twice the median distance between
  neighbouring regions (the Nyquist limit of the regions' sampling: a shorter wave cannot be
  told apart from a longer one at these points, and only adds features to overfit), the
  longest is the city's extent (the longest side of its bounding box). So one rule serves a
  city of 500 m tiles and one of 5 km districts;
* ``encoding: sinusoid`` -- Space2Vec's "theory" encoding: for each wavelength, the position
  projected on three unit vectors 120 degrees apart, ``sin`` and ``cos`` of ``2 pi a_k . x /
  lambda_s`` (6 features per wavelength);
* ``encoding: rff`` -- random Fourier features: for each wavelength, 3 random directions and
  phases drawn with ``seed``, ``sin`` and ``cos`` of ``2 pi w . x / lambda_s + b`` (6 features
  per wavelength, the same width).

The result is (N, 6 x scales), standardised on the training rows like every modality
(``training/prepare.py``). It reads no label. ``docs/location.md`` has what was measured.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from urbanmoe.data.geo import km_points

ENCODINGS = ("sinusoid", "rff")
N_DIRECTIONS = 3


NYQUIST = 2.0  # the shortest wavelength, in median nearest-neighbour distances
MIN_SPACING_KM = 0.01  # coincident regions: spacing taken as at least 10 m


def spacing_km(xy_km: np.ndarray) -> float:
    """Median distance from each region to its nearest other region (km)."""
    if len(xy_km) < 2:
        return 1.0
    from scipy.spatial import cKDTree

    dist, _ = cKDTree(xy_km).query(xy_km, k=2)
    return max(float(np.median(dist[:, 1])), MIN_SPACING_KM)


def wavelengths(xy_km: np.ndarray, settings: Mapping[str, Any]) -> np.ndarray:
    """The ``scales`` wavelengths (km), geometric from ``min_km`` (None: ``NYQUIST`` x the
    median nearest-neighbour distance) to ``max_km`` (None: the longest side of the points'
    bounding box); at least twice ``min_km`` apart."""
    lo = settings.get("min_km")
    lo = NYQUIST * spacing_km(xy_km) if lo is None else float(lo)
    hi = settings.get("max_km")
    if hi is None:
        hi = float(np.ptp(xy_km, axis=0).max()) if len(xy_km) else 0.0
    return np.geomspace(lo, max(float(hi), 2.0 * lo), int(settings["scales"]))


def _directions(encoding: str, n_scales: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(scales, 3, 2) unit directions and (scales, 3) phases of the encoding."""
    if encoding == "sinusoid":
        angles = np.arange(N_DIRECTIONS) * 2 * np.pi / N_DIRECTIONS
        unit = np.stack([np.cos(angles), np.sin(angles)], axis=1)
        return np.broadcast_to(unit, (n_scales, N_DIRECTIONS, 2)), np.zeros((n_scales,
                                                                           N_DIRECTIONS))
    rng = np.random.default_rng(seed)
    angles = rng.uniform(0, 2 * np.pi, (n_scales, N_DIRECTIONS))
    phases = rng.uniform(0, 2 * np.pi, (n_scales, N_DIRECTIONS))
    return np.stack([np.cos(angles), np.sin(angles)], axis=2), phases


def encode_points(xy_km: np.ndarray, settings: Mapping[str, Any]) -> np.ndarray:
    """(N, 6 x scales) float32 encoding of points already in km (``features.location``)."""
    encoding = str(settings["encoding"])
    if encoding not in ENCODINGS:
        raise ValueError(f"features.location.encoding: {encoding!r} is not one of {ENCODINGS}")
    lam = wavelengths(xy_km, settings)
    units, phases = _directions(encoding, len(lam), int(settings["seed"]))
    centred = xy_km - xy_km.mean(axis=0) if len(xy_km) else xy_km
    # (N, scales, 3): the position along each direction, in cycles of each wavelength
    arg = 2 * np.pi * np.einsum("nc,skc->nsk", centred, units) / lam[None, :, None] + phases
    return np.concatenate([np.sin(arg), np.cos(arg)], axis=2).reshape(len(xy_km), -1).astype(
        np.float32)


def location_features(coords: np.ndarray, settings: Mapping[str, Any]) -> np.ndarray:
    """(N, 6 x scales) encoding of lat/lon degrees (``coords``, table order)."""
    return encode_points(km_points(coords), settings)
