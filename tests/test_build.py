"""Benchmark construction from raw sources (Section 3.1): grid, tiles, POIs, label aggregation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import yaml
from rasterio.transform import Affine
from rasterio.warp import transform as warp_points

from urbanmoe.data.build import BuildSettings, LabelSpec, build_benchmark, make_grid
from urbanmoe.data.poi_mapping import load_mapping
from urbanmoe.data.table import DataError, load_dataset
from urbanmoe.io import sha256_file

UTM = "EPSG:32651"
X0, Y0 = 350_000.0, 3_456_000.0  # north-west corner of the 4 km x 6 km mosaic
W, H = 400, 600  # pixels at 10 m: 2 x 3 patches of 200 px
DENSITY = 2.5e-3  # carbon: tonnes per m^2 (constant density field)
LIGHT = 12.5


def _write(path: Path, arr: np.ndarray, crs: str, transform: Affine, nodata=None,
           descriptions=None) -> None:
    arr = arr if arr.ndim == 3 else arr[None]
    with rasterio.open(path, "w", driver="GTiff", height=arr.shape[1], width=arr.shape[2],
                       count=arr.shape[0], dtype=arr.dtype, crs=crs, transform=transform,
                       nodata=nodata) as dst:
        dst.write(arr)
        for i, d in enumerate(descriptions or [], start=1):
            dst.set_band_description(i, d)


def _lonlat(x: float, y: float) -> tuple[float, float]:
    lon, lat = warp_points(UTM, "EPSG:4326", [x], [y])
    return lon[0], lat[0]


def _bbox(inset: float = 200.0) -> tuple[float, float, float, float]:
    xs = [X0 + inset, X0 + W * 10 - inset]
    ys = [Y0 - H * 10 + inset, Y0 - inset]
    lon, lat = warp_points(UTM, "EPSG:4326", [xs[0], xs[0], xs[1], xs[1]],
                           [ys[0], ys[1], ys[0], ys[1]])
    return min(lat), min(lon), max(lat), max(lon)


def _cell_area_4326(lat: np.ndarray, dlon: float, dlat: float) -> np.ndarray:
    r = 6_371_008.8
    return (r * math.radians(dlon) * np.cos(np.radians(lat))) * (r * math.radians(dlat))


@pytest.fixture
def sources(tmp_path: Path) -> dict:
    raw = tmp_path / "raw"
    raw.mkdir()
    rng = np.random.default_rng(0)
    img = rng.integers(200, 4000, (4, H, W), dtype=np.uint16)
    img[:, 0:100, 200:400] = 0  # patch (0, 1): half no data -> dropped
    img[:, 400:410, 0:200] = 0  # patch (2, 0): 5 % no data -> kept, flagged 0.95
    _write(raw / "s2.tif", img, UTM, Affine(10, 0, X0, 0, -10, Y0), nodata=0,
           descriptions=["B02", "B03", "B04", "B08"])
    # carbon: EPSG:4326, 0.01 deg cells, value = density x cell area (conserved total known)
    dd, west, north = 0.01, 121.35, 31.28
    lats = north - (np.arange(30) + 0.5) * dd
    carbon = np.repeat(DENSITY * _cell_area_4326(lats, dd, dd)[:, None], 30, axis=1)
    _write(raw / "odiac.tif", carbon.astype(np.float32), "EPSG:4326",
           Affine(dd, 0, west, 0, -dd, north))
    _write(raw / "viirs.tif", np.full((30, 30), LIGHT, np.float32), "EPSG:4326",
           Affine(dd, 0, west, 0, -dd, north))
    # population: EPSG:3857, 100 m cells; people only in cells well inside the mosaic
    left, bottom = warp_points(UTM, "EPSG:3857", [X0 - 1000], [Y0 - H * 10 - 1000])
    pop = np.zeros((90, 70), np.float32)
    pt = Affine(100, 0, left[0], 0, -100, bottom[0] + 90 * 100)
    cols, rows = np.meshgrid(np.arange(70) + 0.5, np.arange(90) + 0.5)
    cx, cy = pt.c + cols * pt.a, pt.f + rows * pt.e
    ux, uy = warp_points("EPSG:3857", UTM, cx.ravel().tolist(), cy.ravel().tolist())
    ux, uy = np.reshape(ux, cx.shape), np.reshape(uy, cx.shape)
    inner = (ux > X0 + 300) & (ux < X0 + 3700) & (uy > Y0 - 5700) & (uy < Y0 - 300)
    inner &= ~((ux > X0 + 1700) & (uy > Y0 - 2300))  # none in the dropped patch (0, 1)
    pop[inner] = rng.uniform(0, 50, inner.sum())
    _write(raw / "pop.tif", pop, "EPSG:3857", pt)
    # POIs at patch centres (row, col), some outside, one unmapped category
    def centre(r, c):
        return _lonlat(X0 + (c + 0.5) * 2000, Y0 - (r + 0.5) * 2000)
    pts = [(centre(0, 0), "餐饮服务;中餐厅;中餐厅")] * 3 + [
        (centre(1, 1), "amenity=restaurant"), (centre(1, 1), "Amenity=Restaurant"),
        (centre(1, 1), "shop=supermarket"), (centre(1, 1), "商务住宅;住宅区;住宅小区"),
        (centre(2, 1), "商务住宅;楼宇;商务写字楼"), (centre(2, 1), "汽车服务;加油站"),
        (centre(0, 1), "amenity=bank"),  # in the dropped patch: ignored
        (_lonlat(X0 - 5000, Y0), "amenity=bank"), ((0.0, 0.0), "amenity=bank"),
    ]
    df = pd.DataFrame({"lon": [p[0][0] for p in pts], "lat": [p[0][1] for p in pts],
                       "category": [p[1] for p in pts], "name": [f"p{i}" for i in range(len(pts))]})
    df.to_csv(raw / "pois.csv", index=False)
    labels = {
        "carbon": LabelSpec(raw / "odiac.tif", "sum", "t CO2 / yr"),
        "population": LabelSpec(raw / "pop.tif", "sum", "people"),
        "light": LabelSpec(raw / "viirs.tif", "mean", "nW / cm2 / sr"),
    }
    return {"raw": raw, "imagery": [raw / "s2.tif"], "pois": raw / "pois.csv", "labels": labels,
            "pop_total": float(pop.sum()), "img": img}


def _build(sources: dict, out: Path, **kw) -> Path:
    settings = BuildSettings(bbox=_bbox(), **kw)
    return build_benchmark("T", sources["imagery"], sources["pois"], sources["labels"], out,
                           settings)


def test_build_end_to_end(sources: dict, tmp_path: Path) -> None:
    before = {p.name: sha256_file(p) for p in sources["raw"].iterdir()}
    out = _build(sources, tmp_path / "T")
    ds = load_dataset(out)
    assert ds.tasks == ["carbon", "population", "light"]
    t = ds.table.set_index("region_id")
    assert list(t.index) == ["T_000_000", "T_001_000", "T_001_001", "T_002_000", "T_002_001"]
    meta = yaml.safe_load((out / "dataset.yaml").read_text())
    counts = meta["source"]["counts"]
    assert counts["patches_grid"] == 6 and counts["patches_dropped_low_valid"] == 1
    assert meta["source"]["settings"]["target_crs"] == UTM
    assert meta["targets"]["population"] == {"transform": "log1p", "unit": "people"}
    assert meta["source"]["imagery"][0]["sha256"] == before["s2.tif"]
    assert t.loc["T_002_000", "valid_fraction"] == pytest.approx(0.95)
    # labels: conserved sums (area-weighted), exact means
    np.testing.assert_allclose(t["carbon"], DENSITY * 4e6, rtol=0.02)
    assert t["population"].sum() == pytest.approx(sources["pop_total"], rel=0.02)
    np.testing.assert_allclose(t["light"], LIGHT, rtol=1e-9)
    # POIs: hand counts
    assert t.loc["T_000_000", "poi_catering"] == 3
    assert t.loc["T_001_001", ["poi_catering", "poi_shopping", "poi_residential"]].tolist() == [
        2, 1, 1]
    assert t.loc["T_002_001", "poi_business"] == 1
    poi_cols = [c for c in t.columns if c.startswith("poi_")]
    assert len(poi_cols) == 15 and t[poi_cols].to_numpy().sum() == 8
    assert counts["pois"]["unmapped"] == 1 and counts["pois"]["outside_patches"] == 3
    assert counts["pois"]["unmapped_top"] == {"汽车服务;加油站": 1}
    # tiles: georeferenced, values copied from the mosaic
    with rasterio.open(out / t.loc["T_001_001", "image_path"]) as tif:
        assert tif.count == 4 and tif.shape == (200, 200) and tif.crs.to_string() == UTM
        assert tif.descriptions == ("B02", "B03", "B04", "B08")
        assert tif.transform == Affine(10, 0, X0 + 2000, 0, -10, Y0 - 2000)
        np.testing.assert_array_equal(tif.read(), sources["img"][:, 200:400, 200:400])
    assert not (out / "tiles" / "T_000_001.tif").exists()
    lon, lat = _lonlat(X0 + 1000, Y0 - 1000)
    assert t.loc["T_000_000", "lon"] == pytest.approx(lon, abs=1e-6)
    assert t.loc["T_000_000", "lat"] == pytest.approx(lat, abs=1e-6)
    assert {p.name: sha256_file(p) for p in sources["raw"].iterdir()} == before
    # deterministic
    again = _build(sources, tmp_path / "T2")
    assert (again / "dataset.yaml").read_text() == (out / "dataset.yaml").read_text()
    pd.testing.assert_frame_equal(pd.read_parquet(again / "regions.parquet"),
                                  pd.read_parquet(out / "regions.parquet"))
    for tile in sorted((out / "tiles").iterdir()):
        assert sha256_file(tile) == sha256_file(again / "tiles" / tile.name)


def test_grid_and_default_crs() -> None:
    settings = BuildSettings(bbox=_bbox())
    assert settings.crs().to_epsg() == 32651
    grid = make_grid(settings)
    assert (grid.rows, grid.cols, grid.x0, grid.y0, grid.size) == (3, 2, X0, Y0, 2000.0)
    assert BuildSettings(bbox=(-34.0, 18.0, -33.8, 18.5)).crs().to_epsg() == 32734


def test_mapping_exact_then_longest_prefix() -> None:
    m = load_mapping()
    assert m.lookup("餐饮服务;快餐厅") == m.lookup("amenity=restaurant")
    assert m.lookup("商务住宅;住宅区;别墅") != m.lookup("商务住宅;楼宇")
    assert m.lookup("leisure=park") != m.lookup("leisure=pitch")  # exact beats prefix
    assert m.lookup("汽车服务;加油站") == -1


def test_poi_table_without_category(sources: dict, tmp_path: Path) -> None:
    bad = tmp_path / "pois.parquet"
    pd.read_csv(sources["pois"]).drop(columns="category").to_parquet(bad)
    sources["pois"] = bad
    with pytest.raises(DataError, match=r"pois\.parquet: column 'category': missing") as err:
        _build(sources, tmp_path / "X")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "X").exists()


def test_label_not_covering_box(sources: dict, tmp_path: Path) -> None:
    small = sources["raw"] / "small.tif"
    _write(small, np.ones((5, 5), np.float32), "EPSG:4326",
           Affine(0.01, 0, 121.35, 0, -0.01, 31.28))
    sources["labels"]["light"] = LabelSpec(small, "mean", "nW / cm2 / sr")
    with pytest.raises(DataError, match=r"small\.tif: raster extent: does not cover") as err:
        _build(sources, tmp_path / "X")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "X").exists()


def test_built_city_gets_text_and_trains_end_to_end(sources: dict, tmp_path: Path) -> None:
    from urbanmoe.config import load_config
    from urbanmoe.evaluation.run import train_run
    from urbanmoe.features.llm import make_backend, write_described

    built = _build(sources, tmp_path / "T", patch_px=50)  # enough regions for a split
    described = write_described(built, tmp_path / "T-text", make_backend("template"), None,
                                progress=False)
    assert all(load_dataset(described).texts)
    cfg = load_config(None, [f"features.cache_dir={tmp_path / 'cache'}", "features.text.dim=4",
                             "model.expert_hidden=8", "model.expert_out=4", "model.head_hidden=4",
                             "train.max_epochs=2", "model.region_embedding=lookup"])
    metrics = train_run(described, 0, tmp_path / "run", cfg, progress=False)
    n = len(load_dataset(described))
    assert n >= 15 and metrics["split"]["n_train"] == round(0.6 * n)
    assert metrics["tasks"] == ["carbon", "population", "light"]
    assert (tmp_path / "run/routing.npz").is_file()
