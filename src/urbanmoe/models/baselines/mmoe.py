"""Gated multi-expert baselines of Table 2 (reviewer baselines): MMoE and PLE/CGC.

* MMoE (Ma et al., KDD 2018): one pool of E shared experts; every task τ has its own DENSE
  softmax gate over all E experts, g_τ(x) = softmax(W_τ x), and a tower on Σ_e g_τe · f_e(x).
* PLE (Tang et al., RecSys 2020) with a single extraction layer, i.e. CGC (Customized Gate
  Control): the pool holds ``n_specific`` experts per task and ``n_shared`` shared ones; task τ's
  dense softmax gate spans ONLY its own specific experts plus the shared experts. (With one layer
  the shared gate of PLE, which only feeds a next extraction layer, has nothing to feed and is
  left out.)

Both are one class, :class:`GatedExperts`, that differs only in which experts each gate mixes
(``gate_experts``). Experts are UrbanMoE's own feed-forward experts (``StackedExperts``, Eq. 2,
of an ``ExpertShape`` with ``model.activation`` / ``model.output_norm``) and the towers are
UrbanMoE's task MLPs (``TaskHeads``, Eq. 7), so the comparison isolates the routing.
``ple_split`` says how ``baselines.moe_experts`` is divided; ``matched_width`` sizes the experts'
hidden width so the parameter count matches a target (UrbanMoE's).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from urbanmoe.models.experts import ExpertShape, StackedExperts
from urbanmoe.models.urbanmoe import TaskHeads
from urbanmoe.runtime.efficiency import count_parameters


class GatedExperts(nn.Module):
    """(B, d_in) -> (B, T): an expert pool, one dense softmax gate per task, one tower per task.

    ``gate_experts[task]`` lists the pool indices that task's gate mixes, in gate-column order;
    ``self.gates[task]`` is Linear(d_in, len(gate_experts[task])). After each forward,
    ``last_gates[task]`` holds that task's gate weights (B, len(gate_experts[task])), detached.
    Every expert has ``expert_shape`` (Eq. 2); each tower is Linear(d_out, tower_hidden) -> GELU
    -> Linear(tower_hidden, 1).
    """

    def __init__(self, d_in: int, n_experts: int, gate_experts: dict[str, list[int]], *,
                 expert_shape: ExpertShape, tower_hidden: int) -> None:
        super().__init__()
        for task, idx in gate_experts.items():
            if not idx or min(idx) < 0 or max(idx) >= n_experts or len(set(idx)) != len(idx):
                raise ValueError(f"gate of {task!r} must list distinct experts in [0, {n_experts})")
        self.tasks = list(gate_experts)
        self.gate_experts = {t: list(i) for t, i in gate_experts.items()}
        self.experts = StackedExperts(n_experts, d_in, expert_shape)
        self.gates = nn.ModuleDict({t: nn.Linear(d_in, len(i)) for t, i in gate_experts.items()})
        self.towers = TaskHeads(len(self.tasks), expert_shape.d_out, tower_hidden)
        self.last_gates: dict[str, torch.Tensor] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = self.experts(x)  # (B, E, o)
        fused = []
        for task in self.tasks:
            g = torch.softmax(self.gates[task](x), dim=-1)  # (B, k)
            self.last_gates[task] = g.detach()
            chosen = outs[:, self.gate_experts[task]]  # (B, k, o)
            fused.append(torch.einsum("bk,bko->bo", g, chosen))  # (B, o)
        return self.towers(torch.stack(fused, dim=1))  # (B, T)


def mmoe_gates(tasks: list[str], n_experts: int) -> dict[str, list[int]]:
    """MMoE: every task's gate mixes all ``n_experts`` experts."""
    return {t: list(range(n_experts)) for t in tasks}


def ple_split(n_experts: int, n_tasks: int) -> tuple[int, int]:
    """(n_specific per task, n_shared) for PLE/CGC out of ``baselines.moe_experts``.

    Each task and the shared group get an equal share, ``n_specific = max(1, E // (T + 1))``;
    the remainder goes to the shared group, ``n_shared = max(1, E - T · n_specific)``. The pool
    therefore holds E experts whenever E >= T + 1 (e.g. E = 8, T = 3: 2 per task + 2 shared);
    for smaller E every group still gets one expert (the pool then exceeds E).
    """
    n_specific = max(1, n_experts // (n_tasks + 1))
    return n_specific, max(1, n_experts - n_tasks * n_specific)


def ple_gates(tasks: list[str], n_specific: int, n_shared: int) -> tuple[int, dict[str, list[int]]]:
    """PLE/CGC pool size and gates: task j's specific experts j·n_sp..(j+1)·n_sp - 1, then the
    shared experts T·n_sp.. (the pool holds all specific experts first, shared ones last)."""
    n_tasks = len(tasks)
    shared = list(range(n_tasks * n_specific, n_tasks * n_specific + n_shared))
    gates = {t: [*range(j * n_specific, (j + 1) * n_specific), *shared]
             for j, t in enumerate(tasks)}
    return n_tasks * n_specific + n_shared, gates


def matched_width(make: Callable[[int], nn.Module], target: int) -> int:
    """Hidden width h >= 1 whose model ``make(h)`` has the parameter count closest to ``target``.

    The count is affine in the experts' hidden width (count = a·h + c), so two probes (h = 1, 2)
    give a and c and the width is rounded from the closed form h = (target - c) / a.
    """
    p1, p2 = count_parameters(make(1)), count_parameters(make(2))
    slope = p2 - p1
    if slope <= 0:
        raise ValueError("the parameter count does not grow with the expert width")
    return max(1, round((target - (p1 - slope)) / slope))
