"""Region embeddings r ∈ R^{d_r} of Eq. 1 (Section 2.3.4; d_r = 6 in Section 3.3).

All three modules share one interface: ``forward(region_index (B,) long, coords (B, 2) float
lat/lon degrees) -> (B, d_r)``; each uses the argument it needs and accepts None for the other.

* ``LookupRegionEmbedding`` -- the paper's learnable per-region vector: an ``nn.Embedding`` over
  every region of the dataset, initialised N(0, 0.1²).  Regions never seen in training receive
  no gradient and keep their random init (a transductive component).
* ``GridRegionEmbedding`` -- one learnable vector per square cell of ``cell_km`` km of a grid laid
  on a local equirectangular projection; unseen regions share their cell's trained vector.
* ``FourierRegionEmbedding`` -- fixed random Fourier features of the projected coordinates
  (seeded frequencies, a buffer) followed by a learned Linear map to d_r; smooth in space.

``build_region_embedding(kind, ...)`` picks one by name ("lookup" | "grid" | "fourier").
Coordinates are inputs (region centres), never labels, so fitting the grid / projection centre
on all regions' coordinates leaks nothing.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from urbanmoe.data.geo import project_km

__all__ = [
    "FourierRegionEmbedding",
    "GridRegionEmbedding",
    "LookupRegionEmbedding",
    "REGION_EMBEDDING_KINDS",
    "build_region_embedding",
]

REGION_EMBEDDING_KINDS = ("lookup", "grid", "smooth_grid", "fourier")


def _check_coords(coords: torch.Tensor | None, who: str) -> torch.Tensor:
    if coords is None:
        raise ValueError(f"{who} needs region coordinates (batch key 'coords', lat/lon degrees)")
    if coords.dim() != 2 or coords.shape[-1] != 2:
        raise ValueError(f"{who}: coords must have shape (B, 2), got {tuple(coords.shape)}")
    return coords


def _as_coords_array(coords_all: np.ndarray | None, who: str) -> np.ndarray:
    if coords_all is None:
        raise ValueError(f"{who}.fit needs all regions' coordinates (lat/lon), got None")
    arr = np.asarray(coords_all, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] == 0:
        raise ValueError(f"{who}.fit: coords_all must have shape (K, 2), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{who}.fit: coords_all holds NaN or infinite values")
    return arr


class LookupRegionEmbedding(nn.Module):
    """Per-region learnable lookup (the paper's r): region_index (B,) -> (B, d_r)."""

    def __init__(self, n_regions: int, d_r: int = 6, init_std: float = 0.1) -> None:
        super().__init__()
        if n_regions < 1 or d_r < 1:
            raise ValueError("n_regions and d_r must be >= 1")
        self.n_regions, self.d_r = n_regions, d_r
        self.embedding = nn.Embedding(n_regions, d_r)  # (K, d_r)
        nn.init.normal_(self.embedding.weight, mean=0.0, std=init_std)

    def forward(
        self, region_index: torch.Tensor | None, coords: torch.Tensor | None = None
    ) -> torch.Tensor:
        """region_index (B,) long -> (B, d_r); coords are ignored."""
        if region_index is None:
            raise ValueError("LookupRegionEmbedding needs 'region_index' (B,) long")
        return self.embedding(region_index)  # (B, d_r)


class GridRegionEmbedding(nn.Module):
    """A learnable vector per ``cell_km`` x ``cell_km`` grid cell; coords (B, 2) -> (B, d_r).

    (lat0, lon0) is the grid's south-west corner and the projection's origin; cells are
    row-major over (n_rows northward, n_cols eastward); points outside are clamped to the grid.
    """

    def __init__(
        self,
        d_r: int,
        lat0: float,
        lon0: float,
        cell_km: float,
        n_rows: int,
        n_cols: int,
        init_std: float = 0.1,
    ) -> None:
        super().__init__()
        if d_r < 1 or n_rows < 1 or n_cols < 1 or cell_km <= 0:
            raise ValueError("d_r, n_rows, n_cols must be >= 1 and cell_km > 0")
        self.d_r, self.cell_km, self.n_rows, self.n_cols = d_r, float(cell_km), n_rows, n_cols
        self.lat0, self.lon0 = float(lat0), float(lon0)
        self.embedding = nn.Embedding(n_rows * n_cols, d_r)  # (n_rows·n_cols, d_r)
        nn.init.normal_(self.embedding.weight, mean=0.0, std=init_std)

    @classmethod
    def fit(
        cls, coords_all: np.ndarray, d_r: int = 6, cell_km: float = 5.0, **kwargs: Any
    ) -> GridRegionEmbedding:
        """Grid covering every region: origin = (min lat, min lon), shape from the extent."""
        arr = _as_coords_array(coords_all, cls.__name__)
        lat0, lon0 = float(arr[:, 0].min()), float(arr[:, 1].min())
        x, y = project_km(torch.from_numpy(arr), (lat0, lon0))
        n_cols = int(math.floor(float(x.max()) / cell_km)) + 1
        n_rows = int(math.floor(float(y.max()) / cell_km)) + 1
        return cls(d_r, lat0, lon0, cell_km, n_rows, n_cols, **kwargs)

    def cell_index(self, coords: torch.Tensor) -> torch.Tensor:
        """coords (B, 2) lat/lon -> flat cell index (B,) long, clamped to the grid."""
        x, y = project_km(coords.to(torch.float64), (self.lat0, self.lon0))  # (B,), (B,)
        col = torch.floor(x / self.cell_km).long().clamp(0, self.n_cols - 1)  # (B,)
        row = torch.floor(y / self.cell_km).long().clamp(0, self.n_rows - 1)  # (B,)
        return row * self.n_cols + col  # (B,)

    def forward(
        self, region_index: torch.Tensor | None, coords: torch.Tensor | None
    ) -> torch.Tensor:
        """coords (B, 2) -> (B, d_r); region_index is ignored."""
        coords = _check_coords(coords, type(self).__name__)
        return self.embedding(self.cell_index(coords))  # (B, d_r)


class SmoothGridRegionEmbedding(GridRegionEmbedding):
    """Learnable vectors at the nodes of a ``cell_km`` grid, bilinearly interpolated.

    Like :class:`GridRegionEmbedding` but continuous in space: a region's r mixes the four
    nodes around it by distance, so neighbouring regions get similar vectors and a node is
    trained by every region in the four cells that touch it.
    """

    def __init__(self, d_r: int, lat0: float, lon0: float, cell_km: float, n_rows: int,
                 n_cols: int, init_std: float = 0.1) -> None:
        super().__init__(d_r, lat0, lon0, cell_km, n_rows + 1, n_cols + 1, init_std)

    def forward(
        self, region_index: torch.Tensor | None, coords: torch.Tensor | None
    ) -> torch.Tensor:
        """coords (B, 2) -> (B, d_r) by bilinear interpolation of the four surrounding nodes."""
        coords = _check_coords(coords, type(self).__name__)
        x, y = project_km(coords.to(torch.float64), (self.lat0, self.lon0))  # (B,), (B,)
        gx = (x / self.cell_km).clamp(0, self.n_cols - 1 - 1e-9)  # (B,) node units
        gy = (y / self.cell_km).clamp(0, self.n_rows - 1 - 1e-9)
        c0, r0 = gx.floor().long(), gy.floor().long()
        c1 = (c0 + 1).clamp(max=self.n_cols - 1)
        r1 = (r0 + 1).clamp(max=self.n_rows - 1)
        fx = (gx - c0).to(self.embedding.weight.dtype).unsqueeze(-1)  # (B, 1)
        fy = (gy - r0).to(self.embedding.weight.dtype).unsqueeze(-1)
        e = self.embedding
        return ((1 - fy) * ((1 - fx) * e(r0 * self.n_cols + c0) + fx * e(r0 * self.n_cols + c1))
                + fy * ((1 - fx) * e(r1 * self.n_cols + c0) + fx * e(r1 * self.n_cols + c1)))

    def extra_repr(self) -> str:
        return (
            f"d_r={self.d_r}, lat0={self.lat0:.5f}, lon0={self.lon0:.5f}, "
            f"cell_km={self.cell_km}, n_rows={self.n_rows}, n_cols={self.n_cols}"
        )


class FourierRegionEmbedding(nn.Module):
    """Random Fourier features of projected lat/lon -> Linear -> (B, d_r).

    u = (x_km, y_km) / scale_km around ``center``; features [sin 2π uBᵀ, cos 2π uBᵀ] with B
    (n_frequencies, 2) ~ N(0, 1) drawn from ``torch.Generator().manual_seed(seed)`` (a buffer,
    fixed); a frequency of norm 1 has a wavelength of ``scale_km``.
    """

    def __init__(
        self,
        d_r: int = 6,
        n_frequencies: int = 16,
        scale_km: float = 10.0,
        center: tuple[float, float] = (0.0, 0.0),
        seed: int = 0,
    ) -> None:
        super().__init__()
        if d_r < 1 or n_frequencies < 1 or scale_km <= 0:
            raise ValueError("d_r and n_frequencies must be >= 1 and scale_km > 0")
        self.d_r, self.n_frequencies, self.scale_km = d_r, n_frequencies, float(scale_km)
        self.center = (float(center[0]), float(center[1]))
        self.seed = seed
        gen = torch.Generator().manual_seed(seed)
        freqs = torch.randn(n_frequencies, 2, generator=gen)  # (F, 2)
        self.register_buffer("frequencies", freqs)
        self.linear = nn.Linear(2 * n_frequencies, d_r)  # (2F -> d_r)

    @classmethod
    def fit(
        cls,
        coords_all: np.ndarray,
        d_r: int = 6,
        n_frequencies: int = 16,
        scale_km: float = 10.0,
        seed: int = 0,
    ) -> FourierRegionEmbedding:
        """Projection centred on the middle of all regions' bounding box."""
        arr = _as_coords_array(coords_all, cls.__name__)
        lo, hi = arr.min(axis=0), arr.max(axis=0)
        center = (float((lo[0] + hi[0]) / 2), float((lo[1] + hi[1]) / 2))
        return cls(d_r, n_frequencies, scale_km, center, seed)

    def features(self, coords: torch.Tensor) -> torch.Tensor:
        """coords (B, 2) -> Fourier features (B, 2F)."""
        # project in >= float32 (degrees in half precision would be ~1 km coarse)
        dtype = torch.promote_types(coords.dtype, torch.float32)
        x, y = project_km(coords.to(dtype), self.center)  # (B,), (B,)
        u = torch.stack((x, y), dim=-1) / self.scale_km  # (B, 2)
        phase = 2.0 * math.pi * (u @ self.frequencies.to(dtype).T)  # (B, F)
        feats = torch.cat((torch.sin(phase), torch.cos(phase)), dim=-1)  # (B, 2F)
        return feats.to(self.linear.weight.dtype)

    def forward(
        self, region_index: torch.Tensor | None, coords: torch.Tensor | None
    ) -> torch.Tensor:
        """coords (B, 2) -> (B, d_r); region_index is ignored."""
        coords = _check_coords(coords, type(self).__name__)
        return self.linear(self.features(coords))  # (B, d_r)

    def extra_repr(self) -> str:
        return (
            f"d_r={self.d_r}, n_frequencies={self.n_frequencies}, scale_km={self.scale_km}, "
            f"center=({self.center[0]:.5f}, {self.center[1]:.5f}), seed={self.seed}"
        )


def build_region_embedding(
    kind: str,
    d_r: int,
    n_regions: int,
    coords_all: np.ndarray | None = None,
    **opts: Any,
) -> nn.Module:
    """Region embedding by name: "lookup" (n_regions), "grid" / "fourier" (need coords_all).

    ``opts`` go to the constructor (lookup) or ``fit`` (grid: cell_km, init_std; fourier:
    n_frequencies, scale_km, seed).
    """
    if kind == "lookup":
        return LookupRegionEmbedding(n_regions, d_r, **opts)
    if kind in ("grid", "smooth_grid", "fourier"):
        if coords_all is None:
            raise ValueError(
                f"region embedding {kind!r} needs region coordinates (lat/lon columns in the "
                "region table); use kind='lookup' for a dataset without coordinates"
            )
        cls = {"grid": GridRegionEmbedding, "smooth_grid": SmoothGridRegionEmbedding,
               "fourier": FourierRegionEmbedding}[kind]
        return cls.fit(coords_all, d_r, **opts)
    raise ValueError(f"unknown region embedding {kind!r}; choose one of {REGION_EMBEDDING_KINDS}")
