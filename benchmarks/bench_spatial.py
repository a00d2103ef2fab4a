"""Benchmark: the cost of spatial context (spatial-lag features and the tuned kNN).

Times ``features.spatial_lag.lag_features`` (three tasks, k = 10) on random regions laid in a
city-sized box, with and without group-out by 1.7 km blocks, at a few city sizes, and prints the
seconds. Asserts nothing.

    python benchmarks/bench_spatial.py [--sizes 1558 4587 20000] [--k 10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from urbanmoe.data.geo import km_points
from urbanmoe.data.splits import block_ids
from urbanmoe.features.spatial_lag import lag_features


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1558, 4587, 20000])
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"{'regions':>8}{'group-out':>11}{'best of':>8}{'seconds':>9}")
    for n in args.sizes:
        rng = np.random.default_rng(0)
        coords = np.stack([39.75 + 0.4 * rng.random(n), 116.0 + 0.75 * rng.random(n)], axis=1)
        y = rng.normal(size=(n, 3))
        train = np.sort(rng.permutation(n)[: int(0.6 * n)])
        xy = km_points(coords)
        for groups in (None, block_ids(coords, 1.7)):
            times = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                lag_features(xy, y, train, args.k, groups)
                times.append(time.perf_counter() - start)
            print(f"{n:>8}{'yes' if groups is not None else 'no':>11}{args.repeat:>8}"
                  f"{min(times):>9.3f}")


if __name__ == "__main__":
    main()
