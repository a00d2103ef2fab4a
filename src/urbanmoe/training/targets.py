"""Targets on the paper's scale: log1p (per task transform), then standardised on training rows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


def _apply(y: np.ndarray, transforms: list[str], fn: Callable[[np.ndarray], np.ndarray]
           ) -> np.ndarray:
    out = y.astype(np.float64).copy()
    for j, t in enumerate(transforms):
        if t == "log1p":
            out[:, j] = fn(out[:, j])
    return out


def forward_transform(y: np.ndarray, transforms: list[str]) -> np.ndarray:
    """Apply each task's transform column-wise (``log1p`` or ``none``); NaN stays NaN."""
    return _apply(y, transforms, np.log1p)


def inverse_transform(y: np.ndarray, transforms: list[str]) -> np.ndarray:
    """Undo :func:`forward_transform` (original units)."""
    return _apply(y, transforms, np.expm1)


@dataclass(frozen=True)
class Standardizer:
    """Column-wise z-scoring with statistics from the training rows only (NaN-aware).

    Columns constant in training get scale 1; standardised values are clipped to +-``clip`` so a
    feature that never varied in training cannot explode at test time.
    """

    mean: np.ndarray
    scale: np.ndarray
    clip: float | None = None

    @classmethod
    def fit(cls, x: np.ndarray, clip: float | None = None) -> Standardizer:
        mean = np.nanmean(x, axis=0)
        std = np.nanstd(x, axis=0)
        std = np.where(np.isfinite(std) & (std > 1e-8), std, 1.0)
        return cls(np.nan_to_num(mean), std, clip)

    def transform(self, x: np.ndarray) -> np.ndarray:
        z = (x - self.mean) / self.scale
        return np.clip(z, -self.clip, self.clip) if self.clip is not None else z

    def inverse(self, z: np.ndarray) -> np.ndarray:
        return z * self.scale + self.mean
