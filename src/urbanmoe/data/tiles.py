"""Image tiles: one tile as reflectance (:func:`read_tile`), all of a dataset as one tensor.

:func:`read_tile` reads GeoTIFF, PNG or JPEG tiles with rasterio. Band order: three bands are
read as R, G, B; four or more as Sentinel-2 B02, B03, B04, B08 (blue, green, red, near infrared),
as the synthetic benchmark and the benchmark builder write them. Integer tiles are scaled to
[0, 1] reflectance (uint8 / 255, uint16 / 10000).

:func:`load_tiles` (the image-representation baselines of Appendix A) reads every tile, resizes
it to ``size`` x ``size`` with antialiasing, and stacks them as (N, C, H, W) float32, cached as
one ``.npy`` per dataset and size when given a cache folder (seven baselines read the same tiles).
Per-band standardisation is left to the learner (its statistics must come from its own rows).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning
from tqdm.auto import tqdm

from urbanmoe.binaries import read_cached, read_npy
from urbanmoe.config import config_hash
from urbanmoe.data.table import DataError, RegionDataset
from urbanmoe.io import atomic_path, sha256_file

_SCALE = {np.dtype("uint8"): 255.0, np.dtype("uint16"): 10000.0}


def read_tile(path: Path) -> np.ndarray:
    """(C, H, W) float32 reflectance of one tile; C >= 3, ordered as the module docstring says."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                arr = src.read()
    except rasterio.RasterioIOError as exc:
        raise DataError(f"{path}: cannot read image tile: {exc}") from exc
    scale = _SCALE.get(arr.dtype, 1.0)
    arr = arr.astype(np.float32) / scale
    if arr.shape[0] == 1:
        arr = np.repeat(arr, 3, axis=0)
    if arr.shape[0] == 3:  # R, G, B -> B, G, R as for Sentinel-2 bands
        arr = arr[::-1]
    return arr


def load_tiles(ds: RegionDataset, size: int, progress: bool = True,
               cache_dir: Path | str | None = None) -> np.ndarray:
    """(N, C, size, size) float32 tiles in table order; a one-line error without images.

    With ``cache_dir``, read from (or written to) ``tiles-<dataset>-<size>-<key>.npy`` there,
    keyed by the dataset folder and its table's bytes (tiles are named by the table; one
    replaced in place under the same name is not noticed).
    """
    if cache_dir is None:
        return _read_tiles(ds, size, progress)
    key = config_hash({"root": str(Path(ds.root).resolve()), "size": size,
                       "table": sha256_file(ds.table_path)})
    name = re.sub(r"[^\w.-]+", "_", ds.name)
    path = Path(cache_dir) / f"tiles-{name}-{size}-{key}.npy"
    cached = read_cached(path, lambda p: read_npy(p, "cached tiles", error=DataError))
    if cached is not None:
        return cached
    tiles = _read_tiles(ds, size, progress)
    with atomic_path(path, "cache") as tmp, open(tmp, "wb") as f:
        np.save(f, tiles)
    return tiles


def _read_tiles(ds: RegionDataset, size: int, progress: bool) -> np.ndarray:
    # torch loads here, not at import: reading one tile (the stats encoder, Figure 6) needs none
    import torch
    import torch.nn.functional as F

    paths = ds.image_paths
    if paths is None:
        raise DataError(f"{ds.table_path}: column 'image_path': missing; no image tiles")
    out = np.empty((len(paths), 0, size, size), dtype=np.float32)
    for i, path in enumerate(tqdm(paths, desc=f"{ds.name} tiles", unit="tile",
                                  disable=not progress)):
        tile = torch.from_numpy(np.ascontiguousarray(read_tile(path)))
        if i == 0:
            out = np.empty((len(paths), tile.shape[0], size, size), dtype=np.float32)
        elif tile.shape[0] != out.shape[1]:
            raise DataError(f"{path}: {tile.shape[0]} bands, but the dataset's first tile has "
                            f"{out.shape[1]}")
        if tuple(tile.shape[1:]) != (size, size):
            tile = F.interpolate(tile[None], size=(size, size), mode="bilinear",
                                 antialias=True, align_corners=False)[0]
        out[i] = tile.numpy()
    return out
