"""PG-SimCLR baseline of Appendix A (Table 2 row "PG-SimCLR"; Xi et al., 2022).

SimCLR (NT-Xent, temperature ``TEMPERATURE``, a two-layer projection head whose input, the
encoder output, is the representation) where a region's positive is one of:

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

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.neighbors import NearestNeighbors
from torch import nn

from urbanmoe.features.base import poi_vector
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

TEMPERATURE = 0.5
POI_K = 10


def poi_partners(xy: np.ndarray, poi: np.ndarray, k: int = POI_K) -> np.ndarray:
    """For each region, the one of its ``k`` spatially nearest others with the most similar POI
    vector (cosine)."""
    k = min(k, len(xy) - 1)
    _, idx = NearestNeighbors(n_neighbors=k + 1).fit(xy).kneighbors(xy)
    cand = idx[:, 1:]  # (N, k), self dropped
    unit = poi / np.maximum(np.linalg.norm(poi, axis=1, keepdims=True), 1e-12)
    cos = np.einsum("nd,nkd->nk", unit, unit[cand])
    return cand[np.arange(len(xy)), cos.argmax(1)]


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, tau: float = TEMPERATURE) -> torch.Tensor:
    """SimCLR's normalised temperature-scaled cross entropy over the 2B views."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / tau
    sim.fill_diagonal_(float("-inf"))
    n = len(z1)
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(sim, target)


def learn(prep: Prepared, b: dict[str, Any], seed: int, device: torch.device | str,
          progress: bool) -> Representation:
    """Contrastive encoder features of every region (positives as the module docstring says)."""
    tiles = standardised_tiles(prep, b, progress)
    xy, radius = projected_km(prep), float(b["neighbour_km"])
    neighbours = spatial_neighbours(xy, radius)
    poi = poi_vector(prep.ds)
    partner = None if poi is None else torch.from_numpy(poi_partners(xy, poi))
    kinds = 2 if partner is None else 3
    gen = generator(seed)
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
