"""Tile2Vec baseline of Appendix A (Table 2 row "Tile2Vec"; Jean et al., AAAI 2019).

Triplets of (anchor, neighbour, distant) tiles train a ``ConvEncoder``
(``models/baselines/imagessl``) with Tile2Vec's loss ``relu(||z_a - z_n|| - ||z_a - z_d|| +
margin) + l2 * (||z_a|| + ||z_n|| + ||z_d||)`` (batch mean; Tile2Vec's L2 penalty keeps the
embeddings from growing to satisfy the margin). Simplification: Tile2Vec samples the neighbour
inside the anchor's scene; here the neighbour is another REGION whose centre lies within
``baselines.neighbour_km`` (local km projection of the coordinates), or, for a region with none,
an augmented view of the anchor. The distant tile is a random region beyond that radius. All
three are randomly flipped / rotated / cropped (Tile2Vec's own augmentation is flips and
rotations). Only images and coordinates are used, never labels.
"""

from __future__ import annotations

from typing import Any

import torch

from urbanmoe.models.baselines.imagessl import common as ssl
from urbanmoe.models.baselines.imagessl.tile2vec import pick_distant, triplet_loss
from urbanmoe.training.baselines.imagessl.common import epoch_loop, spatial_setup
from urbanmoe.training.prepare import Prepared
from urbanmoe.training.registry import Representation


def learn(prep: Prepared, b: dict[str, Any], seed: int, device: torch.device | str,
          progress: bool) -> Representation:
    """Triplet-trained encoder features of every region."""
    tiles, xy, radius, neighbours, gen = spatial_setup(prep, b, seed, progress)
    with ssl.seeded(seed):
        enc = ssl.ConvEncoder(tiles.shape[1], int(b["repr_dim"])).to(device)

    def step(idx: torch.Tensor) -> torch.Tensor:
        nb = ssl.pick_neighbour(idx, neighbours, gen)
        nb = torch.where(nb >= 0, nb, idx)  # no neighbour: an augmented view of the anchor
        far = pick_distant(idx, xy, radius, gen)
        views = ssl.augment(tiles[torch.cat([idx, nb, far])].to(device), gen)
        za, zn, zd = enc(views).chunk(3)
        return triplet_loss(za, zn, zd)

    history = epoch_loop(step, list(enc.parameters()), len(tiles), b, gen, [enc], progress,
                         "tile2vec")
    alone = sum(len(n) == 0 for n in neighbours)
    note = (f"Tile2Vec triplets, neighbours within {radius:g} km "
            f"({alone} regions without one use an augmented view)")
    return Representation(ssl.encode(enc, tiles, device), ssl.n_params(enc), history, note)
