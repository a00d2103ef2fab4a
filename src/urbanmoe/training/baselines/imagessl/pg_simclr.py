"""PG-SimCLR baseline of Appendix A (Table 2 row "PG-SimCLR"; Xi et al., 2022).

SimCLR (NT-Xent, temperature ``TEMPERATURE`` of ``models/baselines/imagessl/pg_simclr.py``, a
two-layer projection head whose input, the encoder output, is the representation) where a
region's positive is one of:

* ``self``: another augmented view of its own tile;
* ``spatial``: a random region whose centre lies within ``baselines.neighbour_km``;
* ``poi`` (datasets with POI columns only): among its ``POI_K`` spatially nearest regions, the
  one whose log1p POI-count vector has the highest cosine similarity (functionally related).

Choice rule: per anchor and per step, one of the dataset's kinds (``self`` and ``spatial``,
plus ``poi`` when the dataset has POI columns) is drawn uniformly; ``spatial`` falls back to
``self`` for a region without a neighbour within the radius. Both views are randomly flipped /
rotated by 90 degrees / cropped. Uses images, coordinates and POIs only, never labels.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from urbanmoe.features.base import poi_vector
from urbanmoe.models.baselines.imagessl.common import (
    ConvEncoder,
    augment,
    encode,
    n_params,
    pick_neighbour,
    seeded,
)
from urbanmoe.models.baselines.imagessl.pg_simclr import nt_xent, poi_partners
from urbanmoe.training.baselines.imagessl.common import epoch_loop, spatial_setup
from urbanmoe.training.prepare import Prepared
from urbanmoe.training.registry import Representation


def learn(prep: Prepared, b: dict[str, Any], seed: int, device: torch.device | str,
          progress: bool) -> Representation:
    """Contrastive encoder features of every region (positives as the module docstring says)."""
    tiles, xy, radius, neighbours, gen = spatial_setup(prep, b, seed, progress)
    poi = poi_vector(prep.ds)
    partner = None if poi is None else torch.from_numpy(poi_partners(xy, poi))
    kinds = 2 if partner is None else 3
    d = int(b["repr_dim"])
    with seeded(seed):
        enc = ConvEncoder(tiles.shape[1], d).to(device)
        head = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d)).to(device)

    def step(idx: torch.Tensor) -> torch.Tensor:
        kind = torch.randint(0, kinds, (len(idx),), generator=gen)
        nb = pick_neighbour(idx, neighbours, gen)
        pos = torch.where((kind == 1) & (nb >= 0), nb, idx)
        if partner is not None:
            pos = torch.where(kind == 2, partner[idx], pos)
        views = augment(tiles[torch.cat([idx, pos])].to(device), gen)
        z1, z2 = head(enc(views)).chunk(2)
        return nt_xent(z1, z2)

    params = [*enc.parameters(), *head.parameters()]
    history = epoch_loop(step, params, len(tiles), b, gen, [enc, head], progress, "pg_simclr")
    pos_kinds = "self / spatial" + ("" if partner is None else " / POI-similar")
    note = f"SimCLR NT-Xent, positives: {pos_kinds} (neighbours within {radius:g} km)"
    return Representation(encode(enc, tiles, device), n_params(enc), history, note)
