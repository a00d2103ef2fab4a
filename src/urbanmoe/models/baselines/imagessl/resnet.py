"""ResNet-18 of Appendix A (Table 2 row "ResNet-18"): torchvision's ``resnet18`` with local
ImageNet weights and its first conv adapted to the tile's bands (the baseline:
``training/baselines/imagessl/resnet.py``).

Nothing is downloaded (torchvision's ``weights=`` enums are never used). :func:`load_imagenet`
loads a local torchvision ``resnet18`` ImageNet state dict (``torch.load(..., weights_only=True)``,
strict key match) and returns it frozen, without ``fc``: its output is the 512-d
global-average-pooled output of ``layer4``. Band mapping: tiles are ordered B02 (blue), B03
(green), B04 (red)[, B08 (NIR), ...] (``data/tiles.read_tile``), so input band 0 takes
ImageNet's blue filter, 1 green, 2 red; every further band (NIR, ...) takes the mean of the
three RGB filters; with more than three bands all filters are scaled by 3 / C so the first
activations keep their magnitude.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from torch import nn

from urbanmoe.binaries import read_checkpoint
from urbanmoe.errors import InputError

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
        state = read_checkpoint(path, "a torch state dict")
    except InputError as exc:  # any unreadable file is the same user error
        raise _bad(path, str(exc).removeprefix(f"{path}: ")) from None
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


class TileRegressor(nn.Module):
    """Adapter for the shared training loop: ``batch["tiles"]`` -> (B, T)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.net(batch["tiles"])
