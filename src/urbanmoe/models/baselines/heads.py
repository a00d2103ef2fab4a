"""The MLP blocks every baseline shares: a feed-forward block and a head over named inputs.

``FeatureHead`` is "the same regression head" of the baselines (Appendix A): it concatenates the
named inputs of a batch (branch embeddings, POI vector, a learned representation, ...) and maps
them through a two-layer MLP to one output per task.
"""

from __future__ import annotations

import torch
from torch import nn


def mlp(d_in: int, hidden: int, d_out: int, dropout: float = 0.0) -> nn.Sequential:
    """Linear -> GELU -> (Dropout) -> Linear."""
    layers: list[nn.Module] = [nn.Linear(d_in, hidden), nn.GELU()]
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(hidden, d_out))
    return nn.Sequential(*layers)


class FeatureHead(nn.Module):
    """Concatenate ``batch[k]`` for k in ``keys`` and predict (B, n_out) with an MLP."""

    def __init__(self, dims: dict[str, int], hidden: int, n_out: int) -> None:
        super().__init__()
        if not dims:
            raise ValueError("FeatureHead needs at least one input")
        self.keys = list(dims)
        self.net = mlp(sum(dims.values()), hidden, n_out)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.net(torch.cat([batch[k] for k in self.keys], dim=1))
