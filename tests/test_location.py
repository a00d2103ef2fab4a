"""The location modality: a multi-scale encoding of each region's position, a branch of
UrbanMoE + location, a candidate of auto, and centroids for a city of polygons without lat/lon."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import tabular_city

from urbanmoe.config import load_config
from urbanmoe.data.splits import block_ids
from urbanmoe.data.table import load_dataset
from urbanmoe.evaluation.run import train_run
from urbanmoe.features.location import encode_points, location_features, spacing_km, wavelengths
from urbanmoe.features.plan import plan_inputs
from urbanmoe.models.factory import build_urbanmoe as build_model
from urbanmoe.training import registry

SETTINGS = {"encoding": "sinusoid", "min_km": None, "max_km": None, "scales": 8, "seed": 0}
QUICK = ["train.max_epochs=3", "train.threads=1", "train.patience=2"]


def _grid(n: int = 10, step_km: float = 0.5) -> np.ndarray:
    x, y = np.meshgrid(np.arange(n) * step_km, np.arange(n) * step_km)
    return np.column_stack([x.ravel(), y.ravel()])


def test_the_wavelengths_follow_the_regions_spacing_and_the_citys_extent() -> None:
    xy = _grid(10, 0.5)  # 10 x 10 regions 500 m apart: 4.5 km across
    assert spacing_km(xy) == pytest.approx(0.5)
    lam = wavelengths(xy, SETTINGS)
    assert lam[0] == pytest.approx(1.0) and lam[-1] == pytest.approx(4.5)  # 2 x 0.5; extent
    assert np.allclose(np.diff(np.log(lam)), np.log(lam[1] / lam[0]))  # geometric
    fixed = wavelengths(xy, {**SETTINGS, "min_km": 0.2, "max_km": 50.0})
    assert fixed[0] == pytest.approx(0.2) and fixed[-1] == pytest.approx(50.0)


@pytest.mark.parametrize("encoding", ["sinusoid", "rff"])
def test_the_encoding_is_bounded_seeded_and_six_features_per_wavelength(encoding: str) -> None:
    xy = _grid()
    s = {**SETTINGS, "encoding": encoding}
    z = encode_points(xy, s)
    assert z.shape == (100, 6 * 8) and z.dtype == np.float32 and np.abs(z).max() <= 1.0
    assert np.array_equal(z, encode_points(xy, s))
    other = encode_points(xy, {**s, "seed": 1})
    assert np.array_equal(z, other) == (encoding == "sinusoid")  # only rff draws directions
    # nearby regions are closer in the encoding than far ones (the shortest waves aside)
    d = np.linalg.norm(z[:, None] - z[None], axis=2)
    assert d[0, 1] < d[0, 99]


def test_the_sinusoid_is_space2vecs_three_directions() -> None:
    """At wavelength lambda, a step of lambda east is a whole cycle along the east direction and
    half a step is half a cycle (sine negated); north of each other, east features agree."""
    s = {**SETTINGS, "min_km": 1.0, "max_km": 1.0, "scales": 1}  # one wavelength: 1 km
    whole = encode_points(np.array([[0.0, 0.0], [1.0, 0.0]]), s)  # columns: 3 sin, 3 cos
    assert whole[0, [0, 3]] == pytest.approx(whole[1, [0, 3]], abs=1e-5)
    half = encode_points(np.array([[0.0, 0.0], [0.5, 0.0]]), s)
    assert half[0, 0] == pytest.approx(-half[1, 0], abs=1e-6) and abs(half[0, 0]) > 0.99
    north = encode_points(np.array([[0.0, 0.0], [0.0, 0.7]]), s)
    assert north[0, [0, 3]] == pytest.approx(north[1, [0, 3]], abs=1e-6)
    assert not np.allclose(north[0, [1, 2]], north[1, [1, 2]])  # the 120-degree directions


def test_the_plan_takes_location_only_when_asked_and_the_city_has_coordinates(
        tmp_path: Path) -> None:
    cfg = load_config(None, [])
    with_xy = load_dataset(tabular_city(tmp_path / "xy", coords=True))
    without = load_dataset(tabular_city(tmp_path / "plain"))
    on, off = {**cfg["model"], "location": True}, {**cfg["model"], "location": False}
    assert "location" in plan_inputs(with_xy, on).branches
    assert "location" not in plan_inputs(with_xy, off).branches
    assert "location" not in plan_inputs(without, on).branches
    assert location_features(with_xy.coords, cfg["features"]["location"]).shape[0] == 180


def test_urbanmoe_location_has_a_location_branch_and_needs_coordinates(tmp_path: Path) -> None:
    city = tabular_city(tmp_path / "xy", coords=True)
    cfg = load_config(None, [*QUICK, f"features.cache_dir={tmp_path}/c", "model.location=false"])
    plain = train_run(city, 0, tmp_path / "plain", {**cfg, "model": {**cfg["model"],
                                                                     "name": "urbanmoe"}},
                      progress=False)
    loc = train_run(city, 0, tmp_path / "loc", {**cfg, "model": {**cfg["model"],
                                                                 "name": "urbanmoe_location"}},
                    progress=False)
    assert loc["efficiency"]["params"] > plain["efficiency"]["params"]  # a third expert pool
    saved = (tmp_path / "loc" / "config.yaml").read_text()
    assert "location: true" in saved and "name: urbanmoe_location" in saved
    none = train_run(tabular_city(tmp_path / "plain_city"), 0, tmp_path / "skip",
                     {**cfg, "model": {**cfg["model"], "name": "urbanmoe_location"}},
                     progress=False)
    assert "needs lat/lon" in none["skipped"]


def test_by_default_urbanmoe_has_the_branch_and_the_other_models_do_not(
        tmp_path: Path) -> None:
    """``model.location: auto``: UrbanMoE and its variants take the branch on a city with
    coordinates, the baselines do not; ``false`` is the paper's model; the location experts
    have their own hidden width."""
    cfg = load_config(None, [])
    assert cfg["model"]["location"] == "auto"
    ds = load_dataset(tabular_city(tmp_path / "xy", coords=True))
    for name, want in (("urbanmoe", True), ("urbanmoe_st", True), ("urbanmoe_dense", True),
                       ("urbanmoe_location", True), ("ridge", False), ("lightgbm", False),
                       ("mmoe", False)):
        m = registry.configured(registry.get(name), {**cfg, "model": {**cfg["model"],
                                                                      "name": name}})["model"]
        assert m["location"] is want, name
        assert ("location" in plan_inputs(ds, m).branches) is want, name
    auto = registry.configured(registry.get("auto"), {**cfg, "model": {**cfg["model"],
                                                                       "name": "auto"}})
    assert auto["model"]["location"] == "auto"  # each candidate resolves it
    paper = registry.configured(registry.get("urbanmoe"), load_config(None, [
        "model.location=false"]))["model"]
    assert paper["location"] is False and "location" not in plan_inputs(ds, paper).branches
    model = build_model({**cfg["model"], "location_hidden": 8},
                        {"text": 20, "location": 96}, 0, ["a", "b"], 10, None, 0)
    assert model.branches["location"].experts.w1.shape[-1] == 8
    assert model.branches["text"].experts.w1.shape[-1] == cfg["model"]["expert_hidden"]


def test_auto_has_urbanmoe_location_as_a_candidate_unless_the_setting_says_otherwise(
        tmp_path: Path) -> None:
    """auto: the paper's UrbanMoE and its lag candidate without the branch, urbanmoe_location
    with it; false (the paper's configuration) and true (every candidate has it) leave the
    urbanmoe_location candidate out."""
    import torch

    city = tabular_city(tmp_path / "xy", coords=True)
    for location, extra, branch in (("auto", True, False), ("false", False, False),
                                    ("true", False, True)):
        cfg = load_config(None, [*QUICK, f"features.cache_dir={tmp_path}/c", "model.name=auto",
                                 f"model.location={location}"])
        m = train_run(city, 0, tmp_path / location, cfg, progress=False)
        assert ("urbanmoe_location" in m["candidates_test"]) is extra, location
        keys = torch.load(tmp_path / location / "model.pt", weights_only=True)
        for cand, want in (("urbanmoe", branch), ("urbanmoe_lag", branch),
                           ("urbanmoe_location", extra)):
            has = any(k.startswith(f"{cand}.") and ".branches.location." in k for k in keys)
            assert has is want, (location, cand)


def _polygon_city(root: Path) -> Path:
    """A tabular city whose positions come only from a geometry file of square cells."""
    import geopandas as gpd
    from shapely.geometry import box

    city = tabular_city(root, coords=True)
    table = pd.read_csv(city / "regions.csv", dtype={"region_id": str})
    cells = gpd.GeoDataFrame({"region_id": table["region_id"]},
                             geometry=[box(lon - 0.004, lat - 0.004, lon + 0.004, lat + 0.004)
                                       for lat, lon in zip(table["lat"], table["lon"],
                                                           strict=True)], crs="EPSG:4326")
    cells.to_crs("EPSG:3857").to_file(city / "areas.gpkg")
    table.drop(columns=["lat", "lon"]).to_csv(city / "regions.csv", index=False)
    (city / "dataset.yaml").write_text((city / "dataset.yaml").read_text()
                                       + "geometry: areas.gpkg\n")
    return city


def test_a_city_of_polygons_gets_centroids_for_knn_the_lag_and_spatial_blocks(
        tmp_path: Path) -> None:
    city = _polygon_city(tmp_path / "poly")
    ds = load_dataset(city)
    assert "lat" not in ds.table and ds.coords_source == "geometry centroids"
    grid = load_dataset(tabular_city(tmp_path / "xy", coords=True)).coords
    np.testing.assert_allclose(ds.coords, grid, atol=1e-6)  # the square cells' centres
    assert len(set(block_ids(ds.coords, 2.0))) > 1
    base = [*QUICK, f"features.cache_dir={tmp_path}/c"]
    for name, extra in (("knn", []), ("ridge", ["spatial.lag=context"]),
                        ("ridge", ["split.kind=spatial_block"]),
                        ("urbanmoe_location", [])):
        m = train_run(city, 0, tmp_path / f"{name}-{len(extra)}-{extra}",
                      load_config(None, [*base, f"model.name={name}", *extra]), progress=False)
        assert "skipped" not in m, (name, extra, m.get("skipped"))
        assert np.isfinite(m["log_scale"]["avg"]["r2"])
