"""Expert layout of one Sparse Multi-Expert pool (Section 2.4.1, Eq. 3; Appendix B, Table 5).

The pool of one branch is E = E_sp ∪ E_dt ∪ E_sh (Eq. 3).  For T tasks it holds, in this order:

1. task-specific experts: ``n_specific`` for task 0, then ``n_specific`` for task 1, ... task T-1;
2. dual-task experts: ``n_dual`` for every unordered task pair (i, j), i < j, pairs in
   lexicographic order ((0, 1), (0, 2), ..., (T-2, T-1)); with T == 1 there are no pairs;
3. shared experts: ``n_shared``.

Task τ may route to (Section 2.4.2) its own specific experts, the dual-task experts of every pair
containing τ, and all shared experts, i.e. M_τ = n_specific + (T-1)·n_dual + n_shared experts.
At the paper's default (N_sp = 8, N_dt = 2, N_sh = 4, T = 3) the pool has 8·3 + 2·3 + 4 = 34
experts per branch and every task sees 8 + 2·2 + 4 = 16 (Section 2.6).

``TABLE5_PRESETS`` holds the seven allocations of Table 5 (16 experts per task for T = 3).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import torch

from urbanmoe.paper_items import ALLOCATIONS

__all__ = [
    "PAPER_LAYOUT",
    "TABLE5_PRESETS",
    "ExpertLayout",
    "layout_from_preset",
]


@dataclass(frozen=True)
class ExpertLayout:
    """Counts of specific, dual-task and shared experts for ``n_tasks`` tasks (Eq. 3)."""

    n_tasks: int
    n_specific: int
    n_dual: int
    n_shared: int

    def __post_init__(self) -> None:
        for name in ("n_tasks", "n_specific", "n_dual", "n_shared"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"ExpertLayout.{name} must be an int, got {value!r}")
            if value < 0:
                raise ValueError(f"ExpertLayout.{name} must be >= 0, got {value}")
        if self.n_tasks < 1:
            raise ValueError("ExpertLayout needs at least one task (n_tasks >= 1)")
        empty = [t for t, m in enumerate(self.n_eligible) if m == 0]
        if empty:
            raise ValueError(
                f"ExpertLayout{self.as_tuple()} leaves task(s) {empty} without any eligible "
                "expert; give them specific, shared or (T >= 2) dual-task experts"
            )

    # ------------------------------------------------------------------ structure
    def as_tuple(self) -> tuple[int, int, int, int]:
        """(n_tasks, n_specific, n_dual, n_shared)."""
        return (self.n_tasks, self.n_specific, self.n_dual, self.n_shared)

    @property
    def pairs(self) -> list[tuple[int, int]]:
        """Unordered task pairs (i < j) in lexicographic order; empty when T == 1."""
        return list(combinations(range(self.n_tasks), 2))

    @property
    def n_dual_effective(self) -> int:
        """Dual-task experts per pair actually present (0 when T == 1: no pairs)."""
        return self.n_dual if self.n_tasks >= 2 else 0

    @property
    def n_experts(self) -> int:
        """E, the size of the stacked pool."""
        return (
            self.n_tasks * self.n_specific + len(self.pairs) * self.n_dual_effective + self.n_shared
        )

    @property
    def n_eligible(self) -> tuple[int, ...]:
        """M_τ per task: number of experts task τ may route to."""
        m = self.n_specific + (self.n_tasks - 1) * self.n_dual_effective + self.n_shared
        return (m,) * self.n_tasks

    def expert_owners(self) -> list[tuple[int, ...]]:
        """For each expert (pool order), the tasks allowed to use it."""
        owners: list[tuple[int, ...]] = []
        for t in range(self.n_tasks):
            owners += [(t,)] * self.n_specific
        for pair in self.pairs:
            owners += [pair] * self.n_dual_effective
        owners += [tuple(range(self.n_tasks))] * self.n_shared
        return owners

    @property
    def expert_kinds(self) -> list[str]:
        """'specific' / 'dual' / 'shared' for each expert, in pool order (length E)."""
        return (
            ["specific"] * (self.n_tasks * self.n_specific)
            + ["dual"] * (len(self.pairs) * self.n_dual_effective)
            + ["shared"] * self.n_shared
        )

    @property
    def eligibility(self) -> torch.Tensor:
        """Bool mask (T, E): ``mask[τ, m]`` is True iff task τ may use expert m."""
        mask = torch.zeros(self.n_tasks, self.n_experts, dtype=torch.bool)  # (T, E)
        for m, owners in enumerate(self.expert_owners()):
            mask[list(owners), m] = True
        return mask

    def expert_labels(self, task_names: list[str] | tuple[str, ...] | None = None) -> list[str]:
        """Human-readable label per expert, e.g. 'specific:carbon', 'dual:carbon-population'."""
        if task_names is None:
            task_names = [str(t) for t in range(self.n_tasks)]
        names = list(task_names)
        if len(names) != self.n_tasks:
            raise ValueError(f"expected {self.n_tasks} task names, got {len(names)}")
        labels: list[str] = []
        for kind, owners in zip(self.expert_kinds, self.expert_owners(), strict=True):
            if kind == "specific":
                labels.append(f"specific:{names[owners[0]]}")
            elif kind == "dual":
                labels.append(f"dual:{names[owners[0]]}-{names[owners[1]]}")
            else:
                labels.append("shared")
        return labels


# Table 5 (Appendix B): name -> (n_specific, n_shared, n_dual per pair).  Note the column order
# follows the table (special, shared, dual), NOT ExpertLayout's argument order.
#: Table 5's allocations by configuration: (specific per task, shared, dual per pair), from
#: their paper item (``paper_items.ALLOCATIONS``).
TABLE5_PRESETS: dict[str, tuple[int, int, int]] = {
    r.key: (r.settings()["n_specific"], r.settings()["n_shared"], r.settings()["n_dual"])
    for r in ALLOCATIONS
}


def layout_from_preset(name: str, n_tasks: int = 3) -> ExpertLayout:
    """Build the ExpertLayout of a Table 5 configuration (16 experts per task when T = 3)."""
    try:
        n_specific, n_shared, n_dual = TABLE5_PRESETS[name]
    except KeyError:
        raise ValueError(
            f"unknown Table 5 preset {name!r}; choose one of {sorted(TABLE5_PRESETS)}"
        ) from None
    return ExpertLayout(n_tasks, n_specific, n_dual, n_shared)


# Section 3.3 / 2.6: N_sp = 8, N_dt = 2, N_sh = 4 for three tasks -> 34 experts per branch.
PAPER_LAYOUT = ExpertLayout(n_tasks=3, n_specific=8, n_dual=2, n_shared=4)
