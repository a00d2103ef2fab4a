"""Task-specific sparse router of the SME module (Section 2.4.2, Eq. 4-5).

For every task τ a gate G_τ(z) = Softmax(W_τ z + b_τ) (Eq. 4) is computed over ONLY the M_τ
experts task τ may use (see ``ExpertLayout.eligibility``).  Parameters exist only for eligible
experts: the T gates are packed in one ``nn.Linear(d_in, Σ_τ M_τ)`` (so the router holds
Σ_τ (d_in·M_τ + M_τ) parameters) whose outputs are scattered into a (B, T, E) logit tensor,
ineligible positions being -inf, followed by one softmax over the expert axis.

Eq. 5 then keeps only the weights strictly above the threshold ε,

    G̃_τ,m = G_τ,m if G_τ,m > ε else 0,                                        (Eq. 5)

with NO renormalisation (rows of G̃ may sum to < 1).  The threshold is hard in the forward pass;
gradients flow through the surviving weights only.  ε is compared in the gate's dtype.
"""

from __future__ import annotations

import torch
from torch import nn

from .layout import ExpertLayout

__all__ = ["ExpertLayout", "SparseRouter", "sparse_threshold"]  # ExpertLayout re-exported


def sparse_threshold(gates: torch.Tensor, eps: float) -> torch.Tensor:
    """Eq. 5: zero every weight <= eps, keep the others unchanged (no renormalisation)."""
    return torch.where(gates > eps, gates, torch.zeros((), dtype=gates.dtype, device=gates.device))


class SparseRouter(nn.Module):
    """T task gates over one expert pool; z (B, d_in) -> sparse gate weights (B, T, E)."""

    def __init__(self, d_in: int, layout: ExpertLayout, eps: float = 0.01) -> None:
        super().__init__()
        if d_in < 1:
            raise ValueError("d_in must be >= 1")
        if eps < 0:
            raise ValueError(f"eps must be >= 0, got {eps}")
        self.d_in, self.layout, self.eps = d_in, layout, float(eps)
        mask = layout.eligibility  # (T, E) bool
        self.register_buffer("eligibility", mask, persistent=False)
        # flat position τ·E + m of every eligible (τ, m), task-major: the packed Linear's row order
        flat_index = mask.reshape(-1).nonzero().squeeze(1)  # (ΣM,)
        self.register_buffer("flat_index", flat_index, persistent=False)
        self.gate = nn.Linear(d_in, int(mask.sum()))  # W: (ΣM, d_in), b: (ΣM,)

    @property
    def n_tasks(self) -> int:
        return self.layout.n_tasks

    @property
    def n_experts(self) -> int:
        return self.layout.n_experts

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        """W_τ z + b_τ scattered to (B, T, E); -inf where task τ may not use expert m."""
        packed = self.gate(z)  # (B, ΣM)
        b = packed.shape[0]
        full = packed.new_full((b, self.n_tasks * self.n_experts), float("-inf"))  # (B, T·E)
        full = full.index_copy(1, self.flat_index, packed)
        return full.view(b, self.n_tasks, self.n_experts)  # (B, T, E)

    def probabilities(self, z: torch.Tensor) -> torch.Tensor:
        """Eq. 4, dense: G_τ(z) over the eligible experts, exactly 0 elsewhere -> (B, T, E)."""
        return torch.softmax(self.logits(z), dim=-1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Eq. 4-5: z (B, d_in) -> thresholded gate weights G̃ (B, T, E)."""
        if z.dim() != 2 or z.shape[-1] != self.d_in:
            raise ValueError(f"expected input of shape (B, {self.d_in}), got {tuple(z.shape)}")
        return sparse_threshold(self.probabilities(z), self.eps)

    def task_parameters(self, task: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(W_τ (M_τ, d_in), b_τ (M_τ,), expert indices (M_τ,)) of task τ's gate (views)."""
        if not 0 <= task < self.n_tasks:
            raise IndexError(f"task {task} out of range for {self.n_tasks} tasks")
        rows = (self.flat_index // self.n_experts) == task  # (ΣM,) bool
        experts = self.flat_index[rows] % self.n_experts  # (M_τ,)
        start = int(rows.nonzero()[0])
        stop = start + int(rows.sum())
        return self.gate.weight[start:stop], self.gate.bias[start:stop], experts

    def extra_repr(self) -> str:
        return f"d_in={self.d_in}, layout={self.layout.as_tuple()}, eps={self.eps}"
