"""Benchmark: ``model.name: auto`` against the best kNN and the best single candidate.

For each dataset, split and seed, trains ``auto`` (which fits its candidates, ``knn_tuned``,
``lightgbm``, ``urbanmoe`` and ``urbanmoe_lag``, and records each one's test R² beside its own)
and the plain ``knn`` (k = ``baselines.knn_k``). Prints, per dataset and split, the avg R²
(log1p scale) of auto, of the best kNN and of the best single candidate (both picked after the
fact on the test mean, which flatters them), and auto's paired per-seed differences to them,
mean ± std. Asserts nothing.

    python benchmarks/bench_auto.py --datasets data/real/Beijing data/synthetic/SH \\
        [--splits random spatial_block] [--seeds 0 1 2] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from urbanmoe.config import load_config
from urbanmoe.evaluation.run import train_run


def _pm(x: list[float]) -> str:
    return f"{np.mean(x):+.4f} ± {np.std(x):.4f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", type=Path, nargs="+", required=True)
    ap.add_argument("--splits", nargs="+", default=["random", "spatial_block"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    args = ap.parse_args()
    print("| dataset | split | seeds | auto | best kNN | best single | auto − best kNN "
          "| auto − best single | chosen (seed 0) |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in args.datasets:
            for split in args.splits:
                r2: dict[str, list[float]] = {}
                chosen = ""
                for seed in args.seeds:
                    base = [f"features.cache_dir={tmp}/cache", "train.threads=1",
                            f"split.kind={split}", *args.overrides]
                    auto = train_run(dataset, seed, Path(tmp) / f"{split}-auto-{seed}",
                                     load_config(None, [*base, "model.name=auto"]),
                                     progress=False)
                    knn = train_run(dataset, seed, Path(tmp) / f"{split}-knn-{seed}",
                                    load_config(None, [*base, "model.name=knn"]),
                                    progress=False)
                    r2.setdefault("auto", []).append(auto["log_scale"]["avg"]["r2"])
                    for cid, m in auto["candidates_test"].items():
                        r2.setdefault(cid, []).append(m["avg"]["r2"])
                    if "skipped" not in knn:
                        r2.setdefault("knn", []).append(knn["log_scale"]["avg"]["r2"])
                    if seed == args.seeds[0]:
                        chosen = "; ".join(auto["notes"][0].split(": ", 1)[1:])
                knns = [c for c in ("knn", "knn_tuned") if c in r2]
                singles = [c for c in r2 if c != "auto"]
                best_knn = max(knns, key=lambda c: np.mean(r2[c])) if knns else None
                best = max(singles, key=lambda c: np.mean(r2[c]))
                a = r2["auto"]
                knn_cells = (f"{best_knn} {np.mean(r2[best_knn]):.4f}",
                             _pm([x - y for x, y in zip(a, r2[best_knn], strict=True)])
                             ) if best_knn else ("—", "—")
                print(f"| {dataset.name} | {split} | {len(a)} | {np.mean(a):.4f} | "
                      f"{knn_cells[0]} | {best} {np.mean(r2[best]):.4f} | {knn_cells[1]} | "
                      f"{_pm([x - y for x, y in zip(a, r2[best], strict=True)])} | {chosen} |",
                      flush=True)


if __name__ == "__main__":
    main()
