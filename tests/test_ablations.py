"""Tables 3-5 and Figure 3 (Section 3.5, Appendices B-C) from hand-made ablation run folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import notebook_parameters, skip_without_kernel

from urbanmoe.evaluation.ablations import ablation_summary, collect_ablations
from urbanmoe.evaluation.aggregate import collect
from urbanmoe.paper_items import ITEMS
from urbanmoe.report import ablations as ab
from urbanmoe.report.palette import save_figure

REPO = Path(__file__).resolve().parents[1]
TASKS = ["carbon", "population", "light"]
DEFAULT = {"n_specific": 8, "n_dual": 2, "n_shared": 4, "d_r": 6, "eps": 0.01,
           "use_region": True, "use_poi": True}
NOTE = "hand-made test runs (not the paper's data)"


def _r2(base: float, seed: int, j: int) -> float:
    return base + 0.01 * seed + 0.05 * j


def _metrics(base: float, seed: int) -> dict:
    """r2 = base + 0.01 seed + 0.05 task index; rmse = 1 + seed; mae = base / 2 + 0.02 seed."""
    per = {t: {"r2": _r2(base, seed, j), "rmse": 1.0 + seed, "mae": base / 2 + 0.02 * seed}
           for j, t in enumerate(TASKS)}
    per["avg"] = {m: float(np.mean([per[t][m] for t in TASKS])) for m in per["carbon"]}
    return per


def _write_run(root: Path, label: str, seed: int, base: float, model_name: str = "urbanmoe",
               config: dict | None = None, notes: list[str] | None = None,
               dataset: str = "SH", table2: bool = False) -> None:
    m = {"dataset": dataset, "model": model_name, "seed": seed, "tasks": TASKS,
         "split": {"kind": "random", "n_train": 6, "n_val": 2, "n_test": 2},
         "log_scale": _metrics(base, seed), "original_scale": _metrics(base, seed),
         "efficiency": {"params": 10, "peak_memory_mb": 1.0, "memory_kind": "x",
                        "train_seconds": 1.0, "total_seconds": 1.0},
         "notes": notes or [], "variant": label,
         "provenance": {"dataset_dir": f"data/synthetic/{dataset}", "device": "cpu"}}
    sub = model_name if table2 else label
    out = root / dataset / "random" / sub / f"seed{seed}"
    out.mkdir(parents=True)
    (out / "metrics.json").write_text(json.dumps(m))
    if config is not None:
        cfg = {"seed": seed, "model": {"name": "urbanmoe", "expert_hidden": 128, **DEFAULT,
                                       **config}, "train": {"seeds": [0, 1, 2], "lr": 3e-4}}
        (out / "config.yaml").write_text(yaml.safe_dump(cfg))


#: label -> (config overrides, base R²). The "odd" labels say nothing about the settings: runs
#: are placed by config.yaml. shared_dual is deliberately absent ("not run").
RUNS = {
    "urbanmoe": ({}, 0.70),
    "urbanmoe@model.n_specific=16@model.n_dual=0@model.n_shared=0":
        ({"n_specific": 16, "n_dual": 0, "n_shared": 0}, 0.60),
    "odd-label-a": ({"n_specific": 0, "n_dual": 0, "n_shared": 16}, 0.61),
    "urbanmoe@model.n_specific=0@model.n_dual=8@model.n_shared=0":
        ({"n_specific": 0, "n_dual": 8, "n_shared": 0}, 0.62),
    "urbanmoe@model.n_specific=8@model.n_dual=0@model.n_shared=8":
        ({"n_specific": 8, "n_dual": 0, "n_shared": 8}, 0.63),
    "urbanmoe@model.n_specific=8@model.n_dual=4@model.n_shared=0":
        ({"n_specific": 8, "n_dual": 4, "n_shared": 0}, 0.64),
    # a specific-only layout at another d_r: not a Table 3 row
    "odd-label-b": ({"n_specific": 16, "n_dual": 0, "n_shared": 0, "d_r": 4}, 0.10),
    "urbanmoe@model.use_region=false": ({"use_region": False}, 0.50),
    "urbanmoe@model.use_poi=false": ({"use_poi": False}, 0.52),
    "urbanmoe@model.use_region=false@model.use_poi=false":
        ({"use_region": False, "use_poi": False}, 0.48),
    "urbanmoe@model.d_r=2": ({"d_r": 2}, 0.40),
    "urbanmoe@model.d_r=4": ({"d_r": 4}, 0.45),
    "urbanmoe@model.eps=0.02": ({"eps": 0.02}, 0.66),
    "urbanmoe@model.eps=0": ({"eps": 0.0}, 0.68),
    # the full model's Table 3-5 settings but another expert size: in no study
    "urbanmoe@model.expert_hidden=64": ({"expert_hidden": 64}, 0.05),
}


@pytest.fixture()
def abl_root(tmp_path: Path) -> Path:
    root = tmp_path / "ablations"
    for label, (config, base) in RUNS.items():
        for seed in range(3):
            _write_run(root, label, seed, base, config=config)
    return root


@pytest.fixture()
def t2_root(tmp_path: Path) -> Path:
    """Table 2 runs: RemoteCLIP (ST) only (UrbanCLIP (ST) is "not run"), and a BJ decoy."""
    root = tmp_path / "runs"
    for seed in range(3):
        _write_run(root, "remoteclip_st", seed, 0.3, model_name="remoteclip_st",
                   notes=["frozen features, image: offline stats encoder"], table2=True)
        _write_run(root, "remoteclip_st", seed, 0.9, model_name="remoteclip_st",
                   dataset="BJ", table2=True)
    return root


def _expected(base: float, task: int, metric: str = "r2") -> tuple[float, float]:
    vals = {"r2": [_r2(base, s, task) for s in range(3)], "mae": [base / 2 + 0.02 * s
                                                                  for s in range(3)]}[metric]
    return float(np.mean(vals)), float(np.std(vals))


def test_table3_presets_order_stats_and_not_run(abl_root: Path) -> None:
    df = collect_ablations(abl_root, "SH", "random")
    assert len(df) == 3 * len(RUNS) and set(df["seed"]) == {0, 1, 2}
    t3 = ab.table3(df)
    assert list(t3["Configuration"]) == [r.label for r in ITEMS["table3"].rows]  # paper order
    assert list(t3["setting"]) == [r.key for r in ITEMS["table3"].rows]
    row = t3.set_index("setting")
    mean, std = _expected(0.61, 1)  # shared_only, found by config although labelled oddly
    assert row.loc["shared_only", "population_r2_mean"] == pytest.approx(mean)
    assert row.loc["shared_only", "population_r2_std"] == pytest.approx(std)
    assert row.loc["shared_only", "Note"] == "odd-label-a"
    # specific_only: only the d_r = 6 run, not the d_r = 4 one (base 0.10)
    assert row.loc["specific_only", "carbon_r2_mean"] == pytest.approx(_expected(0.60, 0)[0])
    assert row.loc["all_three", "avg_mae_mean"] == pytest.approx(_expected(0.70, 0, "mae")[0])
    assert row.loc["all_three", "Note"] == "urbanmoe"
    assert row.loc["all_three", "Carbon R²"] == f"0.7100 ± {std:.4f}"
    assert (row.loc["specific_dual", ["Specific", "Shared", "Dual"]] == ["✓", "", "✓"]).all()
    assert (row.loc["shared_only", ["Specific", "Shared", "Dual"]] == ["", "✓", ""]).all()
    assert row.loc["shared_dual", "Note"] == "not run"
    assert row.loc["shared_dual", "n_seeds"] == 0
    assert np.isnan(row.loc["shared_dual", "avg_r2_mean"])
    assert (row.drop(index="shared_dual")["n_seeds"] == 3).all()
    other = ablation_summary(df).query("study == 'other'")
    assert list(other["setting"]) == ["odd-label-b", "urbanmoe@model.expert_hidden=64"]


def test_table5_allocations() -> None:
    t5 = ab.table5().set_index("setting")
    assert (t5["experts_per_task"] == 16).all()  # Appendix B: 16 experts per task
    assert t5.loc["dual_only", "Dual-task (per task)"] == "8–8"
    assert t5.loc["all_three", "pool_size"] == 8 * 3 + 2 * 3 + 4  # Section 2.6: 34


def test_table4_with_and_without_baselines(abl_root: Path, t2_root: Path) -> None:
    df = collect_ablations(abl_root, "SH", "random")
    t4 = ab.table4(df, collect([t2_root])).set_index("setting")
    assert list(t4.index) == [r.key for r in ITEMS["table4"].rows]
    assert t4.loc["no_poi", "light_mae_mean"] == pytest.approx(_expected(0.52, 2, "mae")[0])
    assert t4.loc["no_region_poi", "carbon_r2_std"] == pytest.approx(_expected(0.48, 0)[1])
    assert t4.loc["full", "avg_r2_mean"] == pytest.approx(_expected(0.70, 1)[0])
    rc = t4.loc["remoteclip_st"]  # SH runs only: base 0.3, not the BJ decoy's 0.9
    assert rc["carbon_mae_mean"] == pytest.approx(_expected(0.3, 0, "mae")[0])
    assert "offline stats encoder" in rc["Note"] and rc["n_seeds"] == 3
    assert t4.loc["urbanclip_st", "Note"] == "not run"
    assert "Carbon MAE" in t4.columns and "Carbon RMSE" not in t4.columns
    assert (ab.table4(df)["n_seeds"].iloc[:2] == 0).all()  # no Table 2 runs given


def test_empty_root_is_all_not_run(tmp_path: Path) -> None:
    df = collect_ablations(tmp_path / "nothing", "SH", "random")
    assert df.empty
    assert (ab.table3(df)["Note"] == "not run").all()
    assert (ab.table4(df)["Note"] == "not run").all()
    fig = ab.figure3(df, "SH", [2, 6], [0.0, 0.01])
    assert "not run" in " ".join(t.get_text() for ax in fig.axes for t in ax.texts)


def test_figure3_config_values_and_band(abl_root: Path, tmp_path: Path) -> None:
    root = abl_root
    # labelled d_r=8 but its config says d_r=10: it is plotted at 10
    for seed in range(3):
        _write_run(root, "urbanmoe@model.d_r=8", seed, 0.55, config={"d_r": 10})
    df = collect_ablations(root, "SH", "random")
    fig = ab.figure3(df, "SH", [2, 4, 6, 8, 10], None)
    ax_a, ax_b = fig.axes[:2]
    assert "SH" in ax_a.get_title() and ax_a.get_xlabel() == "region embedding size d_r"
    assert ax_b.get_xlabel() == "gate threshold eps" and ax_a.get_ylabel() == "R² (log1p scale)"
    carbon = next(line for line in ax_a.lines if line.get_label() == "carbon")
    assert list(carbon.get_xdata()) == [2, 4, 6, 10]  # 8 not run
    assert carbon.get_ydata()[3] == pytest.approx(_expected(0.55, 0)[0])
    band = ax_a.collections[0].get_paths()[0].vertices
    mean, std = _expected(0.40, 0)  # d_r = 2
    at2 = band[np.isclose(band[:, 0], 2.0), 1]
    assert at2.min() == pytest.approx(mean - std) and at2.max() == pytest.approx(mean + std)
    assert "d_r=8" in " ".join(t.get_text() for t in ax_a.texts)
    eps = next(line for line in ax_b.lines if line.get_label() == "light")
    assert list(eps.get_xdata()) == pytest.approx([0.0, 0.01, 0.02])  # found in the runs
    default = [line for line in ax_a.lines if "default" in str(line.get_label())]
    assert default and default[0].get_xdata()[0] == 6
    assert ax_a.get_legend() is not None and ax_b.get_legend() is not None
    save_figure(fig, tmp_path / "fig3")
    assert (tmp_path / "fig3.png").stat().st_size > 0 and (tmp_path / "fig3.pdf").is_file()


def test_published_vs_reproduced(abl_root: Path, tmp_path: Path) -> None:
    df = collect_ablations(abl_root, "SH", "random")
    pub3 = pd.read_csv(REPO / "paper/published_table3.csv")
    pvr = ab.published_vs_reproduced(ab.table3(df), pub3, "SH", NOTE)
    row = pvr.set_index(["setting", "metric"]).loc[("all_three", "avg_r2")]
    published = float(pub3[pub3[["specific", "shared", "dual"]].all(axis=1)]["avg_r2"].iloc[0])
    assert row["published"] == pytest.approx(published)
    assert row["difference"] == pytest.approx(_expected(0.70, 1)[0] - published)
    assert set(pvr.loc[pvr["setting"] == "shared_dual", "status"]) == {"not run"}
    ab.write_published_vs_reproduced(pvr, tmp_path / "pvr3", "Table 3")
    md = (tmp_path / "pvr3.md").read_text()
    assert f"Reproduced on: {NOTE.rstrip('.')} (dataset SH)." in md
    assert "data/synthetic/SH" in md and "Not run yet: Shared + Dual." in md
    tex = (tmp_path / "pvr3.tex").read_text()
    assert "±" not in tex and r"\toprule" in tex
    pub4 = pd.read_csv(REPO / "paper/published_table4.csv")
    pvr4 = ab.published_vs_reproduced(ab.table4(df), pub4, "SH", NOTE)
    assert set(pvr4["metric"]) == {"carbon_mae", "population_mae", "light_mae"}
    r4 = pvr4.set_index(["setting", "metric"]).loc[("no_region", "carbon_mae")]
    assert r4["published"] == pytest.approx(0.8354) and r4["status"] == "reproduced"
    other = ab.published_vs_reproduced(ab.table4(df), pub4, "BJ", NOTE)
    assert other["published"].isna().all() and "SH only" in other.attrs["note"]


def test_write_table_checkmarks(abl_root: Path, tmp_path: Path) -> None:
    t3 = ab.table3(collect_ablations(abl_root, "SH", "random"))
    ab.write_table(t3, tmp_path / "table3", "Table 3")
    tex = (tmp_path / "table3.tex").read_text()
    assert r"$\checkmark$" in tex and "✓" not in tex
    assert "| Special-task only | ✓ |  |  |" in (tmp_path / "table3.md").read_text()
    csv = pd.read_csv(tmp_path / "table3.csv")
    assert list(csv["setting"]) == [r.key for r in ITEMS["table3"].rows]
    assert "n_seeds" in csv.columns



def test_notebook_end_to_end(abl_root: Path, t2_root: Path, tmp_path: Path) -> None:
    skip_without_kernel()
    import papermill

    out = tmp_path / "paper_figures"
    papermill.execute_notebook(
        str(REPO / "notebooks/ablations.ipynb"), str(tmp_path / "executed.ipynb"),
        parameters={"ablations_dir": str(abl_root), "runs_dir": str(t2_root),
                    "out_dir": str(out), "published_dir": str(REPO / "paper"),
                    "data_note": NOTE},
        kernel_name="python3", cwd=str(tmp_path), progress_bar=False)
    expected = {f"{stem}.{ext}" for stem in ("table3", "table5", "table4")
                for ext in ("csv", "md", "tex")}
    expected |= {"figure3.png", "figure3.pdf", "ablations_summary.csv"}
    expected |= {f"published_vs_reproduced_table{n}.{ext}" for n in (3, 4) for ext in ("md", "tex")}
    assert expected <= {p.name for p in out.iterdir()}
    summary = pd.read_csv(out / "ablations_summary.csv")
    for col in ("study", "variant", "setting", "n_seeds", "avg_r2_mean", "light_mae_std"):
        assert col in summary.columns, col
    full = summary[(summary["study"] == "figure3a") & (summary["value"] == 6)]
    assert full["carbon_r2_mean"].iloc[0] == pytest.approx(_expected(0.70, 0)[0])
    assert set(summary.loc[summary["study"] == "figure3b", "value"]) == {0.0, 0.01, 0.02, 0.03,
                                                                       0.04}
    assert "Reproduced on:" in (out / "published_vs_reproduced_table4.md").read_text()


def test_notebook_parameters_cell() -> None:
    params = notebook_parameters("ablations.ipynb")
    assert params["ablations_dir"] == "results/ablations" and params["runs_dir"] == "results/runs"
    assert (params["dataset"], params["split"]) == ("SH", "random")
    assert params["out_dir"] == "paper_figures" and params["published_dir"] == "paper"
    assert params["d_r_values"] == [2, 4, 6, 8, 10]  # Appendix C's grids
    assert params["eps_values"] == [0.0, 0.01, 0.02, 0.03, 0.04]


def test_a_new_ablation_row_is_one_paper_item_entry(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    """One Row added to Table 4's item: the workflow trains and mirrors its variant, the table
    shows its runs, and the comparison finds its published slot; nothing else is edited."""
    from dataclasses import replace

    from urbanmoe import workflow as wf
    from urbanmoe.config import load_config
    from urbanmoe.evaluation.experiments import ablation_variants
    from urbanmoe.paper_items import Row

    row = Row("no_region_dr4", "w/o Region, d_r = 4", {"model.use_region": False, "model.d_r": 4},
              published={"variant": "w/o Region (d_r = 4)"})
    item = ITEMS["table4"]
    monkeypatch.setitem(ITEMS, "table4", replace(item, rows=(*item.rows, row)))
    cfg = load_config(REPO / ".test/config/config.yaml")
    label = "urbanmoe@model.use_region=false@model.d_r=4"
    assert label in ablation_variants(cfg)
    run = f"results/ablations/DC/random/{label}/seed0"
    assert run in wf.ablation_runs(cfg) and run in wf.experiment_runs(cfg, "table4")

    root = tmp_path / "ablations"
    for name, (config, base) in {"urbanmoe": ({}, 0.70),
                                 label: ({"use_region": False, "d_r": 4}, 0.33)}.items():
        for seed in range(3):
            _write_run(root, name, seed, base, config=config)
    t4 = ab.table4(collect_ablations(root, "SH", "random"))
    new = t4.set_index("setting").loc["no_region_dr4"]
    assert new["label"] == "w/o Region, d_r = 4" and new["n_seeds"] == 3
    assert new["carbon_r2_mean"] == pytest.approx(_expected(0.33, 0)[0])
    assert t4.set_index("setting").loc["no_region", "n_seeds"] == 0  # not confused with it

    published = pd.DataFrame([{"dataset": "SH", "variant": "w/o Region (d_r = 4)",
                               "carbon_mae": 0.9, "population_mae": 1.0, "light_mae": 0.2}])
    pvr = ab.published_vs_reproduced(t4, published, "SH", NOTE)
    slot = pvr[(pvr["setting"] == "no_region_dr4") & (pvr["metric"] == "carbon_mae")].iloc[0]
    assert slot["published"] == 0.9 and slot["status"] == "reproduced"
    assert slot["reproduced_mean"] == pytest.approx(0.33 / 2 + 0.02)
