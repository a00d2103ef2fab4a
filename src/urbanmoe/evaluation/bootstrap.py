"""Spatial block bootstrap replicates of test-set R², drawn from run folders.

The second interval beside every seed interval (``evaluation/uncertainty.py``): for each
dataset, split and seed with a single test part, the test regions are grouped into square
blocks of ``split.block_km`` (their coordinates; a dataset without coordinates bootstraps single
regions, and the table says so), and each replicate draws as many blocks as there are, with
replacement. Every run of that seed is scored under the *same* replicate weights, so the
difference of two models in one replicate is paired. A group's value in a replicate is the mean
over its seeds of its R² on the resampled test regions; the difference of two groups is only
read where they have the same seeds.

Runs under K folds are left out: each region is tested once and the folds' interval already
spans the regions. The replicate table is written beside the tables it qualifies
(``table2_bootstrap.csv``, ``ablations_bootstrap.csv``) and read by ``report/claims.py``,
which needs no run folder.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from urbanmoe.data.splits import block_ids
from urbanmoe.data.table import load_dataset
from urbanmoe.evaluation.uncertainty import block_weights, replicate_r2
from urbanmoe.io import write_text

#: replicate weights held at once: about this many floats (chunks of replicates)
CHUNK_VALUES = 20_000_000


def _blocks(dataset_dir: str, ids: np.ndarray, block_km: float,
            cache: dict[str, tuple[pd.Series | None, str]]) -> tuple[np.ndarray, str]:
    """Block of each test region and how blocks were made (coordinates, or single regions)."""
    if dataset_dir not in cache:
        coords = None
        if dataset_dir and Path(dataset_dir).is_dir():
            ds = load_dataset(Path(dataset_dir))
            if ds.coords is not None:
                coords = pd.Series(list(block_ids(ds.coords, block_km)), index=ds.ids)
        how = (f"blocks of {block_km:g} km" if coords is not None else
               "single regions (no coordinates)")
        cache[dataset_dir] = (coords, how)
    coords, how = cache[dataset_dir]
    if coords is None or not set(ids) <= set(coords.index):
        return np.arange(len(ids)), "single regions (no coordinates)"
    return coords.loc[ids].to_numpy(), how


def _predictions(run: str, tasks: Sequence[str]) -> pd.DataFrame | None:
    path = Path(run) / "predictions.parquet"
    if not path.is_file():
        return None
    cols = ["region_id", *(f"{t}_{k}_log" for t in tasks for k in ("true", "pred"))]
    df = pd.read_parquet(path)
    if not set(cols) <= set(df.columns):
        return None
    return df[cols].set_index("region_id").sort_index()


def bootstrap_replicates(runs: pd.DataFrame, group: Sequence[str], tasks: Sequence[str],
                         block_km: float, replicates: int, seed: int) -> pd.DataFrame:
    """Replicates of R² per group: one row per (group, replicate) with ``<task>_r2`` and
    ``avg_r2`` (means over the group's seeds), ``seeds`` ("0,1,2") and ``blocks`` (how the
    test regions were grouped).

    ``runs`` has one row per run: the ``group`` columns, ``dataset``, ``split``, ``seed``,
    ``run`` (its folder), ``dataset_dir`` and, for K-fold runs, ``fold`` (those are skipped).
    Deterministic: the weights of a (dataset, split, seed) come from ``seed`` and those names.
    """
    group = list(group)
    cols = [*group, "dataset", "split", "seeds", "blocks", "replicate",
            *(f"{t}_r2" for t in tasks), "avg_r2"]
    if runs.empty or replicates < 1:
        return pd.DataFrame(columns=cols)
    single = runs.groupby([*group, "dataset", "split"], dropna=False)["fold"].transform(
        "nunique") == 1 if "fold" in runs else pd.Series(True, index=runs.index)
    runs = runs[single & (runs["split"] != "kfold")]
    sums: dict[tuple, np.ndarray] = {}
    seeds_of: dict[tuple, list[int]] = {}
    blocks_of: dict[tuple, str] = {}
    cache: dict[str, tuple[pd.Series | None, str]] = {}
    for (ds, split, s), part in runs.groupby(["dataset", "split", "seed"], sort=True):
        preds = {i: _predictions(r, tasks) for i, r in zip(part.index, part["run"], strict=True)}
        preds = {i: p for i, p in preds.items() if p is not None}
        if not preds:
            continue
        ids = next(iter(preds.values())).index.to_numpy()
        preds = {i: p for i, p in preds.items() if np.array_equal(p.index.to_numpy(), ids)}
        blocks, how = _blocks(str(part["dataset_dir"].iloc[0]), ids, block_km, cache)
        rng = np.random.default_rng([seed, int(s), zlib.crc32(str(ds).encode()),
                                     zlib.crc32(str(split).encode())])
        values = np.zeros((len(preds), replicates, len(tasks) + 1))
        step = max(1, CHUNK_VALUES // max(1, len(ids)))
        for start in range(0, replicates, step):
            w = block_weights(blocks, min(step, replicates - start), rng)
            for k, p in enumerate(preds.values()):
                r2 = np.stack([replicate_r2(p[f"{t}_true_log"].to_numpy(),
                                            p[f"{t}_pred_log"].to_numpy(), w)
                               for t in tasks], axis=1)
                with np.errstate(all="ignore"):
                    avg = np.nanmean(np.where(np.isfinite(r2), r2, np.nan), axis=1)
                values[k, start:start + len(w)] = np.column_stack([r2, avg])
        for k, i in enumerate(preds):
            key = (*(part.at[i, g] for g in group), ds, split)
            sums[key] = sums.get(key, 0) + values[k]
            seeds_of.setdefault(key, []).append(int(s))
            blocks_of[key] = how
    rows = []
    for key, total in sums.items():
        mean = total / len(seeds_of[key])
        seeds = ",".join(str(s) for s in sorted(seeds_of[key]))
        for r in range(replicates):
            rows.append([*key, seeds, blocks_of[key], r, *mean[r]])
    return pd.DataFrame(rows, columns=cols)


def write_replicates(df: pd.DataFrame, path: Path | str) -> None:
    """Write the replicate table as CSV (6 significant digits), atomically."""
    write_text(Path(path), df.to_csv(index=False, float_format="%.6g"), "table")
