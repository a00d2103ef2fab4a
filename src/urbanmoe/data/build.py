"""Build a benchmark city from raw sources (paper Section 3.1, Appendix E; docs/build.md).

The bbox is cut into a grid of ``patch_px`` x ``patch_px`` patches at ``resolution_m`` (200 px
at 10 m = 2 km x 2 km) in a projected CRS. Per patch: a 4-band Sentinel-2 L2A tile (B02, B03,
B04, B08) warped from the input mosaic or tiles, POI counts in the 15 major categories, and
each label raster aggregated over the patch footprint (area-weighted ``sum`` for ODIAC CO2 and
WorldPop people, area-weighted ``mean`` for VIIRS radiance). The result is a dataset folder in
the region-table contract of docs/data.md, written atomically and validated on the way out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import rasterio
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.transform import Affine
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform as warp_points
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from urbanmoe.data.poi import POI_CATEGORIES, poi_column
from urbanmoe.data.poi_mapping import load_mapping
from urbanmoe.data.render import BANDS
from urbanmoe.data.table import DataError, load_dataset, read_table
from urbanmoe.data.tiles import open_raster
from urbanmoe.io import atomic_path, sha256_file
from urbanmoe.readers import dump_yaml

WGS84 = "EPSG:4326"
S2_L2A_ORDER = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11",
                "B12")
"""Band order of a full 12-band Sentinel-2 L2A stack (used when bands carry no description)."""


@dataclass(frozen=True)
class LabelSpec:
    """One label raster: its file, how it aggregates over a patch, its unit and a scale."""

    path: Path
    agg: Literal["sum", "mean"]
    unit: str
    scale: float = 1.0


@dataclass(frozen=True)
class BuildSettings:
    """How to cut and read the sources (Section 3.1: 200 x 200 px patches at 10 m)."""

    bbox: tuple[float, float, float, float]  # min_lat, min_lon, max_lat, max_lon (WGS84)
    patch_px: int = 200
    resolution_m: float = 10.0
    target_crs: str | None = None  # default: UTM zone of the bbox centre
    bands: tuple[str | int, ...] = BANDS  # names (band descriptions) or 1-based indices
    min_valid_fraction: float = 0.9
    poi_mapping: Path | None = None  # default: packaged resources/poi_mapping.yaml
    image_resampling: str = "nearest"
    label_samples: int = 100  # area samples per patch side for label aggregation

    def crs(self) -> CRS:
        """The target CRS: as given, or the UTM zone (north/south) of the bbox centre."""
        if self.target_crs:
            return CRS.from_user_input(self.target_crs)
        lat = (self.bbox[0] + self.bbox[2]) / 2
        lon = (self.bbox[1] + self.bbox[3]) / 2
        zone = min(int(math.floor((lon + 180.0) / 6.0)) + 1, 60)
        return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


@dataclass(frozen=True)
class Grid:
    """Patches aligned to multiples of the patch size in the target CRS, rows from the north."""

    crs: CRS
    x0: float
    y0: float  # north edge
    size: float  # patch side, metres
    rows: int
    cols: int

    def bounds(self, r: int, c: int) -> tuple[float, float, float, float]:
        x = self.x0 + c * self.size
        y = self.y0 - r * self.size
        return x, y - self.size, x + self.size, y


def make_grid(settings: BuildSettings) -> Grid:
    """Grid cells (aligned to multiples of the patch side) that intersect the projected bbox."""
    min_lat, min_lon, max_lat, max_lon = settings.bbox
    if not (-90 <= min_lat < max_lat <= 90 and -180 <= min_lon < max_lon <= 180):
        raise DataError(f"settings: field 'bbox': invalid {settings.bbox!r}")
    crs = settings.crs()
    left, bottom, right, top = transform_bounds(WGS84, crs, min_lon, min_lat, max_lon, max_lat,
                                                densify_pts=101)
    size = settings.patch_px * settings.resolution_m
    x0, y0 = math.floor(left / size) * size, math.ceil(top / size) * size
    cols = max(1, math.ceil((right - x0) / size))
    rows = max(1, math.ceil((y0 - bottom) / size))
    return Grid(crs, x0, y0, size, rows, cols)


def _band_indexes(src: rasterio.DatasetReader, bands: Sequence[str | int]) -> list[int]:
    """1-based indexes of ``bands`` in one imagery file (descriptions, else S2 band order)."""
    if all(isinstance(b, int) for b in bands):
        bad = [b for b in bands if not 1 <= int(b) <= src.count]
        if bad:
            raise DataError(f"{src.name}: band {bad[0]}: not in 1..{src.count}")
        return [int(b) for b in bands]
    desc = [(d or "").upper() for d in src.descriptions]
    if src.count == len(bands) and not any(desc):
        return list(range(1, len(bands) + 1))
    out = []
    for b in bands:
        name = str(b).upper()
        if name in desc:
            out.append(desc.index(name) + 1)
        elif not any(desc) and src.count == len(S2_L2A_ORDER) and name in S2_L2A_ORDER:
            out.append(S2_L2A_ORDER.index(name) + 1)
        else:
            raise DataError(f"{src.name}: band {b!r}: not found (descriptions {desc})")
    return out


def read_patch(vrts: list[tuple[WarpedVRT, list[int], float]], r: int, c: int,
               px: int) -> tuple[np.ndarray, float]:
    """One patch from the warped imagery (first valid pixel wins, like ``rasterio.merge``).

    Returns (bands, px, px) uint16 reflectance (0 = no data) and the share of valid pixels.
    """
    data = np.zeros((len(vrts[0][1]), px, px), dtype=np.uint16)
    valid = np.zeros((px, px), dtype=bool)
    for vrt, idx, nodata in vrts:
        arr = vrt.read(idx, window=Window(c * px, r * px, px, px)).astype(np.float64)
        ok = np.all(np.isfinite(arr) & (arr != nodata) & (arr > 0), axis=0)
        take = ok & ~valid
        data[:, take] = np.clip(np.rint(arr[:, take]), 1, 65535).astype(np.uint16)
        valid |= take
        if valid.all():
            break
    return data, float(valid.mean())


def write_patch(path: Path, data: np.ndarray, grid: Grid, r: int, c: int, res: float) -> None:
    """Write one patch as a 4-band uint16 GeoTIFF in the target CRS (nodata 0)."""
    west, _, _, north = grid.bounds(r, c)
    with rasterio.open(path, "w", driver="GTiff", height=data.shape[1], width=data.shape[2],
                       count=data.shape[0], dtype="uint16", crs=grid.crs, nodata=0,
                       transform=Affine(res, 0.0, west, 0.0, -res, north)) as dst:
        dst.write(data)
        for i, band in enumerate(BANDS[: data.shape[0]], start=1):
            dst.set_band_description(i, band)


def count_pois(path: Path, grid: Grid, cells: np.ndarray, settings: BuildSettings) -> tuple[
        np.ndarray, dict[str, Any]]:
    """(n_cells, 15) POI counts of the kept cells (flat indices) and what was dropped."""
    df = read_table(Path(path))
    for col in ("lon", "lat", "category"):
        if col not in df.columns:
            raise DataError(f"{path}: column {col!r}: missing (need lon, lat, category)")
    lon = pd.to_numeric(df["lon"], errors="coerce").to_numpy(np.float64)
    lat = pd.to_numeric(df["lat"], errors="coerce").to_numpy(np.float64)
    bad = ~(np.isfinite(lon) & np.isfinite(lat) & (np.abs(lat) <= 90) & (np.abs(lon) <= 180))
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(f"{path}: column 'lon'/'lat': invalid value "
                        f"({df['lon'].iloc[i]!r}, {df['lat'].iloc[i]!r}) at row {i}")
    mapping = load_mapping(settings.poi_mapping)
    cat = mapping.assign(df["category"])
    unmapped = cat < 0
    x, y = warp_points(WGS84, grid.crs, lon.tolist(), lat.tolist()) if len(df) else ([], [])
    col = np.floor((np.asarray(x) - grid.x0) / grid.size).astype(np.int64)
    row = np.floor((grid.y0 - np.asarray(y)) / grid.size).astype(np.int64)
    inside = (col >= 0) & (col < grid.cols) & (row >= 0) & (row < grid.rows)
    lookup = np.full(grid.rows * grid.cols, -1, dtype=np.int64)
    lookup[cells] = np.arange(len(cells))
    kept = np.where(inside, lookup[np.where(inside, row * grid.cols + col, 0)], -1)
    use = (kept >= 0) & ~unmapped
    counts = np.zeros((len(cells), len(POI_CATEGORIES)), dtype=np.int64)
    np.add.at(counts, (kept[use], cat[use]), 1)
    top = df["category"][unmapped].astype(str).value_counts().head(20)
    info = {"total": len(df), "counted": int(use.sum()), "unmapped": int(unmapped.sum()),
            "outside_patches": int(((kept < 0) & ~unmapped).sum()),
            "unmapped_top": {str(k): int(v) for k, v in top.items()}}
    return counts, info


def _affine(t: Affine, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Apply an affine transform to coordinate arrays."""
    return t.a * x + t.b * y + t.c, t.d * x + t.e * y + t.f


def _cell_areas(src: rasterio.DatasetReader, win: Window, crs: CRS) -> np.ndarray:
    """Area (target-CRS m^2) of each source cell in ``win``, from its 4 projected corners."""
    rr, cc = np.mgrid[0 : win.height + 1, 0 : win.width + 1]
    xs, ys = _affine(src.transform, cc + win.col_off, rr + win.row_off)
    px, py = warp_points(src.crs, crs, xs.ravel().tolist(), ys.ravel().tolist())
    px, py = np.asarray(px).reshape(xs.shape), np.asarray(py).reshape(xs.shape)
    x1, y1, x2, y2 = px[:-1, :-1], py[:-1, :-1], px[:-1, 1:], py[:-1, 1:]
    x3, y3, x4, y4 = px[1:, 1:], py[1:, 1:], px[1:, :-1], py[1:, :-1]
    return 0.5 * np.abs((x1 * y2 - x2 * y1) + (x2 * y3 - x3 * y2) + (x3 * y4 - x4 * y3)
                        + (x4 * y1 - x1 * y4))


def aggregate_label(spec: LabelSpec, grid: Grid, cells: np.ndarray,
                    settings: BuildSettings) -> np.ndarray:
    """Area-weighted ``sum`` or ``mean`` of one label raster over each kept patch.

    Each patch is sampled at ``label_samples``^2 equal-area cell centres in the target CRS,
    mapped to source pixels. ``mean``: average of the sampled values (nodata ignored).
    ``sum``: each sample carries value x (sample area / source cell area), so a source cell
    half inside the patch contributes half; nodata counts as 0. Missing -> NaN.
    """
    path = Path(spec.path)
    if spec.agg not in ("sum", "mean"):
        raise DataError(f"{path}: field 'agg': {spec.agg!r} is not 'sum' or 'mean'")
    n, size = settings.label_samples, grid.size
    off = (np.arange(n) + 0.5) * size / n
    out = np.full(len(cells), np.nan)
    with open_raster(path, "a label raster") as src:
        rows, cols = np.divmod(cells, grid.cols)
        left, top = grid.x0 + cols.min() * size, grid.y0 - rows.min() * size
        right, bottom = grid.x0 + (cols.max() + 1) * size, grid.y0 - (rows.max() + 1) * size
        sb = transform_bounds(grid.crs, src.crs, left, bottom, right, top, densify_pts=101)
        cs, rs = _affine(~src.transform, np.array(sb[::2]), np.array(sb[1::2])[::-1])
        c0, r0 = max(int(np.floor(cs.min())) - 1, 0), max(int(np.floor(rs.min())) - 1, 0)
        c1 = min(int(np.ceil(cs.max())) + 1, src.width)
        r1 = min(int(np.ceil(rs.max())) + 1, src.height)
        win = Window(c0, r0, max(c1 - c0, 1), max(r1 - r0, 1))
        arr = src.read(1, window=win, masked=True).astype(np.float64).filled(np.nan)
        inv = ~(src.transform @ Affine.translation(win.col_off, win.row_off))
        area = _cell_areas(src, win, grid.crs) if spec.agg == "sum" else None
        for k, (r, c) in enumerate(zip(rows, cols, strict=True)):
            west, _, _, north = grid.bounds(int(r), int(c))
            xx, yy = np.meshgrid(west + off, north - off)
            sx, sy = warp_points(grid.crs, src.crs, xx.ravel().tolist(), yy.ravel().tolist())
            fc, fr = _affine(inv, np.asarray(sx), np.asarray(sy))
            ic, ir = np.floor(fc).astype(np.int64), np.floor(fr).astype(np.int64)
            out_of = (ic < 0) | (ic >= arr.shape[1]) | (ir < 0) | (ir >= arr.shape[0])
            if out_of.any():
                lon, lat = warp_points(grid.crs, WGS84, [west + size / 2], [north - size / 2])
                raise DataError(f"{path}: raster extent: does not cover patch ({r}, {c}) "
                                f"centred at lon {lon[0]:.5f}, lat {lat[0]:.5f}")
            vals = arr[ir, ic]
            if spec.agg == "mean":
                ok = np.isfinite(vals)
                out[k] = vals[ok].mean() if ok.any() else np.nan
            else:
                weight = (size / n) ** 2 / area[ir, ic]
                out[k] = float(np.nansum(vals * weight))
    return out * spec.scale


def _describe(path: Path) -> dict[str, str]:
    return {"file": Path(path).name, "sha256": sha256_file(Path(path))}


def build_benchmark(name: str, imagery: list[Path], pois: Path, labels: dict[str, LabelSpec],
                    out_dir: Path, settings: BuildSettings) -> Path:
    """Build one city's dataset folder from raw sources (Section 3.1) and return its path.

    Writes ``tiles/<region_id>.tif``, ``regions.parquet`` (region_id, lat, lon, poi_*,
    image_path, valid_fraction, one column per label) and ``dataset.yaml`` (log1p targets with
    units, bbox, provenance with sha256 of every input, settings and counts), atomically, then
    validates the folder with :func:`load_dataset`. Patches with less than
    ``min_valid_fraction`` valid imagery are dropped (counted in ``source.counts``).
    """
    if not imagery or not labels:
        raise DataError(f"build inputs: {'imagery' if not imagery else 'labels'}: none given")
    for path in [*imagery, pois, *(s.path for s in labels.values())]:
        if not Path(path).is_file():
            raise DataError(f"{path}: file not found")
    grid = make_grid(settings)
    px, res = settings.patch_px, settings.resolution_m
    transform = Affine(res, 0.0, grid.x0, 0.0, -res, grid.y0)
    with atomic_path(Path(out_dir), "dataset") as tmp, ExitStack() as stack:
        (tmp / "tiles").mkdir(parents=True)
        vrts = []
        for path in imagery:
            src = stack.enter_context(open_raster(path, "imagery"))
            nodata = src.nodata if src.nodata is not None else 0
            vrt = stack.enter_context(WarpedVRT(
                src, crs=grid.crs, transform=transform, width=grid.cols * px,
                height=grid.rows * px, resampling=Resampling[settings.image_resampling],
                src_nodata=nodata, nodata=nodata))
            vrts.append((vrt, _band_indexes(src, settings.bands), nodata))
        frac = np.zeros(grid.rows * grid.cols)
        for cell in range(grid.rows * grid.cols):
            r, c = divmod(cell, grid.cols)
            data, frac[cell] = read_patch(vrts, r, c, px)
            if frac[cell] >= settings.min_valid_fraction:
                write_patch(tmp / "tiles" / f"{name}_{r:03d}_{c:03d}.tif", data, grid, r, c, res)
        stack.close()
        _write_tables(name, imagery, pois, labels, tmp, settings, grid, frac)
    return Path(out_dir)


def _write_tables(name: str, imagery: list[Path], pois: Path, labels: dict[str, LabelSpec],
                  tmp: Path, settings: BuildSettings, grid: Grid, frac: np.ndarray) -> None:
    """Region table and dataset.yaml of the kept patches, then validation (into ``tmp``)."""
    keep = frac >= settings.min_valid_fraction
    cells = np.flatnonzero(keep)
    if not len(cells):
        raise DataError(f"{imagery[0]}: imagery: no patch has valid share >= "
                        f"{settings.min_valid_fraction} inside bbox {list(settings.bbox)}")
    rows, cols = np.divmod(cells, grid.cols)
    ids = [f"{name}_{r:03d}_{c:03d}" for r, c in zip(rows, cols, strict=True)]
    cx = grid.x0 + (cols + 0.5) * grid.size
    cy = grid.y0 - (rows + 0.5) * grid.size
    lon, lat = warp_points(grid.crs, WGS84, cx.tolist(), cy.tolist())
    counts, poi_info = count_pois(Path(pois), grid, cells, settings)
    table = pd.DataFrame({"region_id": ids, "lat": np.round(lat, 7), "lon": np.round(lon, 7)})
    for j, cat in enumerate(POI_CATEGORIES):
        table[poi_column(cat)] = counts[:, j]
    table["image_path"] = [f"tiles/{i}.tif" for i in ids]
    table["valid_fraction"] = frac[cells]
    for target, spec in labels.items():
        table[target] = aggregate_label(spec, grid, cells, settings)
    settings_doc = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(settings).items()}
    settings_doc.update(bbox=list(settings.bbox), bands=list(settings.bands),
                        target_crs=grid.crs.to_string())
    meta = {
        "name": name,
        "table": "regions.parquet",
        "targets": {t: {"transform": "log1p", "unit": s.unit} for t, s in labels.items()},
        "bbox": [float(v) for v in settings.bbox],
        "source": {
            "generator": "urbanmoe.data.build",
            "imagery": [_describe(p) for p in imagery],
            "pois": {**_describe(pois), "mapping": load_mapping(settings.poi_mapping).source},
            "labels": {t: {**_describe(s.path), "agg": s.agg, "scale": float(s.scale)}
                       for t, s in labels.items()},
            "settings": settings_doc,
            "counts": {"patches_grid": grid.rows * grid.cols, "patches_kept": len(cells),
                       "patches_dropped_low_valid": int((~keep).sum()), "pois": poi_info},
        },
    }
    table.to_parquet(tmp / "regions.parquet", index=False)
    (tmp / "dataset.yaml").write_text(dump_yaml(meta, allow_unicode=True),
                                      encoding="utf-8")
    load_dataset(tmp)
