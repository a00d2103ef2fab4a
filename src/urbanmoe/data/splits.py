"""Train/validation/test splits: the paper's random 60/20/20 (Section 3.1), spatial blocks, and
K folds for small cities.

Under a random split, neighbouring regions that share a label (real label rasters are coarser
than the regions) fall on both sides and leak; spatial blocks assign whole square blocks of
``block_km`` to one side, so the test regions are farther from anything seen in training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from urbanmoe.data.geo import project_km
from urbanmoe.errors import ConfigError, DataError


@dataclass(frozen=True)
class Split:
    """Row indices of each part; disjoint, and covering every labelled region."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def part(self, name: str) -> np.ndarray:
        return {"train": self.train, "val": self.val, "test": self.test}[name]


def _cuts(n: int, fractions: tuple[float, float, float]) -> tuple[int, int]:
    f = np.asarray(fractions, dtype=float) / float(np.sum(fractions))
    n_train = int(round(f[0] * n))
    n_val = int(round(f[1] * n))
    return n_train, n_train + n_val


def random_split(n: int, fractions: tuple[float, float, float], seed: int) -> Split:
    """A random partition of ``n`` rows in the given proportions (the paper's protocol)."""
    order = np.random.default_rng(seed).permutation(n)
    a, b = _cuts(n, fractions)
    return Split(np.sort(order[:a]), np.sort(order[a:b]), np.sort(order[b:]))


def kfold_split(n: int, folds: int, fold: int, fractions: tuple[float, float, float],
                seed: int) -> Split:
    """Fold ``fold`` of a seeded ``folds``-fold partition of ``n`` rows as the test part; the
    other folds split into training and validation in the proportion of ``fractions[:2]``.
    Over the folds every row is tested exactly once (small cities: ``split.kind: kfold``)."""
    if not 0 <= fold < folds <= n:
        raise DataError(f"split.folds {folds}: fold {fold} of {n} regions does not exist")
    parts = np.array_split(np.random.default_rng(seed).permutation(n), folds)
    rest = np.concatenate([p for k, p in enumerate(parts) if k != fold])  # in random order
    n_val = int(round(len(rest) * fractions[1] / (fractions[0] + fractions[1])))
    return Split(np.sort(rest[n_val:]), np.sort(rest[:n_val]), np.sort(parts[fold]))


def block_ids(coords: np.ndarray, block_km: float) -> np.ndarray:
    """Id of the ``block_km`` square block each region's centre falls in."""
    x, y = project_km(np.asarray(coords, dtype=np.float64),
                      origin=(float(coords[:, 0].min()), float(coords[:, 1].min())))
    # (row, column) cells: ids number the blocks row by row, and the split's order follows them
    cells = np.floor(np.stack([y, x], axis=1) / block_km).astype(np.int64)
    _, ids = np.unique(cells, axis=0, return_inverse=True)
    return ids.reshape(-1)


def spatial_block_split(
    coords: np.ndarray, fractions: tuple[float, float, float], seed: int, block_km: float
) -> Split:
    """Whole blocks to one part: blocks in seeded random order fill train, then val, then test."""
    blocks = block_ids(coords, block_km)
    n_blocks = int(blocks.max()) + 1
    if n_blocks < 3:
        raise DataError(f"spatial_block split: only {n_blocks} block(s) of {block_km} km; "
                         "use a smaller split.block_km")
    order = np.random.default_rng(seed).permutation(n_blocks)
    sizes = np.bincount(blocks, minlength=n_blocks)[order]
    a, b = _cuts(len(coords), fractions)
    filled = np.cumsum(sizes) - sizes / 2.0  # a block goes where its middle falls
    part_of_block = np.empty(n_blocks, dtype=np.int64)
    part_of_block[order] = np.where(filled < a, 0, np.where(filled < b, 1, 2))
    part = part_of_block[blocks]
    return Split(*(np.flatnonzero(part == k) for k in range(3)))


def make_split(
    n: int,
    coords: np.ndarray | None,
    kind: str,
    fractions: tuple[float, float, float],
    seed: int,
    block_km: float = 2.0,
    folds: int = 5,
    fold: int = 0,
) -> Split:
    """The configured split (``split.kind``) for a dataset of ``n`` regions; under ``kfold``,
    fold ``fold`` of ``folds``."""
    if kind == "random":
        return random_split(n, fractions, seed)
    if kind == "kfold":
        return kfold_split(n, folds, fold, fractions, seed)
    if kind == "spatial_block":
        if coords is None:
            raise DataError("split.kind spatial_block needs lat/lon columns in the region table")
        return spatial_block_split(coords, fractions, seed, block_km)
    raise ConfigError(f"unknown split kind {kind!r}")
