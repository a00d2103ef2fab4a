"""Tile2Vec's sampling of distant tiles and its triplet loss (Jean et al., AAAI 2019); the
baseline is ``training/baselines/imagessl/tile2vec.py``."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

MARGIN = 1.0
L2_WEIGHT = 0.01
_DISTANT_TRIES = 10


def pick_distant(anchors: torch.Tensor, xy: np.ndarray, radius_km: float,
                 gen: torch.Generator) -> torch.Tensor:
    """A random region farther than ``radius_km`` from each anchor (redrawn up to 10 times;
    after that the last draw stands, which only happens when nearly all regions are close)."""
    n = len(xy)
    out = torch.randint(0, n, (len(anchors),), generator=gen)
    a = anchors.numpy()
    for _ in range(_DISTANT_TRIES):
        close = np.linalg.norm(xy[out.numpy()] - xy[a], axis=1) <= radius_km
        if not close.any():
            break
        redraw = torch.randint(0, n, (int(close.sum()),), generator=gen)
        out[torch.from_numpy(close)] = redraw
    return out


def triplet_loss(za: torch.Tensor, zn: torch.Tensor, zd: torch.Tensor) -> torch.Tensor:
    """Tile2Vec's margin triplet loss plus its L2 penalty on the three embeddings."""
    hinge = F.relu((za - zn).norm(dim=1) - (za - zd).norm(dim=1) + MARGIN)
    size = za.norm(dim=1) + zn.norm(dim=1) + zd.norm(dim=1)
    return (hinge + L2_WEIGHT * size).mean()
