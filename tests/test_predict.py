"""``urbanmoe predict``: trained runs applied to every region, the unlabelled ones too, with the
spread over seeds, a GeoJSON and maps; run folders that do not fit are refused in one line."""

from __future__ import annotations

import shutil
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import tabular_city
from shapely.geometry import box

from urbanmoe.cli import main
from urbanmoe.config import load_config
from urbanmoe.data.table import load_dataset
from urbanmoe.evaluation.run import train_run
from urbanmoe.report.maps import write_predictions

FAST = ["train.max_epochs=20", "train.patience=5", "model.expert_hidden=16",
        "model.expert_out=8", "model.head_hidden=8"]
UNLABELLED = 20


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 160-region city with lat/lon whose last 20 regions have no label, and runs of
    UrbanMoE (two seeds) and LightGBM (one) on it."""
    root = tmp_path_factory.mktemp("predict")
    city = tabular_city(root / "CITY", n=160, coords=True)
    table = pd.read_csv(city / "regions.csv", dtype={"region_id": str})
    table.loc[table.index[-UNLABELLED:], ["carbon", "population", "light"]] = np.nan
    table.to_csv(city / "regions.csv", index=False)
    runs = root / "runs"
    for name, seeds in (("urbanmoe", (0, 1)), ("lightgbm", (0,))):
        cfg = load_config(None, [f"model.name={name}", f"features.cache_dir={root / 'cache'}",
                                 *FAST])
        for seed in seeds:
            train_run(city, seed, runs / name / f"seed{seed}", cfg, progress=False)
    return city, runs


def test_unlabelled_regions_are_never_trained_on_or_scored(trained: tuple[Path, Path]) -> None:
    city, runs = trained
    ids = set(load_dataset(city).ids[-UNLABELLED:])
    scored = pd.read_parquet(runs / "urbanmoe" / "seed0" / "predictions.parquet")
    assert not ids & set(scored["region_id"])
    assert len(scored) == round(0.2 * (160 - UNLABELLED))


def test_every_region_gets_a_prediction_with_the_seed_spread(trained: tuple[Path, Path],
                                                             tmp_path: Path) -> None:
    city, runs = trained
    both = write_predictions([runs / "urbanmoe"], None, tmp_path / "both")
    assert both["seeds"] == [0, 1] and both["n_unlabelled"] == UNLABELLED
    table = pd.read_csv(tmp_path / "both" / "predictions.csv", dtype={"region_id": str})
    assert len(table) == 160 and (~table["labelled"]).sum() == UNLABELLED
    assert np.isfinite(table["carbon_pred"]).all()
    single = []
    for seed in (0, 1):
        write_predictions([runs / "urbanmoe" / f"seed{seed}"], city, tmp_path / f"s{seed}")
        single.append(pd.read_csv(tmp_path / f"s{seed}" / "predictions.csv",
                                  dtype={"region_id": str}))
    for task in ("carbon", "population", "light"):
        per_seed = np.stack([t[f"{task}_pred_log"].to_numpy() for t in single])
        np.testing.assert_allclose(table[f"{task}_pred_log"], per_seed.mean(0), atol=1e-6)
        np.testing.assert_allclose(table[f"{task}_pred_log_std"], per_seed.std(0), atol=1e-6)
        assert (table[f"{task}_pred_log_std"] > 0).mean() > 0.9  # two seeds disagree
        assert (single[0][f"{task}_pred_log_std"] == 0).all()
        np.testing.assert_allclose(np.expm1(table[f"{task}_pred_log"]), table[f"{task}_pred"],
                                   rtol=1e-6)
    # the residuals: labelled regions some seed tested, label minus those seeds' predictions
    seed0 = pd.read_parquet(runs / "urbanmoe" / "seed0" / "predictions.parquet")
    s0 = single[0].set_index("region_id").loc[seed0["region_id"]]
    np.testing.assert_allclose(s0["carbon_residual_log"],
                               seed0["carbon_true_log"] - seed0["carbon_pred_log"], atol=1e-5)
    assert single[0]["carbon_residual"].notna().sum() == len(seed0)


def test_geojson_and_maps_for_gis_users(trained: tuple[Path, Path], tmp_path: Path) -> None:
    city, runs = trained
    summary = write_predictions([runs / "lightgbm"], None, tmp_path / "out", tmp_path / "maps")
    shapes = gpd.read_file(tmp_path / "out" / "regions.geojson")
    assert len(shapes) == 160 and shapes.crs.to_epsg() == 4326
    assert (shapes.geom_type == "Point").all() and "carbon_pred" in shapes.columns
    names = {Path(p).name for p in summary["maps"]}
    assert names == {f"TAB-lightgbm-{k}.{e}" for k in ("predicted", "residuals")
                     for e in ("png", "pdf")}
    assert all((tmp_path / "maps" / n).stat().st_size > 10_000 for n in names)


def test_region_polygons_from_a_geometry_file(trained: tuple[Path, Path],
                                              tmp_path: Path) -> None:
    city, runs = trained
    copy = tmp_path / "CITY"
    shutil.copytree(city, copy)
    ds = load_dataset(copy)
    cells = gpd.GeoDataFrame({"region_id": ds.ids},
                             geometry=[box(lon - 0.005, lat - 0.005, lon + 0.005, lat + 0.005)
                                       for lat, lon in ds.coords], crs="EPSG:4326")
    cells.to_crs("EPSG:3857").to_file(copy / "areas.gpkg")
    (copy / "dataset.yaml").write_text((copy / "dataset.yaml").read_text()
                                       + "geometry: areas.gpkg\n")
    summary = write_predictions([runs / "lightgbm"], copy, tmp_path / "out")
    assert summary["shapes"] == "polygons"
    shapes = gpd.read_file(tmp_path / "out" / "regions.geojson")
    assert (shapes.geom_type == "Polygon").all()
    centres = shapes.to_crs("EPSG:3857").centroid.to_crs("EPSG:4326")
    np.testing.assert_allclose(centres.y, ds.coords[:, 0], atol=1e-6)


def _refused(capsys: pytest.CaptureFixture, *argv: str) -> str:
    assert main(["predict", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    return err


def test_runs_that_do_not_fit_are_refused_in_one_line(trained: tuple[Path, Path],
                                                      tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    city, runs = trained
    out = ["--out", str(tmp_path / "out"), "--quiet"]
    run = tmp_path / "run"
    shutil.copytree(runs / "urbanmoe" / "seed0", run)
    (run / "model.pt").unlink()
    assert f"{run / 'model.pt'}: file not found" in _refused(capsys, "--runs", str(run), *out)
    other = tabular_city(tmp_path / "OTHER", n=150, seed=1, coords=True)
    err = _refused(capsys, "--runs", str(runs / "lightgbm"), "--dataset", str(other), *out)
    assert "test regions are not those of" in err
    # the same regions, one POI category fewer: the checkpoint expects other dimensions
    fewer = tmp_path / "FEWER"
    shutil.copytree(city, fewer)
    table = pd.read_csv(fewer / "regions.csv", dtype={"region_id": str})
    table.drop(columns="poi_c39").to_csv(fewer / "regions.csv", index=False)
    err = _refused(capsys, "--runs", str(runs / "urbanmoe" / "seed0"), "--dataset", str(fewer),
                   *out)
    assert "model.pt: " in err and "has shape" in err and "these inputs need" in err
    shutil.copytree(runs / "urbanmoe" / "seed0", tmp_path / "bent")
    state = torch.load(tmp_path / "bent" / "model.pt", weights_only=True)
    torch.save({k: v + 1.0 if v.is_floating_point() else v for k, v in state.items()},
               tmp_path / "bent" / "model.pt")
    err = _refused(capsys, "--runs", str(tmp_path / "bent"), *out)
    assert "recomputed test predictions differ from the run's" in err
    assert not (tmp_path / "out").exists()
    assert _refused(capsys, "--runs", str(tmp_path), *out).startswith("urbanmoe: error: ")
