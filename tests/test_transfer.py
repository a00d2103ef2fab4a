"""Cross-city transfer: train on one city (or part), test on another that lends no labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import write_dataset

from urbanmoe.cli import TRANSFER_PARTS, main
from urbanmoe.config import load_config
from urbanmoe.data.table import load_dataset
from urbanmoe.evaluation.transfer import PARTS, city_part, join_cities, transfer_run, transfer_split


def test_parts_cut_a_city_at_its_median(synth_sh: Path) -> None:
    ds = load_dataset(synth_sh)
    west, east = city_part(ds, "west"), city_part(ds, "east")
    assert len(west) + len(east) == len(ds) and abs(len(west) - len(east)) <= len(ds) // 10
    assert west.table["lon"].max() < east.table["lon"].min()
    assert set(west.ids).isdisjoint(east.ids) and TRANSFER_PARTS == PARTS
    south, north = city_part(ds, "south"), city_part(ds, "north")
    assert south.table["lat"].max() < north.table["lat"].min()


def test_join_keeps_what_both_cities_share(tmp_path: Path, toy_table: pd.DataFrame) -> None:
    a = load_dataset(write_dataset(tmp_path / "a", toy_table))
    other = toy_table.drop(columns=["poi_education"]).rename(columns={"population": "light"})
    b = load_dataset(write_dataset(tmp_path / "b", other, {
        "name": "OTHER", "targets": {"carbon": {"transform": "log1p"},
                                     "light": {"transform": "log1p"}}}))
    joined, n_source = join_cities(a, b)
    assert n_source == len(a) and len(joined) == len(a) + len(b)
    assert joined.tasks == ["carbon"] and joined.poi_columns == ["poi_shopping"]
    assert joined.ids[0] == "source:r000" and joined.ids[-1] == "target:r039"
    split = transfer_split(n_source, len(joined), [0.6, 0.2, 0.2], seed=0)
    assert len(split.train) == 30 and len(split.val) == 10
    np.testing.assert_array_equal(split.test, np.arange(40, 80))
    none = b.table.drop(columns=["carbon"])
    c = load_dataset(write_dataset(tmp_path / "c", none, {
        "name": "NONE", "targets": {"light": {"transform": "log1p"}}}))
    with pytest.raises(ValueError, match="share no target"):
        join_cities(a, c)
    d = load_dataset(write_dataset(tmp_path / "d", toy_table, {
        "targets": {"carbon": {"transform": "none"}, "population": {"transform": "log1p"}}}))
    with pytest.raises(ValueError, match="target 'carbon' is log1p in TOY and none"):
        join_cities(a, d)


def test_transfer_run_tests_on_the_target_only(synth_sh: Path, tmp_path: Path) -> None:
    cache = f"features.cache_dir={tmp_path / 'cache'}"
    cfg = load_config(None, ["model.name=ridge", "spatial.lag=context", cache])
    m = transfer_run(synth_sh, synth_sh, 0, tmp_path / "run", cfg, source_part="west",
                     target_part="east", progress=False)
    t = m["transfer"]
    assert m["dataset"] == "SH-west->SH-east" and m["split"]["n_test"] == t["n_target"]
    assert t["n_source"] == m["split"]["n_train"] + m["split"]["n_val"]
    assert "spatial.lag" in t["turned_off"] and "model.use_region" in t["turned_off"]
    joined = list((tmp_path / "cache/transfer").iterdir())
    assert len(joined) == 1 and (joined[0] / "regions.parquet").is_file()  # features cached
    pred = pd.read_parquet(tmp_path / "run/predictions.parquet")
    assert pred["region_id"].str.startswith("target:").all()
    assert -0.5 < m["log_scale"]["avg"]["r2"] < 1.0
    knn = transfer_run(synth_sh, synth_sh, 0, tmp_path / "knn",
                       load_config(None, ["model.name=knn", cache]), source_part="east",
                       target_part="west", progress=False)
    assert "has none" in knn["skipped"]
    with pytest.raises(ValueError, match="overlap"):
        transfer_run(synth_sh, synth_sh, 0, tmp_path / "x", cfg, source_part="west",
                     target_part="all", progress=False)


def test_transfer_cli(synth_sh: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "seed{seed}"
    assert main(["transfer", "--source", str(synth_sh), "--target", str(synth_sh),
                 "--source-part", "south", "--target-part", "north", "--seed", "0",
                 "--out", str(out), "--variant", "mean", "--quiet",
                 "--set", f"features.cache_dir={tmp_path / 'cache'}"]) == 0
    metrics = json.loads((tmp_path / "seed0/metrics.json").read_text())
    assert metrics["variant"] == "mean" and metrics["transfer"]["target"] == "SH-north"
    assert "SH-south->SH-north mean seed 0" in capsys.readouterr().out
    assert main(["transfer", "--source", str(synth_sh), "--target", str(synth_sh),
                 "--seed", "0", "--out", str(tmp_path / "bad")]) == 2
    assert "overlap" in capsys.readouterr().err
