"""The Snakemake workflow end to end on the tiny configuration (.test/), then nothing to redo."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _snakemake(work: Path, *args: str) -> str:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    cmd = [str(BIN / "snakemake"), "-s", str(ROOT / "Snakefile"), "-d", str(work), *args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def _mlflow_children_once(db: Path, expected: int) -> None:
    """Each run is mirrored once per experiment that uses it (a run may serve several)."""
    with sqlite3.connect(db) as con:
        keys = list(con.execute(
            "SELECT r.experiment_id, t.value FROM tags t JOIN runs r ON r.run_uuid = t.run_uuid "
            "WHERE t.key = 'urbanmoe.run_key' AND r.lifecycle_stage = 'active'"))
    assert len(keys) == expected and len(set(keys)) == expected, keys


def test_tiny_workflow_runs_and_second_call_has_nothing_to_do(tmp_path: Path) -> None:
    shutil.copytree(ROOT / ".test/config", tmp_path / "config")
    _snakemake(tmp_path, "--cores", "2")
    summary = (tmp_path / "results/summary.csv").read_text()
    for model in ("urbanmoe_st", "urbanmoe", "ridge", "mean", "knn", "pca"):
        for split in ("random", "spatial_block"):
            assert f"DC,{model},{split}" in summary
    for seed, split in ((0, "random"), (1, "spatial_block")):
        assert (tmp_path / f"results/runs/DC/{split}/urbanmoe/seed{seed}/metrics.json").is_file()
    assert (tmp_path / "logs/train/runs/DC/random/urbanmoe.log").is_file()
    variant = "urbanmoe@model.use_poi=false"
    ablation = tmp_path / f"results/ablations/DC/random/{variant}/seed1/metrics.json"
    assert json.loads(ablation.read_text())["variant"] == variant
    for name in ("table1.md", "table3.md", "table4.md", "table5.md", "figure3.png",
                 "figure4.png", "figure5.pdf", "figure6.png", "sparsity.md", "claims.md"):
        assert (tmp_path / "paper_figures" / name).is_file(), name
    for name in ("table2.csv", "table2.md", "table2.tex", "published_vs_reproduced.md"):
        assert (tmp_path / "paper_figures" / name).is_file(), name
    table2 = (tmp_path / "paper_figures/table2.md").read_text()
    assert "UrbanMoE (ST)" in table2 and "PCA" in table2 and "kNN on coordinates" in table2
    assert (tmp_path / "results/data_report/DC.md").is_file()
    for split in ("random", "spatial_block"):  # every region predicted by the default model
        assert (tmp_path / f"paper_figures/maps/DC/{split}/DC-urbanmoe-predicted.png").is_file()
        assert (tmp_path / f"results/predictions/DC/{split}/regions.geojson").is_file()
    assert (tmp_path / "results/notebooks/table2.ipynb").is_file()  # the executed notebook
    prov = json.loads((tmp_path / "paper_figures/provenance.json").read_text())
    assert "paper_figures/table2.md" in prov["artifacts"] and prov["seeds"] == [0, 1]
    assert all(r["mlflow_run_id"] for r in prov["runs"]) and len(prov["runs"]) == 48
    assert set(prov["data_sha256"]) == {"DC"} and prov["git"]["commit"]
    _mlflow_children_once(tmp_path / "mlflow.db", 24 + 14 + 8 + 6 + 1)
    # a forced rerun logs again without duplicating a run
    _snakemake(tmp_path, "--cores", "2", "--forcerun", "track")
    _mlflow_children_once(tmp_path / "mlflow.db", 24 + 14 + 8 + 6 + 1)
    assert "Nothing to be done" in _snakemake(tmp_path, "--cores", "2", "-n")
    _spatial_target(tmp_path)


def _spatial_target(work: Path) -> None:
    """`snakemake spatial` (the spatial-context comparison and a transfer across a city) in the
    folder the paper workflow ran in (it reuses the synthetic city and its features)."""
    _snakemake(work, "--cores", "2", "spatial")
    table = (work / "paper_figures/spatial/spatial_context.md").read_text()
    assert "reference" in table and "transductive" in table and "lag in z" in table
    assert (work / "paper_figures/spatial/spatial_context_tasks.png").is_file()
    transfer = (work / "paper_figures/spatial/transfer.md").read_text()
    assert "DC-west->DC-east" in transfer and "Ridge" in transfer
    knn = json.loads((work / "results/transfer/DC.west_to_DC.east/knn/seed0/metrics.json")
                     .read_text())
    assert "has none" in knn["skipped"]
    assert "Nothing to be done" in _snakemake(work, "--cores", "2", "spatial", "-n")


def test_lint_is_clean() -> None:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run([str(BIN / "snakemake"), "--lint"], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr

