"""Benchmark: which region embedding r (Eq. 1) to use by default, measured on synthetic SH.

Trains UrbanMoE with each region embedding (and without one) over seeds on the same splits and
prints the mean ± std of R² per task and on average (log1p scale, test split), beside ridge on
the same inputs. The paper's per-region lookup cannot help regions unseen in training (their
rows never receive a gradient); the grid variants share vectors between neighbours.

    python benchmarks/bench_region_embedding.py [--dataset DIR] [--seeds 0 1 2] [--jobs 2]
"""

from __future__ import annotations

import argparse
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from urbanmoe.config import load_config
from urbanmoe.data.synthetic import SynthSettings, generate_city
from urbanmoe.evaluation.run import train_run

VARIANTS = {
    "ridge (same inputs)": ["model.name=ridge"],
    "no region embedding": ["model.use_region=false"],
    "lookup (paper)": ["model.region_embedding=lookup"],
    "lookup, region_lr=lr": ["model.region_embedding=lookup", "train.region_lr=null"],
    "grid 8 km": ["model.region_embedding=grid"],
    "fourier": ["model.region_embedding=fourier"],
    "smooth_grid 8 km": ["model.region_embedding=smooth_grid"],
    "smooth_grid, region_lr=lr": ["model.region_embedding=smooth_grid", "train.region_lr=null"],
}


def _one(job: tuple[str, list[str], Path, int, Path]) -> tuple[str, dict]:
    name, overrides, dataset, seed, tmp = job
    cfg = load_config(None, [f"features.cache_dir={tmp}/cache", "train.threads=1", *overrides])
    out = tmp / f"{name.replace(' ', '_')}-{seed}"
    return name, train_run(dataset, seed, out, cfg, progress=False)["log_scale"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", type=Path, default=None)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        dataset = args.dataset or generate_city("SH", tmp, SynthSettings(), progress=False)
        _one(("warm-up", ["model.name=mean"], dataset, 0, tmp))  # fill the feature cache once
        jobs = [(n, o, dataset, s, tmp) for n, o in VARIANTS.items() for s in args.seeds]
        with ProcessPoolExecutor(args.jobs) as pool:
            results = list(pool.map(_one, jobs))
    tasks = [t for t in results[0][1] if t != "avg"] + ["avg"]
    print(f"synthetic SH, seeds {args.seeds}, R² (log1p, test) mean ± std")
    print(f"| variant | {' | '.join(tasks)} |\n|---|{'---|' * len(tasks)}")
    for name in VARIANTS:
        runs = [m for n, m in results if n == name]
        cells = [f"{np.mean([r[t]['r2'] for r in runs]):.4f} ± "
                 f"{np.std([r[t]['r2'] for r in runs]):.4f}" for t in tasks]
        print(f"| {name} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
