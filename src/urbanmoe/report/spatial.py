"""Spatial-context tables and figure (not in the paper; docs/spatial.md).

From the run folders of the spatial-context variants (``results/spatial/...``) and of the
cross-city transfer runs (``results/transfer/...``):

* ``spatial_context.{csv,md,tex}``: per dataset, split and variant, average and per-task R²
  (mean ± std over seeds) and the **paired per-seed difference** to the best kNN on coordinates
  of that dataset and split (the kNN variant, fixed or tuned, with the highest mean average R²):
  for each seed both ran, variant minus kNN, then mean ± std of those differences, and how many
  seeds the variant wins. Rows with spatial context say so ("transductive").
* ``spatial_context_tasks.{png,pdf}``: those paired differences per task, one panel per dataset
  and split.
* ``transfer.{csv,md,tex}``: source -> target, model, R² on the target.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from urbanmoe.evaluation.aggregate import collect
from urbanmoe.features.spatial_lag import TRANSDUCTIVE_NOTE
from urbanmoe.io import claim
from urbanmoe.report.palette import colours, save_figure, use_agg
from urbanmoe.report.tables import display_name, mean_std, write_table

KNN_MODELS = ("knn", "knn_tuned")
CONTEXT_LABEL = {"lag=context": "lag in z", "lag=branch": "lag as a branch",
                 "ensemble=average": "+ kNN (average)", "ensemble=stack": "+ kNN (stack)",
                 "ensemble=residual": "on kNN residuals"}


def describe_variant(variant: str) -> str:
    """A readable row label, e.g. ``urbanmoe@spatial.lag=context`` -> "UrbanMoE, lag in z"."""
    model, *items = variant.split("@")
    name = {"knn_tuned": "kNN on coordinates (tuned)", "knn": "kNN on coordinates (k = 5)"}.get(
        model, display_name(model))
    shown = [CONTEXT_LABEL.get(i.removeprefix("spatial."), i) for i in items]
    return ", ".join([name, *shown])


def best_knn(runs: pd.DataFrame) -> str | None:
    """The kNN variant with the highest mean average R² among ``runs`` (one dataset and split)."""
    knn = runs[runs["variant"].isin(KNN_MODELS)]
    if knn.empty:
        return None
    return str(knn.groupby("variant")["avg_r2"].mean().idxmax())


def paired_differences(runs: pd.DataFrame, reference: str, tasks: list[str]) -> pd.DataFrame:
    """Per variant and seed: R² minus the reference's R² on the same seed (avg and tasks)."""
    cols = [f"{t}_r2" for t in [*tasks, "avg"]]
    ref = runs[runs["variant"] == reference].set_index("seed")[cols]
    rows = []
    for (variant, seed), group in runs.groupby(["variant", "seed"], sort=False):
        if seed in ref.index:
            diff = group.iloc[0][cols].astype(float) - ref.loc[seed].astype(float)
            rows.append({"variant": variant, "seed": seed, **diff.to_dict()})
    return pd.DataFrame(rows)


def spatial_table(runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The table (numeric snake_case columns, display columns) and the paired differences."""
    tasks = list(runs.attrs.get("tasks") or [])
    rows, diffs = [], []
    for (dataset, split), group in runs.groupby(["dataset", "split"], sort=False):
        present = [t for t in tasks if f"{t}_r2" in group and group[f"{t}_r2"].notna().any()]
        ref = best_knn(group)
        diff = (paired_differences(group, ref, present) if ref is not None
                else pd.DataFrame(columns=["variant", "seed"]))
        if not diff.empty:
            diffs.append(diff.assign(dataset=dataset, split=split, reference=ref))
        for variant, runs_v in group.groupby("variant", sort=False):
            d = diff[diff["variant"] == variant] if not diff.empty else diff
            row = {"dataset": dataset, "split": split, "variant": variant,
                   "n_seeds": runs_v["seed"].nunique(), "reference": ref or "",
                   "avg_r2_mean": runs_v["avg_r2"].mean(),
                   "avg_r2_std": runs_v["avg_r2"].std(ddof=0)}
            for t in present:
                row[f"{t}_r2_mean"] = runs_v[f"{t}_r2"].mean()
            if len(d):
                row["diff_avg_r2_mean"] = d["avg_r2"].mean()
                row["diff_avg_r2_std"] = d["avg_r2"].std(ddof=0)
                row["wins"] = int((d["avg_r2"] > 0).sum())
            notes = "; ".join(n for n in runs_v["note"].iloc[0].split("; ")
                              if n == TRANSDUCTIVE_NOTE)
            row.update({
                "Dataset": dataset, "Split": split, "Model": describe_variant(variant),
                "Average R²": mean_std(row["avg_r2_mean"], row["avg_r2_std"]),
                **{f"{t.capitalize()} R²": f"{row[f'{t}_r2_mean']:.4f}" for t in present},
                "Δ vs best kNN (paired)": ("reference" if variant == ref else
                                           mean_std(row.get("diff_avg_r2_mean", np.nan),
                                               row.get("diff_avg_r2_std", np.nan))),
                "Wins": (f"{row['wins']}/{len(d)}" if len(d) and variant != ref else ""),
                "Note": notes})
            rows.append(row)
    table = pd.DataFrame(rows)
    all_diffs = pd.concat(diffs, ignore_index=True) if diffs else pd.DataFrame()
    return table, all_diffs


def difference_figure(diffs: pd.DataFrame, tasks: list[str], stem: Path) -> list[Path]:
    """Paired per-task R² differences to the best kNN (bars: mean over seeds; whiskers: std)."""
    use_agg()
    import matplotlib.pyplot as plt

    panels = list(diffs.groupby(["dataset", "split"], sort=False)) if not diffs.empty else []
    fig, axes = plt.subplots(len(panels) or 1, 1, figsize=(10, 3.8 * max(len(panels), 1)),
                             squeeze=False)
    for ax, ((dataset, split), d) in zip(axes[:, 0], panels, strict=False):
        ref = d["reference"].iloc[0]
        d = d[d["variant"] != ref]
        present = [t for t in tasks if f"{t}_r2" in d and d[f"{t}_r2"].notna().any()]
        variants = list(dict.fromkeys(d["variant"]))
        width = 0.8 / max(len(present), 1)
        for i, (task, colour) in enumerate(zip(present, colours(len(present)), strict=True)):
            stats = d.groupby("variant", sort=False)[f"{task}_r2"].agg(["mean", "std"])
            stats = stats.reindex(variants)
            ax.bar(np.arange(len(variants)) + (i - (len(present) - 1) / 2) * width,
                   stats["mean"], width, yerr=stats["std"].fillna(0), color=colour,
                   label=task, capsize=2)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xticks(np.arange(len(variants)))
        ax.set_xticklabels([describe_variant(v) for v in variants], rotation=25, ha="right",
                           fontsize=8)
        ax.set_ylabel("R² − best kNN (paired)")
        ax.set_title(f"{dataset}, {split} split: per-task R² difference to "
                     f"{describe_variant(ref)}")
        ax.legend(title="task", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, stem)


def transfer_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Source -> target R² per model (mean ± std over seeds)."""
    tasks = list(runs.attrs.get("tasks") or [])
    rows = []
    for (dataset, variant), g in runs.groupby(["dataset", "variant"], sort=False):
        present = [t for t in tasks if f"{t}_r2" in g and g[f"{t}_r2"].notna().any()]
        row = {"dataset": dataset, "variant": variant, "n_seeds": g["seed"].nunique(),
               "avg_r2_mean": g["avg_r2"].mean(), "avg_r2_std": g["avg_r2"].std(ddof=0),
               **{f"{t}_r2_mean": g[f"{t}_r2"].mean() for t in present}}
        row.update({"Source -> target": dataset, "Model": describe_variant(variant),
                    "Average R² (target)": mean_std(row["avg_r2_mean"], row["avg_r2_std"]),
                    **{f"{t.capitalize()} R²": f"{row[f'{t}_r2_mean']:.4f}" for t in present}})
        rows.append(row)
    return pd.DataFrame(rows)


def write_spatial_report(spatial_runs: Iterable[Path], transfer_runs: Iterable[Path],
                         out_dir: Path) -> list[Path]:
    """Write the tables and the figure of the module docstring into ``out_dir``."""
    out_dir = Path(out_dir)
    transfer = [Path(p) for p in transfer_runs]
    stems = ["spatial_context", *(["transfer"] if transfer else [])]
    claim([out_dir / f"{stem}.{s}" for stem in stems for s in ("csv", "md", "tex")], "table")
    claim([out_dir / f"spatial_context_tasks.{s}" for s in ("png", "pdf")], "figure")
    runs = collect(list(spatial_runs))
    table, diffs = spatial_table(runs)
    write_table(table, out_dir / "spatial_context",
                "Spatial context (not in the paper): R² on the log1p scale, mean ± std over "
                "seeds; Δ = paired per-seed difference of the average R² to the best kNN on "
                "coordinates of the same dataset and split. Rows marked transductive use the "
                "labels of nearby training regions.")
    written = [out_dir / f"spatial_context.{s}" for s in ("csv", "md", "tex")]
    written += difference_figure(diffs, list(runs.attrs.get("tasks") or []),
                                 out_dir / "spatial_context_tasks")
    if transfer:
        ttable = transfer_table(collect(transfer))
        write_table(ttable, out_dir / "transfer",
                    "Cross-city transfer (not in the paper): trained on the source, tested on "
                    "every region of the target, which lends no labels; R² on the log1p scale, "
                    "mean ± std over seeds. No region embedding, spatial lag or kNN.")
        written += [out_dir / f"transfer.{s}" for s in ("csv", "md", "tex")]
    return written
