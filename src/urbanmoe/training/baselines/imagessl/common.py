"""What the image-representation baselines of Appendix A share in their fitting: standardised
tiles, region centres in km and an epoch loop (their modules:
``models/baselines/imagessl/common.py``).

* Tiles come from :func:`urbanmoe.data.tiles.load_tiles` at ``baselines.image_size`` and are
  standardised per band with the mean / std of the TRAINING rows only.
* The self-supervised objectives see every region's tile (images and coordinates are inputs,
  never labels; the features of all regions are what the run's head is fitted on); labels, where
  a method uses them (READ, ResNet-18 from scratch), come from training rows only.
* Shuffling draws from a generator seeded with ``seed``, so a seed fixes the features on CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from urbanmoe.data.geo import project_km
from urbanmoe.data.tiles import load_tiles
from urbanmoe.errors import DataError
from urbanmoe.models.baselines.imagessl.common import generator, spatial_neighbours
from urbanmoe.training.optim import adam
from urbanmoe.training.prepare import Prepared


def standardised_tiles(prep: Prepared, b: dict[str, Any], progress: bool) -> torch.Tensor:
    """(N, C, S, S) float32 tiles, per band standardised with the training rows' mean / std."""
    tiles = load_tiles(prep.ds, int(b["image_size"]), progress, b.get("cache_dir"))
    train = tiles[prep.split.train]
    mean = train.mean(axis=(0, 2, 3), keepdims=True)
    std = train.std(axis=(0, 2, 3), keepdims=True)
    return torch.from_numpy(((tiles - mean) / np.maximum(std, 1e-6)).astype(np.float32))


def projected_km(prep: Prepared) -> np.ndarray:
    """(N, 2) region centres in km on a local projection around their mean (needs coords)."""
    if prep.ds.coords is None:
        raise DataError(f"{prep.ds.name}: this baseline needs region coordinates (lat/lon)")
    coords = torch.as_tensor(prep.ds.coords, dtype=torch.float64)
    lat0, lon0 = (float(v) for v in coords.mean(0))
    x, y = project_km(coords, (lat0, lon0))
    return torch.stack([x, y], 1).numpy()


def epoch_loop(step: Callable[[torch.Tensor], torch.Tensor], params: list[nn.Parameter],
               n_items: int, b: dict[str, Any], gen: torch.Generator, modules: list[nn.Module],
               progress: bool, desc: str) -> list[float]:
    """Adam on ``step(batch_indices) -> loss`` over shuffled items for ``ssl_epochs`` epochs.

    Returns the item-weighted mean objective of each epoch (the ``loss_history``).
    """
    opt = adam(params, lr=float(b["ssl_lr"]), decoupled=False)
    bs = max(2, min(int(b["ssl_batch_size"]), n_items))
    history: list[float] = []
    bar = tqdm(range(int(b["ssl_epochs"])), desc=desc, unit="epoch", disable=not progress,
               leave=False)
    for _ in bar:
        for m in modules:
            m.train()
        order = torch.randperm(n_items, generator=gen)
        total, seen = 0.0, 0
        for s in range(0, n_items, bs):
            idx = order[s:s + bs]
            if len(idx) < 2:  # BatchNorm and contrastive losses need two items
                continue
            loss = step(idx)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            seen += len(idx)
        history.append(total / max(seen, 1))
        bar.set_postfix(loss=f"{history[-1]:.4f}")
    bar.close()
    for m in modules:
        m.eval()
    return history


def spatial_setup(prep: Prepared, b: dict[str, Any], seed: int, progress: bool
                  ) -> tuple[torch.Tensor, np.ndarray, float, list[np.ndarray], torch.Generator]:
    """What the spatially sampled baselines (Tile2Vec, PG-SimCLR) start from: standardised
    tiles, region centres in km, the neighbour radius ``baselines.neighbour_km``, each region's
    neighbours within it, and the seeded sampler."""
    tiles = standardised_tiles(prep, b, progress)
    xy, radius = projected_km(prep), float(b["neighbour_km"])
    return tiles, xy, radius, spatial_neighbours(xy, radius), generator(seed)
