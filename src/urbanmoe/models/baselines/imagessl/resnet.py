"""ResNet-18 baseline of Appendix A (Table 2 row "ResNet-18").

The paper transfers an ImageNet-pretrained ResNet-18 as a frozen feature extractor. Nothing is
downloaded here (torchvision's ``weights=`` enums are never used):

* ``baselines.resnet_weights`` = a local torchvision ``resnet18`` ImageNet state dict: it is
  loaded (``torch.load(..., weights_only=True)``, strict key match) and used frozen; features =
  the 512-d global-average-pooled output of ``layer4``. The first conv is adapted to the tile's
  bands. Band mapping: tiles are ordered B02 (blue), B03 (green), B04 (red)[, B08 (NIR), ...]
  (``data/tiles.read_tile``), so input band 0 takes ImageNet's blue filter, 1 green, 2 red;
  every further band (NIR, ...) takes the mean of the three RGB filters; with more than three
  bands all filters are scaled by 3 / C so the first activations keep their magnitude.
* ``baselines.resnet_weights`` = null: without labels-free pretraining there is nothing to
  transfer, so the same architecture (first conv taking C bands) is trained from scratch,
  supervised, on the TRAINING rows' standardised targets (multi-output masked MSE with the
  shared training loop, early stopping on validation rows); features = the pooled 512-d
  penultimate activations.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn

from urbanmoe.models.baselines.imagessl.common import (
    encode,
    generator,
    seeded,
    standardised_tiles,
)
from urbanmoe.models.registry import Representation
from urbanmoe.training.loop import TrainData, fit
from urbanmoe.training.prepare import Prepared

PATIENCE = 5  # epochs without validation improvement before the from-scratch training stops
WEIGHT_DECAY = 1e-4
_BGR_FROM_RGB = (2, 1, 0)  # input band i (B, G, R) takes ImageNet conv1 input channel _[i]


def _bad(path: Path, why: str) -> ValueError:
    return ValueError(f"baselines.resnet_weights: {path}: {why}".replace("\n", " ")[:400])


def load_imagenet(path: str | Path, in_ch: int) -> nn.Module:
    """A torchvision resnet18 with the local state dict at ``path``, conv1 adapted to ``in_ch``
    bands (see the module docstring) and ``fc`` removed; a one-line ValueError when the file is
    missing or is not such a state dict."""
    path = Path(path)
    if not path.is_file():
        raise _bad(path, "no such file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable file is the same user error
        raise _bad(path, f"cannot be read as a torch state dict ({type(exc).__name__})") from exc
    if not isinstance(state, dict):
        raise _bad(path, f"holds a {type(state).__name__}, not a resnet18 state dict")
    net = torchvision.models.resnet18(weights=None)
    try:
        net.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise _bad(path, f"not a torchvision resnet18 state dict ({str(exc)[:200]})") from exc
    rgb = net.conv1.weight.detach()  # (64, 3, 7, 7), ImageNet's R, G, B
    mean = rgb.mean(1)
    w = torch.stack([rgb[:, _BGR_FROM_RGB[i]] if i < 3 else mean for i in range(in_ch)], 1)
    net.conv1 = nn.Conv2d(in_ch, 64, 7, stride=2, padding=3, bias=False)
    with torch.no_grad():
        net.conv1.weight.copy_(w * (3.0 / in_ch if in_ch > 3 else 1.0))
    net.fc = nn.Identity()
    return net.requires_grad_(False).eval()


class _Regressor(nn.Module):
    """Adapter for the shared training loop: ``batch["tiles"]`` -> (B, T)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.net(batch["tiles"])


def train_from_scratch(prep: Prepared, tiles: torch.Tensor, b: dict[str, Any], seed: int,
                       device: torch.device | str, progress: bool) -> tuple[nn.Module, list[float]]:
    """resnet18 (C-band conv1) regressing the training rows' standardised targets."""
    n_tasks = prep.data.y.shape[1]
    with seeded(seed):
        net = torchvision.models.resnet18(weights=None, num_classes=n_tasks)
        net.conv1 = nn.Conv2d(tiles.shape[1], 64, 7, stride=2, padding=3, bias=False)
    model = _Regressor(net).to(device)
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
