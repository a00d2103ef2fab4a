"""Sparse Multi-Expert (SME) module of one branch (Section 2.4, Eq. 3 and 6).

One SME holds the expert pool E = E_sp ∪ E_dt ∪ E_sh of a branch (Eq. 3, laid out by
``ExpertLayout``), evaluated by ``StackedExperts`` (Eq. 2), and a ``SparseRouter`` (Eq. 4-5).
Task-aware representation fusion (Eq. 6) is

    ũ_τ = Σ_m G̃_τ,m E_m(z),                                                    (Eq. 6)

computed for all tasks at once with one einsum over the dense (B, T, E) gate tensor, whose
ineligible and thresholded entries are exactly zero.

Note on cost: every expert is evaluated for every input and the zero gates then drop its
contribution.  The result is exactly Eq. 6; only the FLOP saving of skipping inactive experts,
which the paper mentions, is not taken (at these sizes the dense batched GEMMs are faster than
gathering per-sample expert subsets).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from .experts import DEFAULT_EXPERT_SHAPE, ExpertShape, build_experts
from .layout import ExpertLayout
from .router import SparseRouter

__all__ = ["SMEOutput", "SparseMultiExpert"]


class SMEOutput(NamedTuple):
    """Outputs of one SME forward pass."""

    fused: torch.Tensor  # (B, T, o)  ũ_τ of Eq. 6
    gates: torch.Tensor  # (B, T, E)  G̃ of Eq. 5
    expert_outputs: torch.Tensor  # (B, E, o)  E_m(z) of Eq. 2


class SparseMultiExpert(nn.Module):
    """One branch's expert pool + sparse router + fusion; z (B, d_in) -> ``SMEOutput``.

    Every expert of the pool has ``shape`` (Eq. 2); ``expert_impl`` picks the pool's
    implementation ("stacked" or the "loop" reference, see ``build_experts``).
    """

    def __init__(
        self,
        d_in: int,
        layout: ExpertLayout,
        shape: ExpertShape = DEFAULT_EXPERT_SHAPE,
        eps: float = 0.01,
        expert_impl: str = "stacked",
    ) -> None:
        super().__init__()
        self.layout = layout
        self.d_in, self.d_out = d_in, shape.d_out
        self.experts = build_experts(expert_impl, layout.n_experts, d_in, shape)
        self.router = SparseRouter(d_in, layout, eps)

    def forward(self, z: torch.Tensor) -> SMEOutput:
        """z (B, d_in) -> fused (B, T, o), gates (B, T, E), expert_outputs (B, E, o)."""
        expert_outputs = self.experts(z)  # (B, E, o)
        gates = self.router(z)  # (B, T, E)
        fused = torch.einsum("bte,beo->bto", gates, expert_outputs)  # (B, T, o)
        return SMEOutput(fused=fused, gates=gates, expert_outputs=expert_outputs)
