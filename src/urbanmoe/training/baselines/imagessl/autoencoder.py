"""Autoencoder baseline of Appendix A (Table 2 row "Autoencoder").

A convolutional autoencoder (``ConvEncoder`` / ``ConvDecoder`` of
``models/baselines/imagessl/common.py``) is trained to reconstruct every region's standardised
tile (pixel MSE); the bottleneck of ``baselines.repr_dim`` units is the representation.
``n_params`` counts encoder and decoder.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from urbanmoe.models.baselines.imagessl.common import (
    ConvDecoder,
    ConvEncoder,
    encode,
    generator,
    n_params,
    seeded,
)
from urbanmoe.training.baselines.imagessl.common import epoch_loop, standardised_tiles
from urbanmoe.training.prepare import Prepared
from urbanmoe.training.registry import Representation


def train_autoencoder(tiles: torch.Tensor, b: dict[str, Any], seed: int,
                      device: torch.device | str, progress: bool,
                      desc: str = "autoencoder") -> tuple[ConvEncoder, ConvDecoder, list[float]]:
    """Train encoder + decoder on reconstruction of ``tiles`` (N, C, S, S); returns both and the
    per-epoch reconstruction MSE."""
    c, size, d = tiles.shape[1], tiles.shape[-1], int(b["repr_dim"])
    with seeded(seed):
        enc = ConvEncoder(c, d).to(device)
        dec = ConvDecoder(c, d, size).to(device)

    def step(idx: torch.Tensor) -> torch.Tensor:
        x = tiles[idx].to(device)
        return F.mse_loss(dec(enc(x)), x)

    params = [*enc.parameters(), *dec.parameters()]
    history = epoch_loop(step, params, len(tiles), b, generator(seed), [enc, dec], progress, desc)
    return enc, dec, history


def learn(prep: Prepared, b: dict[str, Any], seed: int, device: torch.device | str,
          progress: bool) -> Representation:
    """Bottleneck features of a convolutional autoencoder trained on all regions' tiles."""
    tiles = standardised_tiles(prep, b, progress)
    enc, dec, history = train_autoencoder(tiles, b, seed, device, progress)
    return Representation(encode(enc, tiles, device), n_params(enc, dec), history,
                          "convolutional autoencoder, reconstruction MSE")
