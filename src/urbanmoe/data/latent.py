"""Latent urban factors of the synthetic benchmark: the region grid and its random fields.

A city is a regular grid of cells inside its bounding box; the regions are the ``N`` cells kept
by an irregular, seeded outline. Every latent factor is a spatially autocorrelated Gaussian
random field (white noise smoothed with :func:`scipy.ndimage.gaussian_filter`) at its own
length scale, some combined with an urban-core radial trend. The factors drive everything
observable (image land cover, POIs, hence text) and the targets; one of them (``location``)
is seen by no modality, so that knowing where a region lies helps, as on real cities.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

FACTOR_NAMES: tuple[str, ...] = (
    "built",  # built-up density, with the urban-core radial trend
    "commerce",  # commercial intensity (shops, dining, offices)
    "industry",  # industrial / bare land, peaks at the urban fringe
    "green",  # vegetation
    "residential",  # housing
    "water",  # water fraction of the cell, in [0, 1] (mask-like)
    "urbanity",  # smooth 0..1 transform of built density
    "hidden_carbon",  # point sources of emissions (power plants, heavy industry)
    "hidden_population",  # housing height / household size
    "hidden_light",  # street lighting and road intensity
    "location",  # smooth regional factor that no modality shows
)
"""Names of the latent factors; all are standardised fields except ``water`` and ``urbanity``."""


SCALES: dict[str, float] = {
    "core_weight": 0.9,  # weight of the radial urban-core trend in built density
    "built": 0.8,
    "commerce": 0.6,
    "industry": 1.2,
    "green": 1.2,
    "residential": 0.7,
    "water": 4.0,
    "hidden_carbon": 0.6,
    "hidden_population": 0.7,
    "hidden_light": 0.7,
    "location": 8.0,
}
"""Smoothing length scale (grid cells) of each factor's own random field, before the
settings' ``length_scale`` multiplier; short scales vary from cell to cell, so neighbours
predict them poorly and the modalities must be read."""


@dataclass(frozen=True)
class Grid:
    """The region grid of one city: ``rows x cols`` cells, of which ``keep`` are regions."""

    rows: int
    cols: int
    row: np.ndarray  # (N,) row index of each region (0 = north)
    col: np.ndarray  # (N,) column index of each region (0 = west)
    lat: np.ndarray  # (N,) cell-centre latitude
    lon: np.ndarray  # (N,) cell-centre longitude
    dlat: float  # cell height in degrees
    dlon: float  # cell width in degrees


def standardise(x: np.ndarray) -> np.ndarray:
    """Return ``x`` shifted and scaled to mean 0 and standard deviation 1."""
    sd = float(x.std())
    return (x - x.mean()) / (sd if sd > 0 else 1.0)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function."""
    return 1.0 / (1.0 + np.exp(-x))


def softplus(x: np.ndarray, beta: float = 1.0) -> np.ndarray:
    """Smooth ``max(x, 0)``: ``log(1 + exp(beta x)) / beta``, numerically stable."""
    return np.logaddexp(0.0, beta * x) / beta


def gaussian_field(rng: np.random.Generator, shape: tuple[int, ...], scale: float) -> np.ndarray:
    """Standardised Gaussian random field: white noise smoothed at ``scale`` cells (per axis)."""
    field = gaussian_filter(rng.standard_normal(shape), sigma=scale, mode="reflect")
    return standardise(field)


def make_grid(
    bbox: tuple[float, float, float, float],
    n_regions: int,
    slack: float,
    rng: np.random.Generator,
) -> Grid:
    """Lay ``n_regions`` cells on a regular grid over ``bbox`` (min_lat, min_lon, max_lat, max_lon).

    The grid has the bounding box's ground aspect ratio (east-west extent shrunk by the cosine
    of the mid latitude, so cells are roughly square on the ground) and ``rows * cols >=
    n_regions * slack`` cells. The regions are the ``n_regions`` cells with the lowest score
    "elliptical distance from the centre + smooth noise", so the city has an irregular,
    compact outline. Regions are ordered row-major (north to south, west to east).
    """
    lat0, lon0, lat1, lon1 = bbox
    height = lat1 - lat0
    width = (lon1 - lon0) * math.cos(math.radians(0.5 * (lat0 + lat1)))
    n_cells = max(n_regions * slack, n_regions)
    rows = max(1, math.ceil(math.sqrt(n_cells * height / width)))
    cols = max(1, math.ceil(n_cells / rows))
    ii, jj = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    dist = np.hypot((ii + 0.5) / rows - 0.5, (jj + 0.5) / cols - 0.5) * 2.0
    outline = gaussian_field(rng, (rows, cols), scale=0.08 * min(rows, cols))
    score = (dist + 0.18 * outline).ravel()
    kept = np.sort(np.argsort(score, kind="stable")[:n_regions])
    row, col = np.divmod(kept, cols)
    dlat, dlon = height / rows, (lon1 - lon0) / cols
    return Grid(
        rows=rows,
        cols=cols,
        row=row,
        col=col,
        lat=lat1 - (row + 0.5) * dlat,
        lon=lon0 + (col + 0.5) * dlon,
        dlat=dlat,
        dlon=dlon,
    )


def _urban_core(grid: Grid, n_centres: int, rng: np.random.Generator) -> np.ndarray:
    """Radial urban-core trend on the full grid: max of exponential decays around centres.

    The main centre sits near the middle of the kept regions; ``n_centres - 1`` sub-centres
    are seeded at kept cells, weaker and smaller.
    """
    rows, cols = grid.rows, grid.cols
    size = min(rows, cols)
    ii, jj = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    ci = grid.row.mean() + rng.normal(0.0, 0.06) * rows
    cj = grid.col.mean() + rng.normal(0.0, 0.06) * cols
    core = np.exp(-np.hypot(ii - ci, jj - cj) / (0.16 * size))
    for _ in range(n_centres - 1):
        k = rng.integers(len(grid.row))
        amp, radius = rng.uniform(0.45, 0.8), rng.uniform(0.05, 0.09) * size
        dist = np.hypot(ii - grid.row[k], jj - grid.col[k])
        core = np.maximum(core, amp * np.exp(-dist / radius))
    return core


def make_factors(
    grid: Grid,
    *,
    n_centres: int,
    water_fraction: float,
    coast: tuple[float, float],
    length_scale: float,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Draw the latent factors of :data:`FACTOR_NAMES` on the grid; return them per region.

    ``length_scale`` multiplies every field's smoothing scale (in cells). ``coast`` is the
    (north, east) direction and strength of a sea-ward trend in the water field; about
    ``water_fraction`` of the regions end up mostly water (soft-edged mask).
    """
    shape = (grid.rows, grid.cols)
    at = (grid.row, grid.col)

    def field(scale: float) -> np.ndarray:
        return gaussian_field(rng, shape, scale * length_scale)[at]

    core = standardise(_urban_core(grid, n_centres, rng)[at])
    built = standardise(SCALES["core_weight"] * core + field(SCALES["built"]))
    urbanity = sigmoid(1.7 * (built - 0.2))

    ii, jj = np.meshgrid(np.arange(grid.rows), np.arange(grid.cols), indexing="ij")
    ramp = coast[0] * (1.0 - 2.0 * ii / max(grid.rows - 1, 1))  # +1 north .. -1 south
    ramp = ramp + coast[1] * (2.0 * jj / max(grid.cols - 1, 1) - 1.0)  # -1 west .. +1 east
    wet = field(SCALES["water"]) + ramp[at] - 0.4 * core
    if water_fraction > 0:
        threshold = np.quantile(wet, 1.0 - water_fraction)
        water = sigmoid((wet - threshold) / 0.12)
    else:
        water = np.zeros_like(wet)

    return {
        "built": built,
        "commerce": standardise(0.8 * built + field(SCALES["commerce"])),
        "industry": standardise(field(SCALES["industry"]) - 0.5 * (built - 0.3) ** 2),
        "green": standardise(field(SCALES["green"]) - 0.9 * built),
        "residential": standardise(0.6 * built + field(SCALES["residential"])),
        "water": water,
        "urbanity": urbanity,
        "hidden_carbon": field(SCALES["hidden_carbon"]),
        "hidden_population": field(SCALES["hidden_population"]),
        "hidden_light": field(SCALES["hidden_light"]),
        "location": field(SCALES["location"]),
    }


def rook_pairs(row: np.ndarray, col: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i, j), i < j, of regions that share a grid edge (rook neighbours)."""
    index = {(int(r), int(c)): k for k, (r, c) in enumerate(zip(row, col, strict=True))}
    first, second = [], []
    for k, (r, c) in enumerate(zip(row, col, strict=True)):
        for nb in ((int(r) + 1, int(c)), (int(r), int(c) + 1)):
            j = index.get(nb)
            if j is not None:
                first.append(k)
                second.append(j)
    return np.asarray(first, dtype=np.int64), np.asarray(second, dtype=np.int64)


def morans_i(values: np.ndarray, row: np.ndarray, col: np.ndarray) -> float:
    """Moran's I of ``values`` over the grid with binary rook-contiguity weights."""
    i, j = rook_pairs(row, col)
    z = values - values.mean()
    n, w_sum = len(values), 2.0 * len(i)
    return float(n / w_sum * (2.0 * np.sum(z[i] * z[j])) / np.sum(z * z))
