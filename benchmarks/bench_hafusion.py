"""Benchmark: one HAFusion fit per city with upstream's settings, and their own evaluation.

For each ``data_{NY,Chi,SF}`` folder under ``--root`` (default ``../shared/data/hafusion``),
imported to a temporary dataset, fits ``model.name: hafusion`` once with that city's upstream
settings (``parse_args.py``: blocks, heads, d_prime, d_m, c; 31 epochs; mobility input
``mob_dist.npy``, similarity targets ``poi_simi.npy`` / ``landUse_simi.npy``) and prints the
seconds of the fit. Then, as a sanity check, upstream's evaluation (``tasks_*/*.py``):
``Ridge(alpha=1)`` on raw counts, predictions clipped at 0, R² over the pooled out-of-fold
predictions (New York ``KFold(10)`` unshuffled; Chicago ``KFold(25, shuffle, 2024)``; San
Francisco ``KFold(10, shuffle, 2024)``; check-ins without the zero regions in Chicago and San
Francisco), for the final embedding and for the best snapshot per task (upstream's reported
number: a selection on the test folds), beside the published R² of
``../shared/paper/published_hafusion_icde24.csv``. Asserts nothing.

    python benchmarks/bench_hafusion.py [--root ../shared/data/hafusion] [--seeds 0]
        [--cities NY Chi SF] [--set key=value ...] [--curve]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import Ridge
from sklearn.metrics import r2_score
from sklearn.model_selection import KFold

from urbanmoe.config import load_config
from urbanmoe.data.sources.hafusion import CITIES, TARGETS, import_hafusion_city
from urbanmoe.data.table import load_dataset
from urbanmoe.training.baselines.hafusion import learn

HERE = Path(__file__).resolve().parents[1]
#: upstream's parse_args.py per city: NO_IntraAFL, NO_InterAFL, NO_RegionFusion; heads; d', d_m, c
UPSTREAM = {
    "NY": ([3, 3, 3], 4, 64, 72, 32),
    "Chi": ([1, 2, 3], 1, 32, 36, 32),
    "SF": ([3, 2, 3], 5, 64, 72, 32),
}
FOLDS = {  # tasks_<city>/*.py
    "NY": lambda: KFold(n_splits=10),
    "Chi": lambda: KFold(n_splits=25, shuffle=True, random_state=2024),
    "SF": lambda: KFold(n_splits=10, shuffle=True, random_state=2024),
}
PUBLISHED_TASK = {"check_in": "check_in", "crime": "crime", "service_call": "service_call"}


def upstream_r2(city: str, task: str, emb: np.ndarray, y: np.ndarray) -> float:
    """R² of upstream's ``do_tasks``: pooled out-of-fold Ridge(1) predictions, clipped at 0."""
    if task == "check_in" and city != "NY":
        keep = y > 0
        emb, y = emb[keep], y[keep]
    preds, truth = [], []
    for tr, te in FOLDS[city]().split(emb):
        preds.append(Ridge(alpha=1).fit(emb[tr], y[tr]).predict(emb[te]))
        truth.append(y[te])
    pred = np.clip(np.concatenate(preds), 0, None)
    return float(r2_score(np.concatenate(truth), pred))


def settings(city: str, extra: list[str]) -> dict:
    blocks, heads, d_prime, d_m, c = UPSTREAM[city]
    k = "baselines.hafusion"
    return load_config(None, [
        "model.name=hafusion", f"{k}.blocks={blocks}", f"{k}.heads={heads}",
        f"{k}.d_prime={d_prime}", f"{k}.d_m={d_m}", f"{k}.c={c}",
        f"{k}.mobility=mobility", f"{k}.mobility_input=mobility_dist",
        f"{k}.similarity={{pois: poi_similarity, landuse: landuse_similarity}}", *extra])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=HERE.parent / "shared/data/hafusion")
    ap.add_argument("--cities", nargs="+", default=list(UPSTREAM))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--curve", action="store_true", help="also print R² at every snapshot")
    args = ap.parse_args()
    published = pd.read_csv(HERE.parent / "shared/paper/published_hafusion_icde24.csv")
    published = published[published["model"] == "HAFusion"].set_index(["task", "city"])["r2"]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for city in args.cities:
            folder = args.root / f"data_{city}"
            if not folder.is_dir():
                print(f"{city}: no {folder}, skipped")
                continue
            ds = load_dataset(import_hafusion_city(folder, Path(tmp) / city))
            cfg = settings(city, args.overrides)
            for seed in args.seeds:
                start = time.perf_counter()
                rep = learn(types.SimpleNamespace(ds=ds), cfg["baselines"], seed, "cpu", False)
                secs = time.perf_counter() - start
                print(f"{city} seed {seed}: fit {secs:.1f} s, {len(ds)} regions, "
                      f"{len(rep.loss_history)} epochs, {rep.n_params:,d} parameters, loss "
                      f"{rep.loss_history[0]:.5g} -> {rep.loss_history[-1]:.5g}; {rep.note}",
                      flush=True)
                for task in TARGETS:
                    y = ds.table[task].to_numpy(dtype=np.float64)
                    per = {e: upstream_r2(city, task, s.astype(np.float64), y)
                           for e, s in rep.snapshots.items()}
                    best = max(per, key=per.get)
                    if args.curve:
                        print(f"{city} {task} R² by epoch: "
                              + ", ".join(f"{e}: {r:.3f}" for e, r in sorted(per.items())))
                    rows.append({"city": city, "seed": seed, "task": task, "fit_s": secs,
                                 "final": upstream_r2(city, task,
                                                      rep.features.astype(np.float64), y),
                                 "best": per[best], "best_epoch": best,
                                 "published": published.get((task, CITIES[city]), np.nan)})
    table = pd.DataFrame(rows)
    if table.empty:
        return
    with pd.option_context("display.width", 160, "display.float_format", "{:.3f}".format):
        print(table.to_string(index=False))
        print(table.groupby(["city", "task"])[["final", "best", "published"]].mean())


if __name__ == "__main__":
    main()
