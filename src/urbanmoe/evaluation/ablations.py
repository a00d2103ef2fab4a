"""Ablations of Section 3.5 and Appendices B-C: Table 3, Table 4, Table 5 and Figure 3.

Ablation runs live in ``<root>/<dataset>/<split>/<variant>/seed<N>`` (``metrics.json`` with the
run's ``variant`` label, ``config.yaml`` with its resolved settings). A run is placed by its
*settings* (``model.n_specific`` ... ``model.use_poi`` in ``config.yaml``), not by its label:
every study holds all settings at the full model's (the run labelled ``urbanmoe``; the paper's
defaults when there is none) except the ones it varies. So the full model is Table 3's "all
three types" row, Table 4's "UrbanMoE" row and the default point of both Figure 3 curves.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import yaml

from urbanmoe.evaluation import tables as tb
from urbanmoe.evaluation.metrics import METRICS, flatten
from urbanmoe.evaluation.palette import BLACK, colours, use_agg
from urbanmoe.io import visible_files, write_text
from urbanmoe.models.layout import ExpertLayout
from urbanmoe.paper_items import FULL_MODEL, ITEMS, Row

TASKS = ["carbon", "population", "light"]
SETTINGS = ("n_specific", "n_shared", "n_dual", "d_r", "eps", "use_region", "use_poi")
FULL = FULL_MODEL  # the variant label of the full model
#: Figure 3's panels: study, setting varied, x-axis label (the curves of its paper item).
FIGURE3 = [("figure3a", "d_r", "region embedding size d_r"),
           ("figure3b", "eps", "gate threshold eps")]
assert tuple(key for _, key, _ in FIGURE3) == ITEMS["figure3"].curves
CHECK = "✓"
#: Config keys (prefixes) that differ between runs without changing the experiment; every other
#: key outside SETTINGS must equal the full model's for a run to be placed in a study.
INCIDENTAL = ("seed", "workflow.", "train.seeds", "train.device", "train.threads",
              "features.cache_dir", "features.remoteclip.device", "features.remoteclip.batch_size")

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _tasks(df: pd.DataFrame) -> list[str]:
    return list(df.attrs.get("tasks") or TASKS)


def _metric_cols(tasks: Sequence[str]) -> list[str]:
    return [f"{t}_{m}" for t in [*tasks, "avg"] for m in METRICS]


def _other_settings(cfg: dict, prefix: str = "") -> dict:
    """The flattened config outside ``model.<SETTINGS>`` and INCIDENTAL keys."""
    out = {}
    for k, v in cfg.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_other_settings(v, f"{key}."))
        elif not key.startswith(INCIDENTAL) and key not in {f"model.{s}" for s in SETTINGS}:
            out[key] = v
    return out


def collect_ablations(root: Path | str, dataset: str, split: str) -> pd.DataFrame:
    """One row per ablation run of ``dataset``/``split``: variant, seed, settings, metrics.

    Settings come from the run's ``config.yaml`` (``model.*``; None when absent), metrics are
    the log1p-scale ones flattened (``carbon_r2``...). Skipped runs are listed in
    ``attrs["skipped"]``; no runs at all give an empty frame (every study then reads "not run").
    """
    base = Path(root) / dataset / split
    rows, tasks, skipped = [], [], []
    for path in visible_files(base, "metrics.json") if base.is_dir() else []:
        m = json.loads(path.read_text())
        label = m.get("variant") or path.parent.parent.name
        if "skipped" in m:
            skipped.append({"variant": label, "seed": m["seed"], "reason": m["skipped"]})
            continue
        tasks += [t for t in m["tasks"] if t not in tasks]
        cfg_file = path.parent / "config.yaml"
        cfg = (yaml.safe_load(cfg_file.read_text()) or {}) if cfg_file.is_file() else {}
        model = cfg.get("model") or {}
        rows.append({"dataset": m["dataset"], "split": m["split"]["kind"], "variant": label,
                     "model": m["model"], "seed": m["seed"], "run": str(path.parent),
                     **{k: model.get(k) for k in SETTINGS},
                     "other": json.dumps(_other_settings(cfg), sort_keys=True, default=str),
                     "dataset_dir": (m.get("provenance") or {}).get("dataset_dir", ""),
                     "note": "; ".join(m.get("notes") or []), **flatten(m["log_scale"])})
    cols = ["dataset", "split", "variant", "model", "seed", "run", *SETTINGS, "other",
            "dataset_dir",
            "note", *_metric_cols(tasks or TASKS)]
    df = pd.DataFrame(rows, columns=list(dict.fromkeys([*cols, *(rows[0] if rows else [])])))
    df.attrs.update(tasks=tasks or list(TASKS), skipped=skipped, dataset=dataset, split=split)
    return df


def paper_defaults() -> dict:
    """The full model's settings as the schema's defaults give them (the paper's)."""
    from urbanmoe.config import validate

    model = validate({}, "(defaults)")["model"]
    return {k: model[k] for k in SETTINGS}


def reference(df: pd.DataFrame) -> dict:
    """The full model's settings: those of the run labelled ``urbanmoe``, else the paper's."""
    full = df[df["variant"] == FULL]
    defaults = paper_defaults()
    if full.empty:
        return defaults
    return {k: (defaults.get(k) if k in SETTINGS and pd.isna(v) else v)
            for k, v in full[[*SETTINGS, "other"]].iloc[0].items()}


def _match(df: pd.DataFrame, want: dict) -> np.ndarray:
    """Rows whose settings equal ``want`` (floats up to rounding; keys set to None are free)."""
    mask = np.ones(len(df), dtype=bool)
    for key, value in want.items():
        if value is None:
            continue
        if key == "other":
            mask &= (df[key] == value).to_numpy(dtype=bool)
        elif isinstance(value, bool | np.bool_):
            same = df[key].map(lambda x, v=bool(value): x in (True, False) and bool(x) == v)
            mask &= same.to_numpy(dtype=bool)
        else:
            col = pd.to_numeric(df[key], errors="coerce").to_numpy(dtype=float)
            mask &= np.isclose(col, float(value))
    return mask


def _aggregate(runs: pd.DataFrame, tasks: Sequence[str]) -> dict:
    """Mean and std (ddof=0, empty for one seed) over seeds; duplicates of a seed averaged."""
    cols = _metric_cols(tasks)
    per_seed = runs.groupby("seed")[cols].mean() if len(runs) else pd.DataFrame(columns=cols)
    n = len(per_seed)
    out: dict = {"n_seeds": n, "variant": ", ".join(sorted(set(runs.get("variant", [])))),
                 "note": "; ".join(sorted({x for x in runs.get("note", []) if x}))}
    for c in cols:
        out[f"{c}_mean"] = float(per_seed[c].mean()) if n else np.nan
        out[f"{c}_std"] = float(per_seed[c].std(ddof=0)) if n > 1 else np.nan
    return out


def _table2_runs(table2_df: pd.DataFrame | None, model: str, df: pd.DataFrame) -> pd.DataFrame:
    """Table 2 runs of ``model`` on the ablations' dataset and split, labelled as such."""
    if table2_df is None or table2_df.empty:
        return pd.DataFrame()
    keep = ((table2_df["model"] == model) & (table2_df["dataset"] == df.attrs.get("dataset"))
            & (table2_df["split"] == df.attrs.get("split")))
    return table2_df[keep].assign(variant=f"Table 2 run {model}")


def ablation_summary(df: pd.DataFrame, d_r_values: Sequence[float] | None = None,
                     eps_values: Sequence[float] | None = None,
                     table2_df: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every study's groups, in the paper's order: ``study`` (table3, table4, figure3a,
    figure3b; "other" for runs in no study, by variant), ``setting``, ``value`` (Figure 3's
    x), ``variant`` (the runs' labels), the settings, ``n_seeds`` (0: not run), ``note``, metric
    means and stds.

    Figure 3 uses ``d_r_values`` / ``eps_values`` (default: the values found in the runs);
    Table 4's baseline rows come from ``table2_df`` (:func:`~urbanmoe.evaluation.aggregate.
    collect` of the Table 2 run folders).
    """
    tasks, ref = _tasks(df), reference(df)
    groups: list[tuple[str, str, float, dict, Row | None]] = [
        (name, r.key, np.nan, {**ref, **r.settings()} if r.source == "ablations" else {}, r)
        for name in ("table3", "table4") for r in ITEMS[name].rows]
    for (study, key, _), values in zip(FIGURE3, (d_r_values, eps_values), strict=True):
        if values is None:
            found = df.loc[_match(df, {**ref, key: None}), key]
            values = sorted(pd.to_numeric(found, errors="coerce").dropna().unique())
        groups += [(study, f"{key}={v:g}", float(v), {**ref, key: v}, None) for v in values]
    rows, placed = [], np.zeros(len(df), dtype=bool)
    for study, setting, value, want, row in groups:
        mask = _match(df, want) if want else np.zeros(len(df), dtype=bool)
        placed |= mask
        runs = df[mask] if want else _table2_runs(table2_df, row.model if row else setting, df)
        rows.append({"study": study, "setting": setting, "value": value,
                     **{k: want.get(k) for k in SETTINGS}, **_aggregate(runs, tasks)})
    for variant, runs in df[~placed].groupby("variant", sort=True):  # in no study: listed
        rows.append({"study": "other", "setting": variant, "value": np.nan,
                     **runs[list(SETTINGS)].iloc[0].to_dict(), **_aggregate(runs, tasks)})
    out = pd.DataFrame(rows)
    for k in ("n_specific", "n_shared", "n_dual", "d_r"):
        out[k] = pd.to_numeric(out[k]).astype("Int64")
    out.insert(0, "dataset", df.attrs.get("dataset"))
    out.insert(1, "split", df.attrs.get("split"))
    out.attrs.update(tasks=tasks, reference=ref)
    return out


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
    out.attrs["tasks"] = _tasks(df)
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
    _metric_display(out, s, _tasks(df), METRICS)
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
    tasks, s = _tasks(df), ablation_summary(df, (), (), table2_df)
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

    s, tasks = ablation_summary(df, d_r_values, eps_values), _tasks(df)
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
                         "difference": mean - pv, "status": status})
    out = pd.DataFrame(rows)
    dirs = table.attrs.get("dataset_dirs") or []
    lines = [f"Reproduced on: {data_note.rstrip('.')} (dataset {dataset})."]
    if any(tb.is_synthetic(d) for d in dirs) or "not the paper" in data_note:
        lines.append("This is not the paper's data, so differences measure the data as much "
                     "as the method.")
    lines += [f"Data folders: {', '.join(dirs)}."] if dirs else []
    lines += [f"The paper reports this ablation on SH only: no published values for {dataset}."
              ] if not pub else []
    lines.append("Metrics on the log1p scale; reproduced = mean ± std over seeds (n); "
                 "difference = reproduced mean − published.")
    out.attrs["note"] = "\n\n".join(lines)
    return out


def write_published_vs_reproduced(pvr: pd.DataFrame, stem: Path | str, title: str) -> None:
    """Write ``stem.md`` and ``stem.tex``, headed by the data note and what was not run."""
    stem = Path(stem)
    shown = pd.DataFrame({
        "Row": pvr["label"],
        "Metric": [tb.metric_label(*m.rsplit("_", 1)) for m in pvr["metric"]],
        "Published": ["—" if pd.isna(v) else f"{v:.4f}" for v in pvr["published"]],
        "Reproduced (mean ± std)": [
            "not run" if r.status == "not run" else
            f"{tb.mean_std(r.reproduced_mean, r.reproduced_std)} (n={r.n_seeds})"
            for r in pvr.itertuples()],
        "Reproduced − published": ["" if pd.isna(d) else f"{d:+.4f}" for d in pvr["difference"]]})
    missing = dict.fromkeys(pvr.loc[pvr["status"] == "not run", "label"])
    miss = "Not run yet: " + (", ".join(missing) if missing else "none") + "."
    note = pvr.attrs.get("note", "")
    md = tb.to_markdown(shown)
    write_text(stem.with_suffix(".md"), f"# {title}\n\n{note}\n\n{miss}\n\n{md}\n")
    body = "\n\n".join(tb.tex_escape(p) for p in [note, miss])
    tex = tb.to_latex(shown, title, label=f"tab:{stem.name}")
    write_text(stem.with_suffix(".tex"), f"% {title}\n{body}\n\n{tex}")


def write_summary(summary: pd.DataFrame, path: Path | str) -> None:
    """Write :func:`ablation_summary`'s frame as CSV (read by the claims checker), atomically."""
    write_text(Path(path), summary.to_csv(index=False))
