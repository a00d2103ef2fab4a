"""Tables 3, 4 and 5 and Figure 3 of Section 3.5 and Appendices B-C, and Tables 3-4 published
beside reproduced.

They are drawn from the ablation runs as ``urbanmoe.evaluation.ablations`` collects and groups
them (:func:`~urbanmoe.evaluation.ablations.collect_ablations`,
:func:`~urbanmoe.evaluation.ablations.ablation_summary`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from urbanmoe.evaluation.ablations import FIGURE3, ablation_summary, study_tasks
from urbanmoe.evaluation.metrics import METRICS
from urbanmoe.evaluation.uncertainty import placement
from urbanmoe.models.layout import ExpertLayout
from urbanmoe.paper_items import ITEMS
from urbanmoe.report import tables as tb
from urbanmoe.report.palette import BLACK, colours, use_agg

CHECK = "✓"

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _metric_display(out: pd.DataFrame, src: pd.DataFrame, tasks: Sequence[str],
                    metrics: Sequence[str]) -> None:
    """Add ``<task>_<metric>_mean/_std`` and their "mean ± std" display columns to ``out``."""
    for m in metrics:
        for t in [*tasks, "avg"]:
            mean, std = src[f"{t}_{m}_mean"].to_numpy(), src[f"{t}_{m}_std"].to_numpy()
            out[f"{t}_{m}_mean"], out[f"{t}_{m}_std"] = mean, std
            out[tb.metric_label(t, m)] = [tb.mean_std(a, b) for a, b in zip(mean, std, strict=True)]


def _finish(out: pd.DataFrame, src: pd.DataFrame, df: pd.DataFrame) -> pd.DataFrame:
    """Seeds and Note columns; the data folders of the runs in ``attrs["dataset_dirs"]``."""
    out["n_seeds"] = src["n_seeds"].to_numpy()
    out["Seeds"] = out["n_seeds"].astype(str)
    out["Note"] = ["not run" if r.n_seeds == 0 else r.variant + (f" ({r.note})" if r.note else "")
                   for r in src.itertuples()]
    out.attrs["dataset_dirs"] = sorted({d for d in df["dataset_dir"] if d})
    out.attrs["tasks"] = study_tasks(df)
    return out


def table3(df: pd.DataFrame) -> pd.DataFrame:
    """Table 3: the seven expert-type configurations of Table 5, in the paper's order."""
    s = ablation_summary(df, (), ())
    s = s[s["study"] == "table3"].reset_index(drop=True)
    out = pd.DataFrame({"setting": s["setting"],
                        "label": [ITEMS["table3"].row(k).label for k in s["setting"]]})
    out["Configuration"] = out["label"]
    for col, key in (("Specific", "n_specific"), ("Shared", "n_shared"), ("Dual", "n_dual")):
        out[key] = s[key].to_numpy()
        out[col.lower()] = s[key].to_numpy() > 0
        out[col] = np.where(out[col.lower()], CHECK, "")
    _metric_display(out, s, study_tasks(df), METRICS)
    out = _finish(out, s, df)
    out.attrs["item"] = "table3"
    return out


def table5(n_tasks: int = 3) -> pd.DataFrame:
    """Table 5 (Appendix B): expert allocation per configuration (its paper item's rows)."""
    rows = []
    for r in ITEMS["table5"].rows:
        s = r.settings()
        sp, sh, du = s["n_specific"], s["n_shared"], s["n_dual"]
        lay = ExpertLayout(n_tasks, sp, du, sh)
        rows.append({"setting": r.key, "n_specific": sp, "n_shared": sh, "n_dual": du,
                     "experts_per_task": lay.n_eligible[0], "pool_size": lay.n_experts,
                     "Configuration": r.label, "Special-task (per task)": str(sp),
                     "Shared": str(sh), "Dual-task (per task)": f"{du}–{du}" if du else "0",
                     "Experts per task": str(lay.n_eligible[0]), "Pool size E": str(lay.n_experts)})
    return pd.DataFrame(rows)


def table4(df: pd.DataFrame, table2_df: pd.DataFrame | None = None) -> pd.DataFrame:
    """Table 4: embedding ablations, with RemoteCLIP (ST) / UrbanCLIP (ST) from Table 2 runs.

    ``table2_df`` is :func:`urbanmoe.evaluation.aggregate.collect`'s output (any datasets);
    its runs of this dataset and split are used, and their ``notes`` go to the Note column.
    MAE and R² are shown (RMSE is in the numeric columns).
    """
    tasks, s = study_tasks(df), ablation_summary(df, (), (), table2_df)
    s = s[s["study"] == "table4"].reset_index(drop=True)
    out = pd.DataFrame({"setting": s["setting"],
                        "label": [ITEMS["table4"].row(k).label for k in s["setting"]]})
    out["Variant"] = out["label"]
    _metric_display(out, s, tasks, ["mae", "r2", "rmse"])
    out = out.drop(columns=[tb.metric_label(t, "rmse") for t in [*tasks, "avg"]])
    out = _finish(out, s, df)
    out.attrs["item"] = "table4"
    return out


def figure3(df: pd.DataFrame, dataset: str, d_r_values: Sequence[float] | None = None,
            eps_values: Sequence[float] | None = None) -> Figure:
    """Figure 3: R² per task and average against d_r (a) and eps (b), mean ± std band."""
    use_agg()
    import matplotlib.pyplot as plt

    s, tasks = ablation_summary(df, d_r_values, eps_values), study_tasks(df)
    ref = s.attrs["reference"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for ax, (study, key, xlabel), panel in zip(axes, FIGURE3, "ab", strict=True):
        part = s[s["study"] == study].sort_values("value")
        done = part[part["n_seeds"] > 0]
        x = done["value"].to_numpy(dtype=float)
        for t, colour in zip([*tasks, "avg"], [*colours(len(tasks)), BLACK], strict=True):
            mean = done[f"{t}_r2_mean"].to_numpy(dtype=float)
            std = done[f"{t}_r2_std"].to_numpy(dtype=float)
            ax.plot(x, mean, marker="o", color=colour, ls="--" if t == "avg" else "-",
                    label="average" if t == "avg" else t)
            ax.fill_between(x, mean - std, mean + std, color=colour, alpha=0.2, lw=0)
        ax.axvline(float(ref[key]), color="#999999", ls=":",
                   label=f"default ({key} = {float(ref[key]):g})")
        missing = part.loc[part["n_seeds"] == 0, "setting"].tolist()
        if missing or done.empty:
            ax.text(0.02, 0.02, "not run: " + (", ".join(missing) or "no runs"),
                    transform=ax.transAxes, fontsize=8, va="bottom")
        seeds = sorted(set(done["n_seeds"]))
        ax.set_title(f"{dataset}: ({panel}) R² vs {xlabel} (seeds: "
                     f"{', '.join(map(str, seeds)) or '0'})", fontsize=10)
        ax.set_xticks(sorted({*part["value"], float(ref[key])}))
        ax.set_xlabel(xlabel)
        ax.set_ylabel("R² (log1p scale)")
        ax.legend(fontsize=8, title="task", title_fontsize=8, loc="best", framealpha=0.8)
    fig.suptitle(f"Figure 3: hyper-parameter analysis on {dataset}, mean ± std over seeds")
    return fig


#: Tables 3-5 are written like Table 2 (``tables.tex_escape`` turns ✓ into ``$\\checkmark$``).
write_table = tb.write_table


def published_rows(item: str, published: pd.DataFrame, dataset: str) -> dict[str, dict]:
    """Row key -> its record in the published CSV of ``item`` for ``dataset``: the record whose
    key columns hold the row's ``published`` values (paper_items.py); rows the paper lacks are
    absent."""
    records = published[published["dataset"] == dataset].to_dict("records")
    out = {}
    for r in ITEMS[item].rows:
        found = [p for p in records if r.published is not None and all(
            str(p.get(k)).lower() == str(v).lower() for k, v in r.published.items())]
        if found:
            out[r.key] = found[0]
    return out


def published_vs_reproduced(table: pd.DataFrame, published: pd.DataFrame, dataset: str,
                            data_note: str) -> pd.DataFrame:
    """Published beside reproduced per row and published metric (Table 3 or Table 4).

    ``table`` is :func:`table3`'s or :func:`table4`'s output (``attrs["item"]`` names its paper
    item), ``published`` the paper's CSV.
    ``difference`` is reproduced mean − published; ``status`` is "reproduced", "not run" or
    "not in paper" (no value for this dataset). ``attrs["note"]``: what data the runs used.
    """
    pub = published_rows(table.attrs["item"], published, dataset)
    metrics = [c for c in published.columns if c.rpartition("_")[2] in METRICS]
    rows = []
    for r in table.to_dict("records"):
        p = pub.get(r["setting"])
        status = "not run" if r["n_seeds"] == 0 else "not in paper" if p is None else "reproduced"
        for met in metrics:
            pv = np.nan if p is None else float(p[met])
            mean = r.get(f"{met}_mean", np.nan)
            rows.append({"setting": r["setting"], "label": r["label"], "metric": met,
                         "published": pv, "reproduced_mean": mean,
                         "reproduced_std": r.get(f"{met}_std", np.nan), "n_seeds": r["n_seeds"],
                         "difference": mean - pv, "status": status,
                         "judgement": placement(pv, mean, r.get(f"{met}_std", np.nan))})
    out = pd.DataFrame(rows)
    dirs = table.attrs.get("dataset_dirs") or []
    out.attrs["judged"] = not tb.synthetic_run(dirs, data_note)
    if not out.attrs["judged"]:
        out["judgement"] = ""
    lines = [f"Reproduced on: {data_note.rstrip('.')} (dataset {dataset})."]
    if any(tb.is_synthetic(d) for d in dirs) or "not the paper" in data_note:
        lines.append("This is not the paper's data, so differences measure the data as much "
                     "as the method.")
    lines += [f"Data folders: {', '.join(dirs)}."] if dirs else []
    lines += [f"The paper reports this ablation on SH only: no published values for {dataset}."
              ] if not pub else []
    lines.append("Metrics on the log1p scale; reproduced = mean ± std over seeds (n); "
                 "difference = reproduced mean − published.")
    lines.append(tb.judgement_note(out.attrs["judged"], [] if out.attrs["judged"] else [dataset]))
    out.attrs["note"] = "\n\n".join(lines)
    return out


def write_published_vs_reproduced(pvr: pd.DataFrame, stem: Path | str, title: str) -> None:
    """Write ``stem.md`` and ``stem.tex`` (:func:`~urbanmoe.report.tables.write_comparison`),
    headed by the data note and what was not run."""
    shown = pd.DataFrame({
        "Row": pvr["label"],
        "Metric": [tb.metric_label(*m.rsplit("_", 1)) for m in pvr["metric"]],
        "Published": ["—" if pd.isna(v) else f"{v:.4f}" for v in pvr["published"]],
        "Reproduced (mean ± std)": [
            "not run" if r.status == "not run" else
            f"{tb.mean_std(r.reproduced_mean, r.reproduced_std)} (n={r.n_seeds})"
            for r in pvr.itertuples()],
        "Reproduced − published": ["" if pd.isna(d) else f"{d:+.4f}" for d in pvr["difference"]]})
    if pvr.attrs.get("judged", True):
        shown["Judgement"] = pvr["judgement"].fillna("").to_numpy()
    missing = pvr.loc[pvr["status"] == "not run", "label"].tolist()
    tb.write_comparison(shown, stem, title, pvr.attrs.get("note", ""), missing)


def write_summary(summary: pd.DataFrame, path: Path | str) -> None:
    """Write :func:`ablation_summary`'s frame as CSV (read by the claims checker), atomically."""
    tb.write_csv(summary, path)
