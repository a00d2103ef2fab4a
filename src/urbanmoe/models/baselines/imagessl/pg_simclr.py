"""PG-SimCLR's POI-similar partners and SimCLR's NT-Xent loss (Xi et al., 2022); the baseline
is ``training/baselines/imagessl/pg_simclr.py``."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.neighbors import NearestNeighbors

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
