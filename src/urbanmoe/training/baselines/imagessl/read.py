"""READ baseline of Appendix A (Table 2 row "READ"; Han et al., KDD 2020), simplified.

READ distils a pretrained teacher into a lightweight student and trains the student
semi-supervised with few labels. Here:

* Teacher: with ``baselines.resnet_weights`` set, the frozen ImageNet ResNet-18 of
  :mod:`.resnet` (512-d pooled features; READ's transfer-learning teacher). Without it nothing
  pretrained exists offline, so the teacher is the encoder of the convolutional autoencoder of
  :mod:`.autoencoder`, pretrained on reconstruction of all tiles (labels unused).
* Student: a ``ConvEncoder`` (``models/baselines/imagessl``) of half the width (the
  "lightweight" network) whose ``baselines.repr_dim`` embedding is the representation.
* Objective per batch of tiles (all regions): distillation MSE between a linear map of the
  student embedding and the teacher's embedding (standardised on training rows, clipped), plus
  masked MSE of a linear regression head on the standardised targets of a seeded random
  ``baselines.read_label_fraction`` of the TRAINING rows (the only labels READ sees).
  Simplification: READ's pseudo-label refinement and district aggregation are left out.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from urbanmoe.models.baselines.imagessl.common import (
    WIDTH,
    ConvEncoder,
    encode,
    generator,
    n_params,
    seeded,
)
from urbanmoe.models.baselines.imagessl.resnet import load_imagenet
from urbanmoe.training.baselines.imagessl.autoencoder import train_autoencoder
from urbanmoe.training.baselines.imagessl.common import epoch_loop, standardised_tiles
from urbanmoe.training.prepare import FEATURE_CLIP, Prepared
from urbanmoe.training.registry import Representation
from urbanmoe.training.targets import Standardizer


def teacher_features(tiles: torch.Tensor, train: np.ndarray, b: dict[str, Any], seed: int,
                     device: torch.device | str, progress: bool) -> tuple[torch.Tensor, str]:
    """(N, D) teacher embeddings standardised on training rows, and what the teacher is."""
    if b.get("resnet_weights"):
        net = load_imagenet(b["resnet_weights"], tiles.shape[1]).to(device)
        feats, what = encode(net, tiles, device), f"ImageNet ResNet-18 from {b['resnet_weights']}"
    else:
        enc, _, _ = train_autoencoder(tiles, b, seed, device, progress, desc="read teacher")
        feats, what = encode(enc, tiles, device), "autoencoder-pretrained CNN"
    z = Standardizer.fit(feats[train], clip=FEATURE_CLIP).transform(feats)
    return torch.from_numpy(z.astype(np.float32)), what


def labelled_rows(train: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A seeded random ``fraction`` (at least one) of the training rows."""
    k = max(1, round(fraction * len(train)))
    return np.sort(np.random.default_rng(seed).choice(train, size=k, replace=False))


def learn(prep: Prepared, b: dict[str, Any], seed: int, device: torch.device | str,
          progress: bool) -> Representation:
    """Student embeddings distilled from the teacher, semi-supervised on a few training labels."""
    tiles = standardised_tiles(prep, b, progress)
    train = prep.split.train
    teacher, what = teacher_features(tiles, train, b, seed, device, progress)
    labelled = labelled_rows(train, float(b["read_label_fraction"]), seed)
    mask = torch.zeros_like(prep.data.observed)
    mask[torch.from_numpy(labelled)] = prep.data.observed[torch.from_numpy(labelled)]
    y = prep.data.y
    d, n_tasks = int(b["repr_dim"]), y.shape[1]
    with seeded(seed + 1):
        student = ConvEncoder(tiles.shape[1], d, width=WIDTH // 2).to(device)
        distil = nn.Linear(d, teacher.shape[1]).to(device)
        regress = nn.Linear(d, n_tasks).to(device)

    def step(idx: torch.Tensor) -> torch.Tensor:
        z = student(tiles[idx].to(device))
        loss = F.mse_loss(distil(z), teacher[idx].to(device))
        m = mask[idx].to(device).float()
        sq = (regress(z) - y[idx].to(device)) ** 2
        return loss + (sq * m).sum() / m.sum().clamp(min=1.0)

    modules = [student, distil, regress]
    params = [p for m in modules for p in m.parameters()]
    history = epoch_loop(step, params, len(tiles), b, generator(seed, 1), modules, progress,
                         "read student")
    note = (f"student distilled from {what}, {len(labelled)} labelled training regions "
            f"({float(b['read_label_fraction']):g} of train)")
    return Representation(encode(student, tiles, device), n_params(student), history, note)
