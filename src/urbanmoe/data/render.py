"""Sentinel-2-like image tiles of the synthetic benchmark, rendered from the latent factors.

Each region's tile is a 4-band GeoTIFF (B02 blue, B03 green, B04 red, B08 NIR; uint16
reflectance x 10000) in EPSG:4326 covering the region's grid cell. Every pixel gets one land
cover class; the class proportions follow the region's factors (:func:`land_cover`) and the
pixels are placed with sub-tile spatial texture (water blobs, road lines, vegetation and bare
patches, built-up elsewhere). Pixels take the class spectrum with per-tile illumination, haze
and vegetation vigour, per-pixel noise and slight blur. All of it is vectorised over tiles.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import Affine
from scipy.ndimage import gaussian_filter
from tqdm import tqdm

from urbanmoe.data.latent import Grid

LAND_COVER: tuple[str, ...] = ("water", "road", "vegetation", "bare", "built")
"""Land-cover classes, in the order their pixels are placed (built-up takes the rest)."""

BANDS: tuple[str, ...] = ("B02", "B03", "B04", "B08")
"""Sentinel-2 bands of the tiles: blue, green, red, near infrared."""

SPECTRA = np.array(
    [
        [650.0, 600.0, 400.0, 250.0],  # water: dark, NIR absorbed
        [1100.0, 1150.0, 1200.0, 1450.0],  # road / asphalt
        [350.0, 650.0, 400.0, 3400.0],  # vegetation: red edge, bright NIR
        [1400.0, 1650.0, 1950.0, 2600.0],  # bare soil / industrial yards
        [1250.0, 1250.0, 1350.0, 1800.0],  # built-up roofs and concrete
    ]
)
"""Mean surface reflectance x 10000 of each land-cover class in B02, B03, B04, B08."""

BATCH = 256  # tiles rendered at once (bounds memory at large tile sizes)


def land_cover(factors: Mapping[str, np.ndarray]) -> np.ndarray:
    """Per-region land-cover proportions, shape (N, 5) in :data:`LAND_COVER` order, rows sum 1.

    Water takes the region's water fraction; the land share is split by a softmax of
    factor-driven logits (roads follow built density and street lighting, vegetation the
    green factor, bare land the industry factor, built-up density and housing).
    """
    b, g = factors["built"], factors["green"]
    logits = np.stack(
        [
            -1.6 + 0.5 * b + 0.5 * factors["hidden_light"],
            0.3 + 1.1 * g - 0.9 * b,
            -0.8 + 0.9 * factors["industry"] - 0.3 * b,
            -0.2 + 1.3 * b + 0.3 * factors["residential"],
        ],
        axis=1,
    )
    land = np.exp(logits - logits.max(axis=1, keepdims=True))
    land /= land.sum(axis=1, keepdims=True)
    water = factors["water"][:, None]
    return np.concatenate([water, (1.0 - water) * land], axis=1)


def _pixel_counts(props: np.ndarray, n_pixels: int) -> np.ndarray:
    """Integer pixel counts per class (rows sum to ``n_pixels``) by cumulative rounding."""
    cum = np.rint(np.cumsum(props, axis=1) * n_pixels).astype(np.int64)
    cum[:, -1] = n_pixels
    return np.diff(cum, axis=1, prepend=0)


def _smooth_noise(rng: np.random.Generator, n: int, size: int, scale: float) -> np.ndarray:
    """(n, size, size) white noise smoothed spatially within each tile at ``scale`` pixels."""
    return gaussian_filter(rng.standard_normal((n, size, size)), sigma=(0, scale, scale))


def _road_distance(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """(n, size, size) distance to the nearest of two horizontal and two vertical road lines."""
    pos = np.arange(size, dtype=np.float64)
    rows = rng.uniform(0, size, (n, 2))
    cols = rng.uniform(0, size, (n, 2))
    d_row = np.abs(pos[None, :, None] - rows[:, None, :]).min(axis=2)  # (n, size)
    d_col = np.abs(pos[None, :, None] - cols[:, None, :]).min(axis=2)
    return np.minimum(d_row[:, :, None], d_col[:, None, :])


def classify_pixels(props: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Draw each tile's land-cover map, shape (n, size, size) of class indices.

    Classes are placed in :data:`LAND_COVER` order: each takes its share of the still free
    pixels where its texture is lowest (large smooth blobs for water, distance to random
    lines for roads, smaller blobs for vegetation and bare land); built-up fills the rest.
    """
    n, n_pix = props.shape[0], size * size
    counts = _pixel_counts(props, n_pix)
    textures = [
        _smooth_noise(rng, n, size, size / 5.0),
        _road_distance(rng, n, size) + 0.3 * rng.standard_normal((n, size, size)),
        _smooth_noise(rng, n, size, size / 8.0),
        _smooth_noise(rng, n, size, size / 10.0),
    ]
    classes = np.full((n, n_pix), len(LAND_COVER) - 1, dtype=np.int64)
    free = np.ones((n, n_pix), dtype=bool)
    ranks = np.arange(n_pix)[None, :]
    for k, texture in enumerate(textures):
        key = np.where(free, texture.reshape(n, n_pix), np.inf)
        order = np.argsort(key, axis=1, kind="stable")
        take = np.zeros((n, n_pix), dtype=bool)
        np.put_along_axis(take, order, ranks < counts[:, k : k + 1], axis=1)
        classes[take] = k
        free &= ~take
    return classes.reshape(n, size, size)


def render_reflectance(
    classes: np.ndarray,
    vigour: np.ndarray,
    density: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Reflectance tiles (n, 4, size, size) uint16 from land-cover maps.

    Per tile: vegetation NIR scales with ``vigour``, built-up brightness with ``density``,
    a multiplicative illumination factor and an additive blue-heavy haze; per pixel 5 %
    multiplicative noise; then a 0.6-pixel blur to mix class edges as a 10 m sensor would.
    """
    n = classes.shape[0]
    refl = SPECTRA[classes]  # (n, s, s, 4)
    refl = np.moveaxis(refl, -1, 1).copy()  # (n, 4, s, s)
    veg = (classes == LAND_COVER.index("vegetation"))[:, None]
    built = (classes == LAND_COVER.index("built"))[:, None]
    nir_gain = np.ones((n, 4, 1, 1))
    nir_gain[:, 3, 0, 0] = np.clip(1.0 + 0.12 * vigour, 0.6, 1.4)
    refl = np.where(veg, refl * nir_gain, refl)
    bright = np.clip(1.0 + 0.08 * density, 0.75, 1.3)[:, None, None, None]
    refl = np.where(built, refl * bright, refl)
    refl *= 1.0 + 0.05 * rng.standard_normal(refl.shape)
    refl = gaussian_filter(refl, sigma=(0, 0, 0.6, 0.6))
    illumination = 1.0 + 0.04 * rng.standard_normal((n, 1, 1, 1))
    haze = rng.uniform(0.0, 150.0, (n, 1, 1, 1)) * np.array([1.0, 0.6, 0.3, 0.1])[:, None, None]
    refl = refl * illumination + haze
    return np.clip(np.rint(refl), 1, 65535).astype(np.uint16)


def write_tile(path: Path, data: np.ndarray, bounds: tuple[float, float, float, float]) -> None:
    """Write one (4, size, size) uint16 tile as a GeoTIFF in EPSG:4326 over (W, S, E, N)."""
    _, height, width = data.shape
    west, south, east, north = bounds
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        height=height,
        width=width,
        count=len(BANDS),
        dtype="uint16",
        crs="EPSG:4326",
        transform=Affine(
            (east - west) / width, 0.0, west, 0.0, -(north - south) / height, north
        ),
    ) as dst:
        dst.write(data)
        for i, band in enumerate(BANDS, start=1):
            dst.set_band_description(i, band)


def _batches(n: int) -> Iterator[slice]:
    """Consecutive slices of at most :data:`BATCH` items covering ``range(n)``."""
    for start in range(0, n, BATCH):
        yield slice(start, min(start + BATCH, n))


def render_tiles(
    tiles_dir: Path,
    region_ids: np.ndarray,
    grid: Grid,
    factors: Mapping[str, np.ndarray],
    tile_size: int,
    rng: np.random.Generator,
    progress: bool = True,
    label: str = "",
) -> list[str]:
    """Render and write every region's tile to ``tiles_dir/<region_id>.tif``.

    Returns the tile paths relative to the dataset folder (``tiles/<region_id>.tif``), in
    region order. Deterministic given ``rng``'s state and ``tile_size``. ``label`` names the
    progress bar (shown when ``progress``).
    """
    tiles_dir.mkdir(parents=True, exist_ok=True)
    props = land_cover(factors)
    paths: list[str] = []
    bar = tqdm(total=len(region_ids), desc=f"tiles {label}".strip(), unit="tile",
               disable=not progress, leave=False)
    with bar:
        for part in _batches(len(region_ids)):
            classes = classify_pixels(props[part], tile_size, rng)
            data = render_reflectance(
                classes, factors["green"][part], factors["built"][part], rng
            )
            for k, idx in enumerate(range(part.start, part.stop)):
                west = grid.lon[idx] - grid.dlon / 2
                south = grid.lat[idx] - grid.dlat / 2
                bounds = (west, south, west + grid.dlon, south + grid.dlat)
                name = f"{region_ids[idx]}.tif"
                write_tile(tiles_dir / name, data[k], bounds)
                paths.append(f"tiles/{name}")
                bar.update(1)
    return paths
