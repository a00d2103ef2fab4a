"""Offline image encoder: spectral and texture statistics of each tile (an offline e_i).

Tiles are read with :func:`urbanmoe.data.tiles.read_tile`: [0, 1] reflectance, bands B02, B03,
B04[, B08] (blue, green, red[, near infrared]).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from tqdm.auto import tqdm

from urbanmoe.data.table import DataError, RegionDataset
from urbanmoe.data.tiles import read_tile
from urbanmoe.features.base import register

_HIST_BINS = np.linspace(0.0, 0.5, 9)
CHUNK = 256


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a - b) / (a + b + 1e-6)


def _moments(x: np.ndarray) -> list[np.ndarray]:
    """Mean, std and 10/50/90th percentiles over the pixel axes of (B, ..., H, W)."""
    flat = x.reshape(*x.shape[:-2], -1)
    q = np.percentile(flat, [10, 50, 90], axis=-1)
    return [flat.mean(-1), flat.std(-1), *q]


def tile_statistics(tiles: np.ndarray) -> np.ndarray:
    """Features of a batch of same-sized tiles (B, C, H, W) -> (B, d).

    Per band: mean, std, percentiles; brightness histogram; gradient-magnitude texture and the
    share of variance at coarse scale (structure vs. speckle); with a NIR band, NDVI and NDWI
    statistics (vegetation and water).
    """
    bgr = tiles[:, :3]
    feats = [np.concatenate(_moments(tiles), axis=1)]
    bright = bgr.mean(axis=1)  # (B, H, W)
    hist = np.stack([np.histogram(b, bins=_HIST_BINS)[0] for b in bright], axis=0)
    feats.append(hist / bright[0].size)
    gy, gx = np.gradient(bright, axis=(1, 2))
    grad = np.hypot(gx, gy)
    h, w = bright.shape[1] // 2 * 2, bright.shape[2] // 2 * 2
    coarse = bright[:, :h, :w].reshape(len(bright), h // 2, 2, w // 2, 2).mean(axis=(2, 4))
    coarse_share = coarse.reshape(len(bright), -1).var(-1) / (
        bright.reshape(len(bright), -1).var(-1) + 1e-8
    )
    feats.append(np.stack([grad.mean((1, 2)), grad.std((1, 2)), coarse_share], axis=1))
    if tiles.shape[1] >= 4:
        green, red, nir = tiles[:, 1], tiles[:, 2], tiles[:, 3]
        ndvi, ndwi = _ratio(nir, red), _ratio(green, nir)
        feats.append(np.stack([*_moments(ndvi)[:3], (ndvi > 0.3).mean((1, 2)),
                               *_moments(ndwi)[:3], (ndwi > 0.0).mean((1, 2))], axis=1))
    return np.concatenate(feats, axis=1).astype(np.float32)


class StatsImageEncoder:
    """Offline e_i: :func:`tile_statistics` of every tile, batched by tile shape."""

    modality = "image"

    def identity(self) -> dict[str, Any]:
        return {"encoder": "stats", "version": 1}

    def encode(self, ds: RegionDataset, progress: bool = True) -> np.ndarray:
        paths = ds.image_paths
        if paths is None:
            raise DataError(f"{ds.table_path}: column 'image_path': missing; no image modality")
        out: list[np.ndarray | None] = [None] * len(paths)
        n_bands: int | None = None
        bar = tqdm(total=len(paths), desc=f"{ds.name} image stats", unit="tile",
                   disable=not progress)
        for start in range(0, len(paths), CHUNK):
            idx = range(start, min(start + CHUNK, len(paths)))
            tiles = [read_tile(paths[i]) for i in idx]
            by_shape: dict[tuple[int, ...], list[int]] = {}
            for k, t in enumerate(tiles):
                by_shape.setdefault(t.shape, []).append(k)
            bands = {t.shape[0] for t in tiles} | ({n_bands} if n_bands else set())
            if len(bands) > 1:
                raise DataError(f"{paths[idx[0]]}: image tiles of one dataset must share "
                                f"their band count (found {sorted(bands)})")
            n_bands = bands.pop()
            for group in by_shape.values():
                stats = tile_statistics(np.stack([tiles[k] for k in group]))
                for k, row in zip(group, stats, strict=True):
                    out[idx[k]] = row
            bar.update(len(idx))
        bar.close()
        return np.stack(out)  # type: ignore[arg-type]


@register("image", "stats")
def _build(settings: dict[str, Any]) -> StatsImageEncoder:
    return StatsImageEncoder()
