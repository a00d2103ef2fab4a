"""Table 2 of the paper (overall results) from run folders, and published-vs-reproduced.

Tables are derived from :func:`urbanmoe.evaluation.aggregate.collect`. A table DataFrame holds
two kinds of columns: snake_case ones (``dataset``, ``carbon_r2_mean``...; numeric, written to
CSV) and display ones (``Model``, ``Carbon R²`` as "0.7872 ± 0.0082"...; written to Markdown
and LaTeX).

:func:`write_table` writes every table (CSV, Markdown, LaTeX); :func:`write_comparison` writes
every published-vs-reproduced table (Tables 1-4; Markdown and LaTeX).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from urbanmoe.errors import DataError
from urbanmoe.evaluation.aggregate import KEYS, count, runs_label, summarize
from urbanmoe.evaluation.metrics import METRICS
from urbanmoe.evaluation.uncertainty import WITHIN_K, placement
from urbanmoe.io import claim, write_text
from urbanmoe.paper_items import ITEMS
from urbanmoe.readers import read_metrics, read_yaml
from urbanmoe.report.evidence import Rule
from urbanmoe.report.significance import significance_marks
from urbanmoe.training.registry import MODELS

#: Table 2's models in the paper's order, then the other models in the registry's order.
MODEL_IDS = list(dict.fromkeys([*ITEMS["table2"].models, *MODELS]))
DATASET_ORDER = ["SH", "BJ", "DC"]
METRIC_LABEL = {"r2": "R²", "rmse": "RMSE", "mae": "MAE"}
EFFICIENCY = {"params_m": "Params (M)", "max_mem_mb": "Max Mem (MB)",
              "total_time_s": "Total Time (s)"}
_SNAKE = re.compile(r"^[a-z0-9_]+$")


def display_name(model: str) -> str:
    """The paper's name of a model (its registry label: ``urbanmoe_st`` -> "UrbanMoE (ST)",
    the name ``published_table2.csv`` uses); unknown ids are shown as they are."""
    return MODELS[model].label if model in MODELS else model


#: Row order of the tables, by display name.
MODEL_ORDER = [display_name(m) for m in MODEL_IDS]


def _pos(name: str, order: Sequence[str]) -> tuple[int, str]:
    """Sort key: position in ``order``, unknown names after it by name."""
    return (list(order).index(name), "") if name in order else (len(order), name)


def metric_label(task: str, metric: str) -> str:
    """A column title: ``("carbon", "r2")`` -> ``"Carbon R²"``, ``avg`` as ``Average``."""
    return f"{'Average' if task == 'avg' else task.capitalize()} {METRIC_LABEL[metric]}"


def mean_std(mean: float, std: float, digits: int = 4) -> str:
    """``"0.8100 ± 0.0110"``; the mean alone without a std, ``"—"`` without a mean."""
    if pd.isna(mean):
        return "—"
    return f"{mean:.{digits}f}" + ("" if pd.isna(std) else f" ± {std:.{digits}f}")


def _provenance(run_dirs: Sequence[str]) -> dict[str, str]:
    """Data folder, device and memory kind of a group of runs, read from their metrics.json."""
    found: dict[str, set[str]] = {"dataset_dir": set(), "device": set(), "memory_kind": set()}
    for path in (Path(run) / "metrics.json" for run in run_dirs):
        if path.is_file():
            m = read_metrics(path)
            info = {**(m.get("provenance") or {}), **(m.get("efficiency") or {})}
            for key, seen in found.items():
                seen.add(str(info.get(key, "")))
    return {k: ", ".join(sorted(v - {""})) for k, v in found.items()}


def table2(runs: pd.DataFrame, tasks: Sequence[str] | None = None,
           rule: Rule | None = None) -> pd.DataFrame:
    """Table 2: R², RMSE, MAE per task and average, mean ± std over seeds, with efficiency.

    One row per (dataset, model, split) in the paper's row order (our extra baselines and then
    unknown models, by name, after). Numeric columns: ``<task>_<metric>_mean``/``_std``,
    ``params_m``, ``max_mem_mb``, ``total_time_s`` (means over seeds of params / 1e6,
    peak_memory_mb, train_seconds), ``n_seeds`` and, when the run folders are readable,
    ``dataset_dir``, ``device``, ``memory_kind``. The std is over seeds (ddof=0, as in
    :func:`summarize`) and left empty for a single seed. The average R² carries the marks of
    :func:`significance_marks` (``rule``: the confidence and the fewest pairs).
    """
    tasks = list(tasks if tasks is not None else runs.attrs.get("tasks", []))
    tasks = [t for t in tasks if f"{t}_r2" in runs.columns]
    s = summarize(runs)
    s["_disp"] = s["model"].map(display_name)
    key = [(_pos(d, DATASET_ORDER), _pos(m, MODEL_ORDER), sp)
           for d, m, sp in zip(s["dataset"], s["_disp"], s["split"], strict=True)]
    s = s.iloc[sorted(range(len(s)), key=key.__getitem__)]
    out = s[["dataset", "model", "split", "n_seeds"]].reset_index(drop=True)
    out.insert(0, "Dataset", out["dataset"])
    out.insert(1, "Model", s["_disp"].to_numpy())
    if out["split"].nunique() > 1:
        out.insert(2, "Split", out["split"])
    single = out["n_seeds"].to_numpy() * s["n_folds"].to_numpy() < 2
    for t in [*tasks, "avg"]:
        for m in METRICS:
            mean = s[f"{t}_{m}_mean"].to_numpy()
            std = np.where(single, np.nan, s[f"{t}_{m}_std"].to_numpy())
            out[f"{t}_{m}_mean"], out[f"{t}_{m}_std"] = mean, std
            out[metric_label(t, m)] = [mean_std(a, b) for a, b in zip(mean, std, strict=True)]
    out["params_m"] = s["params_mean"].to_numpy() / 1e6
    out["max_mem_mb"] = s["peak_memory_mb_mean"].to_numpy()
    out["total_time_s"] = s["train_seconds_mean"].to_numpy()
    out["Params (M)"] = [f"{v:.2f}" if v >= 0.01 else f"{v:.2g}" for v in out["params_m"]]
    out["Max Mem (MB)"] = [f"{v:.1f}" for v in out["max_mem_mb"]]
    out["Total Time (s)"] = [f"{v:.1f}" for v in out["total_time_s"]]
    out["Seeds"] = [runs_label(r) for _, r in s.iterrows()]
    out["n_test"] = s["n_test_mean"].to_numpy()
    out["Test regions"] = [count(v) for v in out["n_test"]]
    if "note" in runs.columns:
        notes = runs.groupby(KEYS, sort=False)["note"].apply(
            lambda v: "; ".join(sorted({n for n in v if n})))
        out["Note"] = [notes.get((r.dataset, r.model, r.split), "") for r in out.itertuples()]
    if "run" in runs.columns:
        groups = runs.groupby(["dataset", "model", "split"], sort=False)["run"].apply(list)
        prov = [_provenance(groups.loc[(r.dataset, r.model, r.split)])
                for r in out.itertuples()]
        for key in ("dataset_dir", "device", "memory_kind"):
            out[key] = [p[key] for p in prov]
    out = significance_marks(out, runs, rule or Rule())
    out = _with_skipped(out, runs.attrs.get("skipped") or [])
    out.attrs["tasks"] = tasks
    return out


def _with_skipped(out: pd.DataFrame, skipped: list[dict]) -> pd.DataFrame:
    """One row per skipped (dataset, model, split), its reason in ``Note``, metrics empty."""
    if not skipped:
        return out
    seen = {(r.dataset, r.model, r.split) for r in out.itertuples()}
    rows = {}
    for s in skipped:
        key = (s["dataset"], s["model"], s["split"])
        if key not in seen:
            rows[key] = {"Dataset": key[0], "Model": display_name(key[1]), "dataset": key[0],
                         "model": key[1], "split": key[2], "n_seeds": 0, "Seeds": "0",
                         "Note": f"skipped: {s['reason']}"}
    if "Split" in out.columns:
        for row in rows.values():
            row["Split"] = row["split"]
    return pd.concat([out, pd.DataFrame(list(rows.values()))], ignore_index=True)


def _split(df: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(numeric snake_case columns, display columns); all columns display if none is."""
    numeric = [c for c in df.columns if _SNAKE.match(str(c))]
    display = [c for c in df.columns if c not in numeric]
    return numeric, display or list(df.columns)


def _md_cell(x: object) -> str:
    return "—" if pd.isna(x) else str(x).replace("|", "\\|")


def to_markdown(df: pd.DataFrame) -> str:
    """A Markdown table of ``df``'s display columns."""
    cols = _split(df)[1]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_md_cell(v) for v in row) + " |"
              for row in df[cols].itertuples(index=False)]
    return "\n".join(lines)


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
        "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\~{}", "^": r"\^{}", "±": r"$\pm$",
        "²": r"$^2$", "−": r"$-$", "—": "---", "°": r"$^\circ$", "–": "--", "✓": r"$\checkmark$",
        "†": r"$^\dagger$"}


def tex_escape(text: object) -> str:
    """Escape LaTeX specials; ``±``, ``²``, ``−`` and ``—`` become math or dashes."""
    return re.sub("|".join(map(re.escape, _TEX)), lambda m: _TEX[m.group()], str(text))


def to_latex(df: pd.DataFrame, caption: str = "", label: str = "") -> str:
    """A booktabs LaTeX table of ``df``'s display columns, in a ``table`` with a caption."""
    cols = _split(df)[1]
    text = df[cols].map(lambda v: "---" if pd.isna(v) else tex_escape(v))
    align = "".join("l" if c in ("Dataset", "Model", "Split", "Metric") else "r" for c in cols)
    lines = [r"\begin{table}[t]", r"\centering"]
    if caption:
        lines.append(r"\caption{" + tex_escape(caption) + "}")
    if label:
        lines.append(r"\label{" + label + "}")
    lines += [r"\begin{tabular}{" + align + "}", r"\toprule",
              " & ".join(tex_escape(c) for c in cols) + r" \\", r"\midrule"]
    prev = None
    for row in text.itertuples(index=False):
        if prev is not None and cols[0] == "Dataset" and row[0] != prev:
            lines.append(r"\midrule")
        prev = row[0]
        lines.append(" & ".join(row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def write_table(df: pd.DataFrame, stem: Path, caption: str) -> None:
    """Write ``stem.csv`` (numeric columns), ``stem.md`` and ``stem.tex``, each atomically."""
    stem = Path(stem)
    numeric = _split(df)[0] or list(df.columns)
    claim([stem.with_suffix(s) for s in (".csv", ".md", ".tex")], "table")
    write_text(stem.with_suffix(".csv"), df[numeric].to_csv(index=False), "table")
    write_text(stem.with_suffix(".md"), f"{caption}\n\n{to_markdown(df)}\n", "table")
    write_text(stem.with_suffix(".tex"), to_latex(df, caption, label=f"tab:{stem.name}"), "table")


def write_csv(df: pd.DataFrame, path: Path | str) -> None:
    """Write ``df`` as one CSV (every column), atomically."""
    write_text(Path(path), df.to_csv(index=False), "table")


def write_comparison(rows: pd.DataFrame, stem: Path | str, title: str, note: str = "",
                     missing: Sequence[str] | None = None) -> None:
    """Write a published-vs-reproduced table (Tables 1-4) as ``stem.md`` and ``stem.tex``.

    Both files open with ``title`` and the paragraphs ``note`` (what the reproduction ran on)
    and, when ``missing`` is given, "Not run yet: ..." (its names once each, or "none"); then
    ``rows``' display columns as a table (:func:`to_markdown`, :func:`to_latex`).
    """
    stem = Path(stem)
    paragraphs = [note] if note else []
    if missing is not None:
        names = list(dict.fromkeys(missing))
        paragraphs.append("Not run yet: " + (", ".join(names) if names else "none") + ".")
    md = "".join(f"{p}\n\n" for p in paragraphs)
    tex = "".join(f"{tex_escape(p)}\n\n" for p in paragraphs)
    claim([stem.with_suffix(".md"), stem.with_suffix(".tex")], "table")
    write_text(stem.with_suffix(".md"), f"# {title}\n\n{md}{to_markdown(rows)}\n", "table")
    write_text(stem.with_suffix(".tex"), f"% {title}\n{tex}"
               + to_latex(rows, title, label=f"tab:{stem.name}"), "table")


def is_synthetic(dataset_dir: str) -> bool:
    """Whether a dataset folder holds the embedded synthetic benchmark (not real data)."""
    spec = Path(dataset_dir) / "dataset.yaml"
    meta = read_yaml(spec, error=DataError) if spec.is_file() else {}
    return ((meta.get("source") or {}).get("generator") == "urbanmoe.synth"
            or "synthetic" in Path(dataset_dir).parts)


def published_vs_reproduced(reproduced: pd.DataFrame, published: pd.DataFrame,
                            dataset_note: str) -> pd.DataFrame:
    """Table 2 published beside reproduced: one row per (dataset, model, split, metric).

    ``reproduced`` is :func:`table2`'s output, ``published`` the rows of
    ``paper/published_table2.csv``. ``difference`` is reproduced mean − published;
    ``judgement`` is :func:`~urbanmoe.evaluation.uncertainty.placement` (within / above /
    below; empty for the efficiency columns, measured on other hardware). Paper models with no
    runs have ``status`` "not run"; our models absent from the paper "not in paper". The header
    for the writers (what data the reproduction ran on) is in ``attrs["note"]``;
    ``attrs["judged"]`` is False on the synthetic benchmark, where the paper's values cannot
    be expected, and the writers then state that in one line instead of the column.
    """
    tasks = reproduced.attrs.get("tasks") or [
        c[:-3] for c in published.columns if c.endswith("_r2") and c != "avg_r2"]
    metrics = [f"{t}_{m}" for t in [*tasks, "avg"] for m in METRICS] + list(EFFICIENCY)
    rep = reproduced.assign(_disp=reproduced["model"].map(display_name))
    pub = published.set_index(["dataset", "model"])
    keys = list(dict.fromkeys([*pub.index, *zip(rep["dataset"], rep["_disp"], strict=True)]))
    keys.sort(key=lambda k: (_pos(k[0], DATASET_ORDER), _pos(k[1], MODEL_ORDER)))
    rows = []
    for ds, name in keys:
        hits = rep[(rep["dataset"] == ds) & (rep["_disp"] == name)]
        in_paper = (ds, name) in pub.index
        for r in [*hits.to_dict("records")] or [None]:
            status = "not run" if r is None else "reproduced" if in_paper else "not in paper"
            for met in metrics:
                p = float(pub.loc[(ds, name), met]) if in_paper and met in pub else np.nan
                mean = np.nan if r is None else r.get(met, r.get(f"{met}_mean", np.nan))
                std = np.nan if r is None else r.get(f"{met}_std", np.nan)
                rows.append({"dataset": ds, "model": name,
                             "split": "" if r is None else r["split"],
                             "n_seeds": 0 if r is None else r["n_seeds"], "metric": met,
                             "published": p, "reproduced_mean": mean, "reproduced_std": std,
                             "difference": mean - p, "status": status,
                             "judgement": "" if met in EFFICIENCY else placement(p, mean, std)})
    out = pd.DataFrame(rows)
    fake = synthetic_datasets(reproduced, dataset_note)
    synthetic = [d for d in dict.fromkeys(out["dataset"]) if d in fake]
    out.loc[out["dataset"].isin(synthetic), "judgement"] = ""
    out.attrs["judged"] = bool(set(out["dataset"]) - set(synthetic))
    out.attrs["note"] = _header(reproduced, dataset_note) + "\n\n" + judgement_note(
        out.attrs["judged"], synthetic)
    return out


def synthetic_run(dataset_dirs: Sequence[str], dataset_note: str) -> bool:
    """Whether runs were on the embedded synthetic benchmark: their data folders say so, or,
    with no folder known, the note does."""
    dirs = [d for d in dataset_dirs if d]
    return any(is_synthetic(d) for d in dirs) if dirs else "synthetic" in dataset_note


def synthetic_datasets(reproduced: pd.DataFrame, dataset_note: str) -> set[str]:
    """The datasets of a table whose runs were on the synthetic benchmark."""
    known = "dataset_dir" in reproduced.columns
    return {str(ds) for ds, grp in reproduced.groupby("dataset", sort=False)
            if synthetic_run([d for v in grp["dataset_dir"].dropna() for d in str(v).split(", ")]
                             if known else [], dataset_note)}


def judgement_note(judged: bool, synthetic: Sequence[str] = ()) -> str:
    """The line that says what the judgement column means, or why a dataset has none."""
    lines = []
    if synthetic:
        lines.append(f"No cell of {', '.join(synthetic)} is judged within, above or below: the "
                     "synthetic benchmark cannot be expected to give the paper's values, so "
                     "such a column would only read \"below\" or \"above\". On real data it "
                     "says where each reproduced value lies.")
    if judged:
        lines.append(f"Judgement: within when the published value lies inside the reproduced "
                     f"mean ± {WITHIN_K:g} x (reproduced std + published std, where published), "
                     "else whether the reproduced mean is above or below it.")
    return " ".join(lines)


def _header(reproduced: pd.DataFrame, dataset_note: str) -> str:
    lines = [f"Reproduced on: {dataset_note.rstrip('.')}."]
    dirs = {}
    if "dataset_dir" in reproduced.columns:
        for ds, grp in reproduced.groupby("dataset", sort=False):
            dirs[ds] = sorted({d for v in grp["dataset_dir"] for d in v.split(", ") if d})
    if any(is_synthetic(d) for v in dirs.values() for d in v):
        lines.append("This is not the paper's data: the embedded synthetic benchmark's cities "
                     "only carry the paper's names and sizes, so differences measure the "
                     "benchmark, not the method.")
    elif "not the paper" in dataset_note:
        lines.append("This is not the paper's data, so differences measure the data as much "
                     "as the method.")
    if dirs:
        lines.append("Data per dataset: " + "; ".join(
            f"{ds}: {', '.join(v) or 'unknown'}" for ds, v in dirs.items()) + ".")
    hw = {c: ", ".join(sorted({x for v in reproduced[c] for x in v.split(", ") if x}))
          for c in ("device", "memory_kind") if c in reproduced.columns}
    lines.append("R², RMSE and MAE on the log1p scale; reproduced = mean ± std over seeds; "
                 "difference = reproduced mean − published. Params, memory and time are "
                 f"measured on our hardware (device: {hw.get('device') or 'unknown'}; memory: "
                 f"{hw.get('memory_kind') or 'unknown'}), not the paper's GPU.")
    return "\n\n".join(lines)


def _pvr_display(df: pd.DataFrame) -> pd.DataFrame:
    """Display rows: a paper model without runs collapses into one "not run" row (average R²)."""
    rows, many = [], df.loc[df["split"] != "", "split"].nunique() > 1
    for r in df.itertuples():
        if r.status == "not run" and r.metric != "avg_r2":
            continue
        eff = r.metric in EFFICIENCY
        task, _, met = r.metric.rpartition("_")
        fmt = "{:.2f}" if eff else "{:.4f}"
        rows.append([r.dataset, r.model + (f" [{r.split}]" if many and r.split else ""),
                     EFFICIENCY[r.metric] if eff else metric_label(task, met),
                     "not in paper" if r.status == "not in paper" else
                     "—" if pd.isna(r.published) else fmt.format(r.published),
                     "not run" if r.status == "not run" else
                     mean_std(r.reproduced_mean, r.reproduced_std, 2 if eff else 4)
                     + f" (n={r.n_seeds})",
                     "" if pd.isna(r.difference) else ("{:+.2f}" if eff else "{:+.4f}").format(
                         r.difference)])
    out = pd.DataFrame(rows, columns=["Dataset", "Model", "Metric", "Published",
                                      "Reproduced (mean ± std)", "Reproduced − published"])
    if df.attrs.get("judged", True):
        shown = df[~((df["status"] == "not run") & (df["metric"] != "avg_r2"))]
        out["Judgement"] = shown["judgement"].fillna("").to_numpy()
    return out


def write_published_vs_reproduced(df: pd.DataFrame, stem: Path,
                                  note: str | None = None) -> None:
    """Write ``stem.md`` and ``stem.tex`` for Table 2 (:func:`write_comparison`), headed by what
    the data was.

    ``note`` defaults to the header :func:`published_vs_reproduced` put in ``df.attrs``.
    """
    missing = [f"{m} ({d})" for d, m, s in df[["dataset", "model", "status"]]
               .itertuples(index=False) if s == "not run"]
    write_comparison(_pvr_display(df), stem, "Published vs reproduced: Table 2",
                     note or df.attrs.get("note", ""), missing)
