"""Tile2Vec baseline of Appendix A (Table 2 row "Tile2Vec"; Jean et al., AAAI 2019).

Triplets of (anchor, neighbour, distant) tiles train a :class:`~.common.ConvEncoder` with
Tile2Vec's loss ``relu(||z_a - z_n|| - ||z_a - z_d|| + margin) + l2 * (||z_a|| + ||z_n|| +
||z_d||)`` (batch mean; Tile2Vec's L2 penalty keeps the embeddings from growing to satisfy the
margin). Simplification: Tile2Vec samples the neighbour inside the anchor's scene; here the
neighbour is another REGION whose centre lies within ``baselines.neighbour_km`` (local km
projection of the coordinates), or, for a region with none, an augmented view of the anchor.
The distant tile is a random region beyond that radius. All three are randomly flipped / rotated
/ cropped (Tile2Vec's own augmentation is flips and rotations). Only images and coordinates are
used, never labels.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from urbanmoe.models.baselines.imagessl.common import (
    ConvEncoder,
    augment,
    encode,
    epoch_loop,
    generator,
    n_params,
    pick_neighbour,
    projected_km,
    seeded,
    spatial_neighbours,
    standardised_tiles,
)
from urbanmoe.models.registry import Representation
from urbanmoe.training.prepare import Prepared

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


def learn(prep: Prepared, b: dict[str, Any], seed: int, device: torch.device | str,
          progress: bool) -> Representation:
    """Triplet-trained encoder features of every region."""
    tiles = standardised_tiles(prep, b, progress)
    xy, radius = projected_km(prep), float(b["neighbour_km"])
    neighbours = spatial_neighbours(xy, radius)
    gen = generator(seed)
    with seeded(seed):
        enc = ConvEncoder(tiles.shape[1], int(b["repr_dim"])).to(device)

    def step(idx: torch.Tensor) -> torch.Tensor:
        nb = pick_neighbour(idx, neighbours, gen)
        nb = torch.where(nb >= 0, nb, idx)  # no neighbour: an augmented view of the anchor
        far = pick_distant(idx, xy, radius, gen)
        views = augment(tiles[torch.cat([idx, nb, far])].to(device), gen)
        za, zn, zd = enc(views).chunk(3)
        return triplet_loss(za, zn, zd)

    history = epoch_loop(step, list(enc.parameters()), len(tiles), b, gen, [enc], progress,
                         "tile2vec")
    alone = sum(len(n) == 0 for n in neighbours)
    note = (f"Tile2Vec triplets, neighbours within {radius:g} km "
            f"({alone} regions without one use an augmented view)")
    return Representation(encode(enc, tiles, device), n_params(enc), history, note)
