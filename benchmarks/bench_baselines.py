"""Benchmark: every model of Table 2 (``training/registry.py``) on one dataset and seed.

Trains each model with the project's configuration (one torch thread, as a workflow job) and
prints its wall time, parameters, peak memory and test R² (log1p scale), so the embedded-default
sizes can be chosen against the time budget. Asserts nothing.

    python benchmarks/bench_baselines.py [--dataset data/synthetic/SH] [--models knn pca ...]
        [--seed 0] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from urbanmoe.config import load_config
from urbanmoe.evaluation.run import train_run
from urbanmoe.training.registry import MODELS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", type=Path, default=Path("data/synthetic/SH"))
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    args = ap.parse_args()
    print(f"{'model':<16}{'wall s':>8}{'params':>12}{'peak MB':>9}{'avg R2':>8}  note")
    total = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            cfg = load_config(None, [f"features.cache_dir={tmp}/cache", "train.threads=1",
                                     f"model.name={name}", *args.overrides])
            start = time.perf_counter()
            m = train_run(args.dataset, args.seed, Path(tmp) / name, cfg, progress=False)
            wall = time.perf_counter() - start
            total += wall
            if "skipped" in m:
                print(f"{name:<16}{wall:8.1f}  skipped: {m['skipped']}")
                continue
            eff = m["efficiency"]
            print(f"{name:<16}{wall:8.1f}{eff['params']:12,d}{eff['peak_memory_mb']:9.0f}"
                  f"{m['log_scale']['avg']['r2']:8.4f}  {'; '.join(m['notes'])}", flush=True)
    print(f"total {total:.0f} s for {len(args.models)} models (x datasets x seeds for the "
          "workflow)")


if __name__ == "__main__":
    main()
