"""Run variants: labels round-trip into overrides, and each experiment asks for the right runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from urbanmoe.cli import main
from urbanmoe.config import load_config
from urbanmoe.evaluation.experiments import (
    ablation_variants,
    figure3_variants,
    parse_variant,
    table3_variants,
    table4_variants,
    variant_label,
)
from urbanmoe.models.layout import TABLE5_PRESETS


def test_label_round_trips_into_config_overrides() -> None:
    label = variant_label("urbanmoe", {"model.use_region": False, "model.d_r": 4})
    assert label == "urbanmoe@model.use_region=false@model.d_r=4"
    model, items = parse_variant(label)
    cfg = load_config(None, [f"model.name={model}", *items])
    assert (cfg["model"]["name"], cfg["model"]["use_region"], cfg["model"]["d_r"]) == (
        "urbanmoe", False, 4)
    assert parse_variant("knn") == ("knn", [])
    for bad in ("urbanmoe@d_r", "@model.d_r=4", "urbanmoe@model.name=knn"):
        with pytest.raises(ValueError, match="variant"):
            parse_variant(bad)


def test_each_experiment_maps_to_the_configured_settings() -> None:
    cfg = load_config(None, [])
    t3 = table3_variants(cfg)
    assert set(t3) == set(TABLE5_PRESETS) and t3["all_three"] == "urbanmoe"  # 8/4/2 default
    for name, label in t3.items():
        m = load_config(None, parse_variant(label)[1])["model"]
        assert (m["n_specific"], m["n_shared"], m["n_dual"]) == TABLE5_PRESETS[name]
    t4 = table4_variants()
    assert t4["w/o Region & POI"] == "urbanmoe@model.use_region=false@model.use_poi=false"
    f3 = figure3_variants(cfg)
    assert list(f3["d_r"]) == cfg["experiments"]["d_r"] and f3["d_r"][6] == "urbanmoe"
    assert f3["eps"][0.01] == "urbanmoe" and f3["eps"][0.0] == "urbanmoe@model.eps=0.0"
    labels = ablation_variants(cfg)
    assert labels[0] == "urbanmoe" and len(labels) == len(set(labels)) == 18


def test_cli_train_variant_and_several_seeds(tmp_path: Path, toy_table, capsys) -> None:
    from conftest import write_dataset

    root = write_dataset(tmp_path / "toy", toy_table)
    out = tmp_path / "runs" / "knn@baselines.knn_k=3" / "seed{seed}"
    assert main(["train", "--dataset", str(root), "--seed", "0", "1", "--out", str(out),
                 "--variant", "knn@baselines.knn_k=3", "--quiet",
                 "--set", f"features.cache_dir={tmp_path / 'cache'}"]) == 0
    import json

    for seed in (0, 1):
        m = json.loads((tmp_path / f"runs/knn@baselines.knn_k=3/seed{seed}/metrics.json")
                       .read_text())
        assert (m["model"], m["variant"], m["seed"]) == ("knn", "knn@baselines.knn_k=3", seed)
        assert m["chosen_on_validation"]["k"] == 3
    assert main(["train", "--dataset", str(root), "--seed", "0", "1",
                 "--out", str(tmp_path / "x")]) == 2
    assert "{seed}" in capsys.readouterr().err
