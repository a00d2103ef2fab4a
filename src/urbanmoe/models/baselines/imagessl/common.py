"""What the image-representation baselines of Appendix A (Table 2 rows Autoencoder ... PG-SimCLR)
share as modules: a small CNN encoder and decoder, seeded augmentations, spatial pairs and
batched encoding (the tiles, the epoch loop: ``training/baselines/imagessl/common.py``).

Every random choice (initial weights, augmentations, pair sampling) draws from generators seeded
with ``seed``, so a seed fixes the features on CPU.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ENCODE_BATCH = 512
WIDTH = 16  # channels of the middle conv block (kept small: CPU runs)


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Build modules under torch's global RNG seeded with ``seed``, leaving the caller's intact."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def generator(seed: int, offset: int = 0) -> torch.Generator:
    """A CPU generator seeded from ``seed`` (``offset`` separates independent streams)."""
    return torch.Generator().manual_seed(seed * 1_000_003 + offset)


def n_params(*modules: nn.Module) -> int:
    return sum(p.numel() for m in modules for p in m.parameters() if p.requires_grad)


class ConvEncoder(nn.Module):
    """Three stride-2 conv blocks, a 2x2 average pool and a linear map: (B, C, S, S) -> (B, d)."""

    def __init__(self, in_ch: int, repr_dim: int, width: int = WIDTH) -> None:
        super().__init__()
        chans = [in_ch, width // 2, width, 2 * width]
        blocks: list[nn.Module] = []
        for c_in, c_out in zip(chans[:-1], chans[1:], strict=True):
            blocks += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.BatchNorm2d(c_out),
                       nn.ReLU()]
        self.conv = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.fc = nn.Linear(8 * width, repr_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x))


class ConvDecoder(nn.Module):
    """Mirror of :class:`ConvEncoder`: (B, d) -> (B, C, S, S) by three stride-2 transposed convs."""

    def __init__(self, out_ch: int, repr_dim: int, size: int, width: int = WIDTH) -> None:
        super().__init__()
        self.size, self.grid, self.width = size, max(1, math.ceil(size / 8)), width
        self.fc = nn.Linear(repr_dim, 2 * width * self.grid**2)
        chans = [2 * width, width, width // 2]
        blocks: list[nn.Module] = []
        for c_in, c_out in zip(chans, [*chans[1:], out_ch], strict=True):
            blocks += [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1), nn.ReLU()]
        self.net = nn.Sequential(*blocks[:-1])

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.net(self.fc(z).view(len(z), 2 * self.width, self.grid, self.grid))
        if x.shape[-1] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return x


def augment(x: torch.Tensor, gen: torch.Generator, min_scale: float = 0.6) -> torch.Tensor:
    """Random flip, 90-degree rotation and crop (resized back) per tile, as one affine warp.

    The crop keeps a side of ``min_scale``..1 of the tile at a random position; all draws come
    from ``gen`` (CPU) so a seed fixes them.
    """
    n = len(x)
    k = torch.randint(0, 4, (n,), generator=gen).double() * (math.pi / 2)
    flip = torch.randint(0, 2, (n,), generator=gen).double() * 2 - 1
    scale = min_scale + (1 - min_scale) * torch.rand(n, generator=gen, dtype=torch.float64)
    shift = (torch.rand(n, 2, generator=gen, dtype=torch.float64) * 2 - 1) * (1 - scale)[:, None]
    cos, sin = torch.cos(k).round(), torch.sin(k).round()
    theta = torch.stack([torch.stack([cos * flip, -sin, shift[:, 0]], 1),
                         torch.stack([sin * flip, cos, shift[:, 1]], 1)], 1)
    theta[:, :, :2] *= scale[:, None, None]
    grid = F.affine_grid(theta.to(x), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def spatial_neighbours(xy: np.ndarray, radius_km: float) -> list[np.ndarray]:
    """For each region, the other regions within ``radius_km`` (possibly none)."""
    from sklearn.neighbors import NearestNeighbors  # here: most baselines never need it

    _, idx = NearestNeighbors(radius=radius_km).fit(xy).radius_neighbors(xy, sort_results=True)
    return [nb[nb != i] for i, nb in enumerate(idx)]


def pick_neighbour(anchors: torch.Tensor, neighbours: list[np.ndarray],
                   gen: torch.Generator) -> torch.Tensor:
    """One random spatial neighbour per anchor; -1 where the anchor has none."""
    u = torch.rand(len(anchors), generator=gen, dtype=torch.float64).numpy()
    out = [int(nb[int(v * len(nb))]) if len(nb) else -1
           for v, nb in zip(u, (neighbours[int(a)] for a in anchors), strict=True)]
    return torch.tensor(out, dtype=torch.long)


@torch.no_grad()
def encode(encoder: Callable[[torch.Tensor], torch.Tensor], tiles: torch.Tensor,
           device: torch.device | str) -> np.ndarray:
    """(N, d) float32 features of all tiles in table order (eval mode, batched)."""
    if isinstance(encoder, nn.Module):
        encoder.eval()
    parts = [encoder(tiles[s:s + ENCODE_BATCH].to(device)).float().cpu()
             for s in range(0, len(tiles), ENCODE_BATCH)]
    return torch.cat(parts).numpy().astype(np.float32)
