"""Image tiles: one tile as reflectance (:func:`read_tile`), all of a dataset as one tensor.

:func:`read_tile` reads GeoTIFF, PNG or JPEG tiles with rasterio. Band order: three bands are
read as R, G, B; four or more as Sentinel-2 B02, B03, B04, B08 (blue, green, red, near infrared),
as the synthetic benchmark and the benchmark builder write them. Integer tiles are scaled to
[0, 1] reflectance (uint8 / 255, uint16 / 10000). Its header is checked before its pixels are
decoded (:func:`tile_header`: ``MIN_TILE_SIDE`` to ``MAX_TILE_SIDE`` px a side, 1, 3 or 4 to
``MAX_TILE_BANDS`` bands of a real number type, a PNG or JPEG not cut short), and
:func:`check_tiles` checks every tile's header before an encoder or baseline decodes any.

:func:`load_tiles` (the image-representation baselines of Appendix A) reads every tile, resizes
it to ``size`` x ``size`` with antialiasing, and stacks them as (N, C, H, W) float32, cached as
one ``.npy`` per dataset and size when given a cache folder (seven baselines read the same tiles).
Per-band standardisation is left to the learner (its statistics must come from its own rows).
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from tqdm.auto import tqdm

from urbanmoe.binaries import read_cached, read_npy
from urbanmoe.config import config_hash
from urbanmoe.data.table import DataError, RegionDataset
from urbanmoe.io import atomic_path, sha256_file

_SCALE = {np.dtype("uint8"): 255.0, np.dtype("uint16"): 10000.0}
# the header limits every tile is checked against before its pixels are decoded (docs/data.md,
# "Validation"): a side of at least the smallest size a tile is resized to (``synth.tile_size``
# and ``baselines.image_size`` are >= 8), at most MAX_TILE_SIDE (a 8192 x 8192 tile of four
# float32 bands is 1 GiB once read), and 1, 3 or 4..MAX_TILE_BANDS bands of a real number type
MIN_TILE_SIDE = 8
MAX_TILE_SIDE = 8192
MAX_TILE_BANDS = 16
TILE_DTYPES = frozenset({"uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64",
                         "int64", "float16", "float32", "float64"})
# a PNG ends with its IEND chunk, a JPEG with its end-of-image marker: without it the file was
# cut short (GDAL decodes a truncated PNG into garbage without a word)
_PNG_END = b"IEND\xaeB`\x82"
_JPEG_END = b"\xff\xd9"


@dataclass(frozen=True)
class TileHeader:
    """What a tile's header says: its size in pixels, band count and band dtypes."""

    width: int
    height: int
    count: int
    dtypes: tuple[str, ...]

    def describe(self) -> str:
        """``W x H px, C band(s), DTYPE`` for error messages."""
        return (f"{self.width} x {self.height} px, {self.count} band(s), "
                f"{'/'.join(sorted(set(self.dtypes)))}")


def _check_header(path: Path, src: Any) -> TileHeader:
    """The header of an open tile, refused in one line naming the tile and its size when it
    breaks the limits above (or is a PNG or JPEG cut short)."""
    head = TileHeader(int(src.width), int(src.height), int(src.count), tuple(src.dtypes))
    what = f"{path}: image tile of {head.describe()}"
    if min(head.width, head.height) < MIN_TILE_SIDE:
        raise DataError(f"{what}: smaller than {MIN_TILE_SIDE} px a side")
    if max(head.width, head.height) > MAX_TILE_SIDE:
        raise DataError(f"{what}: larger than {MAX_TILE_SIDE} px a side (MAX_TILE_SIDE); "
                        "cut it into smaller tiles or downsample it")
    if head.count == 2 or not 1 <= head.count <= MAX_TILE_BANDS:
        raise DataError(f"{what}: {head.count} bands; a tile has 1 (grey), 3 (R, G, B) or 4 to "
                        f"{MAX_TILE_BANDS} (B02, B03, B04, B08, ...)")
    bad = sorted(set(head.dtypes) - TILE_DTYPES)
    if bad:
        raise DataError(f"{what}: pixel type {bad[0]!r} is not a real number type (one of "
                        f"{sorted(TILE_DTYPES)})")
    driver = str(getattr(src, "driver", ""))
    end = {"PNG": _PNG_END, "JPEG": _JPEG_END}.get(driver)
    if end is not None:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - 64))
            if end not in f.read():
                raise DataError(f"{what}: truncated {driver} file (no end marker)")
    return head


def open_raster(path: Path, what: str = "image tile") -> Any:
    """``rasterio.open`` without the not-georeferenced warning (PNG and JPEG tiles), one line
    naming the file and ``what`` it should be for a file rasterio cannot open. Every raster the
    project reads (tiles, imagery and label rasters of ``build``) is opened here."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            return rasterio.open(path)
    except RasterioError as exc:
        why = " ".join(str(exc).replace(f"'{path}'", "the file").split())[:200]
        raise DataError(f"{path}: cannot read {what}: not an image rasterio reads ({why})"
                        ) from None




def tile_header(path: Path) -> TileHeader:
    """The checked header of one tile, read without decoding its pixels."""
    with open_raster(path) as src:
        return _check_header(path, src)


def check_tiles(paths: list[Path], progress: bool = False,
                label: str = "tiles") -> TileHeader | None:
    """Check every tile's header (:func:`tile_header`) before any is decoded, and that they all
    have the same band count; return the first one's (None without tiles). A bad tile at
    region 900 is then refused in seconds, not after 899 tiles were decoded."""
    first: TileHeader | None = None
    for path in tqdm(paths, desc=f"{label} headers", unit="tile", disable=not progress):
        head = tile_header(path)
        if first is None:
            first = head
        elif head.count != first.count:
            raise DataError(f"{path}: image tile of {head.describe()}: {head.count} bands, but "
                            f"the dataset's first tile ({paths[0]}) has {first.count}; the tiles "
                            "of one dataset share their band count")
    return first


def read_tile(path: Path) -> np.ndarray:
    """(C, H, W) float32 reflectance of one tile; C >= 3, ordered as the module docstring says.

    The header is checked (:func:`tile_header`'s limits) before the pixels are decoded; a file
    that fails to decode (truncated, corrupt) is one line naming it."""
    with open_raster(path) as src:
        head = _check_header(path, src)
        try:
            arr = src.read()
        except RasterioError as exc:
            raise DataError(f"{path}: image tile of {head.describe()}: cannot decode its pixels "
                            f"(truncated or corrupt?): {' '.join(str(exc).split())[:200]}"
                            ) from None
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise DataError(f"{path}: image tile of {head.describe()}: NaN or infinite pixel values")
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
    check_tiles(paths, progress, ds.name)
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
