"""Figures 4-5 and the measured sparsity table on real routing.npz files of tiny UrbanMoE runs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import notebook_parameters, skip_without_kernel

from urbanmoe.config import load_config
from urbanmoe.data.synthetic import SynthSettings, generate_city
from urbanmoe.errors import RunError
from urbanmoe.evaluation import experts as ex
from urbanmoe.evaluation import sparsity as sp
from urbanmoe.evaluation.run import train_run
from urbanmoe.models.layout import ExpertLayout
from urbanmoe.report import expert_figures as figs

REPO = Path(__file__).resolve().parents[1]
# 3 tasks, 2 specific + 1 dual per pair + 2 shared: E = 11 experts, M = 6 eligible per task
LAYOUT = {"model.n_specific": 2, "model.n_dual": 1, "model.n_shared": 2}
HIGH_EPS = 0.2  # > 1/6: with 6 eligible experts at most 4 can be kept (5 * 0.2 = 1)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[float, Path]:
    """Two tiny multi-task UrbanMoE runs on synthetic DC: eps = 0 and eps = HIGH_EPS."""
    tmp = tmp_path_factory.mktemp("experts")
    data = generate_city("DC", tmp / "data", SynthSettings(seed=0, tile_size=8), progress=False)
    out = {}
    for eps in (0.0, HIGH_EPS):
        cfg = load_config(None, [
            f"features.cache_dir={tmp / 'cache'}", "model.name=urbanmoe",
            "model.expert_hidden=8", "model.expert_out=8", "train.max_epochs=2",
            "train.device=cpu", f"model.eps={eps}", *[f"{k}={v}" for k, v in LAYOUT.items()]])
        out[eps] = tmp / f"eps{eps}"
        train_run(data, 0, out[eps], cfg, progress=False)
    return out


def _gates(run: Path) -> dict[str, np.ndarray]:
    with np.load(run / "routing.npz", allow_pickle=True) as z:
        return {k.split("/")[1]: z[k] for k in z.files if k.endswith("/gates")}


@pytest.mark.parametrize("eps", [0.0, HIGH_EPS])
def test_router_weights_sums_and_eligibility(runs: dict[float, Path], eps: float) -> None:
    r = ex.load_routing(runs[eps])
    assert r.eps == eps and r.tasks == ["carbon", "population", "light"]
    layout = ExpertLayout(3, LAYOUT["model.n_specific"], LAYOUT["model.n_dual"],
                          LAYOUT["model.n_shared"])
    assert np.array_equal(r.eligible, layout.eligibility.numpy())
    w = sp.router_weights(r)
    assert len(w) == 3 * len(r.branches) * layout.n_experts
    m = layout.n_eligible[0]
    sums = w[w["eligible"]].groupby(["task", "branch"])["mean_weight"].sum()
    # router.py does not renormalise after Eq. 5: each region's sum lies in (1 - M*eps, 1]
    assert (sums <= 1 + 1e-5).all() and (sums >= 1 - m * eps - 1e-5).all()
    if eps == 0:
        assert np.allclose(sums, 1.0, atol=1e-5)
    off = w[~w["eligible"]]
    assert (off["mean_weight"] == 0).all() and (off["share_active"] == 0).all()
    gates = _gates(runs[eps])
    row = w[(w["task"] == "light") & (w["branch"] == "text")].sort_values("expert")
    assert np.allclose(row["mean_weight"], gates["text"][:, 2, :].mean(axis=0))


@pytest.mark.parametrize("eps", [0.0, HIGH_EPS])
def test_sparsity_counts_match_routing(runs: dict[float, Path], eps: float) -> None:
    r = ex.load_routing(runs[eps])
    table = sp.sparsity_table(r).set_index(["branch", "task"])
    gates, state = _gates(runs[eps]), torch.load(runs[eps] / "model.pt", weights_only=True)
    for b, g in gates.items():
        for t, task in enumerate(r.tasks):
            row = table.loc[(b, task)]
            count = (g[:, t, :] > 0).sum(axis=1)
            assert row["mean_active"] == pytest.approx(count.mean())
            assert row["n_eligible"] == 6 and row["eps"] == eps
            if eps == 0:
                assert row["share_active"] == 1.0 and row["min_active"] == 6
            else:
                assert row["max_active"] <= 4  # at most 4 weights of 6 can exceed 0.2
        union = table.loc[(b, sp.ALL_TASKS)]
        assert union["mean_active"] == pytest.approx((g > 0).any(axis=1).sum(axis=1).mean())
        assert union["n_eligible"] == g.shape[-1]
        d_in, h = state[f"all.branches.{b}.experts.w1"].shape[1:]  # (E, d_in, h)
        per = 2 * d_in * h + 2 * h * 8
        assert union["flops_dense"] == per * g.shape[-1]
        assert union["flops_active"] == pytest.approx(per * union["mean_active"])
    assert (table["measured_time_saving"] == 0).all()


def test_sparsity_files_and_caption(runs: dict[float, Path], tmp_path: Path) -> None:
    r = ex.load_routing(runs[HIGH_EPS])
    figs.write_sparsity(sp.sparsity_table(r), tmp_path / "sparsity", r, "toy")
    md = (tmp_path / "sparsity.md").read_text()
    assert "masks afterwards" in md and f"ε = {HIGH_EPS:g}" in md and "2·d_in·h + 2·h·o" in md
    csv = pd.read_csv(tmp_path / "sparsity.csv")
    assert {"mean_active", "share_active", "flops_dense", "flops_active"} <= set(csv.columns)
    assert (tmp_path / "sparsity.tex").read_text().startswith(r"\begin{table}")


def test_tsne_is_deterministic_and_the_same_in_parallel(runs: dict[float, Path]) -> None:
    r = ex.load_routing(runs[0.0])
    a, b = ex.expert_tsne(r, n_points=8, seed=0), ex.expert_tsne(r, n_points=8, seed=0, jobs=2)
    pd.testing.assert_frame_equal(a, b)
    c = ex.expert_tsne(r, n_points=8, seed=1)
    assert not np.allclose(a[["x", "y"]], c[["x", "y"]])
    panel = a[(a["task"] == "carbon") & (a["branch"] == r.branches[0])]
    assert panel["category"].value_counts().to_dict() == {
        "specific": 16, "dual": 16, "shared": 16, "fused": 8}  # 2+2+2 experts, 8 regions
    assert set(panel.loc[panel["category"] == "specific", "expert"]) == {0, 1}
    wide = dataclasses.replace(r, fused={k: np.zeros(v.shape[:2] + (3,))
                                         for k, v in r.fused.items()})
    with pytest.raises(ValueError, match="fused width"):
        ex.expert_tsne(wide, n_points=8)


def test_figures_written(runs: dict[float, Path], tmp_path: Path) -> None:
    r = ex.load_routing(runs[HIGH_EPS])
    w = figs.write_figure5(r, tmp_path, "toy")
    figs.write_figure4(r, tmp_path, n_points=6, seed=0, note="toy")
    for name in ("figure4.png", "figure4.pdf", "figure5.png", "figure5.pdf"):
        assert (tmp_path / name).stat().st_size > 1000, name
    import matplotlib.image

    assert matplotlib.image.imread(tmp_path / "figure5.png").shape[2] in (3, 4)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "figure5_weights.csv"), w,
                                  check_dtype=False)


def test_figure5_marks_experts_zeroed_everywhere(runs: dict[float, Path]) -> None:
    r = ex.load_routing(runs[HIGH_EPS])
    gates = {b: g.copy() for b, g in r.gates.items()}
    gates[r.branches[0]][:, 0, 1] = 0.0  # carbon's 2nd specific expert: never kept
    dead = dataclasses.replace(r, gates=gates)
    w = sp.router_weights(dead)
    fig = figs.figure5(w, dead)
    marks = [line for ax in fig.axes for line in ax.get_lines() if line.get_marker() == "x"]
    assert len(marks) == 1 and list(marks[0].get_xdata()) == [1]
    assert "zeroed everywhere: 1/6" in " ".join(t.get_text() for t in fig.axes[0].texts)


def test_load_routing_errors(tmp_path: Path) -> None:
    with pytest.raises(RunError, match="not found"):
        ex.load_routing(tmp_path)
    np.savez(tmp_path / "routing.npz", tasks=np.array(["a"]))
    with pytest.raises(KeyError, match="no routing"):
        ex.load_routing(tmp_path)


def test_short_labels() -> None:
    tasks = ["carbon", "population", "light"]
    labels = ExpertLayout(3, 1, 1, 1).expert_labels(tasks)
    assert ex.short_labels(labels, tasks) == [
        "S:carbon 1", "S:pop 1", "S:light 1", "D:carbon-pop 1", "D:carbon-light 1",
        "D:pop-light 1", "H 1"]



def test_notebook_end_to_end(runs: dict[float, Path], tmp_path: Path) -> None:
    skip_without_kernel()
    import papermill

    out = tmp_path / "paper_figures"
    papermill.execute_notebook(
        str(REPO / "notebooks/experts.ipynb"), str(tmp_path / "executed.ipynb"),
        parameters={"run_dir": str(runs[HIGH_EPS]), "out_dir": str(out), "tsne_seed": 0,
                    "n_points": 6, "tsne_iter": 250, "dataset_note": "toy data"},
        kernel_name="python3", cwd=str(tmp_path), progress_bar=False)
    assert {p.name for p in out.iterdir()} >= {
        "figure4.png", "figure4.pdf", "figure5.png", "figure5.pdf", "figure5_weights.csv",
        "sparsity.csv", "sparsity.md", "sparsity.tex"}
    assert "toy data" in (out / "sparsity.md").read_text()


def test_notebook_parameters_cell() -> None:
    params = notebook_parameters("experts.ipynb")
    assert params["out_dir"] == "paper_figures" and params["tsne_seed"] == 0
    assert params["n_points"] == 150 and params["tsne_iter"] == 1000
    assert isinstance(params["dataset_note"], str)
