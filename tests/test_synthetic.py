"""Tests of the embedded synthetic benchmark (urbanmoe.data.synthetic, .latent, .render)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import yaml

from urbanmoe.data import synthetic
from urbanmoe.data.latent import morans_i
from urbanmoe.data.poi import POI_CATEGORIES, POI_COLUMNS
from urbanmoe.data.render import LAND_COVER, land_cover, render_tiles
from urbanmoe.data.synthetic import (
    CITIES,
    TASKS,
    SynthSettings,
    generate_benchmark,
    generate_city,
    simulate_city,
)

SMALL = SynthSettings(seed=0, tile_size=8)
TINY = synthetic.City("XS", "Tiny test city", (40.0, 116.0, 40.1, 116.1), 60, 6_000,
                      n_centres=1, water_fraction=0.1, coast=(0.0, 0.0),
                      noise_scale=(1.0, 1.0, 1.0))


@pytest.fixture
def tiny_city(monkeypatch: pytest.MonkeyPatch) -> str:
    """Register a 60-region city so write-path tests stay fast."""
    monkeypatch.setitem(synthetic.CITIES, TINY.name, TINY)
    return TINY.name


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """All three cities at tile_size 8, written once for the module."""
    out = tmp_path_factory.mktemp("bench")
    paths = generate_benchmark(out, SMALL, progress=False)
    return {p.name: p for p in paths}


def _digest(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder`` by relative path."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_same_seed_is_byte_identical_and_other_seed_differs(
    bench: dict[str, Path], tmp_path: Path
) -> None:
    again = generate_city("DC", tmp_path / "a", SMALL, progress=False)
    assert _digest(again) == _digest(bench["DC"])
    other = generate_city("DC", tmp_path / "b", SynthSettings(seed=1, tile_size=8),
                          progress=False)
    a = pd.read_parquet(bench["DC"] / "regions.parquet")
    b = pd.read_parquet(other / "regions.parquet")
    assert not np.allclose(a["carbon"], b["carbon"])
    assert not (a[list(POI_COLUMNS)].to_numpy() == b[list(POI_COLUMNS)].to_numpy()).all()
    tile = "tiles/DC_000100.tif"
    assert (bench["DC"] / tile).read_bytes() != (other / tile).read_bytes()


def test_cities_are_independent_streams() -> None:
    """A city's draw does not depend on which other cities are generated."""
    alone = simulate_city("BJ", SynthSettings(cities=("BJ",)))
    together = simulate_city("BJ", SynthSettings())
    np.testing.assert_array_equal(alone.y_log, together.y_log)


def test_region_counts_ids_and_coordinates(bench: dict[str, Path]) -> None:
    for name, city in CITIES.items():
        table = pd.read_parquet(bench[name] / "regions.parquet")
        assert len(table) == city.n_regions
        assert table["region_id"].is_unique
        assert table["region_id"].str.fullmatch(rf"{name}_\d{{6}}").all()
        lat0, lon0, lat1, lon1 = city.bbox
        assert table["lat"].between(lat0, lat1).all() and table["lon"].between(lon0, lon1).all()
        assert list(table.columns[:5]) == ["region_id", "lat", "lon", "image_path", "text"]
        assert set(POI_COLUMNS) <= set(table.columns)
        for task in TASKS:
            assert table[task].dtype == np.float64 and (table[task] >= 0).all()
        assert "index" not in table.columns and "__index_level_0__" not in table.columns


def test_outline_is_irregular_not_a_rectangle() -> None:
    grid = simulate_city("SH", SMALL).grid
    assert grid.rows * grid.cols > CITIES["SH"].n_regions
    rows_per_col = np.bincount(grid.col, minlength=grid.cols)
    assert len(set(rows_per_col.tolist())) > 3


def test_dataset_yaml_matches_the_contract(bench: dict[str, Path]) -> None:
    spec = yaml.safe_load((bench["SH"] / "dataset.yaml").read_text(encoding="utf-8"))
    assert list(spec) == ["name", "city", "table", "targets", "bbox", "noise_ceiling", "source"]
    assert spec["name"] == "SH" and spec["city"] == "Shanghai"
    assert spec["table"] == "regions.parquet"
    assert list(spec["targets"]) == list(TASKS)
    assert all(t["transform"] == "log1p" and t["unit"] for t in spec["targets"].values())
    assert spec["bbox"] == [30.70, 120.90, 31.63, 121.95]
    assert spec["source"] == {"generator": "urbanmoe.synth", "seed": 0, "tile_size": 8,
                              "version": 1}


def test_loads_through_the_region_table_contract(bench: dict[str, Path]) -> None:
    table_mod = pytest.importorskip("urbanmoe.data.table")
    loader = getattr(table_mod, "load_dataset", None)
    if loader is None:
        pytest.skip("urbanmoe.data.table.load_dataset not available yet")
    ds = loader(bench["DC"])
    assert len(ds) == CITIES["DC"].n_regions


def test_targets_are_autocorrelated_correlated_and_realistic(bench: dict[str, Path]) -> None:
    for name in CITIES:
        sample = simulate_city(name, SMALL)
        table = pd.read_parquet(bench[name] / "regions.parquet")
        y = np.log1p(table[list(TASKS)].to_numpy())
        np.testing.assert_allclose(y, sample.y_log, atol=1e-9)
        for t in range(len(TASKS)):
            assert morans_i(y[:, t], sample.grid.row, sample.grid.col) > 0.3
        corr = np.corrcoef(y.T)
        off = corr[np.triu_indices(3, 1)]
        assert (off > 0.3).all() and (off < 0.99).all()
        sd = y.std(axis=0)
        assert 1.5 < sd[0] < 4.0 and 1.5 < sd[1] < 4.5 and 0.5 < sd[2] < 1.3
        water = sample.factors["water"] > 0.9
        assert water.any() and np.median(y[water], axis=0).max() < 1.0


def test_noise_ceiling_is_recorded_and_attained_by_the_oracle(bench: dict[str, Path]) -> None:
    ceilings = []
    for name in CITIES:
        spec = yaml.safe_load((bench[name] / "dataset.yaml").read_text(encoding="utf-8"))
        sample = simulate_city(name, SMALL)
        for t, task in enumerate(TASKS):
            ceiling = spec["noise_ceiling"][task]
            assert 0.0 < ceiling < 1.0
            y, oracle = sample.y_log[:, t], sample.signal[:, t]
            r2 = 1.0 - np.sum((y - oracle) ** 2) / np.sum((y - y.mean()) ** 2)
            assert abs(r2 - ceiling) < 0.02, (name, task, r2, ceiling)
            ceilings.append(ceiling)
    assert min(ceilings) > 0.78 and max(ceilings) < 0.95 and len(set(ceilings)) > 3


def test_pois_are_heavy_tailed_and_sparse_over_water(bench: dict[str, Path]) -> None:
    sample = simulate_city("SH", SMALL)
    assert sample.poi.shape == (CITIES["SH"].n_regions, len(POI_CATEGORIES))
    total = sample.poi.sum(axis=1)
    assert 0.5 < total.sum() / CITIES["SH"].n_pois < 2.0
    assert total.max() > 10 * np.median(total)
    water = sample.factors["water"] > 0.9
    assert (total[water] == 0).mean() > 0.5
    texts = pd.read_parquet(bench["SH"] / "regions.parquet")["text"]
    assert texts.str.len().min() > 50 and texts.nunique() > 0.9 * len(texts)


def test_tiles_are_georeferenced_multiband_and_ndvi_follows_land_cover(
    bench: dict[str, Path],
) -> None:
    folder = bench["BJ"]
    table = pd.read_parquet(folder / "regions.parquet")
    assert table["image_path"].map(lambda p: (folder / p).is_file()).all()
    sample = simulate_city("BJ", SMALL)
    props = land_cover(sample.factors)
    veg, built = LAND_COVER.index("vegetation"), LAND_COVER.index("built")

    def ndvi(rows: np.ndarray) -> float:
        values = []
        for k in rows:
            with rasterio.open(folder / table["image_path"][k]) as src:
                assert src.count == 4 and src.width == 8 and src.height == 8
                assert src.crs.to_epsg() == 4326 and src.dtypes[0] == "uint16"
                west, south, east, north = src.bounds
                assert west < table["lon"][k] < east and south < table["lat"][k] < north
                red, nir = src.read(3).astype(float), src.read(4).astype(float)
            values.append(np.mean((nir - red) / (nir + red)))
        return float(np.mean(values))

    green_rows = np.argsort(-props[:, veg])[:30]
    built_rows = np.argsort(-props[:, built])[:30]
    assert ndvi(green_rows) > ndvi(built_rows) + 0.2


def test_tile_size_changes_tiles_but_not_the_table(tmp_path: Path, tiny_city: str) -> None:
    a = generate_city(tiny_city, tmp_path / "a", SynthSettings(tile_size=4), progress=False)
    b = generate_city(tiny_city, tmp_path / "b", SynthSettings(tile_size=6), progress=False)
    ta, tb = pd.read_parquet(a / "regions.parquet"), pd.read_parquet(b / "regions.parquet")
    pd.testing.assert_frame_equal(ta, tb)
    with rasterio.open(b / tb["image_path"][0]) as src:
        assert src.shape == (6, 6)


def test_writing_is_atomic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_city: str
) -> None:
    small = SynthSettings(tile_size=4)
    first = generate_city(tiny_city, tmp_path, small, progress=False)
    before = _digest(first)

    def boom(*args: object, **kwargs: object) -> list[str]:
        raise RuntimeError("interrupted")

    monkeypatch.setattr(synthetic, "render_tiles", boom)
    with pytest.raises(RuntimeError, match="interrupted"):
        generate_city(tiny_city, tmp_path, SynthSettings(seed=5, tile_size=4), progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [tiny_city]
    assert _digest(first) == before
    monkeypatch.setattr(synthetic, "render_tiles", render_tiles)

    generate_city(tiny_city, tmp_path, SynthSettings(seed=5, tile_size=4), progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [tiny_city]
    assert _digest(first) != before
    with pytest.raises(ValueError, match="unknown synthetic city"):
        generate_city("XX", tmp_path, small, progress=False)
    with pytest.raises(ValueError, match="tile_size"):
        SynthSettings(tile_size=0)
