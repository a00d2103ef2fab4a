"""Expert networks of the SME pool (Section 2.4.1, Eq. 2).

Each expert is a lightweight feed-forward network

    E(z) = σ(W2 φ(W1 z + b1) + b2),                                            (Eq. 2)

with φ a non-linearity (GELU by default) and σ an output normalisation ("layernorm": a
parameter-free layer norm over the output dimension, "sigmoid", or "none").  ``ExpertShape``
holds the hidden width h, the output width o, φ and σ of one such expert.

``StackedExperts`` evaluates ALL experts of a pool at once: the weights are stacked in tensors
W1 (E, d_in, h), b1 (E, h), W2 (E, h, o), b2 (E, o) and applied with two batched matrix
products over the expert axis (``torch.matmul``), without a Python loop over experts.

``LoopExperts`` is the plain reference (a ModuleList of per-expert ``nn.Sequential``), with
identical math; it can copy the weights of a ``StackedExperts`` (``LoopExperts.from_stacked``).
It exists for tests and for the benchmark (``benchmarks/bench_experts.py``).

Default sizes ``DEFAULT_EXPERT_HIDDEN`` = 128 and ``DEFAULT_EXPERT_OUT`` = 96 are explained in
``urbanmoe.models.urbanmoe`` (they reproduce Table 2's parameter counts).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ACTIVATIONS",
    "DEFAULT_EXPERT_HIDDEN",
    "DEFAULT_EXPERT_OUT",
    "DEFAULT_EXPERT_SHAPE",
    "OUTPUT_NORMS",
    "ExpertShape",
    "LoopExperts",
    "StackedExperts",
    "apply_output_norm",
    "build_experts",
    "linear_init_",
]

DEFAULT_EXPERT_HIDDEN = 128
DEFAULT_EXPERT_OUT = 96

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gelu": F.gelu,
    "relu": F.relu,
    "silu": F.silu,
    "tanh": torch.tanh,
}
_ACTIVATION_MODULES: dict[str, type[nn.Module]] = {
    "gelu": nn.GELU,
    "relu": nn.ReLU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
}
OUTPUT_NORMS = ("layernorm", "sigmoid", "none")


@dataclass(frozen=True)
class ExpertShape:
    """One expert MLP of Eq. 2, E(z) = σ(W2 φ(W1 z + b1) + b2), apart from its input width.

    ``d_hidden`` is h (W1 maps d_in -> h), ``d_out`` is o (W2 maps h -> o), ``activation`` names
    φ (a key of ``ACTIVATIONS``) and ``output_norm`` names σ (one of ``OUTPUT_NORMS``).
    """

    d_hidden: int = DEFAULT_EXPERT_HIDDEN
    d_out: int = DEFAULT_EXPERT_OUT
    activation: str = "gelu"
    output_norm: str = "layernorm"

    def __post_init__(self) -> None:
        if min(self.d_hidden, self.d_out) < 1:
            raise ValueError("d_hidden and d_out must both be >= 1")
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"unknown activation {self.activation!r}; choose one of {sorted(ACTIVATIONS)}"
            )
        if self.output_norm not in OUTPUT_NORMS:
            raise ValueError(
                f"unknown output_norm {self.output_norm!r}; choose one of {OUTPUT_NORMS}"
            )


DEFAULT_EXPERT_SHAPE = ExpertShape()


def linear_init_(fan_in: int, *params: torch.Tensor) -> None:
    """nn.Linear's default init in place: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), drawn in order."""
    bound = 1.0 / math.sqrt(fan_in)
    with torch.no_grad():
        for param in params:
            param.uniform_(-bound, bound)


def apply_output_norm(y: torch.Tensor, output_norm: str) -> torch.Tensor:
    """σ of Eq. 2 over the last dimension: parameter-free layer norm, sigmoid, or identity."""
    if output_norm == "layernorm":
        return F.layer_norm(y, y.shape[-1:])
    if output_norm == "sigmoid":
        return torch.sigmoid(y)
    if output_norm == "none":
        return y
    raise ValueError(f"unknown output_norm {output_norm!r}; choose one of {OUTPUT_NORMS}")


class _ExpertPool(nn.Module):
    """What both expert pools share: pool size, input width, expert shape, and their repr."""

    def _set_sizes(self, n_experts: int, d_in: int, shape: ExpertShape) -> None:
        if min(n_experts, d_in) < 1:
            raise ValueError("n_experts and d_in must both be >= 1")
        self.n_experts, self.d_in, self.shape = n_experts, d_in, shape

    def extra_repr(self) -> str:
        s = self.shape
        return (
            f"n_experts={self.n_experts}, d_in={self.d_in}, d_hidden={s.d_hidden}, "
            f"d_out={s.d_out}, activation={s.activation!r}, output_norm={s.output_norm!r}"
        )


class StackedExperts(_ExpertPool):
    """E experts of Eq. 2 evaluated together with stacked weights.

    Input (B, d_in) -> output (B, E, o) with o = ``shape.d_out``.  Initialisation matches
    ``nn.Linear`` per expert (kaiming-uniform with a = sqrt(5), i.e. U(-1/sqrt(fan_in),
    1/sqrt(fan_in)) for weights and biases), drawn from torch's global RNG.
    """

    def __init__(
        self, n_experts: int, d_in: int, shape: ExpertShape = DEFAULT_EXPERT_SHAPE
    ) -> None:
        super().__init__()
        self._set_sizes(n_experts, d_in, shape)
        d_hidden, d_out = shape.d_hidden, shape.d_out
        self.w1 = nn.Parameter(torch.empty(n_experts, d_in, d_hidden))  # (E, d_in, h)
        self.b1 = nn.Parameter(torch.empty(n_experts, d_hidden))  # (E, h)
        self.w2 = nn.Parameter(torch.empty(n_experts, d_hidden, d_out))  # (E, h, o)
        self.b2 = nn.Parameter(torch.empty(n_experts, d_out))  # (E, o)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """nn.Linear's default init, per expert (bounds use each expert's own fan-in)."""
        linear_init_(self.d_in, self.w1, self.b1)
        linear_init_(self.shape.d_hidden, self.w2, self.b2)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, d_in) -> expert outputs (B, E, d_out)."""
        if z.dim() != 2 or z.shape[-1] != self.d_in:
            raise ValueError(f"expected input of shape (B, {self.d_in}), got {tuple(z.shape)}")
        # einsum("bi,eih->beh") written as a broadcast batched matmul over the expert axis: it
        # avoids the permuted weight copy einsum makes (less memory, slightly faster on CPU).
        h = torch.matmul(z, self.w1) + self.b1.unsqueeze(1)  # (E, B, h)
        h = ACTIVATIONS[self.shape.activation](h)
        y = torch.matmul(h, self.w2) + self.b2.unsqueeze(1)  # (E, B, o)
        return apply_output_norm(y.transpose(0, 1), self.shape.output_norm)  # (B, E, o)



class LoopExperts(_ExpertPool):
    """Reference pool: one ``nn.Sequential(Linear, φ, Linear)`` per expert, looped in Python.

    Same math and parameter count as ``StackedExperts``; input (B, d_in) -> (B, E, d_out).
    A deliberate twin of ``StackedExperts`` (same signature, same output): the plain reference
    the stacked pool is tested and benchmarked against (``benchmarks/bench_experts.py``).
    """

    def __init__(
        self, n_experts: int, d_in: int, shape: ExpertShape = DEFAULT_EXPERT_SHAPE
    ) -> None:
        super().__init__()
        self._set_sizes(n_experts, d_in, shape)
        self.experts = nn.ModuleList(
            nn.Sequential(
                nn.Linear(d_in, shape.d_hidden),
                _ACTIVATION_MODULES[shape.activation](),
                nn.Linear(shape.d_hidden, shape.d_out),
            )
            for _ in range(n_experts)
        )

    @classmethod
    def from_stacked(cls, stacked: StackedExperts) -> LoopExperts:
        """A LoopExperts holding copies of ``stacked``'s weights (same device and dtype)."""
        loop = cls(stacked.n_experts, stacked.d_in, stacked.shape).to(
            device=stacked.w1.device, dtype=stacked.w1.dtype
        )
        loop.load_stacked_(stacked)
        return loop

    @torch.no_grad()
    def load_stacked_(self, stacked: StackedExperts) -> None:
        """Copy the stacked weights in place (nn.Linear stores W transposed: (out, in))."""
        mine, theirs = self.shape, stacked.shape
        if (stacked.n_experts, stacked.d_in, theirs.d_hidden, theirs.d_out) != (
            self.n_experts, self.d_in, mine.d_hidden, mine.d_out
        ):
            raise ValueError("StackedExperts and LoopExperts sizes differ")
        for e, expert in enumerate(self.experts):
            expert[0].weight.copy_(stacked.w1[e].T)  # (h, d_in)
            expert[0].bias.copy_(stacked.b1[e])  # (h,)
            expert[2].weight.copy_(stacked.w2[e].T)  # (o, h)
            expert[2].bias.copy_(stacked.b2[e])  # (o,)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, d_in) -> expert outputs (B, E, d_out)."""
        y = torch.stack([expert(z) for expert in self.experts], dim=1)  # (B, E, o)
        return apply_output_norm(y, self.shape.output_norm)


def build_experts(
    impl: str, n_experts: int, d_in: int, shape: ExpertShape = DEFAULT_EXPERT_SHAPE
) -> StackedExperts | LoopExperts:
    """``impl`` = "stacked" (default, fast) or "loop" (reference, for tests / benchmarks)."""
    if impl == "stacked":
        return StackedExperts(n_experts, d_in, shape)
    if impl == "loop":
        return LoopExperts(n_experts, d_in, shape)
    raise ValueError(f"unknown expert_impl {impl!r}; choose 'stacked' or 'loop'")
