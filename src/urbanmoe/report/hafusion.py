"""HAFusion's published table (ICDE 2024) against our runs on its public cities
(``paper_figures/hafusion/``, docs/hafusion.md).

Two tables, each as CSV, Markdown and LaTeX:

* ``published_vs_reproduced``: per task x city x method of the published table, the published
  value ± std beside ours under their protocol (``protocol.name: hafusion``), the difference and
  the judgement ``within`` / ``above`` / ``below`` (``evaluation/uncertainty.placement``: the
  published value inside ours ± 2 x (our std + the published std), else where ours lies);
  then, for the reimplemented methods, ours with the epoch fixed in advance (their protocol
  otherwise) and under the project's protocol.
  A method not reimplemented keeps its published row with the reason.
* ``our_models``: the project's models on the same cities under both protocols, beside
  HAFusion's published value, with whether each beats it.

Under their protocol a number is the metric pooled over the folds, ± std over seeds; under the
project's, the mean ± std over folds x seeds. Every number is on the raw counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from urbanmoe.data.sources.hafusion import CITIES
from urbanmoe.evaluation.uncertainty import placement
from urbanmoe.io import visible_files
from urbanmoe.readers import read_metrics
from urbanmoe.report.tables import mean_std, write_table

METRICS = ("r2", "mae", "rmse")
SHOWN = {"r2": "R²", "mae": "MAE", "rmse": "RMSE"}
TEST_SELECTION = "as published (epoch picked on the test folds)"


def collect(root: Path) -> pd.DataFrame:
    """One row per scored unit of every run under ``root``: a run under their protocol (pooled
    metrics), or each fold of a run under the project's; raw-scale metrics per task."""
    rows = []
    for path in visible_files(Path(root), "metrics.json"):
        m = read_metrics(path)
        if "skipped" in m:
            continue
        proto = m.get("protocol") or {"name": "project"}
        selection = ("test_folds" if "chosen_on_test" in m
                     else "validation" if proto["name"] == "project" else "final")
        units = ([m["original_scale"]] if proto["name"] == "hafusion"
                 else [f["original_scale"] for f in m.get("folds") or [m]])
        for k, scores in enumerate(units):
            rows.append({"dataset": m["dataset"], "model": m["model"],
                         "variant": m.get("variant") or m["model"], "protocol": proto["name"],
                         "selection": selection, "seed": m["seed"], "unit": k,
                         **{f"{t}_{x}": scores[t][x] for t in m["tasks"] for x in METRICS}})
    return pd.DataFrame(rows)


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean, std and count per dataset x model x protocol x selection and task x metric."""
    keys = ["dataset", "model", "protocol", "selection"]
    value_cols = [c for c in runs.columns if c.endswith(tuple(f"_{x}" for x in METRICS))]
    long = runs.melt(id_vars=[*keys, "seed"], value_vars=value_cols, var_name="cell")
    long[["task", "metric"]] = long["cell"].str.rsplit("_", n=1, expand=True)
    g = long.groupby([*keys, "task", "metric"])
    out = g["value"].agg(["mean", lambda v: float(np.std(v, ddof=0)), "count"]).reset_index()
    out.columns = [*keys, "task", "metric", "mean", "std", "n"]
    out["n_seeds"] = g["seed"].nunique().to_numpy()
    return out


def _city(dataset: str) -> str:
    return CITIES.get(dataset, dataset)


def _lookup(summary: pd.DataFrame, dataset: str, model: str, protocol: str, selection: str,
            task: str, metric: str) -> tuple[float, float, int]:
    hit = summary[(summary.dataset == dataset) & (summary.model == model)
                  & (summary.protocol == protocol) & (summary.selection == selection)
                  & (summary.task == task) & (summary.metric == metric)]
    if hit.empty:
        return float("nan"), float("nan"), 0
    row = hit.iloc[0]
    return float(row["mean"]), float(row["std"]), int(row["n_seeds"])


def published_vs_reproduced(summary: pd.DataFrame, published: pd.DataFrame,
                            methods: Mapping[str, str], reasons: Mapping[str, str],
                            metric: str = "r2") -> pd.DataFrame:
    """Per published task x city x method: published, ours under their protocol as published
    (the test-fold selection where the method has checkpoints), the difference, the
    judgement (within / above / below), ours with the epoch fixed, ours under the project's
    protocol. ``methods`` maps a published method to our ``model.name``; ``reasons`` says why
    the others are not run."""
    datasets = {_city(d): d for d in summary["dataset"].unique()}
    rows = []
    for rec in published.itertuples(index=False):
        pub, pub_std = float(getattr(rec, metric)), float(getattr(rec, f"{metric}_std"))
        model = methods.get(rec.model)
        ds = datasets.get(rec.city)
        row: dict[str, Any] = {"task": rec.task, "city": rec.city, "method": rec.model,
                               "published": pub, "published_std": pub_std}
        if model is None or ds is None:
            row["note"] = reasons.get(rec.model, "not run") if model is None else "city not run"
            rows.append(row)
            continue
        mean, std, n = _lookup(summary, ds, model, "hafusion", "test_folds", rec.task, metric)
        sel = "test_folds"
        if n == 0:  # no checkpoints to choose among: the final epoch is theirs too
            mean, std, n = _lookup(summary, ds, model, "hafusion", "final", rec.task, metric)
            sel = "final"
        fixed = _lookup(summary, ds, model, "hafusion", "final", rec.task, metric)
        project = _lookup(summary, ds, model, "project", "validation", rec.task, metric)
        row.update({"ours": mean, "ours_std": std, "n_seeds": n, "difference": mean - pub,
                    "judgement": placement(pub, mean, std, pub_std) if n else "",
                    "ours_fixed_epoch": fixed[0], "ours_fixed_epoch_std": fixed[1],
                    "ours_project": project[0], "ours_project_std": project[1],
                    "note": TEST_SELECTION if sel == "test_folds" else "final epoch"})
        rows.append(row)
    df = pd.DataFrame(rows)
    return _display(df, metric)


def _display(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The display columns (Task, City, ...) beside the snake_case numeric ones."""
    digits = 3 if metric == "r2" else 1
    name = SHOWN[metric]

    def pair(m: str, s: str) -> pd.Series:
        if m not in df:
            return pd.Series([float("nan")] * len(df))
        return pd.Series([mean_std(a, b, digits) if pd.notna(a) else float("nan")
                          for a, b in zip(df[m], df.get(s, df[m] * np.nan), strict=True)])

    out = df.copy()
    out["Task"], out["City"], out["Method"] = df["task"], df["city"], df["method"]
    out[f"Published {name}"] = pair("published", "published_std")
    out[f"Ours {name}"] = pair("ours", "ours_std")
    out["Difference"] = [f"{d:+.{digits}f}" if pd.notna(d) else float("nan")
                         for d in df.get("difference", df["published"] * np.nan)]
    out["Published vs ours"] = [w if isinstance(w, str) and w else float("nan")
                                for w in df.get("judgement", [None] * len(df))]
    out["Ours, epoch fixed"] = pair("ours_fixed_epoch", "ours_fixed_epoch_std")
    out["Ours, project protocol"] = pair("ours_project", "ours_project_std")
    out["Note"] = df["note"]
    return out


def our_models(summary: pd.DataFrame, published: pd.DataFrame, models: Sequence[str],
               metric: str = "r2") -> pd.DataFrame:
    """The project's models per task x city under both protocols, beside HAFusion's published
    value and whether each beats it (higher R², lower MAE and RMSE)."""
    ref = published[published.model == "HAFusion"].set_index(["task", "city"])
    rows = []
    for ds in summary["dataset"].unique():
        for task in sorted(summary.loc[summary.dataset == ds, "task"].unique()):
            key = (task, _city(ds))
            pub = float(ref.loc[key, metric]) if key in ref.index else float("nan")
            for model in models:
                theirs = _lookup(summary, ds, model, "hafusion", "final", task, metric)
                ours = _lookup(summary, ds, model, "project", "validation", task, metric)
                if theirs[2] == 0 and ours[2] == 0:
                    continue
                better = (theirs[0] > pub) if metric == "r2" else (theirs[0] < pub)
                rows.append({"task": task, "city": _city(ds), "model": model,
                             "hafusion_published": pub, "their_protocol": theirs[0],
                             "their_protocol_std": theirs[1], "project_protocol": ours[0],
                             "project_protocol_std": ours[1], "n_seeds": theirs[2],
                             "beats_published": bool(better) if theirs[2] else None})
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    digits = 3 if metric == "r2" else 1
    df["Task"], df["City"], df["Model"] = df["task"], df["city"], df["model"]
    df["HAFusion published"] = [f"{v:.{digits}f}" for v in df["hafusion_published"]]
    df["Their protocol"] = [mean_std(a, b, digits) if pd.notna(a) else float("nan")
                            for a, b in zip(df["their_protocol"], df["their_protocol_std"],
                                            strict=True)]
    df["Project protocol"] = [mean_std(a, b, digits) if pd.notna(a) else float("nan")
                              for a, b in zip(df["project_protocol"],
                                              df["project_protocol_std"], strict=True)]
    df["Beats HAFusion (their protocol)"] = [
        ("yes" if b else "no") if isinstance(b, bool) else float("nan")
        for b in df["beats_published"]]
    return df


PROTOCOL_NOTE = (
    "Their protocol (`protocol.name: hafusion`): KFold as HAFusion's code runs it per city "
    "(New York 10 folds in file order; Chicago 25 and San Francisco 10, shuffled with "
    "random_state 2024, zero check-ins dropped), raw counts, predictions below 0 set to 0, "
    "metrics pooled over the folds, ± std over seeds; a representation is scored by "
    "Ridge(alpha=1) on its embedding, an end-to-end model by its own predictions. "
    "\"As published\" picks, per task, the checkpoint that scores best on the test folds, as "
    "their training script does: a selection on test data. \"Epoch fixed\" takes the final "
    "epoch. The project's protocol: 10 folds shuffled per seed, every choice on validation "
    "rows of the training folds, mean ± std over folds x seeds. \"Published vs ours\": "
    "within when the published value lies inside ours ± 2 x (our std + the published std), "
    "else whether ours is above or below it.")


def write_tables(runs_dir: Path, published_csv: Path, out_dir: Path,
                 methods: Mapping[str, str], reasons: Mapping[str, str],
                 models: Sequence[str]) -> dict[str, pd.DataFrame]:
    """Both tables, for R², MAE and RMSE, into ``out_dir`` (CSV, Markdown, LaTeX)."""
    summary = summarise(collect(runs_dir))
    published = pd.read_csv(published_csv)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tables = {}
    for metric in METRICS:
        pvr = published_vs_reproduced(summary, published, methods, reasons, metric)
        write_table(pvr, out_dir / f"published_vs_reproduced_{metric}",
                    f"HAFusion (ICDE 2024), published vs reproduced, {SHOWN[metric]}. "
                    + PROTOCOL_NOTE)
        mine = our_models(summary, published, models, metric)
        if not mine.empty:
            write_table(mine, out_dir / f"our_models_{metric}",
                        f"Our models on HAFusion's cities, {SHOWN[metric]}, against "
                        "HAFusion's published value. " + PROTOCOL_NOTE)
        tables[f"published_vs_reproduced_{metric}"], tables[f"our_models_{metric}"] = pvr, mine
    return tables
