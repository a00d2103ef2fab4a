"""Cities of every shape users bring, through `urbanmoe train`, the workflow and `predict`: a
tabular-only city without coordinates, a text-only city with coordinates, and an image-only
city. Each runs every model that can use what it has; the others are skipped with the reason."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import run_tiny_workflow, tabular_city, write_dataset

from urbanmoe.cli import main
from urbanmoe.data.synthetic import SynthSettings, generate_benchmark

ROOT = Path(__file__).resolve().parents[1]
MODELS = ["urbanmoe", "ridge", "lightgbm", "knn", "pca", "mean"]
# what each shape cannot serve: kNN needs lat/lon, PCA needs image tiles
SKIPPED = {"TAB": {"knn", "pca"}, "TXT": {"pca"}, "IMG": {"knn"}}
FAST = ["train.max_epochs=15", "train.patience=4", "baselines.head_patience=4",
        "model.expert_hidden=16",
        "model.expert_out=8", "model.head_hidden=8", "features.text.dim=16",
        "baselines.image_size=8"]
TARGETS = ["carbon", "population", "light"]


@pytest.fixture(scope="module")
def cities(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """TAB (tables only), TXT (text, lat/lon) and IMG (tiles only), 240 regions each of the
    last two cut from a synthetic city, with 20 unlabelled regions in TXT."""
    root = tmp_path_factory.mktemp("shapes")
    (dc,) = generate_benchmark(root / "synth", SynthSettings(tile_size=8, cities=("DC",)),
                               progress=False)
    table = pd.read_parquet(dc / "regions.parquet")
    table = table.iloc[np.random.default_rng(0).permutation(len(table))[:240]]
    meta = yaml.safe_load((dc / "dataset.yaml").read_text())
    targets = {t: meta["targets"][t] for t in TARGETS}
    text = table[["region_id", "lat", "lon", "text", *TARGETS]].copy()
    text.loc[text.index[:20], TARGETS] = np.nan
    write_dataset(root / "cities" / "TXT", text, {"name": "TXT", "targets": targets})
    image = table[["region_id", "image_path", *TARGETS]]
    write_dataset(root / "cities" / "IMG", image, {"name": "IMG", "targets": targets})
    for rel in image["image_path"]:
        (root / "cities" / "IMG" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(dc / rel, root / "cities" / "IMG" / rel)
    tabular_city(root / "cities" / "TAB")
    return root / "cities"


@pytest.mark.parametrize("city", ["TAB", "TXT", "IMG"])
def test_urbanmoe_train_runs_every_applicable_model(cities: Path, tmp_path: Path, city: str,
                                                    capsys: pytest.CaptureFixture) -> None:
    for model in MODELS:
        out = tmp_path / model
        sets = [a for kv in [f"model.name={model}", f"features.cache_dir={tmp_path / 'c'}",
                             *FAST] for a in ("--set", kv)]
        assert main(["train", "--dataset", str(cities / city), "--seed", "0", "--out", str(out),
                     "--quiet", *sets]) == 0
        metrics = json.loads((out / "metrics.json").read_text())
        if model in SKIPPED[city]:
            assert city in metrics["skipped"], metrics["skipped"]
            continue
        assert "skipped" not in metrics, metrics["skipped"]
        floor = -0.05 if model == "mean" else 0.1  # every real model reads its modality
        assert metrics["log_scale"]["avg"]["r2"] > floor, (model, metrics["log_scale"]["avg"])
    capsys.readouterr()


def test_the_workflow_runs_and_maps_every_shape(cities: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    shutil.copytree(ROOT / ".test/config", work / "config")
    path = work / "config" / "config.yaml"
    cfg = yaml.safe_load(path.read_text())
    cfg["data"].update(root=str(cities), datasets=["TAB", "TXT", "IMG"])
    cfg["workflow"].update(table2_models=MODELS, splits=["random"])
    cfg["train"]["seeds"] = [0, 1]
    path.write_text(yaml.safe_dump(cfg))
    maps = [f"paper_figures/maps/{c}/random" for c in ("TAB", "TXT", "IMG")]
    run_tiny_workflow(work, "--cores", "2", "results/summary.csv", *maps)
    summary = pd.read_csv(work / "results/summary.csv")
    ran = set(zip(summary["dataset"], summary["model"], strict=True))
    for city, skipped in SKIPPED.items():
        assert {(city, m) for m in MODELS if m not in skipped} == {r for r in ran if r[0] == city}
    assert (work / "paper_figures/maps/TXT/random/TXT-urbanmoe-predicted.png").is_file()
    assert (work / "results/predictions/TXT/random/regions.geojson").is_file()
    for city in ("TAB", "IMG"):  # no lat/lon: the table of predictions, no map
        out = work / f"results/predictions/{city}/random"
        assert (out / "predictions.csv").is_file() and not (out / "regions.geojson").exists()
        maps = work / f"paper_figures/maps/{city}/random"
        assert not list(maps.glob("*.png"))
        assert "no lat/lon" in (maps / f"{city}-urbanmoe-no-map.txt").read_text()
    txt = pd.read_csv(work / "results/predictions/TXT/random/predictions.csv")
    assert (~txt["labelled"]).sum() == 20 and np.isfinite(txt["carbon_pred"]).all()
