"""Time the synthetic benchmark generator: seconds per city and in total (printed, not asserted).

Usage: ``python benchmarks/bench_synth.py [--tile-size 32] [--seed 0] [--out DIR]``; without
``--out`` the cities are written to a temporary folder that is deleted afterwards.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import yaml

from urbanmoe.data.synthetic import SynthSettings, generate_city


def main() -> None:
    """Generate every city once and print its wall time and recorded noise ceilings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tile-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    settings = SynthSettings(seed=args.seed, tile_size=args.tile_size)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        total = 0.0
        for name in settings.cities:
            start = time.perf_counter()
            folder = generate_city(name, out, settings, progress=False)
            seconds = time.perf_counter() - start
            total += seconds
            spec = yaml.safe_load((folder / "dataset.yaml").read_text(encoding="utf-8"))
            print(f"{name}: {seconds:6.2f} s  noise_ceiling {spec['noise_ceiling']}")
        print(f"total: {total:6.2f} s for {len(settings.cities)} cities at tile_size "
              f"{settings.tile_size}")


if __name__ == "__main__":
    main()
