"""Table 2 from run folders, its three file formats, published-vs-reproduced, and the notebook."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import notebook_parameters, skip_without_kernel

from urbanmoe.evaluation.aggregate import collect
from urbanmoe.report import tables

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared/paper"
TASKS = ["carbon", "population", "light"]
BASE = {"urbanmoe": 0.80, "urbanmoe_st": 0.70, "ridge": 0.60, "mean": 0.0, "my_model": 0.5}
NOTE = "the embedded synthetic benchmark (not the paper's data)"


def _write_runs(root: Path, models: list[str], seeds: int = 3, dataset: str = "SH") -> Path:
    """Fake run folders: r2 = base + 0.01 * seed (+ 0.05 per task index), rmse = 1 + seed."""
    for model in models:
        for seed in range(seeds):
            per = {t: {"r2": BASE[model] + 0.01 * seed + 0.05 * j, "rmse": 1.0 + seed,
                       "mae": 0.5} for j, t in enumerate(TASKS)}
            per["avg"] = {m: float(np.mean([per[t][m] for t in TASKS])) for m in per["carbon"]}
            metrics = {
                "dataset": dataset, "model": model, "seed": seed, "tasks": TASKS,
                "split": {"kind": "random", "n_train": 60, "n_val": 20, "n_test": 20},
                "log_scale": per, "original_scale": per,
                "efficiency": {"params": 2_000_000 * (seed + 1), "peak_memory_mb": 100.0,
                               "memory_kind": "process_peak_rss", "train_seconds": 10.0 + seed,
                               "total_seconds": 12.0 + seed},
                "noise_ceiling": {t: 0.9 for t in TASKS},
                "provenance": {"config_hash": "abc", "table_sha256": "0" * 64,
                               "dataset_dir": f"data/synthetic/{dataset}", "device": "cpu",
                               "torch": "x", "python": "3.11"},
            }
            out = root / dataset / model / f"seed{seed}"
            out.mkdir(parents=True)
            (out / "metrics.json").write_text(json.dumps(metrics, sort_keys=True))
    return root


@pytest.fixture()
def runs_dir(tmp_path: Path) -> Path:
    """2 models x 3 seeds x 1 dataset (SH), named so that alphabetical order is not the paper's."""
    return _write_runs(tmp_path / "runs", ["urbanmoe", "urbanmoe_st"])


@pytest.fixture()
def published() -> pd.DataFrame:
    return pd.read_csv(REPO / "paper/published_table2.csv")


def test_table2_means_stds_and_order(runs_dir: Path) -> None:
    t2 = tables.table2(collect([runs_dir]), TASKS)
    assert list(t2["Model"]) == ["UrbanMoE (ST)", "UrbanMoE"]  # the paper's row order
    row = t2.set_index("model").loc["urbanmoe"]
    assert row["carbon_r2_mean"] == pytest.approx(0.81)
    assert row["carbon_r2_std"] == pytest.approx(0.01 * np.sqrt(2 / 3))  # ddof=0, as summarize
    assert row["light_r2_mean"] == pytest.approx(0.91)
    assert row["avg_rmse_mean"] == pytest.approx(2.0)
    assert row["Carbon R²"] == f"0.8100 ± {0.01 * np.sqrt(2 / 3):.4f}"
    assert row["params_m"] == pytest.approx(4.0) and row["Params (M)"] == "4.00"
    assert row["max_mem_mb"] == pytest.approx(100.0)
    assert row["total_time_s"] == pytest.approx(11.0)  # train_seconds, mean over seeds
    assert row["n_seeds"] == 3 and row["dataset_dir"] == "data/synthetic/SH"
    assert [c for c in t2.columns if c.endswith(" R²")] == [
        "Carbon R²", "Population R²", "Light R²", "Average R²"]


def test_row_order_extras_and_unknown(tmp_path: Path) -> None:
    root = _write_runs(tmp_path / "runs", ["my_model", "mean", "ridge", "urbanmoe"], seeds=1)
    _write_runs(root, ["urbanmoe"], seeds=1, dataset="BJ")
    t2 = tables.table2(collect([root]))  # tasks from runs.attrs
    assert list(zip(t2["dataset"], t2["Model"], strict=True)) == [
        ("SH", "UrbanMoE"), ("SH", "Ridge"), ("SH", "Mean predictor"), ("SH", "my_model"),
        ("BJ", "UrbanMoE")]
    assert t2["carbon_r2_std"].isna().all() and "±" not in t2["Carbon R²"].iloc[0]
    assert tables.display_name("pg_simclr") == "PG-SimCLR"
    assert tables.display_name("urbanclip_mt") == "UrbanCLIP (MT)"
    assert tables.display_name("resnet18") == "ResNet-18"


def test_write_table_formats(tmp_path: Path) -> None:
    root = _write_runs(tmp_path / "runs", ["urbanmoe_st", "my_model"])
    t2 = tables.table2(collect([root]), TASKS)
    tables.write_table(t2, tmp_path / "out/table2", "Table 2 (runs_dir 100% synthetic)")
    csv = pd.read_csv(tmp_path / "out/table2.csv")
    assert list(csv["model"]) == ["urbanmoe_st", "my_model"]
    assert csv["carbon_r2_mean"].iloc[0] == pytest.approx(0.71)
    assert all(c == c.lower() and " " not in c for c in csv.columns)  # numeric columns only
    md = (tmp_path / "out/table2.md").read_text()
    assert "| Dataset | Model | Carbon R² |" in md
    assert f"| SH | UrbanMoE (ST) | 0.7100 ± {0.01 * np.sqrt(2 / 3):.4f} |" in md
    tex = (tmp_path / "out/table2.tex").read_text()
    for s in (r"\toprule", r"\midrule", r"\bottomrule", r"\begin{tabular}", "my\\_model",
              r"runs\_dir 100\% synthetic", r"Carbon R$^2$", r"0.7100 $\pm$ "):
        assert s in tex, s
    assert "my_model" not in tex and "±" not in tex
    assert not list((tmp_path / "out").glob(".tmp*"))  # temporaries moved into place


def test_published_vs_reproduced(runs_dir: Path, published: pd.DataFrame,
                                 tmp_path: Path) -> None:
    t2 = tables.table2(collect([runs_dir]), TASKS)
    pvr = tables.published_vs_reproduced(t2, published[published["dataset"] == "SH"], NOTE)
    row = pvr.set_index(["model", "metric"]).loc[("UrbanMoE", "avg_r2")]
    pub = published.set_index(["dataset", "model"]).loc[("SH", "UrbanMoE"), "avg_r2"]
    assert row["published"] == pytest.approx(pub)
    assert row["reproduced_mean"] == pytest.approx(0.86)
    assert row["difference"] == pytest.approx(0.86 - pub)
    assert row["status"] == "reproduced"
    not_run = set(pvr.loc[pvr["status"] == "not run", "model"])
    assert {"Autoencoder", "PCA", "ResNet-18", "RemoteCLIP (MT)"} <= not_run
    assert "UrbanMoE" not in not_run and "UrbanMoE (ST)" not in not_run
    assert pvr.loc[pvr["status"] == "not run", "reproduced_mean"].isna().all()
    tables.write_published_vs_reproduced(pvr, tmp_path / "pvr")
    md = (tmp_path / "pvr.md").read_text()
    assert f"Reproduced on: {NOTE}." in md
    assert "not the method" in md and "data/synthetic/SH" in md
    assert "| SH | Autoencoder | Average R² | -0.0344 | not run |  |" in md
    assert f"| SH | UrbanMoE | Average R² | {pub:.4f} | 0.8600 ± " in md
    assert f"{0.86 - pub:+.4f}" in md
    assert "Not run yet: Autoencoder (SH), PCA (SH)" in md
    tex = (tmp_path / "pvr.tex").read_text()
    assert r"\toprule" in tex and "Reproduced on:" in tex and "not run" in tex



def test_notebook_end_to_end(runs_dir: Path, tmp_path: Path) -> None:
    skip_without_kernel()
    import papermill

    out = tmp_path / "paper_figures"
    papermill.execute_notebook(
        str(REPO / "notebooks/table2.ipynb"), str(tmp_path / "executed.ipynb"),
        parameters={"runs_dir": str(runs_dir), "out_dir": str(out),
                    "published": str(REPO / "paper/published_table2.csv"),
                    "datasets": ["SH", "BJ", "DC"], "data_note": NOTE},
        kernel_name="python3", cwd=str(tmp_path), progress_bar=False)
    names = {p.name for p in out.iterdir()}
    assert {"table2.csv", "table2.md", "table2.tex", "published_vs_reproduced.md",
            "published_vs_reproduced.tex"} <= names
    assert list(pd.read_csv(out / "table2.csv")["model"]) == ["urbanmoe_st", "urbanmoe"]
    pvr = (out / "published_vs_reproduced.md").read_text()
    assert f"Reproduced on: {NOTE}." in pvr and "| BJ |" not in pvr  # only datasets present
    executed = json.loads((tmp_path / "executed.ipynb").read_text())
    shown = json.dumps([c.get("outputs") for c in executed["cells"]])
    assert "UrbanMoE (ST)" in shown and "text/markdown" in shown


@pytest.mark.parametrize("name", ["published_table2.csv", "published_table3.csv",
                                  "published_table4.csv", "published_hafusion_icde24.csv"])
def test_published_tables_match_shared_copy(name: str) -> None:
    shared = SHARED / name
    if not shared.is_file():
        pytest.skip(f"shared copy {shared} not present")
    assert (REPO / "paper" / name).read_bytes() == shared.read_bytes()


def test_the_hafusion_table_is_whole() -> None:
    """Five methods x three tasks x three cities, each cell a number with its std."""
    df = pd.read_csv(REPO / "paper/published_hafusion_icde24.csv")
    assert len(df) == 45 and not df.isna().any().any()
    assert df.groupby(["task", "city"]).size().eq(5).all()
    assert set(df["model"]) == {"MVURE", "MGFN", "RegionDCL", "HREP", "HAFusion"}


def test_notebook_parameters_cell() -> None:
    params = notebook_parameters("table2.ipynb")
    assert params["runs_dir"] == "results/runs" and params["out_dir"] == "paper_figures"
    assert params["published"] == "paper/published_table2.csv"
    assert params["datasets"] == ["SH", "BJ", "DC"]
