"""Benchmark: MVURE (``model.name=mvure``) on HAFusion's three cities under HAFusion's protocol.

For each city folder under ``--root`` (imported to a temporary dataset folder), one fit with the
upstream settings (``baselines.mvure`` defaults: 5000 epochs; ``--set`` changes them) is timed,
then each representation is scored as HAFusion's task scripts do (docs/hafusion.md): Ridge
(alpha=1) on raw counts, predictions clipped at 0, R² once over the pooled out-of-fold
predictions; New York ``KFold(10)`` unshuffled, Chicago ``KFold(25, shuffle=True,
random_state=2024)``, San Francisco ``KFold(10, shuffle=True, random_state=2024)``; for
check-ins, Chicago and San Francisco drop the regions with zero check-ins first. It prints R² of
the final embedding, of the best snapshot per task (a choice on the test folds, as HAFusion's
script makes for its own model) and MVURE's published value.

    python benchmarks/bench_mvure.py [--root ../shared/data/hafusion] [--cities NY Chi SF]
                                     [--seed 0] [--threads 1] [--set baselines.mvure.epochs=500]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import Ridge
from sklearn.metrics import r2_score
from sklearn.model_selection import KFold

from urbanmoe.config import load_config
from urbanmoe.data.sources.hafusion import CITIES, import_hafusion_city
from urbanmoe.data.table import load_dataset
from urbanmoe.training.baselines.mvure import fit

ROOT = Path(__file__).resolve().parents[2] / "shared"
FOLDS = {"NY": KFold(10), "Chi": KFold(25, shuffle=True, random_state=2024),
         "SF": KFold(10, shuffle=True, random_state=2024)}
DROP_ZERO_CHECK_INS = ("Chi", "SF")
TASKS = ("check_in", "crime", "service_call")


def pooled_r2(x: np.ndarray, y: np.ndarray, folds: KFold) -> float:
    """R² of Ridge(alpha=1) over the pooled out-of-fold predictions, clipped at 0."""
    pred = np.zeros_like(y)
    for train, test in folds.split(x):
        pred[test] = Ridge(alpha=1.0).fit(x[train], y[train]).predict(x[test])
    return float(r2_score(y, np.clip(pred, 0, None)))


def score(x: np.ndarray, y: np.ndarray, city: str, task: str) -> float:
    keep = (y > 0) if task == "check_in" and city in DROP_ZERO_CHECK_INS else np.ones_like(y, bool)
    return pooled_r2(x[keep].astype(np.float64), y[keep], FOLDS[city])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=ROOT / "data/hafusion")
    ap.add_argument("--cities", nargs="+", default=list(FOLDS), choices=list(FOLDS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--set", nargs="*", default=[], dest="overrides")
    ap.add_argument("--published", type=Path,
                    default=ROOT / "paper/published_hafusion_icde24.csv")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    s = load_config(None, args.overrides)["baselines"]["mvure"]
    published = pd.read_csv(args.published)
    published = published[published["model"] == "MVURE"].set_index(["task", "city"])["r2"]
    print(f"settings: {s}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for city in args.cities:
            out = import_hafusion_city(args.root / f"data_{city}", Path(tmp) / city)
            ds = load_dataset(out)
            t0 = time.perf_counter()
            rep = fit(ds, s, args.seed, "cpu", progress=False)
            secs = time.perf_counter() - t0
            print(f"{city}: {len(ds)} regions, fit {secs:.1f} s ({secs / s['epochs'] * 1e3:.1f} "
                  f"ms/epoch), loss {rep.loss_history[0]:.4g} -> {rep.loss_history[-1]:.4g}; "
                  f"{rep.note}", flush=True)
            for task in TASKS:
                y = ds.table[task].to_numpy(np.float64)
                final = score(rep.features, y, city, task)
                by_epoch = {e: score(f, y, city, task) for e, f in rep.snapshots.items()}
                best = max(by_epoch, key=by_epoch.__getitem__)
                rows.append({"task": task, "city": city, "seconds": round(secs, 1),
                             "final": round(final, 3), "best_snapshot": round(by_epoch[best], 3),
                             "best_epoch": best,
                             "published": published.get((task, CITIES[city]), np.nan)})
    table = pd.DataFrame(rows)
    print()
    print(table.to_markdown(index=False))


if __name__ == "__main__":
    main()
