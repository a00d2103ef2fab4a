"""ResNet-18 baseline of Appendix A (Table 2 row "ResNet-18").

The paper transfers an ImageNet-pretrained ResNet-18 as a frozen feature extractor:

* ``baselines.resnet_weights`` = a local torchvision ``resnet18`` ImageNet state dict: it is
  loaded and used frozen, the first conv adapted to the tile's bands
  (``models/baselines/imagessl/resnet.load_imagenet``); features = the 512-d pooled output.
* ``baselines.resnet_weights`` = null: without labels-free pretraining there is nothing to
  transfer, so the same architecture (first conv taking C bands) is trained from scratch,
  supervised, on the TRAINING rows' standardised targets (multi-output masked MSE with the
  shared training loop, early stopping on validation rows); features = the pooled 512-d
  penultimate activations.
"""

from __future__ import annotations

from typing import Any

import torch
import torchvision
from torch import nn

from urbanmoe.models.baselines.imagessl.common import encode, generator, seeded
from urbanmoe.models.baselines.imagessl.resnet import TileRegressor, load_imagenet
from urbanmoe.training.baselines.imagessl.common import standardised_tiles
from urbanmoe.training.loop import TrainData, fit
from urbanmoe.training.prepare import Prepared
from urbanmoe.training.registry import Representation

PATIENCE = 5  # epochs without validation improvement before the from-scratch training stops
WEIGHT_DECAY = 1e-4


def train_from_scratch(prep: Prepared, tiles: torch.Tensor, b: dict[str, Any], seed: int,
                       device: torch.device | str, progress: bool) -> tuple[nn.Module, list[float]]:
    """resnet18 (C-band conv1) regressing the training rows' standardised targets."""
    n_tasks = prep.data.y.shape[1]
    with seeded(seed):
        net = torchvision.models.resnet18(weights=None, num_classes=n_tasks)
        net.conv1 = nn.Conv2d(tiles.shape[1], 64, 7, stride=2, padding=3, bias=False)
    model = TileRegressor(net).to(device)
    data = TrainData({"tiles": tiles}, prep.data.y, prep.data.observed).to(torch.device(device))
    result = fit(model, data, prep.index("train"), prep.index("val"), lr=float(b["ssl_lr"]),
                 weight_decay=WEIGHT_DECAY, batch_size=int(b["ssl_batch_size"]),
                 max_epochs=int(b["resnet_epochs"]), patience=PATIENCE,
                 loss_weights=torch.ones(n_tasks), generator=generator(seed),
                 progress=progress, desc="resnet18")
    net.fc = nn.Identity()
    return net.eval(), result.train_loss


def learn(prep: Prepared, b: dict[str, Any], seed: int, device: torch.device | str,
          progress: bool) -> Representation:
    """512-d pooled ResNet-18 features: frozen ImageNet weights if configured, else trained."""
    tiles = standardised_tiles(prep, b, progress)
    if b.get("resnet_weights"):
        net = load_imagenet(b["resnet_weights"], tiles.shape[1]).to(device)
        history: list[float] = []
        note = f"ImageNet weights from {b['resnet_weights']}"
    else:
        net, history = train_from_scratch(prep, tiles, b, seed, device, progress)
        note = "trained from scratch on the training labels (no ImageNet weights configured)"
    n = sum(p.numel() for p in net.parameters())
    return Representation(encode(net, tiles, device), n, history, note)
