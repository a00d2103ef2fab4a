"""Ablation runs of Section 3.5 and Appendices B-C, collected and grouped per study.

Tables 3-5 and Figure 3, drawn from these groups, are in ``urbanmoe.report.ablations``.

Ablation runs live in ``<root>/<dataset>/<split>/<variant>/seed<N>`` (``metrics.json`` with the
run's ``variant`` label, ``config.yaml`` with its resolved settings). A run is placed by its
*settings* (``model.n_specific`` ... ``model.use_poi`` in ``config.yaml``), not by its label:
every study holds all settings at the full model's (the run labelled ``urbanmoe``; the paper's
defaults when there is none) except the ones it varies. So the full model is Table 3's "all
three types" row, Table 4's "UrbanMoE" row and the default point of both Figure 3 curves.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from urbanmoe.errors import RunError
from urbanmoe.evaluation.metrics import METRICS, flatten
from urbanmoe.io import visible_files
from urbanmoe.paper_items import FULL_MODEL, ITEMS, Row
from urbanmoe.readers import read_metrics, read_yaml

TASKS = ["carbon", "population", "light"]
SETTINGS = ("n_specific", "n_shared", "n_dual", "d_r", "eps", "use_region", "use_poi")
FULL = FULL_MODEL  # the variant label of the full model
#: Figure 3's panels: study, setting varied, x-axis label (the curves of its paper item).
FIGURE3 = [("figure3a", "d_r", "region embedding size d_r"),
           ("figure3b", "eps", "gate threshold eps")]
assert tuple(key for _, key, _ in FIGURE3) == ITEMS["figure3"].curves
#: Config keys (prefixes) that differ between runs without changing the experiment; every other
#: key outside SETTINGS must equal the full model's for a run to be placed in a study.
INCIDENTAL = ("seed", "workflow.", "train.seeds", "train.device", "train.threads",
              "features.cache_dir", "baselines.cache_dir",
              "features.remoteclip.device", "features.remoteclip.batch_size")


def study_tasks(df: pd.DataFrame) -> list[str]:
    """The tasks of collected ablation runs (``attrs["tasks"]``; the paper's three if none)."""
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
        m = read_metrics(path)
        label = m.get("variant") or path.parent.parent.name
        if "skipped" in m:
            skipped.append({"variant": label, "seed": m["seed"], "reason": m["skipped"]})
            continue
        tasks += [t for t in m["tasks"] if t not in tasks]
        cfg_file = path.parent / "config.yaml"
        cfg = read_yaml(cfg_file, error=RunError) if cfg_file.is_file() else {}
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
    return dict(_schema_settings())


@functools.cache
def _schema_settings() -> tuple[tuple[str, object], ...]:
    from urbanmoe.config import validate

    model = validate({}, "(defaults)")["model"]
    return tuple((k, model[k]) for k in SETTINGS)


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


def _groups(df: pd.DataFrame, d_r_values: Sequence[float] | None,
            eps_values: Sequence[float] | None, table2_df: pd.DataFrame | None,
            ) -> tuple[list[tuple[str, str, float, dict, pd.DataFrame]], np.ndarray]:
    """Every study's groups in the paper's order -- (study, setting, value, settings wanted,
    its runs) -- and which of ``df``'s runs were placed in one."""
    ref = reference(df)
    groups: list[tuple[str, str, float, dict, Row | None]] = [
        (name, r.key, np.nan, {**ref, **r.settings()} if r.source == "ablations" else {}, r)
        for name in ("table3", "table4") for r in ITEMS[name].rows]
    for (study, key, _), values in zip(FIGURE3, (d_r_values, eps_values), strict=True):
        if values is None:
            found = df.loc[_match(df, {**ref, key: None}), key]
            values = sorted(pd.to_numeric(found, errors="coerce").dropna().unique())
        groups += [(study, f"{key}={v:g}", float(v), {**ref, key: v}, None) for v in values]
    out, placed = [], np.zeros(len(df), dtype=bool)
    for study, setting, value, want, row in groups:
        mask = _match(df, want) if want else np.zeros(len(df), dtype=bool)
        placed |= mask
        runs = df[mask] if want else _table2_runs(table2_df, row.model if row else setting, df)
        out.append((study, setting, value, want, runs))
    return out, placed


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
    tasks = study_tasks(df)
    groups, placed = _groups(df, d_r_values, eps_values, table2_df)
    rows = [{"study": study, "setting": setting, "value": value,
             **{k: want.get(k) for k in SETTINGS}, **_aggregate(runs, tasks)}
            for study, setting, value, want, runs in groups]
    for variant, runs in df[~placed].groupby("variant", sort=True):  # in no study: listed
        rows.append({"study": "other", "setting": variant, "value": np.nan,
                     **runs[list(SETTINGS)].iloc[0].to_dict(), **_aggregate(runs, tasks)})
    out = pd.DataFrame(rows)
    for k in ("n_specific", "n_shared", "n_dual", "d_r"):
        out[k] = pd.to_numeric(out[k]).astype("Int64")
    out.insert(0, "dataset", df.attrs.get("dataset"))
    out.insert(1, "split", df.attrs.get("split"))
    out.attrs.update(tasks=tasks, reference=reference(df))
    return out


def ablation_seeds(df: pd.DataFrame, d_r_values: Sequence[float] | None = None,
                   eps_values: Sequence[float] | None = None,
                   table2_df: pd.DataFrame | None = None) -> pd.DataFrame:
    """The runs behind :func:`ablation_summary`'s groups, one row per (study, setting, seed):
    ``dataset``, ``split``, ``seed``, ``run``, ``dataset_dir`` and the metrics (duplicates of
    a seed averaged), the values a paired comparison of two groups reads."""
    tasks = study_tasks(df)
    cols = _metric_cols(tasks)
    rows = []
    for study, setting, _, _, runs in _groups(df, d_r_values, eps_values, table2_df)[0]:
        if runs.empty:
            continue
        for seed, part in runs.groupby("seed", sort=True):
            rows.append({"study": study, "setting": setting,
                         "dataset": df.attrs.get("dataset"), "split": df.attrs.get("split"),
                         "seed": seed, "run": str(part["run"].iloc[0]),
                         "dataset_dir": str(part["dataset_dir"].iloc[0])
                         if "dataset_dir" in part else "",
                         **{c: float(part[c].mean()) for c in cols if c in part}})
    return pd.DataFrame(rows, columns=["study", "setting", "dataset", "split", "seed", "run",
                                       "dataset_dir", *cols])
