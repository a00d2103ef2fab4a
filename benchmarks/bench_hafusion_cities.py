"""Benchmark: the fit time of every model of HAFusion's table on each of its cities.

Imports each HAFusion city folder found under ``--source`` (default ``../shared/data/hafusion``,
or ``data/raw/hafusion`` after ``make pull``) into a temporary folder, then times one run per
model and protocol (seed 0; the reimplemented methods with the city's settings of
``hafusion.city_settings``), and prints seconds, the number of fits and avg R² on the raw
scale. Asserts nothing.

    python benchmarks/bench_hafusion_cities.py [--source DIR] [--cities NY Chi SF]
        [--models hafusion ridge urbanmoe ...]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from urbanmoe.config import load_config
from urbanmoe.data.sources.hafusion import import_hafusion_city
from urbanmoe.evaluation import hafusion_runs
from urbanmoe.evaluation.experiments import parse_variant, variant_label
from urbanmoe.evaluation.run import train_run

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    cfg = load_config(ROOT / "config/config.yaml")
    h = cfg["hafusion"]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=ROOT.parent / "shared/data/hafusion")
    ap.add_argument("--cities", nargs="+", default=h["cities"])
    ap.add_argument("--models", nargs="+", default=[*h["methods"].values(), *h["models"]])
    args = ap.parse_args()
    print(f"{'city':<5}{'model':<10}{'protocol':<10}{'seconds':>9}{'avg R2 (raw)':>14}")
    with tempfile.TemporaryDirectory() as tmp:
        for city in args.cities:
            ds = import_hafusion_city(args.source / f"data_{city}", Path(tmp) / city)
            sets = [s for s in hafusion_runs.city_sets(cfg, city) if s != "--set"]
            for model in args.models:
                for name, over in (("theirs", hafusion_runs.theirs()),
                                   ("project", hafusion_runs.project(cfg))):
                    variant = variant_label(model, over)
                    _, items = parse_variant(variant)
                    run_cfg = load_config(ROOT / "config/config.yaml",
                                          [*sets, f"model.name={model}", *items,
                                           f"features.cache_dir={tmp}/cache",
                                           f"baselines.cache_dir={tmp}/cache"])
                    start = time.perf_counter()
                    m = train_run(ds, 0, Path(tmp) / "runs" / city / variant, run_cfg,
                                  progress=False, variant=variant)
                    seconds = time.perf_counter() - start
                    r2 = m.get("original_scale", {}).get("avg", {}).get("r2", float("nan"))
                    print(f"{city:<5}{model:<10}{name:<10}{seconds:>9.1f}{r2:>14.3f}",
                          flush=True)


if __name__ == "__main__":
    main()
