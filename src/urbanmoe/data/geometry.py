"""Region shapes: the one reader of a dataset's ``geometry`` file (docs/data.md).

``dataset.yaml`` may name a vector file (any format GDAL reads: GeoPackage, GeoJSON,
Shapefile...) holding a ``region_id`` column and a polygon per region, in any coordinate
reference system. :func:`read_geometry` reads and checks it, and gives one line naming the file
and the problem for each way it can be spoilt: a file GDAL cannot read (garbage, truncated,
empty, a GeoJSON that is not JSON), no features, no ``region_id`` column, a region of the table
without a shape or with two, a null, empty or invalid shape, no coordinate reference system.
Shapes of regions the table does not have are allowed (and left out).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from urbanmoe.data.table import ID, DataError

if TYPE_CHECKING:
    from urbanmoe.data.table import RegionDataset

WGS84 = "EPSG:4326"


def geometry_path(ds: RegionDataset) -> Path | None:
    """The dataset's ``geometry`` file, or None when ``dataset.yaml`` names none; a path that
    is not a file is refused in one line naming ``dataset.yaml``."""
    rel = ds.meta.get("geometry")
    if rel is None:
        return None
    path = ds.root / str(rel)
    if not path.is_file():
        raise DataError(f"{ds.root / 'dataset.yaml'}: key 'geometry': {path} not found"
                        + (" (a folder, not a vector file)" if path.is_dir() else ""))
    return path


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def read_geometry(ds: RegionDataset) -> Any:
    """The shapes of the table's regions as a GeoSeries in WGS84, indexed by ``region_id`` in
    table order; None when the dataset names no ``geometry`` file. Every problem is one line
    naming the file (module docstring)."""
    path = geometry_path(ds)
    if path is None:
        return None
    import geopandas as gpd
    import shapely

    if path.stat().st_size == 0:
        raise DataError(f"{path}: an empty file, not a vector file of region shapes")
    try:
        shapes = gpd.read_file(path)
    except Exception as exc:  # noqa: BLE001 - pyogrio, fiona and GDAL raise many kinds
        raise DataError(f"{path}: not a vector file GDAL can read (truncated or corrupt?): "
                        f"{_one_line(exc)}") from None
    if len(shapes) == 0:
        raise DataError(f"{path}: holds no shapes")
    if ID not in shapes.columns:
        raise DataError(f"{path}: column {ID!r}: missing (columns: "
                        f"{[c for c in shapes.columns if c != 'geometry'][:10]})")
    shapes[ID] = shapes[ID].astype(object).where(shapes[ID].notna(), "").astype(str)
    ids = ds.table[ID].astype(str)
    wanted = shapes[shapes[ID].isin(set(ids))]
    absent = ids[~ids.isin(set(wanted[ID]))]
    if len(absent):
        raise DataError(f"{path}: column {ID!r}: region {absent.iloc[0]!r} of the table has no "
                        f"shape ({len(absent)} of {len(ids)} have none)")
    twice = wanted[ID][wanted[ID].duplicated()]
    if len(twice):
        raise DataError(f"{path}: column {ID!r}: region {twice.iloc[0]!r} has more than one "
                        "shape")
    geoms = wanted.geometry.to_numpy()
    for bad, what in ((shapely.is_missing(geoms) | shapely.is_empty(geoms), "a null or empty"),
                      (~shapely.is_valid(geoms), "an invalid")):
        if bad.any():
            i = int(bad.nonzero()[0][0])
            why = "" if what.startswith("a null") else f": {shapely.is_valid_reason(geoms[i])}"
            raise DataError(f"{path}: region {wanted[ID].iloc[i]!r} has {what} shape{why} "
                            "(fix it, e.g. with ogr2ogr -makevalid)")
    if shapes.crs is None:
        raise DataError(f"{path}: no coordinate reference system")
    try:
        out = wanted.set_index(ID).geometry.to_crs(WGS84)
    except Exception as exc:  # noqa: BLE001 - pyproj raises several kinds
        raise DataError(f"{path}: cannot reproject its shapes to WGS84: {_one_line(exc)}"
                        ) from None
    return out.loc[ids.to_numpy()]


def centroids(ds: RegionDataset) -> np.ndarray:
    """(N, 2) lat/lon of each region's shape's centroid, in table order: computed in the
    shapes' local UTM zone (a centroid in degrees is skewed), then back to WGS84. What a city
    without ``lat``/``lon`` uses as its coordinates (``RegionDataset.coords``)."""
    shapes = read_geometry(ds)
    metric = shapes.to_crs(shapes.estimate_utm_crs())
    points = metric.centroid.to_crs(WGS84)
    return np.column_stack([points.y.to_numpy(), points.x.to_numpy()]).astype(np.float64)
