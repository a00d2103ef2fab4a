"""Figure 4 (Appendix D.1: t-SNE of expert outputs), Figure 5 (Appendix D.2: sparse router
weights) and the measured-sparsity table (Section 2.6), drawn from one run folder's routing.

The data come from ``urbanmoe.evaluation.experts`` (:func:`~urbanmoe.evaluation.experts.
load_routing`, :func:`~urbanmoe.evaluation.experts.expert_tsne`) and
``urbanmoe.evaluation.sparsity`` (:func:`~urbanmoe.evaluation.sparsity.sparsity_table`,
:func:`~urbanmoe.evaluation.sparsity.router_weights`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from urbanmoe.evaluation.experts import ABBREV, CATEGORIES, CATEGORY_NAMES, Routing, expert_tsne
from urbanmoe.evaluation.sparsity import router_weights
from urbanmoe.io import atomic_path
from urbanmoe.report.palette import CATEGORY_COLOURS, save_figure, use_agg
from urbanmoe.report.tables import write_table


# ---------------------------------------------------------------------------- Figure 4
def figure4(points: pd.DataFrame, r: Routing, note: str = "") -> Figure:
    """t-SNE panels per task (rows) and branch (columns), coloured by expert category."""
    use_agg()
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(r.tasks), len(r.branches), squeeze=False, layout="constrained",
                             figsize=(5.0 * len(r.branches), 4.3 * len(r.tasks) + 1.0))
    n = points["region"].nunique()
    for i, task in enumerate(r.tasks):
        for j, b in enumerate(r.branches):
            ax, d = axes[i, j], points[(points["task"] == task) & (points["branch"] == b)]
            for cat in CATEGORIES:
                c = d[d["category"] == cat]
                fused = cat == "fused"
                ax.scatter(c["x"], c["y"], s=16 if fused else 7, alpha=0.9 if fused else 0.75,
                           color=CATEGORY_COLOURS[cat], edgecolors="black" if fused else "none",
                           linewidths=0.3, label=CATEGORY_NAMES[cat])
            ax.set_title(f"({chr(97 + i * len(r.branches) + j)}) {task}: {b} branch", fontsize=10)
            ax.set_xlabel("t-SNE 1 (arbitrary units)")
            ax.set_ylabel("t-SNE 2 (arbitrary units)")
    handles = [plt.Line2D([], [], marker="o", linestyle="", color=CATEGORY_COLOURS[k],
                          markeredgecolor="black" if k == "fused" else "none",
                          label=CATEGORY_NAMES[k]) for k in CATEGORIES]
    fig.legend(handles=handles, loc="outside lower center", ncol=2, fontsize=9, frameon=False)
    o = next(iter(r.experts.values())).shape[-1]
    fig.suptitle(f"Figure 4: t-SNE of expert outputs E_m(z) and fused outputs ũ_τ (both {o}-d) "
                 f"for {n} test regions\n{r.describe()}" + (f" — {note}" if note else ""),
                 fontsize=10)
    return fig


def write_figure4(r: Routing, out_dir: Path | str, n_points: int = 150, seed: int = 0,
                  note: str = "", threads: int | None = 1,
                  max_iter: int = 1000, jobs: int = 1) -> pd.DataFrame:
    """Figure 4 as ``out_dir/figure4.{png,pdf}``; returns the t-SNE coordinates (``jobs``
    t-SNE panels at a time)."""
    points = expert_tsne(r, n_points, seed, threads, max_iter, jobs)
    save_figure(figure4(points, r, note), Path(out_dir) / "figure4")
    return points


# ---------------------------------------------------------------------------- sparsity
def caption(r: Routing, df: pd.DataFrame, note: str = "") -> str:
    """The table's caption: what was counted, the FLOP formula, and why no time is saved."""
    first = df.iloc[0]
    return (
        f"Measured router sparsity (Section 2.6) on {r.describe()}"
        + (f" ({note})" if note else "") + f", {r.n_test} test regions, ε = {r.eps:g} "
        "(model.eps). Active = G̃ > 0 after the Eq. 5 threshold, mean [min–max] per region; "
        "the paper reports 6 + 2 + 2 + 3 = 13 of 16 for carbon on BJ at ε = 0.01. "
        "FLOPs of the expert layer per region = 2·d_in·h + 2·h·o per expert (a multiply-add = 2 "
        f"FLOPs; biases, activations, norm and router not counted; h = {first['expert_hidden']}, "
        f"o = {first['expert_out']}, d_in = "
        + ", ".join(f"{b} {d}" for b, d in dict(zip(df["branch"], df["d_in"],
                                                     strict=True)).items())
        + "); dense = the task's eligible experts, or the whole pool for the union row. "
        "Wall-time saving is 0 in this implementation: the stacked expert layer computes every "
        "expert for every region and masks afterwards; a real saving needs gathering only the "
        "active experts per region (dispatch / grouped GEMM) or skipping experts that are "
        "inactive for the whole batch."
    )


def write_sparsity(df: pd.DataFrame, stem: Path | str, r: Routing, note: str = "") -> None:
    """Write ``stem.{csv,md,tex}`` through ``tables.write_table``."""
    write_table(df, Path(stem), caption(r, df, note))


# ---------------------------------------------------------------------------- Figure 5
def _weights_panel(ax: Axes, d: pd.DataFrame) -> None:
    """One Figure 5 panel: bars of one (task, branch), ``d`` in pool order."""
    x = d["expert"].to_numpy()
    ok, w = d["eligible"].to_numpy(), d["mean_weight"].to_numpy()
    top = max(float(w.max()) * 1.35, 1e-3)
    for m in x[~ok]:
        ax.axvspan(m - 0.5, m + 0.5, facecolor="#eeeeee", edgecolor="#999999", hatch="//",
                   linewidth=0)
    ax.bar(x[ok], w[ok], width=0.8, color=[CATEGORY_COLOURS[k] for k in d["kind"][ok]])
    dead = ok & (d["share_active"].to_numpy() == 0)
    if dead.any():  # an empty unclipped line would stretch the layout to the figure's corner
        ax.plot(x[dead], np.zeros(dead.sum()), "x", color="black", markersize=7, clip_on=False)
    means = d[ok].groupby("kind")["mean_weight"].mean()
    parts = [f"{ABBREV[k]} {means[k]:.3f}" for k in ("specific", "dual", "shared") if k in means]
    ax.text(0.01, 0.97, f"mean weight: {', '.join(parts)}\n"
            f"Σ eligible {w[ok].sum():.3f}; zeroed everywhere: {int(dead.sum())}/{int(ok.sum())}",
            transform=ax.transAxes, va="top", fontsize=7,
            bbox={"facecolor": "white", "alpha": 0.8, "linewidth": 0})
    ax.set_xticks(x, d["label"], rotation=90, fontsize=6)
    ax.set_xlim(-0.6, len(x) - 0.4)
    ax.set_ylim(0, top)


def figure5(weights: pd.DataFrame, r: Routing, note: str = "") -> Figure:
    """Router weights per task (columns) and branch (rows), averaged over the test regions."""
    use_agg()
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(r.branches), len(r.tasks), squeeze=False, layout="constrained",
                             figsize=(6.2 * len(r.tasks), 3.8 * len(r.branches) + 1.2))
    for i, b in enumerate(r.branches):
        for j, task in enumerate(r.tasks):
            d = weights[(weights["task"] == task) & (weights["branch"] == b)]
            _weights_panel(axes[i, j], d.sort_values("expert"))
            axes[i, j].set_title(f"({chr(97 + i * len(r.tasks) + j)}) {task}: {b} branch")
    for ax in axes[-1]:
        ax.set_xlabel("expert (pool order; S specific, D dual-task, H shared)")
    for ax in axes[:, 0]:
        ax.set_ylabel(f"mean router weight G̃ (ε = {r.eps:g})")
    handles = [Patch(color=CATEGORY_COLOURS[k], label=CATEGORY_NAMES[k]) for k in CATEGORIES[:3]]
    handles += [Patch(facecolor="#eeeeee", edgecolor="#999999", hatch="//",
                      label="n/a: not eligible for this task"),
                plt.Line2D([], [], marker="x", color="black", linestyle="",
                           label=f"zeroed by the Eq. 5 threshold ε = {r.eps:g} in every region")]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=8,
               frameon=False)
    fig.suptitle(f"Figure 5: router weights averaged over {r.n_test} test regions — "
                 f"{r.describe()}" + (f"\n{note}" if note else ""), fontsize=11)
    return fig


def write_figure5(r: Routing, out_dir: Path | str, note: str = "") -> pd.DataFrame:
    """Figure 5 as ``out_dir/figure5.{png,pdf}`` and its data as ``figure5_weights.csv``."""
    weights = router_weights(r)
    save_figure(figure5(weights, r, note), Path(out_dir) / "figure5")
    with atomic_path(Path(out_dir) / "figure5_weights.csv", "table") as tmp:
        weights.to_csv(tmp, index=False)
    return weights
