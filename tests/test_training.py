"""Training end to end: outputs, learning, determinism, missing targets, UrbanMoE (ST)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import write_dataset

from urbanmoe.cli import main
from urbanmoe.config import load_config
from urbanmoe.evaluation.run import train_run

TINY = ["model.expert_hidden=16", "model.expert_out=8", "model.head_hidden=8",
        "train.max_epochs=4", "train.patience=2", "model.n_specific=2", "model.n_shared=1",
        "model.n_dual=1", "features.text.dim=8"]


def _cfg(tmp_path: Path, *extra: str) -> dict:
    return load_config(None, [f"features.cache_dir={tmp_path / 'cache'}", *extra])


@pytest.fixture(scope="module")
def sh_runs(synth_sh: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """UrbanMoE at the paper's settings, ridge and the mean predictor on synthetic SH, seed 0."""
    out = tmp_path_factory.mktemp("runs")
    cfg = load_config(None, [f"features.cache_dir={out / 'cache'}"])
    runs = {}
    for name in ("urbanmoe", "ridge", "mean"):
        cfg["model"]["name"] = name
        runs[name] = train_run(synth_sh, 0, out / name, cfg, progress=False)
        runs[name]["dir"] = out / name
    return runs


def test_urbanmoe_learns_beyond_mean_and_ridge(sh_runs: dict) -> None:
    r2 = {k: v["log_scale"]["avg"]["r2"] for k, v in sh_runs.items()}
    assert abs(r2["mean"]) < 0.02
    assert r2["urbanmoe"] > r2["ridge"] + 0.02, r2
    ceiling = sh_runs["urbanmoe"]["noise_ceiling"]
    for task in ("carbon", "population", "light"):
        got = sh_runs["urbanmoe"]["log_scale"][task]["r2"]
        assert 0.5 < got <= ceiling[task] + 0.02, (task, got, ceiling[task])


def test_run_folder_contents(sh_runs: dict) -> None:
    run = sh_runs["urbanmoe"]["dir"]
    metrics = json.loads((run / "metrics.json").read_text())
    for scale in ("log_scale", "original_scale"):
        for task in ("carbon", "population", "light", "avg"):
            assert set(metrics[scale][task]) == {"r2", "rmse", "mae"}
    n_test = metrics["split"]["n_test"]
    preds = pd.read_parquet(run / "predictions.parquet")
    assert len(preds) == n_test and "carbon_pred_log" in preds.columns
    routing = np.load(run / "routing.npz")
    gates = routing["all/image/gates"]
    assert gates.shape == (n_test, 3, 34)
    assert (gates == 0).any() and np.all(gates.sum(-1) <= 1 + 1e-5)
    assert routing["all/text/experts"].shape[:2] == (n_test, 34)
    state = torch.load(run / "model.pt", weights_only=True)
    assert any(k.startswith("all.") for k in state)
    assert metrics["efficiency"]["params"] > 1_000_000


def test_same_seed_same_numbers(tmp_path: Path, synth_sh: Path) -> None:
    cfg = _cfg(tmp_path, *TINY)
    a = train_run(synth_sh, 1, tmp_path / "a", cfg, progress=False)
    b = train_run(synth_sh, 1, tmp_path / "b", cfg, progress=False)
    c = train_run(synth_sh, 2, tmp_path / "c", cfg, progress=False)
    assert a["log_scale"] == b["log_scale"]
    assert a["log_scale"] != c["log_scale"]
    pa = pd.read_parquet(tmp_path / "a/predictions.parquet")
    pb = pd.read_parquet(tmp_path / "b/predictions.parquet")
    pd.testing.assert_frame_equal(pa, pb)


def test_seeding_turns_deterministic_algorithms_on_and_training_imports_stay_light() -> None:
    """In a fresh process: seeding sets the flag without importing torch._inductor, and the
    training entry points do not load scikit-learn (each workflow job would pay ~2 s)."""
    code = (
        "import sys, torch\n"
        "import urbanmoe.commands, urbanmoe.evaluation.run\n"
        "from urbanmoe.runtime.seeding import seed_everything\n"
        "seed_everything(0)\n"
        "assert torch.are_deterministic_algorithms_enabled()\n"
        "assert torch.is_deterministic_algorithms_warn_only_enabled()\n"
        "assert 'torch._inductor' not in sys.modules\n"
        "assert 'sklearn' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_missing_targets_are_excluded_not_imputed(tmp_path: Path, toy_table) -> None:
    toy_table.loc[::2, "carbon"] = np.nan
    root = write_dataset(tmp_path / "ds", toy_table)
    cfg = _cfg(tmp_path, *TINY, "model.branches=[text]", "model.region_embedding=lookup")
    metrics = train_run(root, 0, tmp_path / "run", cfg, progress=False)
    preds = pd.read_parquet(tmp_path / "run/predictions.parquet")
    observed = preds["carbon_true_log"].notna()
    assert (~observed).any()
    t, p = preds.loc[observed, "carbon_true_log"], preds.loc[observed, "carbon_pred_log"]
    mae = float(np.mean(np.abs(t - p)))
    assert metrics["log_scale"]["carbon"]["mae"] == pytest.approx(mae, rel=1e-6)


def test_single_task_variant_trains_one_model_per_task(tmp_path: Path, synth_sh: Path) -> None:
    cfg = _cfg(tmp_path, *TINY, "model.name=urbanmoe_st", "model.st_experts=4")
    metrics = train_run(synth_sh, 0, tmp_path / "st", cfg, progress=False)
    assert set(metrics["efficiency"]["epochs"]) == {"carbon", "population", "light"}
    routing = np.load(tmp_path / "st/routing.npz")
    assert routing["carbon/image/gates"].shape[1:] == (1, 4)


def test_cli_train_prints_metrics(tmp_path: Path, synth_sh: Path, capsys) -> None:
    args = ["train", "--dataset", str(synth_sh), "--seed", "0", "--out", str(tmp_path / "r"),
            "--quiet", "--set", f"features.cache_dir={tmp_path / 'c'}"]
    for item in TINY:
        args += ["--set", item]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "avg" in out and "noise ceiling" in out and (tmp_path / "r/metrics.json").exists()


def test_cli_synth_writes_the_configured_cities_deterministically(tmp_path: Path,
                                                                  capsys) -> None:
    args = ["synth", "--quiet", "--set", "synth.cities=[DC]", "--set", "synth.tile_size=8"]
    assert main([*args, "--out", str(tmp_path / "a"), "--seed", "3"]) == 0
    assert main([*args, "--out", str(tmp_path / "b"), "--seed", "3"]) == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / "a/DC"), str(tmp_path / "b/DC")]
    a = (tmp_path / "a/DC/regions.parquet").read_bytes()
    assert a == (tmp_path / "b/DC/regions.parquet").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]  # no temporary left over
