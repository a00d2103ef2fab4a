"""Aggregate run folders into tables: mean and std over seeds per (dataset, model).

The run folders' ``metrics.json`` files are the source of truth; tables are derived from them.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from urbanmoe.errors import RunError
from urbanmoe.evaluation.metrics import METRICS, flatten
from urbanmoe.io import visible_files
from urbanmoe.readers import read_metrics

KEYS = ["dataset", "model", "split"]


def collect(roots: Iterable[Path]) -> pd.DataFrame:
    """One row per run (per fold of a ``kfold`` run): identity, the number of test regions
    (``n_test``), log-scale metrics (``carbon_r2``...), efficiency, notes.

    Runs that were skipped (the dataset lacks what the model needs) are not rows; they are
    listed with their reason in ``attrs["skipped"]``.
    """
    rows, tasks, skipped = [], [], []
    for root in roots:
        for path in visible_files(root, "metrics.json"):
            m = read_metrics(path)
            tasks += [t for t in m["tasks"] if t not in tasks]
            if "skipped" in m:
                skipped.append({"dataset": m["dataset"], "model": m["model"],
                                "split": m["split"]["kind"], "seed": m["seed"],
                                "reason": m["skipped"]})
                continue
            eff = m["efficiency"]
            folds = m.get("folds") or [{"fold": 0, "n_test": m["split"].get("n_test", np.nan),
                                        "log_scale": m["log_scale"]}]
            rows += [{
                "dataset": m["dataset"], "model": m["model"], "split": m["split"]["kind"],
                "variant": m.get("variant") or m["model"],
                "protocol": (m.get("protocol") or {}).get("name", "project"),
                "seed": m["seed"], "fold": f["fold"], "run": str(path.parent),
                "dataset_dir": (m.get("provenance") or {}).get("dataset_dir", ""),
                "n_test": f["n_test"], **flatten(f["log_scale"]),
                "params": eff["params"], "peak_memory_mb": eff["peak_memory_mb"],
                "train_seconds": eff["train_seconds"],
                **{f"{t}_ceiling_r2": v for t, v in (m.get("noise_ceiling") or {}).items()},
                "note": "; ".join(m.get("notes") or []),
            } for f in folds]
    if not rows:
        what = f" (all {len(skipped)} skipped)" if skipped else ""
        raise RunError(f"no metrics.json of a trained run under {[str(r) for r in roots]}{what}")
    runs = pd.DataFrame(rows)
    for col in [c for c in runs.columns if c.endswith(tuple(f"_{m}" for m in METRICS))]:
        runs[col] = pd.to_numeric(runs[col]).astype(float)  # null (undefined) -> NaN
    runs.attrs["tasks"] = tasks  # in the datasets' own task order
    runs.attrs["skipped"] = skipped
    return runs


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds (and the folds of ``kfold`` runs) of every numeric column, per
    dataset, model and split; ``n_test_mean`` is the number of test regions each number rests
    on."""
    numeric = [c for c in runs.select_dtypes("number").columns if c not in ("seed", "fold")]
    grouped = runs.groupby(KEYS, sort=False)[numeric]
    out = grouped.mean().add_suffix("_mean").join(grouped.std(ddof=0).add_suffix("_std"))
    out.insert(0, "n_seeds", runs.groupby(KEYS, sort=False)["seed"].nunique())
    out.insert(1, "n_folds", runs.groupby(KEYS, sort=False)["fold"].nunique())
    return out.reset_index()


def per_run(runs: pd.DataFrame) -> pd.DataFrame:
    """The values behind the means, one row per run (and fold): identity, ``run``,
    ``dataset_dir`` and the log-scale metrics; what paired comparisons of two rows read
    (``table2_seeds.csv``, ``report/evidence.py``)."""
    metrics = [c for c in runs.columns if c.endswith(tuple(f"_{m}" for m in METRICS))
               and "_ceiling_" not in c]
    ident = [c for c in (*KEYS, "protocol", "seed", "fold", "run", "dataset_dir")
             if c in runs.columns]
    return runs[[*ident, *metrics]].reset_index(drop=True)


def count(value: float) -> str:
    """A count for a table cell: "36", or "" when unknown."""
    return "" if pd.isna(value) else f"{value:.0f}"


def runs_label(row: Any) -> str:
    """How many runs a summary row averages: "3", or "3 × 5 folds" under ``kfold``."""
    folds = int(row["n_folds"]) if "n_folds" in row else 1
    return f"{int(row['n_seeds'])}" + (f" × {folds} folds" if folds > 1 else "")


def markdown(summary: pd.DataFrame, tasks: list[str]) -> str:
    """A compact Markdown view: R² per task and average as mean ± std, with ceilings."""
    cols = [*tasks, "avg"]
    head = ("| dataset | model | split | seeds | test regions | "
            + " | ".join(f"{c} R²" for c in cols) + " |")
    lines = [head, "|" + "---|" * (5 + len(cols))]
    for _, r in summary.iterrows():
        cells = [f"{r[f'{c}_r2_mean']:.4f} ± {r[f'{c}_r2_std']:.4f}" for c in cols]
        lines.append(f"| {r['dataset']} | {r['model']} | {r['split']} | {runs_label(r)} | "
                     f"{count(r['n_test_mean'])} | " + " | ".join(cells) + " |")
    ceil = [c for c in tasks if f"{c}_ceiling_r2_mean" in summary.columns]
    if ceil:
        for ds, grp in summary.groupby("dataset", sort=False):
            vals = {c: grp[f"{c}_ceiling_r2_mean"].iloc[0] for c in ceil}
            avg = sum(vals.values()) / len(vals)
            lines.append(f"| {ds} | noise ceiling | | | | "
                         + " | ".join(f"{vals[c]:.4f}" for c in ceil) + f" | {avg:.4f} |")
    return "\n".join(lines)


def write_summary(roots: Iterable[Path], out_csv: Path) -> str:
    """Collect, summarise, write the CSV atomically; return the Markdown view."""
    from urbanmoe.io import atomic_path

    runs = collect(roots)
    summary = summarize(runs)
    with atomic_path(Path(out_csv), "summary") as tmp:
        summary.to_csv(tmp, index=False)
    return markdown(summary, runs.attrs["tasks"])
