"""The modules of the neural baselines of Table 2 on exactly UrbanMoE's inputs (Appendix A).

:class:`InputBaseline` feeds a body what UrbanMoE sees (Eq. 1): each branch embedding e_b present
in the batch, the region embedding r (``model.use_region``; held as the attribute ``region`` so
the training loop gives it ``train.region_lr``) and the standardised POI vector p
(``model.use_poi``), concatenated as x = [e_image; e_text; r; p] -- one input instead of one per
branch. :class:`SharedBottom` is the body of "MLP (ST)" and "Shared-bottom MLP (MT)"; MMoE and
PLE/CGC are ``mmoe.GatedExperts``. ``training/baselines/neural.py`` builds them from a prepared
dataset and ``model.*`` / ``baselines.*``.
"""

from __future__ import annotations

import torch
from torch import nn

from urbanmoe.models.urbanmoe import TaskHeads


class InputBaseline(nn.Module):
    """x = [batch[k] for k in keys; r; p] (UrbanMoE's inputs, Eq. 1) -> ``body(x)`` (B, T)."""

    def __init__(self, keys: list[str], use_poi: bool, region: nn.Module | None,
                 body: nn.Module) -> None:
        super().__init__()
        self.keys, self.use_poi = list(keys), use_poi
        self.region = region
        self.body = body

    def inputs(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The concatenated input (B, d_in)."""
        parts = [batch[k] for k in self.keys]
        if self.region is not None:
            parts.append(self.region(batch.get("region_index"), batch.get("coords")))  # (B, d_r)
        if self.use_poi:
            parts.append(batch["poi"])  # (B, d_p)
        return torch.cat([p.to(parts[0].dtype) for p in parts], dim=1)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.body(self.inputs(batch))  # (B, T)

    @property
    def last_gates(self) -> dict[str, torch.Tensor]:
        """Gate weights of the last forward per task (gated bodies only; empty otherwise)."""
        return getattr(self.body, "last_gates", {})


class SharedBottom(nn.Module):
    """(B, d_in) -> (B, T): a two-layer GELU trunk of width ``hidden``, then one tower per task."""

    def __init__(self, d_in: int, hidden: int, n_tasks: int, tower_hidden: int) -> None:
        super().__init__()
        self.n_tasks = n_tasks
        self.trunk = nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(),
                                   nn.Linear(hidden, hidden), nn.GELU())
        self.towers = TaskHeads(n_tasks, hidden, tower_hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.trunk(x)  # (B, h)
        return self.towers(h.unsqueeze(1).expand(-1, self.n_tasks, -1))  # (B, T)
