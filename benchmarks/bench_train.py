"""Benchmark: one full ``urbanmoe train`` run (early stopping included) on synthetic SH.

Generates synthetic SH (1,558 regions) into a temporary folder unless ``--dataset`` is given,
then trains UrbanMoE at the paper's settings with the project's configuration, once per seed,
and prints wall time (feature extraction excluded and included), epochs, time per epoch and peak
memory. Asserts nothing.

    python benchmarks/bench_train.py [--dataset DIR] [--seeds 0 1 2] [--threads N] [--set k=v]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from pathlib import Path

import torch

from urbanmoe.config import load_config
from urbanmoe.data.synthetic import SynthSettings, generate_city
from urbanmoe.evaluation.run import train_run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", type=Path, default=None)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        dataset = args.dataset or generate_city("SH", Path(tmp), SynthSettings(), progress=False)
        cfg = load_config(None, [f"features.cache_dir={tmp}/cache",
                                 f"train.threads={args.threads}", *args.overrides])
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
              f"torch {torch.__version__}, {torch.get_num_threads()} threads")
        for seed in args.seeds:
            m = train_run(dataset, seed, Path(tmp) / f"run{seed}", cfg, progress=False)
            eff = m["efficiency"]
            epochs = sum(eff["epochs"].values())
            print(f"seed {seed}: train {eff['train_seconds']:.1f} s "
                  f"(with features {eff['total_seconds']:.1f} s), {epochs} epochs, "
                  f"{eff['train_seconds'] / epochs:.2f} s/epoch, best epoch "
                  f"{eff['best_epoch']}, peak {eff['memory_kind']} {eff['peak_memory_mb']:.0f} MB, "
                  f"params {eff['params']:,}, avg R2 {m['log_scale']['avg']['r2']:.4f}")


if __name__ == "__main__":
    main()
