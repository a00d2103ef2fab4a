"""Benchmark: UrbanMoE with the location branch against the paper's UrbanMoE, the tuned kNN on
coordinates, LightGBM and ``auto`` (with the branch, as by default, and without).

For each dataset, split and seed, trains ``auto`` as configured (``model.location: auto``: its
candidates ``knn_tuned``, ``lightgbm``, ``urbanmoe`` (the paper's), ``urbanmoe_lag`` and
``urbanmoe_location`` each record their own test R²) and ``auto`` with ``model.location:
false`` (as it was before the branch: without the ``urbanmoe_location`` candidate), and
``urbanmoe_location`` with each encoding of ``--encodings`` (none by default; the candidate
uses the configured one). Prints per dataset and split the avg R² (log1p scale, mean over
seeds) of each, the paired per-seed differences to the tuned kNN (mean ± std), the share of
UrbanMoE's gap to the kNN that the location branch closes, and the paired differences of
``PAIRS`` with their 95 % t interval over the seeds. With ``--times``, instead: the training
seconds of ``urbanmoe`` (the paper's, ``model.location: false``) and ``urbanmoe_location`` per
seed on each dataset (2 threads, run one after the other) and their ratio, per run and per
epoch (early stopping makes the epochs differ). Asserts nothing.

    python benchmarks/bench_location.py --datasets data/real/Beijing data/synthetic/SH \\
        [--splits random spatial_block] [--seeds 0 1 2] [--encodings sinusoid] [--set key=value]
    python benchmarks/bench_location.py --datasets data/synthetic/SH --times
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from urbanmoe.config import load_config
from urbanmoe.evaluation.run import train_run
from urbanmoe.evaluation.uncertainty import t_interval

NEW = "urbanmoe_location"
SHOWN = ("urbanmoe", NEW, "knn_tuned", "lightgbm", "auto", "auto_before")
#: the paired per-seed differences printed with their 95 % t interval
PAIRS = ((NEW, "urbanmoe"), (NEW, "knn_tuned"), ("auto", "auto_before"))


def _pm(x: list[float]) -> str:
    return f"{np.mean(x):+.4f} ± {np.std(x):.4f}"


def _runs(dataset: Path, split: str, seed: int, tmp: str, overrides: list[str],
          encodings: list[str]) -> dict[str, float]:
    base = [f"features.cache_dir={tmp}/cache", "train.threads=1", f"split.kind={split}",
            "model.name=auto", *overrides]
    out_dir = Path(tmp) / f"{dataset.name}-{split}-{seed}"
    new = train_run(dataset, seed, out_dir / "auto", load_config(None, base), progress=False)
    old = train_run(dataset, seed, out_dir / "auto_before",
                    load_config(None, [*base, "model.location=false"]), progress=False)
    r2 = {"auto": new["log_scale"]["avg"]["r2"], "auto_before": old["log_scale"]["avg"]["r2"]}
    r2.update({c: m["avg"]["r2"] for c, m in new["candidates_test"].items()})
    for enc in encodings:
        m = train_run(dataset, seed, out_dir / enc, load_config(None, [
            *base, f"model.name={NEW}", f"features.location.encoding={enc}"]), progress=False)
        r2[f"{NEW}_{enc}"] = m["log_scale"]["avg"]["r2"]
    return r2


def _times(datasets: list[Path], seeds: list[int], overrides: list[str]) -> None:
    print("| dataset | seeds | urbanmoe train (s) | urbanmoe_location train (s) | ratio | "
          "urbanmoe s / epoch | urbanmoe_location s / epoch | ratio per epoch |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in datasets:
            secs: dict[str, list[float]] = {"urbanmoe": [], NEW: []}
            per_epoch: dict[str, list[float]] = {"urbanmoe": [], NEW: []}
            for seed in seeds:
                for model in secs:
                    cfg = load_config(None, [f"features.cache_dir={tmp}/cache", "train.threads=2",
                                             f"model.name={model}", "model.location=false",
                                             *overrides])
                    m = train_run(dataset, seed, Path(tmp) / f"{dataset.name}-{model}-{seed}",
                                  cfg, progress=False)
                    eff = m["efficiency"]
                    secs[model].append(eff["train_seconds"])
                    per_epoch[model].append(eff["train_seconds"] / sum(eff["epochs"].values()))
            a, b = np.array(secs["urbanmoe"]), np.array(secs[NEW])
            pa, pb = np.array(per_epoch["urbanmoe"]), np.array(per_epoch[NEW])
            print(f"| {dataset.name} | {len(seeds)} | {a.mean():.1f} ± {a.std():.1f} | "
                  f"{b.mean():.1f} ± {b.std():.1f} | {b.mean() / a.mean():.2f} | "
                  f"{pa.mean():.3f} | {pb.mean():.3f} | {pb.mean() / pa.mean():.2f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", type=Path, nargs="+", required=True)
    ap.add_argument("--splits", nargs="+", default=["random", "spatial_block"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--encodings", nargs="*", default=[],
                    help="other features.location.encoding values run beside the configured")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--times", action="store_true", help="time the two UrbanMoE fits instead")
    ap.add_argument("--runs", type=Path, default=None,
                    help="keep the run folders here (default: a temporary folder)")
    args = ap.parse_args()
    if args.times:
        _times(args.datasets, args.seeds, args.overrides)
        return
    extra = [f"{NEW}_{e}" for e in args.encodings]
    cols = [*SHOWN, *extra]
    print("| dataset | split | seeds | " + " | ".join(cols) + " | " + " | ".join(
        f"{c} − knn_tuned" for c in cols if c != "knn_tuned") + " | gap closed |")
    print("|---|---|---|" + "---|" * (2 * len(cols)))
    intervals: dict[tuple[str, str], list[str]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        tmp = str(args.runs) if args.runs else scratch
        for dataset in args.datasets:
            for split in args.splits:
                per_seed = [_runs(dataset, split, s, tmp, args.overrides, args.encodings)
                            for s in args.seeds]
                r2 = {c: [r.get(c, np.nan) for r in per_seed] for c in cols}
                knn = r2["knn_tuned"]
                diffs = [_pm([a - b for a, b in zip(r2[c], knn, strict=True)])
                         for c in cols if c != "knn_tuned"]
                gap = np.mean(knn) - np.mean(r2["urbanmoe"])
                closed = (np.mean(r2[NEW]) - np.mean(r2["urbanmoe"])) / gap if gap > 0 else np.nan
                print(f"| {dataset.name} | {split} | {len(args.seeds)} | "
                      + " | ".join(f"{np.mean(r2[c]):.4f}" for c in cols) + " | "
                      + " | ".join(diffs) + f" | {closed:.0%} |", flush=True)
                intervals[(dataset.name, split)] = [
                    t_interval(np.subtract(r2[a], r2[b]), 0.95).text()
                    for a, b in PAIRS]
    print("\n| dataset | split | " + " | ".join(f"{a} − {b}" for a, b in PAIRS) + " |")
    print("|---|---|" + "---|" * len(PAIRS))
    for (name, split), texts in intervals.items():
        print(f"| {name} | {split} | " + " | ".join(texts) + " |")


if __name__ == "__main__":
    main()
