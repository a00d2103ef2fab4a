"""Aggregation of run folders: mean and std over seeds, in the datasets' task order."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from urbanmoe.cli import main


def _run(root: Path, model: str, seed: int, r2: float) -> None:
    tasks = ["population", "carbon"]
    per = {t: {"r2": r2, "rmse": 1.0, "mae": 0.5} for t in [*tasks, "avg"]}
    metrics = {"dataset": "SH", "model": model, "seed": seed, "tasks": tasks,
               "split": {"kind": "random"}, "log_scale": per,
               "efficiency": {"params": 10, "peak_memory_mb": 1.0, "train_seconds": 2.0},
               "noise_ceiling": {"population": 0.9, "carbon": 0.8}}
    out = root / model / f"seed{seed}"
    out.mkdir(parents=True)
    (out / "metrics.json").write_text(json.dumps(metrics, sort_keys=True))


def test_mean_and_std_over_seeds(tmp_path: Path, capsys) -> None:
    for seed, r2 in enumerate([0.6, 0.8]):
        _run(tmp_path / "runs", "urbanmoe", seed, r2)
    _run(tmp_path / "runs", "ridge", 0, 0.5)
    assert main(["aggregate", str(tmp_path / "runs"), "--out", str(tmp_path / "s.csv")]) == 0
    summary = pd.read_csv(tmp_path / "s.csv").set_index("model")
    assert summary.loc["urbanmoe", "avg_r2_mean"] == pytest.approx(0.7)
    assert summary.loc["urbanmoe", "avg_r2_std"] == pytest.approx(0.1)
    assert summary.loc["urbanmoe", "n_seeds"] == 2 and summary.loc["ridge", "n_seeds"] == 1
    table = capsys.readouterr().out
    assert "| population R² | carbon R² | avg R² |" in table  # the dataset's own task order
    assert "| SH | noise ceiling | | | | 0.9000 | 0.8000 | 0.8500 |" in table


def test_no_runs_is_an_error(tmp_path: Path, capsys) -> None:
    assert main(["aggregate", str(tmp_path), "--out", str(tmp_path / "s.csv")]) == 2
    assert "no metrics.json" in capsys.readouterr().err
