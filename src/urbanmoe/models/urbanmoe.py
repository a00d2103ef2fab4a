"""The UrbanMoE model (Section 2, Eq. 1-7).

Per branch b (normally "image" and "text"; any non-empty subset of branches works):

    z_b = [e_b; r; p]                                                           (Eq. 1)
    (G̃^b, ũ^b) = SME_b(z_b)                                                    (Eq. 2-6)
    ŷ_τ = MLP_τ(ũ_τ^{b1} ‖ ũ_τ^{b2} ‖ ...)                                      (Eq. 7)

where e_b is the branch embedding (d_e), r the region embedding (d_r, see ``region.py``; omitted
with ``use_region=False`` or ``region=None``) and p the standardised POI vector given as input
(d_p; omitted with ``use_poi=False`` or ``n_poi == 0``).  With the spatial-context extension
(not in the paper; ``features/spatial_lag.py``) z_b also ends with the spatial-lag input
(``n_lag`` > 0, batch key ``lag``), or the lag comes as its own branch.  MLP_τ is
Linear(n_branches·o, head_hidden) -> GELU -> Linear(head_hidden, 1), all T heads evaluated
together (``TaskHeads``).
The loss (Eq. 8) lives with the trainer, not here.

UrbanMoE (ST) of Table 2 is one model per task with ``ExpertLayout(1, 16, 0, 0)``: 16
experts per branch and its own head (``build_single_task``).

Default sizes (the paper gives none).  They are chosen so the parameter counts match Table 2 on
SH at the paper's settings (d_e = 512 per branch, d_r = 6, d_p = 15 -> d_in = 533; N_sp = 8,
N_dt = 2, N_sh = 4, T = 3 -> 34 experts per branch; lookup region embedding over 1,558 regions):
Table 2 gives 5.50 M (MT) and 7.75 M (ST); since MT has 2·34 = 68 experts and 3×ST has
3·2·16 = 96, the expert size solving both is ≈ 80.7 K parameters.  With
``DEFAULT_EXPERT_HIDDEN`` = 128, ``DEFAULT_EXPERT_OUT`` = 96, ``DEFAULT_HEAD_HIDDEN`` = 64:

* one expert: 533·128 + 128 + 128·96 + 96 = 80,736
* MT: experts 68·80,736 = 5,490,048; routers 2·3·(533·16 + 16) = 51,264; heads
  3·(192·64 + 64 + 64 + 1) = 37,251; lookup 1,558·6 = 9,348 -> 5,587,911 (5.59 M, +1.6 %)
* 3×ST: 3·(32·80,736 + 2·8,544 + 12,417 + 9,348) = 3·2,622,405 = 7,867,215 (7.87 M, +1.5 %)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .experts import DEFAULT_EXPERT_SHAPE, ExpertShape, linear_init_
from .layout import ExpertLayout
from .sme import SparseMultiExpert

__all__ = [
    "DEFAULT_HEAD_HIDDEN",
    "RESERVED_KEYS",
    "TaskHeads",
    "UrbanMoE",
    "UrbanMoEOutput",
    "build_single_task",
]

DEFAULT_HEAD_HIDDEN = 64
RESERVED_KEYS = frozenset({"poi", "region_index", "coords"})


@dataclass
class UrbanMoEOutput:
    """Predictions and per-branch internals of one forward pass."""

    pred: torch.Tensor  # (B, T)
    gates: dict[str, torch.Tensor]  # branch -> (B, T, E)
    expert_outputs: dict[str, torch.Tensor]  # branch -> (B, E, o)
    fused: dict[str, torch.Tensor]  # branch -> (B, T, o)


class TaskHeads(nn.Module):
    """T task MLPs of Eq. 7, stacked: u (B, T, d_in) -> ŷ (B, T).

    MLP_τ = Linear(d_in, h) -> GELU -> Linear(h, 1); weights W1 (T, d_in, h), b1 (T, h),
    W2 (T, h), b2 (T,), initialised like nn.Linear.
    """

    def __init__(self, n_tasks: int, d_in: int, d_hidden: int = DEFAULT_HEAD_HIDDEN) -> None:
        super().__init__()
        self.n_tasks, self.d_in, self.d_hidden = n_tasks, d_in, d_hidden
        self.w1 = nn.Parameter(torch.empty(n_tasks, d_in, d_hidden))  # (T, d_in, h)
        self.b1 = nn.Parameter(torch.empty(n_tasks, d_hidden))  # (T, h)
        self.w2 = nn.Parameter(torch.empty(n_tasks, d_hidden))  # (T, h)
        self.b2 = nn.Parameter(torch.empty(n_tasks))  # (T,)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        linear_init_(self.d_in, self.w1, self.b1)
        linear_init_(self.d_hidden, self.w2, self.b2)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """u (B, T, d_in) -> predictions (B, T)."""
        h = F.gelu(torch.einsum("bti,tih->bth", u, self.w1) + self.b1)  # (B, T, h)
        return torch.einsum("bth,th->bt", h, self.w2) + self.b2  # (B, T)


class UrbanMoE(nn.Module):
    """Multi-branch sparse multi-expert model for multi-task region profiling (Eq. 1-7).

    Every expert of every branch has ``expert_shape`` (Eq. 2), except a branch named in
    ``branch_shapes`` (another hidden width; the same output width); the heads (Eq. 7) read the
    branches' fused outputs side by side, n_branches · ``expert_shape.d_out`` wide.
    """

    def __init__(
        self,
        branch_dims: Mapping[str, int],
        n_poi: int,
        task_names: Sequence[str],
        layout: ExpertLayout,
        *,
        d_r: int = 6,
        region: nn.Module | None = None,
        use_region: bool = True,
        use_poi: bool = True,
        expert_shape: ExpertShape = DEFAULT_EXPERT_SHAPE,
        head_hidden: int = DEFAULT_HEAD_HIDDEN,
        eps: float = 0.01,
        expert_impl: str = "stacked",
        n_lag: int = 0,
        branch_shapes: Mapping[str, ExpertShape] | None = None,
    ) -> None:
        super().__init__()
        if not branch_dims:
            raise ValueError("UrbanMoE needs at least one branch (e.g. {'image': 512})")
        bad = RESERVED_KEYS.intersection(branch_dims)
        if bad:
            raise ValueError(f"branch names {sorted(bad)} clash with reserved batch keys")
        if len(task_names) != layout.n_tasks or len(set(task_names)) != len(task_names):
            raise ValueError(
                f"task_names {list(task_names)} must be {layout.n_tasks} distinct names "
                f"(layout.n_tasks)"
            )
        if n_poi < 0 or n_lag < 0:
            raise ValueError("n_poi and n_lag must be >= 0")
        if n_lag and "lag" in branch_dims:
            raise ValueError("the spatial lag is either a branch or context (n_lag), not both")
        self.n_lag = n_lag
        self.branch_names = list(branch_dims)
        self.task_names = list(task_names)
        self.layout = layout
        self.use_poi = bool(use_poi) and n_poi > 0
        self.n_poi = n_poi
        self.region = region if (use_region and region is not None) else None
        d_region = 0
        if self.region is not None:
            d_region = int(getattr(self.region, "d_r", d_r))
            if d_region != d_r:
                raise ValueError(f"region embedding has d_r={d_region}, model expects {d_r}")
        self.d_r = d_region
        shapes = dict(branch_shapes or {})
        if any(sh.d_out != expert_shape.d_out for sh in shapes.values()):
            raise ValueError("every branch's experts need the same output width (Eq. 7 reads "
                             "them side by side)")
        d_ctx = d_region + (n_poi if self.use_poi else 0) + n_lag
        self.branches = nn.ModuleDict(
            {
                name: SparseMultiExpert(d_e + d_ctx, layout, shapes.get(name, expert_shape),
                                        eps, expert_impl)
                for name, d_e in branch_dims.items()
            }
        )
        d_fused = len(self.branch_names) * expert_shape.d_out
        self.heads = TaskHeads(layout.n_tasks, d_fused, head_hidden)

    def context(self, batch: Mapping[str, torch.Tensor]) -> list[torch.Tensor]:
        """The shared parts [r; p] of Eq. 1 (and the spatial lag, if on) for this batch."""
        parts: list[torch.Tensor] = []
        if self.region is not None:
            parts.append(self.region(batch.get("region_index"), batch.get("coords")))  # (B, d_r)
        if self.use_poi:
            if "poi" not in batch:
                raise KeyError("batch lacks 'poi' (B, n_poi); build the model with use_poi=False")
            parts.append(batch["poi"])  # (B, d_p)
        if self.n_lag:
            parts.append(batch["lag"])  # (B, n_lag), the spatial-context extension
        return parts

    def forward(self, batch: Mapping[str, torch.Tensor]) -> UrbanMoEOutput:
        """batch: branch -> (B, d_e), 'poi' (B, d_p), 'region_index' (B,), 'coords' (B, 2)."""
        missing = [b for b in self.branch_names if b not in batch]
        if missing:
            raise KeyError(f"batch lacks branch input(s) {missing}")
        ctx = self.context(batch)
        gates, expert_outputs, fused = {}, {}, {}
        for name, sme in self.branches.items():
            e_b = batch[name]  # (B, d_e)
            z = torch.cat([e_b, *[c.to(e_b.dtype) for c in ctx]], dim=-1)  # (B, d_in)  Eq. 1
            out = sme(z)
            gates[name], expert_outputs[name], fused[name] = (
                out.gates,
                out.expert_outputs,
                out.fused,
            )
        u = torch.cat([fused[b] for b in self.branch_names], dim=-1)  # (B, T, n_b·o)
        pred = self.heads(u)  # (B, T)  Eq. 7
        return UrbanMoEOutput(pred=pred, gates=gates, expert_outputs=expert_outputs, fused=fused)

    def expert_labels(self) -> list[str]:
        """Label of each expert of a branch pool, e.g. 'dual:carbon-population'."""
        return self.layout.expert_labels(self.task_names)


def build_single_task(
    branch_dims: Mapping[str, int],
    n_poi: int,
    task_name: str,
    *,
    n_experts: int = 16,
    **kwargs: Any,
) -> UrbanMoE:
    """UrbanMoE (ST): one task, ``n_experts`` specific experts per branch, its own head.

    Table 2's ST row is three of these (one per task), each with its own region embedding.
    """
    return UrbanMoE(branch_dims, n_poi, [task_name], ExpertLayout(1, n_experts, 0, 0), **kwargs)
