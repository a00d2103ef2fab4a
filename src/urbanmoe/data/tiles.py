"""Image tiles as one tensor for the image-representation baselines (Appendix A).

Every tile is read with :func:`urbanmoe.features.image.read_tile` (reflectance, Sentinel-2 band
order), resized to ``size`` x ``size`` with antialiasing, and stacked as (N, C, H, W) float32.
Per-band standardisation is left to the learner (its statistics must come from its own rows).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from urbanmoe.data.table import DataError, RegionDataset
from urbanmoe.features.image import read_tile


def load_tiles(ds: RegionDataset, size: int, progress: bool = True) -> np.ndarray:
    """(N, C, size, size) float32 tiles in table order; a one-line error without images."""
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
