"""Every model.name through one run: the registry's families, skipping, and the tables."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import write_dataset

from urbanmoe.config import load_config, schema
from urbanmoe.evaluation.aggregate import collect
from urbanmoe.evaluation.run import train_run
from urbanmoe.report import tables
from urbanmoe.training import registry

FAST = ["train.max_epochs=30", "train.patience=5", "baselines.head_patience=5",
        "baselines.ssl_epochs=2", "baselines.image_size=16", "baselines.mlp_hidden=64",
        "baselines.urbanclip.epochs=1"]


def _cfg(tmp_path: Path, name: str, *extra: str) -> dict:
    return load_config(None, [f"features.cache_dir={tmp_path / 'cache'}", f"model.name={name}",
                              *FAST, *extra])


def test_every_schema_model_is_registered_and_every_target_resolves() -> None:
    enum = schema()["properties"]["model"]["properties"]["name"]["enum"]
    assert sorted(enum) == sorted(registry.MODELS)
    for spec in registry.MODELS.values():
        if spec.family == "auto":  # no target: training/auto.py fits the candidates
            assert spec.target == ""
            continue
        assert callable(spec.function()), spec.name


@pytest.mark.parametrize("name", ["knn", "mlp_mt", "pca", "remoteclip_st", "urbanmoe_dense"])
def test_each_family_trains_through_one_run(tmp_path: Path, synth_sh: Path, name: str) -> None:
    metrics = train_run(synth_sh, 0, tmp_path / "run", _cfg(tmp_path, name), progress=False)
    assert metrics["log_scale"]["avg"]["r2"] > 0.3, metrics["log_scale"]["avg"]
    assert metrics["efficiency"]["params"] > 0
    assert (tmp_path / "run/predictions.parquet").is_file()
    if name == "remoteclip_st":  # the table says which encoder the frozen features came from
        assert "offline stats encoder" in metrics["notes"][0]
    if name == "pca":
        assert set(metrics["efficiency"]["epochs"]) == {"carbon", "population", "light"}


def test_dense_urbanmoe_keeps_every_expert(tmp_path: Path, synth_sh: Path) -> None:
    train_run(synth_sh, 0, tmp_path / "run", _cfg(tmp_path, "urbanmoe_dense",
                                                  "train.max_epochs=2"), progress=False)
    routing = np.load(tmp_path / "run/routing.npz")
    gates = [routing[k] for k in routing.files if k.endswith("/gates")]
    assert gates
    for g in gates:  # (regions, tasks, pool): every eligible expert of a task stays active
        active = (g > 0).sum(0)  # (tasks, pool): in how many regions each expert is active
        assert set(np.unique(active)) <= {0, g.shape[0]}


def test_model_without_its_data_is_skipped_with_a_reason(tmp_path: Path,
                                                         toy_table: pd.DataFrame) -> None:
    root = write_dataset(tmp_path / "toy", toy_table)  # text and POIs, no image tiles
    cfg = _cfg(tmp_path, "autoencoder")
    metrics = train_run(root, 0, tmp_path / "runs/ae", cfg, progress=False)
    assert "needs raw image data" in metrics["skipped"]
    on_disk = json.loads((tmp_path / "runs/ae/metrics.json").read_text())
    assert on_disk["skipped"] == metrics["skipped"]
    train_run(root, 0, tmp_path / "runs/ridge", _cfg(tmp_path, "ridge"), progress=False)
    runs = collect([tmp_path / "runs"])
    assert list(runs["model"]) == ["ridge"]
    assert runs.attrs["skipped"][0]["model"] == "autoencoder"
    t2 = tables.table2(runs)
    row = t2[t2["model"] == "autoencoder"].iloc[0]
    assert row["Note"].startswith("skipped: Autoencoder needs raw image data")
    assert "skipped: Autoencoder" in tables.to_markdown(t2)
